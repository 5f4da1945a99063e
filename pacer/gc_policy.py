"""Full garbage collections kept short: what survived one is left out of the next.

A full collection walks every container object the process holds. Holding 1,000 apps and
5,000 tasks that is about a hundred milliseconds with the event loop stopped, and CPython
starts one whenever the objects that survived younger collections since the last full one
reach a quarter of the old ones: under a stream of API writes, every few seconds. Each of
them was the slowest request of its second (`pacer_gc_pause_seconds`, bench/api.py).

Almost everything a full collection finds alive is the scheduler's state, which lives on.
So right after each full collection its survivors are frozen (`gc.freeze`): the next full
collection walks only what was made since, and costs in proportion to the churn, not to the
cluster's size. Freezing right after a collection freezes no garbage; but a frozen object
that later becomes part of a reference cycle is not reclaimed while frozen (objects without
cycles are freed by reference counting either way). So every `THAW_SECONDS` the frozen objects
are given back to the collector, whose next full collection then walks everything once,
reclaims such cycles, and freezes its survivors again.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Mapping

THAW_SECONDS = 900.0

__all__ = ["THAW_SECONDS", "FreezeAfterFullCollections", "keep_full_collections_short"]


class FreezeAfterFullCollections:
    """A `gc.callbacks` entry: after each full collection, freeze its survivors (on the loop,
    not inside the collector), or every `thaw_seconds` give all frozen objects back instead."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, thaw_seconds: float = THAW_SECONDS,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._loop = loop
        self._thaw_seconds = thaw_seconds
        self._now = now
        self._thawed_at = self._now()
        self.freezes = 0
        self.thaws = 0

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2 and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.after_full_collection)

    def after_full_collection(self) -> None:
        now = self._now()
        if now - self._thawed_at >= self._thaw_seconds:
            gc.unfreeze()       # the next full collection sees every object once
            self._thawed_at = now
            self.thaws += 1
        else:
            gc.freeze()
            self.freezes += 1

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def keep_full_collections_short(loop: asyncio.AbstractEventLoop,
                                thaw_seconds: float = THAW_SECONDS) -> FreezeAfterFullCollections:
    """Install the policy for this process (`pacer serve`); returns it, to uninstall."""
    policy = FreezeAfterFullCollections(loop, thaw_seconds=thaw_seconds)
    gc.callbacks.append(policy)
    return policy
