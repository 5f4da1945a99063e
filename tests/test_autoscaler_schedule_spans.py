"""The spans of a policy's scheduled windows over a time range (what the UI's chart shades), pure:
they agree, instant by instant, with `active_window`, the rule the decisions use."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.schedule import active_window, parse_schedule, spans_between


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


WEEKDAYS = {"cron": "0 8 * * 1-5", "until": "0 20 * * 1-5", "timezone": "Asia/Shanghai", "minInstances": 6}
SALE = {"name": "sale", "from": "2026-11-10T00:00:00+08:00", "to": "2026-11-12T02:00:00+08:00", "minInstances": 30}
EVENINGS = {"cron": "30 18 * * *", "until": "0 7 * * *", "timezone": "Europe/Berlin", "maxInstances": 3}
SCHEDULE = parse_schedule([WEEKDAYS, SALE, EVENINGS])


def test_a_week_of_working_days_and_a_dated_window() -> None:
    start, end = ts("2026-11-09T00:00:00+08:00"), ts("2026-11-16T00:00:00+08:00")      # Monday to Monday
    spans = spans_between(SCHEDULE[:2], start, end)
    weekdays = [(s.start, s.end) for s in spans if s.window.index == 0]
    assert weekdays == [(ts(f"2026-11-{d:02d}T08:00:00+08:00"), ts(f"2026-11-{d:02d}T20:00:00+08:00"))
                        for d in range(9, 14)]
    (sale,) = [s for s in spans if s.window.index == 1]
    assert (sale.start, sale.end) == (ts(SALE["from"]), ts(SALE["to"]))
    assert sale.to_json()["name"] == "sale"


def test_a_span_open_at_the_start_is_included_whole() -> None:
    start = ts("2026-11-09T12:00:00+08:00")
    (span,) = spans_between(SCHEDULE[:1], start, start + 3600)
    assert (span.start, span.end) == (ts("2026-11-09T08:00:00+08:00"), ts("2026-11-09T20:00:00+08:00"))
    assert spans_between(SCHEDULE[:1], ts("2026-11-14T00:00:00+08:00"), ts("2026-11-15T00:00:00+08:00")) == []


@settings(max_examples=60, deadline=None)
@given(st.integers(ts("2026-01-01T00:00:00+00:00"), ts("2027-01-01T00:00:00+00:00")),
       st.integers(60, 4 * 86400), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_spans_agree_with_active_window_at_every_instant(start: int, length: int, where: list[float]) -> None:
    """Over any range (DST changes in Berlin included), an instant lies in a span of a window
    exactly when `active_window` says the window is active then, with that span."""
    spans = spans_between(SCHEDULE, start, start + length)
    for fraction in where:
        now = start + fraction * (length - 1)
        for window in SCHEDULE:
            active = active_window(window, now)
            covering = [(s.start, s.end) for s in spans if s.window is window and s.start <= now < s.end]
            assert covering == ([(active.start, active.end)] if active else []), (window.index, now)
