"""One app's scaling arithmetic: the recommendation, its stabilization and the step limit. Pure.

Why a module of its own: these are the HPA's and marathon-autoscale's rules, each a small
function of plain numbers, table-tested against the HPA's own cases; ``autoscaler.decision``
composes them into the decision for one app or for thousands at once and must not restate them.

* ``target_recommendation`` / ``target_recommendation_of_total``: the HPA replica calculator
  (``ceil(ratio × tasks)`` outside the tolerance band, missing and unready tasks counted
  conservatively);
* ``threshold_recommendation``: marathon-autoscale's consecutive-cycle thresholds;
* ``stabilize``: the highest recommendation of the down window, the lowest of the up window;
* ``limit_step`` and ``clamp``: at most ×2 up and −50 % down, within [min, max].

No I/O and no clock: ``now`` is passed in.
"""

from __future__ import annotations

import bisect
import math
import operator
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from .policy import Policy

EPS = 1e-9
"""Slack for float comparisons of ratios and times, so 0.1 + 0.2 is not "over" 0.3."""

History = tuple[tuple[float, int], ...]
"""(time, clamped recommendation) of the recent cycles, as carried in ``AppState``."""


def ceil(x: float) -> int:
    return int(math.ceil(x - EPS))


def target_recommendation(current: int, values: Sequence[float], target: float, tolerance: float,
                          missing: int = 0, unready: int = 0) -> tuple[int, str]:
    """The HPA replica calculator on utilisation values (% of allocation) of the tasks with data."""
    return target_recommendation_of_total(current, len(values), float(sum(values)), target, tolerance,
                                          missing, unready)


def target_recommendation_of_total(current: int, n: int, total: float, target: float, tolerance: float,
                                   missing: int = 0, unready: int = 0) -> tuple[int, str]:
    """``target_recommendation`` from the sum of the `n` values (what ``observe`` measures)."""
    if n == 0:
        return current, "no task has data"
    ratio = total / n / target
    rebalance_unready = unready > 0 and ratio > 1.0
    if missing == 0 and not rebalance_unready:
        if abs(ratio - 1.0) <= tolerance + EPS:
            return current, f"within tolerance (ratio {ratio:.3f})"
        return ceil(ratio * n), f"ratio {ratio:.3f} over {n} task(s)"
    count = n + missing
    if ratio < 1.0:   # scaling down: a missing task may be busy; assume it sits at the target
        total += missing * target
    if rebalance_unready:   # scaling up: starting tasks will take load; assume they sit at 0 %
        count += unready
    new_ratio = total / count / target
    if abs(new_ratio - 1.0) <= tolerance + EPS or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, (f"ratio {ratio:.3f} does not hold with {missing} missing / "
                         f"{unready if rebalance_unready else 0} starting task(s) counted conservatively "
                         f"({new_ratio:.3f})")
    rec = ceil(new_ratio * count)
    if (new_ratio < 1.0 and rec > current) or (new_ratio > 1.0 and rec < current):
        return current, f"ratio {new_ratio:.3f} would move against its direction"
    return rec, f"ratio {new_ratio:.3f} over {count} task(s) ({missing} missing)"


def threshold_recommendation(policy: Policy, current: int, observed: float, up_cycles: int,
                             down_cycles: int) -> tuple[int, int, int, str]:
    """marathon-autoscale's rule; returns (recommendation, up_cycles, down_cycles, reason)."""
    assert policy.scale_up_above is not None and policy.scale_down_below is not None
    if observed > policy.scale_up_above:
        up_cycles, down_cycles = up_cycles + 1, 0
        if up_cycles >= policy.scale_up_cycles:
            rec = max(current + 1, ceil(current * policy.multiplier))
            return rec, 0, 0, (f"{observed:.1f}% above {policy.scale_up_above:g}% for {up_cycles} cycle(s): "
                               f"× {policy.multiplier:g}")
        return current, up_cycles, 0, (f"{observed:.1f}% above {policy.scale_up_above:g}% "
                                       f"({up_cycles}/{policy.scale_up_cycles} cycles)")
    if observed < policy.scale_down_below:
        up_cycles, down_cycles = 0, down_cycles + 1
        if down_cycles >= policy.scale_down_cycles:
            rec = min(current - 1, int(math.floor(current / policy.multiplier + EPS)))
            return rec, 0, 0, (f"{observed:.1f}% below {policy.scale_down_below:g}% for {down_cycles} cycle(s): "
                               f"÷ {policy.multiplier:g}")
        return current, 0, down_cycles, (f"{observed:.1f}% below {policy.scale_down_below:g}% "
                                         f"({down_cycles}/{policy.scale_down_cycles} cycles)")
    return current, 0, 0, (f"{observed:.1f}% within [{policy.scale_down_below:g}%, "
                           f"{policy.scale_up_above:g}%]")


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


