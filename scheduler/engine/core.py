"""`Scheduler`: the wiring of one scheduler, and its start-up and shut-down.

It builds the parts and connects them through their seams; it decides nothing itself:

    ClusterState   what is known (the only caller of the store)
    TaskRunner     launches and kills through the backend, status updates in
    HealthChecker  health and readiness verdicts, through a StateHealthSubject
    SchedulingLoop view → decide → apply
    AppWrites      the write path the API calls
    SchedulerView  the read-only face the API renders from
    EventBus       /v2/events

On start it loads the state, lets the backend re-adopt the tasks that outlived the previous
run (and report the lost ones), re-sends kills that died with that run, and resumes
deployments: stored ones at their step, and a fresh rolling restart for apps left running a
mix of configs that no stored deployment covers (the crash fell between the two writes).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable

from scheduler.backends import BackendListener, ClusterBackend
from scheduler.engine.canary import CanaryDriver
from scheduler.engine.events import EventBus
from scheduler.engine.health_link import StateHealthSubject
from scheduler.engine.loop import SchedulingLoop
from scheduler.engine.pending_writes import PendingWrites
from scheduler.engine.read_view import SchedulerView
from scheduler.engine.tasks import DEFAULT_DRAIN_SECONDS, TaskRunner
from scheduler.engine.writes import AppWrites
from scheduler.health.checker import TASK_HOST, HealthChecker
from scheduler.state.clock import Clock, SystemClock
from scheduler.state.cluster import ClusterState
from scheduler.state.model import RUNNING, STAGING
from scheduler.state.store import Fence, Store
from scheduler.telemetry import Telemetry, TimedStore

log = logging.getLogger(__name__)

BackendFactory = Callable[[BackendListener], ClusterBackend]


class Scheduler:
    def __init__(self, store: Store, backend_factory: BackendFactory, clock: Clock | None = None, *,
                 drain_seconds: float = DEFAULT_DRAIN_SECONDS, fence: Callable[[], Fence | None] | None = None,
                 may_act: Callable[[], bool] = lambda: True, write_behind: bool = False) -> None:
        """`fence` and `may_act` come from the election when several schedulers share the
        store (`--zk`): every write carries the leader's fence, and no launch or kill goes out
        while this instance is not surely the leader. `write_behind`: each pass's writes are
        committed on a thread while the loop goes on (`scheduler.state.write_behind`)."""
        self.clock = clock or SystemClock()
        self.store = store
        self.events = EventBus(self.clock)
        self.telemetry = Telemetry()
        self.state = ClusterState(TimedStore(store, self.telemetry), fence, write_behind=write_behind)
        self.tasks = TaskRunner(self.state, backend_factory, self.events, self.clock,
                                on_change=lambda: self.loop.wake(), on_ended=lambda iid: self.health.forget(iid),
                                drain_seconds=drain_seconds, may_act=may_act,
                                on_health=lambda iid, healthy: self.health.record_backend_verdict(iid, healthy),
                                telemetry=self.telemetry)
        subject = StateHealthSubject(self.state, self.events, self.tasks, wake=lambda app_id: self.loop.wake(app_id))
        backend = self.tasks.backend
        self.health = HealthChecker(subject, self.clock, backend_checks=getattr(backend, "runs_checks", frozenset()),
                                    probe_host=getattr(backend, "probe_host", lambda inst: TASK_HOST),
                                    telemetry=self.telemetry)
        self.writes = AppWrites(self.state, self.events, self.tasks, self.clock, wake=lambda: self.loop.wake())
        self.pending = PendingWrites(self.state, self.writes, self.events, self.clock, wake=lambda: self.loop.wake())
        self.canary = CanaryDriver(self.state, self.health, self.events, self.clock, rollback=self.writes.rollback,
                                   wake=lambda app_id: self.loop.wake(app_id))
        self.loop = SchedulingLoop(self.state, self.tasks, self.health, self.events, self.clock,
                                   rollback=self.writes.rollback, may_act=may_act, telemetry=self.telemetry,
                                   before_pass=self._before_pass)
        self.view = SchedulerView(self.state, self.health, self.tasks.backend)
        self.telemetry.watch(self.view, self.events, leads=may_act)

    @property
    def backend(self) -> ClusterBackend:
        return self.tasks.backend

    def _before_pass(self, now: float) -> None:
        """Start the scheduled deployments that are due, then move the running canaries on."""
        self.pending.start_due(now)
        self.canary.tick(now)

    async def start(self) -> None:
        """Load state, re-adopt what still runs, and replace what died while we were away."""
        remembered = self.state.load(new_framework_id=str(uuid.uuid4()))
        now = self.clock.now()
        for run in list(self.state.deployments.values()):   # the progress deadline restarts with us
            self.state.note_progress(dataclasses.replace(run, last_progress_at=now))
        recovery = await self.backend.recover(remembered)
        self.state.adopt([inst.with_(state=RUNNING) if inst.state == STAGING else inst for inst in recovery.alive])
        for inst in recovery.alive:
            if inst.killing:   # its kill died with the earlier run: `kill` would skip it
                log.warning("task %s was being killed when the scheduler stopped; killing it again",
                            inst.instance_id)
                self.tasks.rekill(inst)
        if recovery.lost:
            self.state.forget_instances([inst.instance_id for inst in recovery.lost])
            for inst in recovery.lost:
                log.warning("task %s was gone after restart; it will be replaced", inst.instance_id)
        log.info("recovered %d apps, %d running tasks (%d lost, %d stray processes killed)",
                 len(self.state.apps), len(recovery.alive), len(recovery.lost), recovery.orphans_killed)
        for run in self.state.deployments.values():
            log.info("resuming deployment %s at step %d of %d", run.id, run.step_index + 1, len(run.plan.steps))
        for pending in self.state.pending.values():
            log.info("deployment %s of %s is %s", pending.id, ", ".join(pending.app_ids), pending.status)
        self._resume_restarts()

    def _resume_restarts(self) -> None:
        covered = {a for run in self.state.deployments.values() for a in run.plan.affected_app_ids}
        outdated = sorted({i.app_id for i in self.state.instances.values() if i.app_id in self.state.apps
                           and i.app_id not in covered
                           and i.config_version != self.state.apps[i.app_id].config_version})
        if outdated:
            log.info("resuming interrupted deployments of %s", ", ".join(outdated))
            self.writes.resume_restarts(frozenset(outdated))

    async def run(self) -> None:
        await self.loop.run()

    async def close(self) -> None:
        """Stop launches and kills in flight; the tasks keep running.

        The instance records are flushed even when the caller's timeout cancels the wait
        (a kill whose grace period outlasts the shutdown): what is recorded as being killed
        is killed again at the next start.
        """
        try:
            await self.tasks.close()
        finally:
            self.state.drain()
