"""Scheduled scaling windows: parsing, which are active at an instant, and the bounds they set. Pure.

A policy's ``schedule`` is a list of windows. A window does not replace the policy: while it
is active it raises or lowers the [min, max] the threshold/target policy works within.

* **recurring** — ``{"cron": "0 8 * * 1-5", "until": "0 20 * * 1-5", "timezone":
  "Asia/Shanghai", "minInstances": 6, "maxInstances": 20}``: active from the last fire of
  ``cron`` to the first fire of ``until`` after it, both read on the wall clock of
  ``timezone`` (an IANA name, always given: teams run in UTC+8, hosts often in UTC);
* **dated** — ``{"from": "2026-11-10T00:00:00+08:00", "to": "2026-11-12T02:00:00+08:00",
  "minInstances": 30}``: active in [from, to); both carry their UTC offset.

Either kind takes an optional ``name`` (shown in the decision log) and at least one of
``minInstances`` / ``maxInstances`` (whole numbers ≥ 1).

Overlap rule (``effective_bounds``): among the active windows the highest ``minInstances``
and the highest ``maxInstances`` win (ties: the earliest window); a bound no active window
sets stays the policy's. When the winning minimum exceeds the maximum, the maximum is raised
to it: a scheduled minimum is capacity someone promised.

No clock is read here: ``now`` is passed in, as epoch seconds.

Errors: ``ScheduleError`` (ValueError) lists every (path, message) found, with paths such as
``schedule[0].cron`` in the caller's spelling of the field.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .cron import CronError, CronSpec, last_fire, next_fire, parse_cron

CRON_KEYS = frozenset({"cron", "until", "timezone"})
DATED_KEYS = frozenset({"from", "to"})
WINDOW_KEYS = CRON_KEYS | DATED_KEYS | {"name", "minInstances", "maxInstances"}
EXAMPLE = ('[{"cron": "0 8 * * 1-5", "until": "0 20 * * 1-5", "timezone": "Asia/Shanghai", '
           '"minInstances": 6}]')


class ScheduleError(ValueError):
    """Every violation found in a schedule, as (path, message)."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{path}: {message}" for path, message in violations))


@dataclass(frozen=True)
class Window:
    """One validated window; exactly one of (cron, until, timezone) and (start, end) is set."""

    index: int
    min_instances: int | None = None
    max_instances: int | None = None
    name: str | None = None
    cron: CronSpec | None = None
    until: CronSpec | None = None
    timezone: str | None = None
    start: dt.datetime | None = None          # aware, as written (its offset kept for display)
    end: dt.datetime | None = None

    @property
    def label(self) -> str:
        """How the decision log names it: ``schedule[1] 'sales weekend'``."""
        return f"schedule[{self.index}]" + (f" '{self.name}'" if self.name else "")

    def to_json(self) -> dict[str, Any]:
        """The window as the REST API takes it (what the policy store writes back)."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.cron is not None and self.until is not None:
            out.update(cron=self.cron.text, until=self.until.text, timezone=self.timezone)
        elif self.start is not None and self.end is not None:
            out.update({"from": self.start.isoformat(), "to": self.end.isoformat()})
        if self.min_instances is not None:
            out["minInstances"] = self.min_instances
        if self.max_instances is not None:
            out["maxInstances"] = self.max_instances
        return out


@dataclass(frozen=True)
class ActiveWindow:
    """A window active at some instant, with the span it is active for (epoch seconds)."""

    window: Window
    start: float
    end: float

    def to_json(self, sets: Sequence[str] = ()) -> dict[str, Any]:
        """For the decision log: which window, its span in its own zone/offset, what it set."""
        w = self.window
        zone = ZoneInfo(w.timezone) if w.timezone else (w.start.tzinfo if w.start else None) or dt.UTC
        out: dict[str, Any] = {"index": w.index, "name": w.name,
                               "from": dt.datetime.fromtimestamp(self.start, zone).isoformat(),
                               "to": dt.datetime.fromtimestamp(self.end, zone).isoformat(),
                               "minInstances": w.min_instances, "maxInstances": w.max_instances,
                               "sets": list(sets)}
        if w.cron is not None:
            out.update(cron=w.cron.text, until=w.until.text if w.until else None, timezone=w.timezone)
        return out


class Bounds(NamedTuple):
    """The bounds in force: (min, max, reason), and which active window set each (None: the policy)."""

    min: int
    max: int
    reason: str                                 # "" when no window is active
    active: tuple[ActiveWindow, ...] = ()
    min_from: ActiveWindow | None = None
    max_from: ActiveWindow | None = None

    def to_json(self, policy_min: int, policy_max: int) -> dict[str, Any]:
        """The ``schedule`` entry of a decision: the bounds, the policy's own, every active window."""
        def sets(a: ActiveWindow) -> list[str]:
            return [b for b, src in (("min", self.min_from), ("max", self.max_from)) if src is a]
        return {"min": self.min, "max": self.max, "policyMin": policy_min, "policyMax": policy_max,
                "windows": [a.to_json(sets(a)) for a in self.active]}


