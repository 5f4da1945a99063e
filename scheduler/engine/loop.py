"""The scheduling loop: view → `decide` → `apply_pass`, then the instance writes in one go.

A pass runs when something changed (a write, a status update, a health verdict wakes it),
at least every `TICK_SECONDS`, and covers the apps that changed or still wait in the queue,
plus a share of all the others (`decide/sweep.py`): within every `FULL_PASS_SECONDS` each app
(and each app id that only orphaned instances still carry) is covered once, which is the loop's
own reconciliation, without one long pass that would hold the event loop. An app whose placement found nothing is parked
(`decide/parking.py`): no pass places it again until resources may have freed or the app
changed, so a backlog of apps that cannot run costs nearly nothing while it waits.

A pass holds the event loop while it runs. On a large cluster (a hundred thousand instances) a
pass takes a second or more, and every task reaching TASK_RUNNING wakes the loop again, so
passes would follow each other without a break and starve the I/O they wait for (status
updates, launches, the API). After each pass the loop therefore pauses as long as the pass took
before it answers a wake-up: passes use at most half of the scheduler's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from periodic import LoopStats, run_periodically
from scheduler.backends import ClusterBackend
from scheduler.decide.parking import Parked, park_after_pass, still_parked
from scheduler.decide.scheduling import Pass, decide
from scheduler.decide.sweep import next_sweep, sweep_share
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.apply import apply_pass
from scheduler.engine.tasks import EventPublisher, TaskRunner
from scheduler.engine.view import build_view
from scheduler.health.checker import HealthChecker
from scheduler.state.clock import Clock
from scheduler.state.cluster import ClusterState
from scheduler.telemetry import Telemetry

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
FULL_PASS_SECONDS = 5.0
MAX_PAUSE_SECONDS = 5.0


class SchedulingLoop:
    def __init__(self, state: ClusterState, tasks: TaskRunner, checker: HealthChecker, events: EventPublisher,
                 clock: Clock, rollback: Callable[[DeploymentRun], object],
                 may_act: Callable[[], bool] = lambda: True, telemetry: Telemetry | None = None,
                 before_pass: Callable[[float], object] = lambda now: None) -> None:
        """`before_pass(now)`: what each round does before its pass, while this instance may
        act (start the pending deployments that are due: their apps are then in the pass)."""
        self._state = state
        self._before_pass = before_pass
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._may_act = may_act
        self._tasks = tasks
        self._checker = checker
        self._events = events
        self._clock = clock
        self._rollback = rollback
        self._wake = asyncio.Event()
        self._touched: set[str] = set()
        self._parked: dict[str, Parked] = {}
        self._last_sweep: float | None = None
        self._sweep_cursor: str | None = None
        self._seed = 0
        self.stats = LoopStats()

    @property
    def backend(self) -> ClusterBackend:
        return self._tasks.backend

    @property
    def wake_pending(self) -> bool:
        """A round is due now rather than at the next tick."""
        return self._wake.is_set()

    def wake(self, app_id: str | None = None) -> None:
        if app_id is not None:
            self._touched.add(app_id)
        self._wake.set()

    def run_pass(self, app_ids: Iterable[str] | None = None) -> Pass:
        """One pass over the given apps (None: every app, and orphaned instances)."""
        now = self._clock.now()
        started = time.perf_counter()
        self._seed += 1
        epoch = self._state.capacity_epoch
        view = build_view(self._state, self._checker, self.backend, app_ids, self._seed,
                          parked={a: p.count for a, p in self._parked.items()})
        decided = decide(view, now)
        self._seed += len(decided.launches)
        apply_pass(decided, now, state=self._state, tasks=self._tasks, events=self._events, rollback=self._rollback)
        self._parked = park_after_pass(self._parked, decided, epoch, now)
        self._telemetry.observe_pass(time.perf_counter() - started)
        if any(verdict.advanced and not verdict.finished for verdict in decided.runs):
            self._wake.set()    # a deployment moved to its next step: that step starts now, not at the tick
        return decided

    def round(self) -> None:
        """What the loop does each time it wakes: a pass, then the store writes it caused.
        None while this instance may not act (`may_act`: another may lead)."""
        if not self._may_act():
            return
        try:
            now = self._clock.now()
            self._before_pass(now)
            touched = self._touched | self._state.drain_changed_apps()
            self._touched = set()
            self._parked = still_parked(self._parked, epoch=self._state.capacity_epoch, touched=touched,
                                        known=self._state.apps, now=now)
            every = self._state.apps.keys() | self._state.app_ids_with_instances()
            elapsed = FULL_PASS_SECONDS if self._last_sweep is None else now - self._last_sweep
            share = sweep_share(len(every), elapsed, FULL_PASS_SECONDS)
            self._last_sweep = now
            if share >= len(every):
                self.run_pass(None)
                return
            swept, self._sweep_cursor = next_sweep(every, self._sweep_cursor, share)
            self.run_pass(touched | (self._state.queue.keys() - self._parked.keys()) | set(swept))
        finally:
            self._state.flush()

    async def _paced_round(self) -> None:
        started = time.monotonic()
        self.round()
        await asyncio.sleep(min(time.monotonic() - started, MAX_PAUSE_SECONDS))

    async def run(self) -> None:
        await run_periodically("scheduling pass", self._paced_round, TICK_SECONDS, log=log, wake=self._wake,
                               stats=self.stats)
