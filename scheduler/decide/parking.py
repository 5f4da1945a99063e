"""Parking: an app no offer could take is not placed again until something could change that.

A thousand apps waiting for resources that do not exist were placed again on every pass, every
second, each against every offer: the cluster paid for its backlog while nothing moved.
Placement only depends on the app (its definition, its own instances), on its backoff and on
the free resources. So once placing an app found nothing, the app is *parked* with the
scheduler's capacity epoch: a number the state bumps whenever resources may have freed (an
instance gone or no longer holding its resources, new offers from the master). A parked app is
placed again when the epoch moved, when the app itself changed (a write, one of its instances),
when it waits for a different count than it was parked with, or after `RECHECK_SECONDS` as a
backstop. Until then a pass leaves its queue entry (count, reason, rejected offers) as it was.

Both functions are pure: the loop holds the parked map and calls them around each pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from scheduler.decide.scheduling import Pass

RECHECK_SECONDS = 30.0
"""A parked app is placed again at least this often, whatever the epoch says."""


@dataclass(frozen=True)
class Parked:
    count: int        # instances it waited for when placement found nothing
    epoch: int        # the capacity epoch of that pass
    since: float      # scheduler clock of that pass


def park_after_pass(parked: Mapping[str, Parked], decided: Pass, epoch: int, now: float) -> dict[str, Parked]:
    """The parked map after `decided` ran at `epoch`.

    An app is parked when the pass tried to place it and placed nothing; it leaves the map when
    the pass launched some of it, held it back by backoff, or took it off the queue. Apps the
    pass did not place keep their entry as it was.
    """
    launched = {launch.app_id for launch in decided.launches}
    result = dict(parked)
    for app_id, status in decided.queue.items():
        if status is not None and status.placed and status.count > 0 and app_id not in launched:
            result[app_id] = Parked(status.count, epoch, now)
        else:
            result.pop(app_id, None)
    for app_id in launched:
        result.pop(app_id, None)
    return result


def still_parked(parked: Mapping[str, Parked], *, epoch: int, touched: Collection[str], known: Collection[str],
                 now: float, recheck_seconds: float = RECHECK_SECONDS) -> dict[str, Parked]:
    """The entries that still hold: same epoch, app untouched and still defined, backstop not due."""
    return {app_id: p for app_id, p in parked.items()
            if p.epoch == epoch and app_id not in touched and app_id in known and now - p.since < recheck_seconds}