class Timeline(NamedTuple):
    """A history known to be in time order (no NaN), as columns: the times as C doubles and the
    recommendations. Why: stabilizing 2,000 apps a cycle from their histories' tuples reads
    40,000 scattered Python objects; the columns are read by bisection and one slice."""

    times: array[float]
    recs: tuple[int, ...]


def timeline_of(history: History) -> Timeline | None:
    """The history's ``Timeline``; None when its entries are not in time order (or a time is NaN)."""
    times = list(map(_time_of, history))
    total = sum(times)
    if total == total and sorted(times) == times:
        try:
            return Timeline(array("d", times), tuple(map(_rec_of, history)))
        except OverflowError:       # an int time beyond a double: the general path copes
            return None
    return None


def stabilize(current: int, recommendation: int, history: History, now: float,
              up_window: float, down_window: float) -> tuple[int, History]:
    """HPA's stabilization: returns (stabilized size, history including this recommendation)."""
    stabilized, kept, _ = stabilize_timeline(current, recommendation, history, timeline_of(history), now,
                                             up_window, down_window)
    return stabilized, kept


def stabilize_timeline(current: int, recommendation: int, history: History, timeline: Timeline | None,
                       now: float, up_window: float,
                       down_window: float) -> tuple[int, History, Timeline | None]:
    """``stabilize`` given the history's ``Timeline`` (None: not in time order), also returning
    the kept history's.

    The loop appends one entry a cycle, so the usual history is in time order and nothing in it
    is newer than `now`: then the entries to drop are a prefix and each window a suffix, found
    by bisection. Any other history takes the general path, which sorts it as it always did.
    """
    times = timeline.times if timeline is not None else None
    if times is None or not now == now or (times and times[-1] > now):
        stabilized, kept = _stabilize_sorted(current, recommendation, history, now, up_window, down_window)
        return stabilized, kept, None
    recs = timeline.recs  # type: ignore[union-attr]
    oldest = now - max(up_window, down_window) - EPS
    up_from, down_from = now - up_window - EPS, now - down_window - EPS
    first = bisect.bisect_right(times, oldest)          # entries before it are dropped
    up_floor = down_ceiling = recommendation
    if times and times[-1] >= up_from:                  # else only this recommendation is recent enough
        recent = recs[max(first, bisect.bisect_left(times, up_from)):]
        if recent:
            up_floor = min(recommendation, min(recent))
    recent = recs[max(first, bisect.bisect_left(times, down_from)):]
    if recent:
        down_ceiling = max(recommendation, max(recent))
    kept_times = times[first:] if first else times[:]
    kept_times.append(now)
    kept = (history[first:] if first else history) + ((now, recommendation),)
    return _between(current, up_floor, down_ceiling), kept, Timeline(kept_times, recs[first:] + (recommendation,))


_time_of, _rec_of = operator.itemgetter(0), operator.itemgetter(1)


def _stabilize_sorted(current: int, recommendation: int, history: History, now: float,
                      up_window: float, down_window: float) -> tuple[int, History]:
    """``stabilize`` for any history: entries out of the windows dropped, in any order."""
    keep = max(up_window, down_window)
    oldest, oldest_kept, newest = now - keep - EPS, now, now
    up_from, down_from = now - up_window - EPS, now - down_window - EPS
    if history:
        by_time = sorted(history)
        oldest_kept, newest = by_time[0][0], by_time[-1][0]
    if history and oldest_kept > oldest and newest <= now:   # nothing to drop
        kept = history + ((now, recommendation),)
    else:
        kept = tuple([h for h in history if h[0] > oldest and h[0] <= now]) + ((now, recommendation),)
    # only this recommendation is recent enough when every earlier one is older than up_from
    up_floor = recommendation if newest < up_from else min([r for t, r in kept if t >= up_from])
    down_ceiling = max([r for t, r in kept if t >= down_from])
    return _between(current, up_floor, down_ceiling), kept


def _between(current: int, up_floor: int, down_ceiling: int) -> int:
    """`current` pulled up to the floor, then down to the ceiling (the ceiling wins a conflict)."""
    result = current
    if result < up_floor:
        result = up_floor
    if result > down_ceiling:
        result = down_ceiling
    return result


def limit_step(current: int, desired: int) -> int:
    """At most ×2 (and at least +1) up, at most −50 % down per decision."""
    if current <= 0:
        return desired
    up_limit = max(2 * current, current + 1)
    down_limit = current - current // 2
    return max(down_limit, min(up_limit, desired))
