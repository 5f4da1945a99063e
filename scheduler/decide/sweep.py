"""The loop's reconciliation sweep, spread over its rounds instead of one pass over everything.

Every app must be looked at now and then even when nothing woke the loop for it: an unreachable
instance's timeout, an orphaned instance, anything a lost wake-up missed. A pass over every app
did that every `FULL_PASS_SECONDS`; with 1,000 apps and 5,000 instances that pass held the event
loop for 50 ms, and every API request arriving meanwhile waited for it. The sweep instead takes
a share of the apps each round, in id order from where the last round stopped, sized so that
every app is still covered within the period: a round `elapsed` seconds after the previous one
takes `ceil(n * elapsed / period)` apps. A loop that was idle for a whole period (or never ran)
sweeps everything at once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection


def sweep_share(total: int, elapsed: float, period: float) -> int:
    """How many of `total` apps a round `elapsed` seconds after the last one covers."""
    if total <= 0:
        return 0
    if period <= 0 or elapsed >= period:
        return total
    return min(total, max(1, math.ceil(total * max(elapsed, 0.0) / period)))


def next_sweep(ids: Collection[str], after: str | None, count: int) -> tuple[list[str], str | None]:
    """The `count` ids following `after` in sorted order (wrapping around), and the new cursor.

    `after` need not be among `ids` any more (its app may be gone): the sweep goes on from
    where it would have been.
    """
    ordered = sorted(ids)
    if not ordered or count <= 0:
        return [], after
    if count >= len(ordered):
        return ordered, ordered[-1]
    start = 0 if after is None else bisect.bisect_right(ordered, after)
    taken = (ordered[start:] + ordered[:start])[:count]
    return taken, taken[-1]
