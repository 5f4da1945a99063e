"""The health checker: decides which checks are due, hands them to the probe thread, and
folds the verdicts into `record_check`.

Probing runs on its own thread and loop (`probes.ProbeThread`) under a global concurrency
limit (Marathon's `--max_concurrent_marathon_health_checks`, 256), so thousands of checks a
second cost the scheduler's loop only their bookkeeping. Readiness checks, which only gate
deployments and are few, run on the scheduler's loop.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp

from periodic import run_periodically

from app_definitions import AppDefinition, HealthCheck

from scheduler.health.probes import Probe, ProbeThread
from scheduler.health.state import CheckOutcome, CheckPolicy, HealthRecord, record_check
from scheduler.state.clock import Clock, iso_timestamp
from scheduler.state.model import RUNNING, Instance

log = logging.getLogger(__name__)

MAX_CONCURRENT_CHECKS = 256
POLL_SECONDS = 0.1
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
                 probe_host: Callable[[Instance], str] = lambda inst: TASK_HOST) -> None:
        """`backend_checks`: the protocols the cluster runs itself (Mesos's `MESOS_HTTP`, …): not
        probed here, their verdicts come with status updates (`record_backend_verdict`).
        `probe_host`: where a task is reached (the loopback for the embedded agents, its agent's
        host on a cluster)."""
        self.subject = subject
        self._clock = clock
        self._backend_checks = backend_checks
        self._probe_host = probe_host
        self.records: dict[str, list[HealthRecord]] = {}
        self.readiness: dict[str, dict[str, Any]] = {}    # instance id -> last readiness result
        self._next_due: dict[str, dict[int, float]] = {}   # instance id -> check index -> due
        self._ready_due: dict[str, float] = {}
        self._in_flight: set[Any] = set()
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
        self._next_due.pop(instance_id, None)
        self._ready_due.pop(instance_id, None)

    @staticmethod
    def _first_due(instance_id: str, t: float, interval: float) -> float:
        """Spread first checks over up to a second so a thousand new tasks do not fire at once."""
        return t + (zlib.crc32(instance_id.encode()) % 1000) / 1000 * min(interval, 1.0)

    def start_due_checks(self, t: float) -> None:
        live: set[str] = set()
        batch: list[Probe] = []
        for inst in list(self.subject.instances()):
            if inst.state != RUNNING or inst.killing:
                continue
            ready_app = self.subject.readiness_of(inst)
            if ready_app is not None and not self.is_ready(inst.instance_id):
                live.add(inst.instance_id)
                self._start_readiness(inst, ready_app, t)
            checks = self.subject.checks_of(inst)
            if not checks:
                continue
            live.add(inst.instance_id)
            due = self._next_due.get(inst.instance_id)
            if due is None:
                due = self._next_due[inst.instance_id] = {
                    i: self._first_due(inst.instance_id, t, c.interval_seconds) for i, c in enumerate(checks)}
            for index, check in enumerate(checks):
                key = (inst.instance_id, index)
                if check.protocol in self._backend_checks or key in self._in_flight or due.get(index, 0.0) > t:
                    continue
                self._in_flight.add(key)
                due[index] = t + check.interval_seconds
                batch.append(probe_for(inst, index, check, self._probe_host(inst)))
        if self._prober is not None:
            self._prober.submit(batch)
        for gone in [iid for iid in (*self.records, *self.readiness, *self._next_due) if iid not in live]:
            self.forget(gone)

    def collect_verdicts(self) -> None:
        if self._prober is None:
            return
        verdicts = self._prober.verdicts
        while verdicts:
            verdict = verdicts.popleft()
            self._in_flight.discard(verdict.key)
            instance_id, index = verdict.key
            self.record_verdict(instance_id, index, verdict.ok, verdict.status, verdict.cause)

    def record_verdict(self, instance_id: str, index: int, ok: bool | None, status: int | None = None,
                       cause: str | None = None) -> None:
        """Fold one probe result (of check `index` of the instance's version) into its record.

        The probe thread's results arrive here; scenario tests call it directly to play the
        part of the probes."""
        inst = self.subject.instance(instance_id)
        checks = self.subject.checks_of(inst) if inst is not None else []
        if inst is None or index >= len(checks) or inst.killing:
            return
        check = checks[index]
        records = self.records.setdefault(inst.instance_id, [])
        while len(records) <= index:
            records.append(HealthRecord(inst.instance_id))
        outcome = record_check(records[index], policy_of(check), ok=ok, status=status, cause=cause, now=self._clock.now(),
                               started_at=inst.started_at or inst.staged_at)
        records[index] = outcome.record
        self.subject.on_health(inst, check_json(check), outcome)

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