# -- parsing ----------------------------------------------------------------------------------
def _zone(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an IANA time zone name such as Asia/Shanghai, Europe/Berlin or UTC")
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; use an IANA name such as Asia/Shanghai or UTC"
        raise ValueError(f"unknown time zone '{name}'{hint}") from None
    return name


def _instant(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time with its offset, e.g. 2026-11-10T00:00:00+08:00")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time; write e.g. 2026-11-10T00:00:00+08:00") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"'{value}' has no UTC offset; add one, e.g. {parsed.isoformat()}+08:00 (or Z for UTC)")
    return parsed


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a whole number ≥ 1")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a whole number ≥ 1") from None
    if number != number or number != int(number) or number < 1:
        raise ValueError("must be a whole number ≥ 1 (the autoscaler never scales to zero)")
    return int(number)


class _Violations(list[tuple[str, str]]):
    """The violations found so far, callable as ``bad(path, message)``."""

    def __call__(self, path: str, message: str) -> None:
        self.append((path, message))

    @property
    def count(self) -> int:
        return len(self)


def _window(index: int, raw: Any, path: str, bad: _Violations) -> Window | None:
    """One window, or None after reporting what is wrong with it through `bad(path, message)`."""
    if not isinstance(raw, Mapping):
        bad(path, f"must be an object such as {EXAMPLE[1:-1]}")
        return None
    errors_before = bad.count
    for key in sorted(k for k in raw if k not in WINDOW_KEYS):
        bad(f"{path}.{key}", f"unknown field (expected {', '.join(sorted(WINDOW_KEYS))})")
    values: dict[str, Any] = {}
    for key, parse in (("minInstances", _count), ("maxInstances", _count)):
        if raw.get(key) is not None:
            try:
                values[key] = parse(raw[key])
            except ValueError as exc:
                bad(f"{path}.{key}", str(exc))
    if raw.get("minInstances") is None and raw.get("maxInstances") is None:
        bad(path, "give minInstances and/or maxInstances: the bounds this window sets")
    lo, hi = values.get("minInstances"), values.get("maxInstances")
    if lo is not None and hi is not None and lo > hi:
        bad(f"{path}.minInstances", f"must not exceed maxInstances ({lo} > {hi})")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        bad(f"{path}.name", "must be a string")
    is_cron, is_dated = bool(CRON_KEYS & raw.keys()), bool(DATED_KEYS & raw.keys())
    window = Window(index, lo, hi, name if isinstance(name, str) and name else None)
    if is_cron and is_dated:
        bad(path, "give either cron/until/timezone (recurring) or from/to (dated), not both")
    elif is_cron:
        specs: dict[str, CronSpec] = {}
        for key in ("cron", "until"):
            if key not in raw:
                what = ("the cron expression that ends it, e.g. \"0 20 * * 1-5\"" if key == "until"
                        else "the cron expression that starts it, e.g. \"0 8 * * 1-5\"")
                bad(f"{path}.{key}", f"is required for a recurring window: {what}")
                continue
            try:
                specs[key] = parse_cron(raw[key])
            except CronError as exc:
                bad(f"{path}.{key}", str(exc))
        zone = None
        if "timezone" not in raw:
            bad(f"{path}.timezone", "is required for a recurring window: an IANA name such as Asia/Shanghai "
                                    "or UTC (Pacer never guesses the zone of a cron window)")
        else:
            try:
                zone = _zone(raw["timezone"])
            except ValueError as exc:
                bad(f"{path}.timezone", str(exc))
        if bad.count == errors_before:
            return replace(window, cron=specs["cron"], until=specs["until"], timezone=zone)
    elif is_dated:
        instants: dict[str, dt.datetime] = {}
        for key in ("from", "to"):
            if key not in raw:
                bad(f"{path}.{key}", "is required for a dated window: an ISO 8601 time with its offset, "
                                     "e.g. 2026-11-10T00:00:00+08:00")
                continue
            try:
                instants[key] = _instant(raw[key])
            except ValueError as exc:
                bad(f"{path}.{key}", str(exc))
        if len(instants) == 2 and instants["to"] <= instants["from"]:
            bad(f"{path}.to", f"must be after from ({raw['to']} <= {raw['from']})")
        if bad.count == errors_before:
            return replace(window, start=instants["from"], end=instants["to"])
    else:
        bad(path, "give cron, until and timezone (a recurring window) or from and to (a dated window)")
    return None


