"""The scheduler: desired state in memory and on disk, and the loop that makes it real.

Every mutation (`mutations`, called by the API) validates, writes the store and only then
changes memory and wakes the loop. Each pass asks the deployment driver (`driver`) what every
app needs, places new instances with the pure `place_tasks`, and hands launches and kills to
the backend. Status updates come back through `on_status`, which records failures for backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app_definitions import AppDefinition, parse_app_definition

from scheduler.decide import backoff as backoff_math
from scheduler.state.apps import AppRecord
from scheduler.backends import ClusterBackend, StatusUpdate
from scheduler.state.clock import VersionClock, iso_timestamp, now
from scheduler.decide.constraints import AgentView
from scheduler.deploy.runs import DeploymentRun, run_from_record
from scheduler.errors import app_not_found
from scheduler.engine.events import EventBus
from scheduler.health.checker import HealthChecker
from scheduler.health.state import CheckOutcome, instance_health
from scheduler.state.model import RUNNING, STAGING, TERMINAL_STATES, Instance, condition_of, new_instance_id
from scheduler.decide.placement import AgentOffer, consume_offers, place_tasks
from scheduler.engine.driver import DeploymentDriver
from scheduler.engine.writes import AppMutations
from scheduler.state.sqlite_store import StateStore

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
FULL_PASS_SECONDS = 5.0
LAUNCH_CONCURRENCY = 32


@dataclass
class QueueEntry:
    """Why an app still has instances waiting: shown by /v2/queue."""

    count: int
    since: float
    message: str | None = None
    rejections: dict[str, int] = field(default_factory=dict)
    processed_offers: int = 0
    unused_offers: int = 0
    last_unused_offer_at: float | None = None


BackendFactory = Callable[[Callable[[StatusUpdate], None]], ClusterBackend]


class Scheduler(AppMutations, DeploymentDriver):
    def __init__(self, store: StateStore, backend_factory: BackendFactory) -> None:
        self.store = store
        self.backend = backend_factory(self.on_status)
        self.apps: dict[str, AppRecord] = {}
        self.instances: dict[str, Instance] = {}
        self._by_app: dict[str, dict[str, Instance]] = {}
        self._touched: set[str] = set()
        self._last_full_pass = 0.0
        self.backoffs: dict[str, backoff_math.Backoff] = {}
        self.queue: dict[str, QueueEntry] = {}
        self.deployments: dict[str, DeploymentRun] = {}
        self.failed_deployments: dict[str, str] = {}
        self._launched_with: dict[tuple[str, str], list[Any] | None] = {}   # (app, version) -> checks
        self.last_failures: dict[str, dict[str, Any]] = {}
        self._versions = VersionClock()
        self._wake = asyncio.Event()
        self._dirty: dict[str, Instance | None] = {}
        self._launch_slots = asyncio.Semaphore(LAUNCH_CONCURRENCY)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seed = 0
        self.framework_id = ""
        self.events = EventBus()
        self.health = HealthChecker(self)

    # -- start / stop -------------------------------------------------------------------
    async def start(self) -> None:
        """Load state, re-adopt what still runs, and replace what died while we were away."""
        for app_id, _version, data in self.store.current_apps():
            self.apps[app_id] = AppRecord.from_json(data)
        for app_id, record in self.store.backoffs().items():
            self.backoffs[app_id] = backoff_math.Backoff(**record)
        remembered = self.store.instances()
        recovery = await self.backend.recover(remembered)
        for inst in recovery.alive:
            self._put(inst.with_(state=RUNNING) if inst.state == STAGING else inst)
        self._dirty.clear()
        for inst in recovery.alive:
            if inst.killing:   # its kill died with the earlier run: `_kill` would skip it
                log.warning("task %s was being killed when the scheduler stopped; killing it again",
                            inst.instance_id)
                self._spawn(self.backend.kill(inst, self._grace(inst)))
        if recovery.lost:
            self.store.delete_instances(inst.instance_id for inst in recovery.lost)
            for inst in recovery.lost:
                log.warning("task %s was gone after restart; it will be replaced", inst.instance_id)
        log.info("recovered %d apps, %d running tasks (%d lost, %d stray processes killed)",
                 len(self.apps), len(recovery.alive), len(recovery.lost), recovery.orphans_killed)
        for record in self.store.deployments():
            run = run_from_record(record)
            self.deployments[run.id] = run
            log.info("resuming deployment %s at step %d of %d", run.id, run.step_index + 1, len(run.plan.steps))
        self._resume_restarts()

    def _resume_restarts(self) -> None:
        """Stored deployments resume where they were. An app still running an older config
        that no stored deployment covers (the crash fell between writing the app and its plan)
        gets a fresh rolling restart, so it finishes instead of staying mixed."""
        covered = {a for run in self.deployments.values() for a in run.plan.affected_app_ids}
        outdated = sorted({i.app_id for i in self.instances.values() if i.app_id in self.apps
                           and i.app_id not in covered
                           and i.config_version != self.apps[i.app_id].config_version})
        if outdated:
            log.info("resuming interrupted deployments of %s", ", ".join(outdated))
            self._start_run(self._plan({}, restart=frozenset(outdated)))

    async def run(self) -> None:
        while True:
            try:
                t = now()
                if t - self._last_full_pass >= FULL_PASS_SECONDS:
                    self._last_full_pass = t
                    self.converge(None)
                else:
                    self.converge(self._touched | set(self.queue))
                self._touched.clear()
            except Exception:  # the loop must survive a bug in one pass; the next pass retries
                log.exception("scheduling pass failed")
            self._flush()
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._flush()
        await self.backend.close()

    def wake(self) -> None:
        self._wake.set()

    # -- queries ------------------------------------------------------------------------
    def app(self, app_id: str) -> AppRecord:
        record = self.apps.get(app_id)
        if record is None:
            raise app_not_found(app_id)
        return record

    def instances_of(self, app_id: str) -> list[Instance]:
        return list(self._by_app.get(app_id, {}).values())

    def health_checks_of(self, inst: Instance) -> list[Any]:
        """The health checks of the version the instance runs, as Marathon does: a new version's
        checks (perhaps broken) must not judge, and get killed, the old version's instances."""
        record = self.apps.get(inst.app_id)
        if record is None:
            return []
        if inst.config_version == record.config_version:
            return record.definition.health_checks
        key = (inst.app_id, inst.version)
        if key not in self._launched_with:
            stored = self.store.app_version(inst.app_id, inst.version)
            self._launched_with[key] = parse_app_definition(stored).health_checks if stored else None
        checks = self._launched_with[key]
        return record.definition.health_checks if checks is None else checks

    def healthy(self, inst: Instance) -> bool | None:
        """True/False from its version's health checks; None when it has none or nothing is known yet."""
        return instance_health(self.health.records.get(inst.instance_id), bool(self.health_checks_of(inst)))

    def on_health(self, inst: Instance, check: dict[str, Any], outcome: CheckOutcome) -> None:
        if outcome.flipped:
            self.events.publish("health_status_changed_event", appId=inst.app_id, instanceId=inst.instance_id,
                                version=inst.version, alive=outcome.record.alive)
        if outcome.counted_failure:
            self.events.publish("failed_health_check_event", appId=inst.app_id, taskId=inst.instance_id,
                                instanceId=inst.instance_id, healthCheck=check)
        if outcome.kill and not inst.killing:
            reason = f"FailedHealthChecks: {outcome.record.last_failure_cause}"
            self.events.publish("unhealthy_instance_kill_event", appId=inst.app_id, taskId=inst.instance_id,
                                instanceId=inst.instance_id, version=inst.version, reason=reason,
                                host=inst.host, slaveId=inst.agent_id)
            log.warning("killing %s: %s", inst.instance_id, reason)
            self._kill(inst, reason=reason)
        self._touched.add(inst.app_id)
        self.wake()

    def deployments_of(self, app_id: str) -> list[DeploymentRun]:
        return [d for d in self.deployments.values() if app_id in d.plan.affected_app_ids]

    # -- mutations ----------------------------------------------------------------------
    # -- status updates -----------------------------------------------------------------
    def _publish_status(self, inst: Instance, state: str, message: str = "") -> None:
        self.events.publish(
            "status_update_event", slaveId=inst.agent_id, taskId=inst.instance_id, taskStatus=state,
            message=message, appId=inst.app_id, host=inst.host, ipAddresses=[{"ipAddress": "127.0.0.1",
                                                                              "protocol": "IPv4"}],
            ports=list(inst.ports), version=inst.version)
        self.events.publish(
            "instance_changed_event", instanceId=inst.instance_id, condition=condition_of(state),
            runSpecId=inst.app_id, agentId=inst.agent_id, host=inst.host, runSpecVersion=inst.version)

    def on_status(self, update: StatusUpdate) -> None:
        inst = self.instances.get(update.instance_id)
        if inst is None:
            return
        self._publish_status(inst, update.state, update.message)
        if update.state not in TERMINAL_STATES:
            self._put(inst.with_(state=update.state, message=update.message))
            return
        self._put(None, inst.instance_id)
        self.health.forget(inst.instance_id)
        failed_checks = inst.kill_reason.startswith("FailedHealthChecks")
        if failed_checks:
            update = StatusUpdate(update.instance_id, "TASK_FAILED", inst.kill_reason, update.exit_code)
        if (failed_checks or not inst.killing and backoff_math.counts_as_failure(update.state)) \
                and inst.app_id in self.apps:
            app = self.apps[inst.app_id].definition
            b = backoff_math.record_failure(self.backoffs.get(inst.app_id), now(), app.backoff_seconds,
                                            app.backoff_factor, app.max_launch_delay_seconds)
            self.backoffs[inst.app_id] = b
            self.store.put_backoff(inst.app_id, {"delay": b.delay, "next_launch_at": b.next_launch_at,
                                                 "last_failure_at": b.last_failure_at})
            self.last_failures[inst.app_id] = {
                "appId": inst.app_id, "host": inst.host, "message": update.message, "state": update.state,
                "taskId": inst.instance_id, "timestamp": iso_timestamp(now()), "version": inst.version,
                "slaveId": inst.agent_id}
            log.info("task %s of %s ended: %s %s", inst.instance_id, inst.app_id, update.state, update.message)
        self.wake()

    def _put(self, inst: Instance | None, instance_id: str | None = None) -> None:
        key = inst.instance_id if inst is not None else instance_id
        assert key is not None
        if inst is None:
            old = self.instances.pop(key, None)
            if old is not None:
                self._by_app.get(old.app_id, {}).pop(key, None)
                self._touched.add(old.app_id)
        else:
            self.instances[key] = inst
            self._by_app.setdefault(inst.app_id, {})[key] = inst
            self._touched.add(inst.app_id)
        self._dirty[key] = inst

    def _flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self.store.put_instances(i for i in dirty.values() if i is not None)
        self.store.delete_instances(k for k, v in dirty.items() if v is None)

    # -- the loop's work ----------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _kill(self, inst: Instance, reason: str = "") -> None:
        if inst.killing:
            return
        self._put(inst.with_(killing=True, kill_reason=reason))
        self._publish_status(inst, "TASK_KILLING")
        self._spawn(self.backend.kill(inst, self._grace(inst)))

    def _grace(self, inst: Instance) -> float:
        record = self.apps.get(inst.app_id)
        return record.definition.task_kill_grace_seconds if record is not None else 3.0

    def _agent_views(self) -> dict[str, AgentView]:
        return {offer.agent.agent_id: offer.agent for offer in self.backend.offers([])}

    def converge(self, app_ids: Iterable[str] | None) -> None:
        """One scheduling pass over the given apps (None: every app, and orphaned instances)."""
        t = now()
        agents = self._agent_views()
        ids = set(self._by_app) | set(self.apps) if app_ids is None else set(app_ids)
        ids |= {a for run in self.deployments.values() for a in run.plan.affected_app_ids}
        offers = None
        done: dict[str, bool] = {}
        for app_id in sorted(ids):
            record = self.apps.get(app_id)
            insts = self.instances_of(app_id)
            if record is None:
                for inst in insts:
                    self._kill(inst)
                if not insts:
                    self._by_app.pop(app_id, None)
                done[app_id] = not insts
                continue
            run = self._run_for(app_id)
            if run is not None and run.waits_for_step(app_id):
                continue
            action = run.action_for(app_id) if run is not None else None
            decision, done[app_id] = self._decide(record, insts, action, agents)
            for iid in decision.kill:
                self._kill(self.instances[iid])
            if decision.launch == 0:
                self.queue.pop(app_id, None)
                continue
            entry = self.queue.setdefault(app_id, QueueEntry(count=decision.launch, since=t))
            entry.count = decision.launch
            b = self.backoffs.get(app_id)
            if b is not None and backoff_math.expired(b, t, record.definition.max_launch_delay_seconds):
                del self.backoffs[app_id]
                self.store.put_backoff(app_id, None)
            elif not backoff_math.launch_allowed(b, t):
                entry.message = f"waiting for backoff: {backoff_math.time_left(b, t):.1f} s left"
                continue
            if offers is None:
                offers = self.backend.offers([i for i in self.instances.values() if i.active or i.killing])
            offers = self._launch(record, insts, decision.launch, offers, entry, t)
        self._advance_deployments(done, t)

    def _launch(self, record: AppRecord, insts: list[Instance], count: int, offers: list[AgentOffer],
                entry: QueueEntry, t: float) -> list[AgentOffer]:
        """Place and start up to `count` instances; returns the offers that are left."""
        app = record.definition
        agents = {o.agent.agent_id: o.agent for o in offers}
        placed = [agents[i.agent_id] for i in insts if i.active and i.agent_id in agents]
        self._seed += 1
        result = place_tasks(record.task_request, count, offers, placed, seed=self._seed)
        entry.processed_offers += len(offers)
        unsupported = self.backend.unsupported_reason(app)
        if len(result.placements) < count or unsupported:
            entry.message = "; ".join(m for m in (result.message, unsupported) if m)
            entry.rejections = dict(result.rejections)
            entry.unused_offers += len(offers)
            entry.last_unused_offer_at = t
        else:
            entry.message = None
            entry.rejections = {}
        if unsupported:
            return offers
        service_ports = record.service_ports
        for placement in result.placements:
            inst = Instance(
                instance_id=new_instance_id(app.id), app_id=app.id, version=record.version,
                config_version=record.config_version, agent_id=placement.agent_id,
                host=agents[placement.agent_id].hostname, ports=tuple(placement.host_ports),
                service_ports=service_ports, state=STAGING, staged_at=t,
                resources={"cpus": app.cpus, "mem": app.mem, "disk": app.disk})
            self._put(inst)
            self._spawn(self._start_task(inst, app))
        return consume_offers(offers, record.task_request, result.placements)

    async def _start_task(self, inst: Instance, app: AppDefinition) -> None:
        async with self._launch_slots:
            if self.instances.get(inst.instance_id) is None:
                return
            try:
                launched = await self.backend.launch(inst, app)
            except Exception as exc:  # launch failures are task failures, never scheduler crashes
                self.on_status(StatusUpdate(inst.instance_id, "TASK_FAILED", f"launch failed: {exc}"))
                return
            current = self.instances.get(inst.instance_id)
            if current is None or current.state != STAGING:
                return
            running = launched.with_(state=RUNNING, started_at=now(), killing=current.killing)
            self._put(running)
            self._publish_status(running, RUNNING)
            self.wake()
