"""Keeping HAProxy running and its drained servers reaped, four times a second.

An HAProxy that exits (killed, out of memory) must not leave the routes down until the next
change in the cluster: it is started again on the last good configuration, waiting 2, 4, 8 …
up to 30 s between attempts while it keeps failing. Servers left draining by a Runtime API
update are deleted once idle or past their deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time

from periodic import LoopStats, run_periodically

from .applier import HaproxyApplier
from .draining import Draining
from .errors import BridgeError, HaproxyError
from .haproxy import HaproxyProcess
from .state import BridgeState

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.25
MAX_RESTART_BACKOFF_SECONDS = 30.0


class HaproxySupervisor:
    def __init__(self, *, process: HaproxyProcess, applier: HaproxyApplier, draining: Draining,
                 state: BridgeState, lock: asyncio.Lock) -> None:
        self.process = process
        self.applier = applier
        self.draining = draining
        self.state = state
        self.lock = lock                # the process changes under it only
        self.stats = LoopStats()
        self.stopped = False            # set when the bridge stops HAProxy on purpose
        self._restart_failures = 0
        self._next_restart_at = 0.0

    async def run(self) -> None:
        await run_periodically("haproxy-bridge-supervisor", self.step, INTERVAL_SECONDS, log=log,
                               stats=self.stats, first_delay=True)

    async def step(self) -> None:
        async with self.lock:
            if self.stopped:
                return
            try:
                if (not self.process.alive() and self.state.live_config is not None
                        and time.monotonic() >= self._next_restart_at):
                    await self._restart()
                elif self.draining:
                    self.state.counters.drained += await self.draining.reap(self.process)
            except BridgeError as exc:
                self.state.last_error = str(exc)
                log.warning("%s", exc)

    async def _restart(self) -> None:
        try:
            await self.applier.restart()
        except HaproxyError:
            self._restart_failures += 1
            delay = min(MAX_RESTART_BACKOFF_SECONDS, 2.0 ** self._restart_failures)
            self._next_restart_at = time.monotonic() + delay
            raise
        self._restart_failures = 0
