"""A small 5-field cron matcher, evaluated in an explicit IANA time zone. Pure.

Why our own: scheduled scaling windows need only "when did this expression last fire before
`t`" and "when does it next fire after `t`", in a named zone, with DST handled the same way
every time; a dependency for that is more surface than ~200 lines (and `pyproject.toml` is
not the autoscaler's to change). No clock is read here: every instant is passed in.

Syntax (Vixie cron): ``minute hour day-of-month month day-of-week``, each field ``*``, a
number, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n``, or a comma list of those.
Months take ``JAN``–``DEC`` and days ``SUN``–``SAT`` too; day-of-week 0 and 7 are Sunday.
Day rule (Vixie): when both day-of-month and day-of-week are restricted (neither starts
with ``*``), a day matches if *either* does; otherwise both must.

Wall-clock times are turned into instants with ``zoneinfo``:

* a time that does not exist (the hour skipped when DST starts) fires at the same distance
  past the change, as ``datetime(..., fold=0)`` maps it — 02:30 on a Berlin spring-forward
  day fires at 03:30 CEST; nothing is skipped;
* a time that happens twice (the hour repeated when DST ends) fires once, at the first.

Errors: ``CronError`` (ValueError) whose message names the part and the fix; callers add
the field path.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# how far back/forward a fire is looked for: 8 years covers "29 Feb" through a non-leap century
SEARCH_DAYS = 8 * 366


class CronError(ValueError):
    """A cron expression that does not parse, or can never fire; the message says how to fix it."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression: the allowed values of each field, and the times of day it fires."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]           # 0 = Sunday … 6 = Saturday (7 folded into 0)
    dom_star: bool                 # the field starts with "*": Vixie's AND instead of OR
    dow_star: bool
    times: tuple[tuple[int, int], ...]   # (hour, minute) pairs it fires at, in order

    def matches_day(self, day: dt.date) -> bool:
        """Whether the expression fires on this (local) calendar day."""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.doms
        dow_ok = (day.isoweekday() % 7) in self.dows
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _value(token: str, index: int, names: dict[str, int] | None) -> int:
    lo, hi = _RANGES[index]
    upper = token.upper()
    if names is not None and upper in names:
        return names[upper]
    if not token.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{FIELD_NAMES[index]} field: '{token}' is not a number{known}")
    number = int(token)
    if not lo <= number <= hi:
        raise CronError(f"{FIELD_NAMES[index]} field: {number} is out of range {lo}-{hi}")
    return number


def _field(text: str, index: int) -> frozenset[int]:
    """The values one field allows (`index` into FIELD_NAMES)."""
    lo, hi = _RANGES[index]
    names = _MONTHS if index == 3 else _DAYS if index == 4 else None
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{FIELD_NAMES[index]} field: empty list item in '{text}'")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{FIELD_NAMES[index]} field: step '{step_text}' must be a whole number ≥ 1")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, index, names), _value(last, index, names)
            if start > end:
                raise CronError(f"{FIELD_NAMES[index]} field: range '{base}' runs backwards; write {end}-{start}"
                                f" or a list")
        else:
            start = _value(base, index, names)
            end = hi if step_text else start          # "a/n": from a to the top, every n
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def parse_cron(text: object) -> CronSpec:
    """Parse ``minute hour day-of-month month day-of-week``; raises CronError saying what to fix."""
    if not isinstance(text, str):
        raise CronError("must be a string such as \"0 8 * * 1-5\"")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"5 fields expected (minute hour day-of-month month day-of-week), got {len(parts)}"
                        f" in '{text}'")
    minutes, hours, doms, months, dows = (_field(p, i) for i, p in enumerate(parts))
    dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
    if dow_star and not dom_star and not any(
            d <= calendar.monthrange(2000, m)[1] for m in months for d in doms):   # 2000: leap year
        raise CronError(f"never fires: no month in '{parts[3]}' has day {', '.join(map(str, sorted(doms)))}")
    times = tuple((h, m) for h in sorted(hours) for m in sorted(minutes))
    return CronSpec(" ".join(parts), minutes, hours, doms, months, dows, dom_star, dow_star, times)


@lru_cache(maxsize=8192)
def fires_on(spec: CronSpec, zone: str, day: dt.date) -> tuple[float, ...]:
    """The instants (epoch seconds, ascending) at which `spec` fires on local `day` in `zone`.

    Sorted after the conversion, since a skipped wall-clock time maps past later ones.
    Cached: a window is evaluated every cycle for the same few days.
    """
    if not spec.matches_day(day):
        return ()
    tz = ZoneInfo(zone)
    seen: dict[float, None] = {}
    for hour, minute in spec.times:
        local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        seen[local.timestamp()] = None
    return tuple(sorted(seen))


def _local_day(at: float, zone: str) -> dt.date:
    return dt.datetime.fromtimestamp(at, ZoneInfo(zone)).date()


def last_fire(spec: CronSpec, zone: str, at: float, search_days: int = SEARCH_DAYS) -> float | None:
    """The latest instant ≤ `at` at which `spec` fires in `zone`; None if none in `search_days`.

    Walks local days backwards; the day before the first hit is looked at too, since a time
    skipped by DST just before midnight lands after the next day's earliest fires.
    """
    start = _local_day(at, zone) + dt.timedelta(days=1)
    for back in range(search_days + 2):
        day = start - dt.timedelta(days=back)
        hits = [t for t in fires_on(spec, zone, day) if t <= at]
        if hits:
            return max(hits + [t for t in fires_on(spec, zone, day - dt.timedelta(days=1)) if t <= at])
    return None


def next_fire(spec: CronSpec, zone: str, after: float, search_days: int = SEARCH_DAYS) -> float | None:
    """The earliest instant > `after` at which `spec` fires in `zone`; None if none in `search_days`."""
    start = _local_day(after, zone) - dt.timedelta(days=1)
    for ahead in range(search_days + 2):
        day = start + dt.timedelta(days=ahead)
        hits = [t for t in fires_on(spec, zone, day) if t > after]
        if hits:
            return min(hits + [t for t in fires_on(spec, zone, day + dt.timedelta(days=1)) if t > after])
    return None
