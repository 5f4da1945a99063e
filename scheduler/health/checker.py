"""The health checker: decides which checks are due, hands them to the probe thread, and
folds the verdicts into `record_check`.

Probing runs on its own thread and loop (`probes.ProbeThread`) under a global concurrency
limit (Marathon's `--max_concurrent_marathon_health_checks`, 256), so thousands of checks a
second cost the scheduler's loop only their bookkeeping. Readiness checks, which only gate
deployments and are few, run on the scheduler's loop.

That bookkeeping is kept to what changed: `schedule.CheckSchedule` rebuilds an instance's
probes only when its `Instance` value changes and pops due checks off a heap, and each check
definition's policy and JSON are derived once, not per verdict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp

from periodic import run_periodically

from app_definitions import AppDefinition, HealthCheck

from scheduler.health.probes import Probe, ProbeThread
from scheduler.health.schedule import CheckSchedule, first_due
from scheduler.health.state import CheckOutcome, CheckPolicy, HealthRecord, record_check
from scheduler.state.clock import Clock, iso_timestamp
from scheduler.state.model import Instance
from scheduler.telemetry import Telemetry

log = logging.getLogger(__name__)

MAX_CONCURRENT_CHECKS = 256
POLL_SECONDS = 0.1
SWEEP_SECONDS = 1.0       # records of instances no longer checked are dropped at least this often
CHECK_FACTS_LIMIT = 4096  # cached (policy, JSON) per check definition, cleared past this
TASK_HOST = "127.0.0.1"   # embedded agents share this machine's loopback


def policy_of(check: HealthCheck) -> CheckPolicy:
    return CheckPolicy(protocol=check.protocol, grace_period_seconds=check.grace_period_seconds,
                       max_consecutive_failures=check.max_consecutive_failures,
                       ignore_http_1xx=bool(check.ignore_http1xx))


def check_port(check: HealthCheck, inst: Instance) -> int | None:
    if check.port:
        return check.port
    index = check.port_index or 0
    return inst.ports[index] if index < len(inst.ports) else None


def check_json(check: HealthCheck) -> dict[str, Any]:
    return check.model_dump(by_alias=True, exclude_none=True)


def probe_for(inst: Instance, index: int, check: HealthCheck, host: str = TASK_HOST) -> Probe:
    command = check.command.value if check.command is not None else None
    env = {"HOST": inst.host, "MESOS_TASK_ID": inst.instance_id,
           **{f"PORT{i}": str(p) for i, p in enumerate(inst.ports)}}
    if inst.ports:
        env["PORT"] = str(inst.ports[0])
    return Probe(key=(inst.instance_id, index), protocol=check.protocol, host=host,
                 port=check_port(check, inst), path=check.path or "/", timeout=float(check.timeout_seconds),
                 command=command, env=tuple(sorted(env.items())) if command else ())


class HealthSubject(Protocol):
    """What the checker needs of the scheduler: the instances, their checks, and where verdicts go."""

    def instances(self) -> Iterable[Instance]: ...
    def instance(self, instance_id: str) -> Instance | None: ...
    def checks_of(self, inst: Instance) -> list[HealthCheck]: ...
    def readiness_of(self, inst: Instance) -> AppDefinition | None:
        """The definition whose readiness check gates this instance, or None when none does."""
    def on_health(self, inst: Instance, check: dict[str, Any], outcome: CheckOutcome) -> None: ...
    def on_ready(self, inst: Instance) -> None: ...


class HealthChecker:
    def __init__(self, subject: HealthSubject, clock: Clock, concurrency: int = MAX_CONCURRENT_CHECKS, *,
                 backend_checks: frozenset[str] = frozenset(),
                 probe_host: Callable[[Instance], str] = lambda inst: TASK_HOST,
                 telemetry: Telemetry | None = None) -> None:
        """`backend_checks`: the protocols the cluster runs itself (Mesos's `MESOS_HTTP`, …): not
        probed here, their verdicts come with status updates (`record_backend_verdict`).
        `probe_host`: where a task is reached (the loopback for the embedded agents, its agent's
        host on a cluster)."""
        self.subject = subject
        self._clock = clock
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._backend_checks = backend_checks
        self._probe_host = probe_host
        self.records: dict[str, list[HealthRecord]] = {}
        self.readiness: dict[str, dict[str, Any]] = {}    # instance id -> last readiness result
        self._schedule = CheckSchedule(self._probe_of, self.subject.checks_of)
        self._gated: set[str] = set()       # instances whose readiness gates a deployment
        self._ready_due: dict[str, float] = {}
        self._in_flight: set[Any] = set()   # readiness probes running
        self._check_facts: dict[int, tuple[HealthCheck, CheckPolicy, dict[str, Any]]] = {}
        self._last_sweep = 0.0
        self._concurrency = concurrency
        self._prober: ProbeThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self._prober = ProbeThread(self._concurrency)
        await asyncio.to_thread(self._prober.start)
        self._session = aiohttp.ClientSession()
        try:
            await run_periodically("health checks", self._round, POLL_SECONDS, log=log)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            await asyncio.to_thread(self._prober.stop)

    def _round(self) -> None:
        self.collect_verdicts()
        self.start_due_checks(self._clock.now())

    def is_ready(self, instance_id: str) -> bool:
        return bool(self.readiness.get(instance_id, {}).get("ready"))

    def forget(self, instance_id: str) -> None:
        self.records.pop(instance_id, None)
        self.readiness.pop(instance_id, None)
        self._ready_due.pop(instance_id, None)
        self._gated.discard(instance_id)
        self._schedule.forget(instance_id)

    @staticmethod
    def _first_due(instance_id: str, t: float, interval: float) -> float:
        return first_due(instance_id, t, interval)

    def _probe_of(self, inst: Instance, index: int, check: HealthCheck) -> Probe | None:
        if check.protocol in self._backend_checks:
            return None
        return probe_for(inst, index, check, self._probe_host(inst))

    def start_due_checks(self, t: float) -> None:
        changed, gone = self._schedule.refresh(list(self.subject.instances()), t)
        for entry in changed:
            if entry.live and self.subject.readiness_of(entry.inst) is not None:
                self._gated.add(entry.inst.instance_id)
        for instance_id in list(self._gated):
            entry = self._schedule.tracked.get(instance_id)
            ready_app = self.subject.readiness_of(entry.inst) if entry is not None and entry.live else None
            if ready_app is None:
                self._gated.discard(instance_id)
                gone = True
            elif not self.is_ready(instance_id):
                self._start_readiness(entry.inst, ready_app, t)
        batch = self._schedule.due(t)
        if self._prober is not None:
            self._prober.submit(batch)
        now = time.monotonic()
        if changed or gone or now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            self._forget_unchecked()

    def _forget_unchecked(self) -> None:
        """Drop what is known of instances no longer checked (gone, ended, being killed)."""
        tracked, gated = self._schedule.tracked, self._gated
        for instance_id in [iid for iid in (*self.records, *self.readiness, *tracked)
                            if iid not in gated and not ((e := tracked.get(iid)) is not None and e.live and e.checks)]:
            self.records.pop(instance_id, None)
            self.readiness.pop(instance_id, None)
            self._ready_due.pop(instance_id, None)

    def collect_verdicts(self) -> None:
        if self._prober is None:
            return
        verdicts = self._prober.verdicts
        finished = self._schedule.finished
        while verdicts:
            verdict = verdicts.popleft()
            finished(verdict.key)
            instance_id, index = verdict.key
            self.record_verdict(instance_id, index, verdict.ok, verdict.status, verdict.cause)

    def _facts(self, check: HealthCheck) -> tuple[CheckPolicy, dict[str, Any]]:
        """The check's policy and JSON, derived once per check definition."""
        facts = self._check_facts.get(id(check))
        if facts is None or facts[0] is not check:
            if len(self._check_facts) >= CHECK_FACTS_LIMIT:
                self._check_facts.clear()
            facts = self._check_facts[id(check)] = (check, policy_of(check), check_json(check))
        return facts[1], facts[2]

    def record_verdict(self, instance_id: str, index: int, ok: bool | None, status: int | None = None,
                       cause: str | None = None) -> None:
        """Fold one probe result (of check `index` of the instance's version) into its record.

        The probe thread's results arrive here; scenario tests call it directly to play the
        part of the probes."""
        self._telemetry.count_health_check(ok)
        inst = self.subject.instance(instance_id)
        checks = self.subject.checks_of(inst) if inst is not None else []
        if inst is None or index >= len(checks) or inst.killing:
            return
        policy, as_json = self._facts(checks[index])
        records = self.records.get(inst.instance_id)
        if records is None:
            records = self.records[inst.instance_id] = []
        while len(records) <= index:
            records.append(HealthRecord(inst.instance_id))
        outcome = record_check(records[index], policy, ok=ok, status=status, cause=cause, now=self._clock.now(),
                               started_at=inst.started_at or inst.staged_at)
        records[index] = outcome.record
        self.subject.on_health(inst, as_json, outcome)

    def record_backend_verdict(self, instance_id: str, healthy: bool) -> None:
        """A verdict of the check the backend runs for the instance: its first check of a
        protocol the backend runs (Mesos runs one health check per task)."""
        inst = self.subject.instance(instance_id)
        if inst is None:
            return
        index = next((i for i, c in enumerate(self.subject.checks_of(inst)) if c.protocol in self._backend_checks),
                     None)
        if index is not None:
            self.record_verdict(instance_id, index, healthy,
                                cause=None if healthy else "the cluster's health check failed")

    # -- readiness (deployments only; few, so on this loop) -----------------------------
    def _start_readiness(self, inst: Instance, app: AppDefinition, t: float) -> None:
        key = ("ready", inst.instance_id)
        if key in self._in_flight or self._ready_due.get(inst.instance_id, 0.0) > t:
            return
        self._in_flight.add(key)
        self._ready_due[inst.instance_id] = t + app.readiness_checks[0].interval_seconds

        async def probe() -> None:
            try:
                await self._readiness(inst, app)
            finally:
                self._in_flight.discard(key)

        task = asyncio.get_running_loop().create_task(probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _readiness(self, inst: Instance, app: AppDefinition) -> None:
        """HTTP GET on the port named by the check until it answers an accepted status."""
        check = app.readiness_checks[0]
        names = [spec.name for spec in app.port_specs() if spec.host_port is not None]
        index = names.index(check.port_name) if check.port_name in names else None
        port = inst.ports[index] if index is not None and index < len(inst.ports) else None
        result: dict[str, Any] = {"name": check.name, "taskId": inst.instance_id, "ready": False,
                                  "lastResponse": None}
        if port is not None and self._session is not None:
            scheme = "https" if check.protocol == "HTTPS" else "http"
            try:
                async with self._session.get(f"{scheme}://{TASK_HOST}:{port}{check.path}", ssl=False,
                                             timeout=aiohttp.ClientTimeout(total=check.timeout_seconds)) as resp:
                    body = await resp.text() if check.preserve_last_response else ""
                    result["ready"] = resp.status in check.http_status_codes_for_ready
                    result["lastResponse"] = {"status": resp.status, "contentType": resp.content_type,
                                              "body": body}
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                pass
        self.record_readiness(inst, result)

    def record_readiness(self, inst: Instance, result: dict[str, Any]) -> None:
        """Keep a readiness result (Marathon's readinessCheckResults entry) for a live instance."""
        if self.subject.instance(inst.instance_id) is not None:
            self.readiness[inst.instance_id] = result
            if result["ready"]:
                self.subject.on_ready(inst)


def render_results(records: Mapping[str, list[HealthRecord]], instance_id: str) -> list[dict[str, Any]]:
    def ts(value: float | None) -> str | None:
        return iso_timestamp(value) if value is not None else None

    return [{"alive": r.alive, "consecutiveFailures": r.consecutive_failures, "firstSuccess": ts(r.first_success),
             "lastSuccess": ts(r.last_success), "lastFailure": ts(r.last_failure),
             "lastFailureCause": r.last_failure_cause, "instanceId": r.instance_id}
            for r in records.get(instance_id, [])]
