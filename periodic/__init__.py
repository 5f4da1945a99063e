"""One guarded periodic loop for every long-lived service loop of Pacer.

A service loop (the scheduler's pass, health checks, the task sampler, the autoscaler, the
HAProxy bridge's poll and resync) must survive a bug in one round: the next round retries.
Written by hand, each loop repeated the same `while True / try / except Exception / sleep`
and each got one detail differently (a swallowed CancelledError, a log per failure that
floods the log at one line a second). This is that loop once:

* `step` runs, then the loop waits `interval` seconds, or less when `wake` is set;
* an exception from `step` is counted in `LoopStats`, logged with its traceback the first
  time and then once per distinct message, and the loop goes on;
* cancellation ends it at once (it is how TaskGroups stop services), even when it lands in
  the same pass as a `wake`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Step = Callable[[], Awaitable[None] | None]


@dataclass
class LoopStats:
    """What a loop did: rounds run, rounds that raised, and the last error's text."""

    rounds: int = 0
    errors: int = 0
    last_error: str | None = None


async def run_periodically(name: str, step: Step, interval: float | Callable[[], float], *,
                           log: logging.Logger, wake: asyncio.Event | None = None,
                           stats: LoopStats | None = None, first_delay: bool = False) -> None:
    """Run `step` every `interval` seconds (a callable is read each round) until cancelled.

    With `wake`, setting the event ends the current wait early (the event is cleared before
    the next round, so a wake during a round still gives one more round). With `first_delay`
    the loop waits before its first round.
    """
    stats = stats if stats is not None else LoopStats()
    if first_delay:
        await _wait(interval() if callable(interval) else interval, wake)
    while True:
        if wake is not None:
            wake.clear()
        try:
            result = step()
            if result is not None:
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one failed round must not end the service
            stats.errors += 1
            text = f"{type(exc).__name__}: {exc}"
            if text != stats.last_error:
                log.exception("%s: round failed (the next round retries)", name)
            stats.last_error = text
        else:
            stats.last_error = None
        stats.rounds += 1
        await _wait(interval() if callable(interval) else interval, wake)


async def _wait(seconds: float, wake: asyncio.Event | None) -> None:
    """Sleep `seconds`, or until `wake` is set.

    Not `asyncio.wait_for`: on Python 3.11 it returns normally when a cancellation lands in
    the same pass as the event it waits for, and the loop would then never end.
    `asyncio.timeout` waits in the loop's own task, so a cancellation always propagates.
    """
    if wake is None:
        await asyncio.sleep(seconds)
        return
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass


class FixedBeat:
    """An `interval` for `run_periodically` that starts rounds `seconds` apart however long
    each takes (a fixed beat, not a fixed pause); a round that overran restarts the beat
    rather than firing a burst to catch up."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._clock = clock
        self._next_at = clock()

    def __call__(self) -> float:
        now = self._clock()
        self._next_at += self._seconds
        if self._next_at < now:
            self._next_at = now + self._seconds
        return self._next_at - now


__all__ = ["FixedBeat", "LoopStats", "Step", "run_periodically"]
