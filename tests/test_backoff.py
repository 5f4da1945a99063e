"""Launch backoff: Marathon's RateLimiter sequence, expiry and which task states count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.decide.backoff import (
    Backoff,
    counts_as_failure,
    expired,
    launch_allowed,
    record_failure,
    time_left,
)


def delays(n: int, backoff: float = 1.0, factor: float = 1.15, cap: float = 300.0) -> list[float]:
    b: Backoff | None = None
    out = []
    for i in range(n):
        b = record_failure(b, now=float(i), backoff_seconds=backoff, factor=factor, max_delay=cap)
        out.append(b.delay)
    return out


def test_marathon_default_sequence() -> None:
    seq = delays(60)
    assert seq[:5] == pytest.approx([1.0, 1.15, 1.3225, 1.520875, 1.74900625])
    assert seq[40] == pytest.approx(1.15 ** 40)      # 268.86..., still below the cap
    assert seq[41] == 300.0 and seq[-1] == 300.0    # 1.15 ** 41 = 309.2 is capped


def test_first_failure_is_capped_too() -> None:
    assert delays(1, backoff=600, cap=300) == [300.0]


def test_next_launch_and_time_left() -> None:
    b = record_failure(None, now=100.0, backoff_seconds=10, factor=2, max_delay=300)
    assert b == Backoff(delay=10, next_launch_at=110.0, last_failure_at=100.0)
    assert not launch_allowed(b, 105.0) and time_left(b, 105.0) == 5.0
    assert launch_allowed(b, 110.0) and time_left(b, 110.0) == 0.0
    assert time_left(b, 500.0) == 0.0
    b2 = record_failure(b, now=120.0, backoff_seconds=10, factor=2, max_delay=300)
    assert b2 == Backoff(delay=20, next_launch_at=140.0, last_failure_at=120.0)


def test_no_backoff_allows_launch() -> None:
    assert launch_allowed(None, 0.0) and time_left(None, 0.0) == 0.0


def test_expiry_after_delay_plus_max_delay_without_failure() -> None:
    b = record_failure(None, now=1000.0, backoff_seconds=5, factor=1.15, max_delay=300)
    assert not expired(b, 1000.0 + 5 + 300, max_delay=300)
    assert expired(b, 1000.0 + 5 + 300 + 0.001, max_delay=300)


@pytest.mark.parametrize("state, failure", [
    ("TASK_FAILED", True), ("TASK_FINISHED", True), ("TASK_ERROR", True), ("TASK_LOST", True),
    ("TASK_GONE", True), ("TASK_DROPPED", True),
    ("TASK_KILLED", False), ("TASK_GONE_BY_OPERATOR", False), ("TASK_UNKNOWN", False),
    ("TASK_UNREACHABLE", False), ("TASK_RUNNING", False), ("TASK_STAGING", False),
    ("TASK_STARTING", False), ("TASK_KILLING", False),
])
def test_which_states_count_as_failure(state: str, failure: bool) -> None:
    assert counts_as_failure(state) is failure


def test_unknown_state_is_a_programmer_error() -> None:
    with pytest.raises(ValueError):
        counts_as_failure("task_failed")


@pytest.mark.parametrize("args", [(-1, 1.15, 300), (1, 0.5, 300), (1, 1.15, -1)])
def test_bad_parameters(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        record_failure(None, 0.0, *args)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1000), st.floats(1, 5), st.floats(0, 3600), st.lists(st.floats(0, 100), min_size=1, max_size=60))
def test_delay_is_monotone_and_capped(backoff: float, factor: float, cap: float, gaps: list[float]) -> None:
    b: Backoff | None = None
    now = 0.0
    previous = 0.0
    for gap in gaps:
        now += gap
        b = record_failure(b, now, backoff, factor, cap)
        assert previous <= b.delay <= cap
        assert b.next_launch_at == now + b.delay and time_left(b, now) >= 0
        previous = b.delay