def parse_schedule(raw: Any, field: str = "schedule") -> tuple[Window, ...]:
    """A list of windows (or, from a label, the JSON text of one) -> validated windows.

    Raises ScheduleError naming every bad part as ``<field>[i].<key>``.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ScheduleError([(field, f"is not valid JSON ({exc}); expected a list of windows such as "
                                         f"{EXAMPLE}")]) from None
    if not isinstance(raw, list):
        raise ScheduleError([(field, f"must be a list of windows such as {EXAMPLE}")])
    bad = _Violations()
    windows = [_window(i, item, f"{field}[{i}]", bad) for i, item in enumerate(raw)]
    if bad:
        raise ScheduleError(list(bad))
    return tuple(w for w in windows if w is not None)


# -- evaluation -------------------------------------------------------------------------------
def active_window(window: Window, now: float) -> ActiveWindow | None:
    """The span of `window` that contains `now`, or None when it is not active at `now`."""
    if window.start is not None and window.end is not None:
        start, end = window.start.timestamp(), window.end.timestamp()
        return ActiveWindow(window, start, end) if start <= now < end else None
    assert window.cron is not None and window.until is not None and window.timezone is not None
    opened = last_fire(window.cron, window.timezone, now)
    if opened is None:
        return None
    closes = next_fire(window.until, window.timezone, opened)
    if closes is None or now >= closes:
        return None
    return ActiveWindow(window, opened, closes)


def active_windows(schedule: Sequence[Window], now: float) -> list[ActiveWindow]:
    """Every window of `schedule` active at `now` (epoch seconds), in schedule order."""
    return [a for a in (active_window(w, now) for w in schedule) if a is not None]


def effective_bounds(policy_min: int, policy_max: int, active: Sequence[ActiveWindow]) -> Bounds:
    """The [min, max] in force: the highest active minimum and maximum win (see the module doc)."""
    if not active:
        return Bounds(policy_min, policy_max, "")
    min_from = max((a for a in active if a.window.min_instances is not None),
                   key=lambda a: (a.window.min_instances, -a.window.index), default=None)
    max_from = max((a for a in active if a.window.max_instances is not None),
                   key=lambda a: (a.window.max_instances, -a.window.index), default=None)
    lo = min_from.window.min_instances or policy_min if min_from is not None else policy_min
    hi = max_from.window.max_instances or policy_max if max_from is not None else policy_max
    parts = [f"min {lo} from {min_from.window.label}" if min_from else f"min {lo} from the policy"]
    others = [a.window.label for a in active if a is not min_from and a is not max_from]
    if lo > hi:
        parts.append(f"max raised to the minimum (was {hi}"
                     + (f" from {max_from.window.label})" if max_from else " from the policy)"))
        hi, max_from = lo, min_from
    else:
        parts.append(f"max {hi} from {max_from.window.label}" if max_from else f"max {hi} from the policy")
    if others:
        parts.append(f"also active: {', '.join(others)}")
    return Bounds(lo, hi, f"scheduled bounds [{lo}, {hi}]: " + ", ".join(parts), tuple(active), min_from, max_from)


def bounds_at(schedule: Sequence[Window], policy_min: int, policy_max: int, now: float) -> Bounds:
    """The bounds a policy works within at `now` (epoch seconds): its own, moved by its schedule."""
    return effective_bounds(policy_min, policy_max, active_windows(schedule, now))


def spans_between(schedule: Sequence[Window], start: float, end: float, limit: int = 200) -> list[ActiveWindow]:
    """Every span in which a window of `schedule` is active that overlaps [start, end), per
    window in schedule order: what a chart shades. A recurring window's spans are found the
    way `active_window` finds one (the last `cron` fire, then the first `until` after it), so
    the chart and the decisions cannot disagree; at most `limit` spans per window."""
    out: list[ActiveWindow] = []
    for window in schedule:
        if window.start is not None and window.end is not None:
            lo, hi = window.start.timestamp(), window.end.timestamp()
            if lo < end and hi > start:
                out.append(ActiveWindow(window, lo, hi))
            continue
        assert window.cron is not None and window.timezone is not None
        at, found = start, 0
        while at < end and found < limit:
            span = active_window(window, at)
            if span is not None:
                out.append(span)
                at, found = span.end, found + 1
                continue
            opens = next_fire(window.cron, window.timezone, at)
            if opens is None or opens >= end:
                break
            at = opens
    return out


def check_against_policy(schedule: Sequence[Window], policy_min: int, field: str) -> list[tuple[str, str]]:
    """Windows that would cap the app below the policy's own minimum without lowering it."""
    return [(f"{field}[{w.index}].maxInstances",
             f"{w.max_instances} is below the policy's minimum ({policy_min}); give minInstances too "
             f"to lower the minimum for this window")
            for w in schedule
            if w.max_instances is not None and w.min_instances is None and w.max_instances < policy_min]


def raise_to_minimum(bounds: Bounds, current: int, desired: int, why_not: str | None) -> tuple[int, str]:
    """A decision's size and reason note under `bounds`: a raised minimum is reached at once.

    `desired` is what the policy decided within `bounds`. The pipeline's final clamp already
    lifts a decision that ran to the minimum, past stabilization and the step limit; what is
    left is a hold (no metrics, stale metrics, no running task), which must not keep an app
    below capacity someone scheduled. `why_not` is why it must not act at all (a running
    deployment, a suspended app), or None.
    """
    if not bounds.active:
        return desired, ""
    if current >= bounds.min:
        return desired, bounds.reason
    if desired >= bounds.min:
        if desired == bounds.min:
            return desired, (f"{bounds.reason}; raised to the scheduled minimum at once (stabilization and "
                             f"cooldown do not apply to this raise)")
        return desired, bounds.reason
    if why_not is not None:
        return desired, f"{bounds.reason}; not raised to {bounds.min}: {why_not}"
    return bounds.min, (f"{bounds.reason}; raised to the scheduled minimum at once (the metrics hold, "
                        f"stabilization and cooldown do not apply to this raise)")
