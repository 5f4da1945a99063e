"""The health checker: probes running tasks and feeds `record_check`.

One loop wakes every 250 ms, starts the checks that are due, and runs them concurrently under
a global limit (Marathon's `--max_concurrent_marathon_health_checks`, 256) so a thousand tasks
checked every ten seconds never starve the event loop. A slow check costs a slot, not the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from app_definitions import HealthCheck

from .clock import now
from .health_state import CheckPolicy, HealthRecord, record_check
from .model import RUNNING, Instance

if TYPE_CHECKING:
    from .core import Scheduler

log = logging.getLogger(__name__)

MAX_CONCURRENT_CHECKS = 256
POLL_SECONDS = 0.25


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


class HealthChecker:
    def __init__(self, scheduler: "Scheduler", concurrency: int = MAX_CONCURRENT_CHECKS) -> None:
        self.scheduler = scheduler
        self.records: dict[str, list[HealthRecord]] = {}
        self.readiness: dict[str, dict[str, Any]] = {}    # instance id -> last readiness result
        self._next_due: dict[Any, Any] = {}   # instance id -> {check index: due}; ("ready", id) -> due
        self._due: asyncio.Queue[tuple[Instance, int, HealthCheck]] = asyncio.Queue()
        self._concurrency = concurrency
        self._in_flight: set[tuple[str, int]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._insecure = ssl.create_default_context()
        self._insecure.check_hostname = False
        self._insecure.verify_mode = ssl.CERT_NONE

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._concurrency))
        workers = [asyncio.get_running_loop().create_task(self._worker()) for _ in range(self._concurrency)]
        self._tasks.update(workers)
        try:
            while True:
                self.start_due_checks(now())
                await asyncio.sleep(POLL_SECONDS)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()

    def is_ready(self, instance_id: str) -> bool:
        return bool(self.readiness.get(instance_id, {}).get("ready"))

    def forget(self, instance_id: str) -> None:
        self.records.pop(instance_id, None)
        self.readiness.pop(instance_id, None)
        self._next_due.pop(instance_id, None)
        self._next_due.pop(("ready", instance_id), None)

    async def _worker(self) -> None:
        """A fixed pool of workers drains the due queue: the concurrency limit costs no task
        per waiting check, and a burst of due checks never becomes a burst of coroutines."""
        while True:
            inst, index, check = await self._due.get()
            await self._check(inst, index, check)

    def _first_due(self, instance_id: str, t: float, interval: float) -> float:
        """Spread first checks over up to a second so a thousand new tasks do not fire at once."""
        return t + (zlib.crc32(instance_id.encode()) % 1000) / 1000 * min(interval, 1.0)

    def start_due_checks(self, t: float) -> None:
        sched = self.scheduler
        live = set()
        for inst in list(sched.instances.values()):
            if inst.state != RUNNING or inst.killing or inst.app_id not in sched.apps:
                continue
            record = sched.apps[inst.app_id]
            app = record.definition
            if app.readiness_checks and inst.config_version == record.config_version \
                    and not self.is_ready(inst.instance_id):
                live.add(inst.instance_id)
                self._schedule(("ready", inst.instance_id), t, app.readiness_checks[0].interval_seconds,
                               lambda inst=inst, app=app: self._readiness(inst, app))
            checks = app.health_checks
            if not checks:
                continue
            live.add(inst.instance_id)
            due = self._next_due.get(inst.instance_id)
            if due is None:
                due = self._next_due[inst.instance_id] = {
                    i: self._first_due(inst.instance_id, t, c.interval_seconds) for i, c in enumerate(checks)}
            for index, check in enumerate(checks):
                key = (inst.instance_id, index)
                if key in self._in_flight or due.get(index, 0.0) > t:
                    continue
                self._in_flight.add(key)
                due[index] = t + check.interval_seconds
                self._due.put_nowait((inst, index, check))
        for gone in [iid for iid in (*self.records, *self.readiness) if iid not in live]:
            self.forget(gone)

    def _schedule(self, key: Any, t: float, interval: float, make: Any) -> None:
        if key in self._in_flight or self._next_due.get(key, 0.0) > t:
            return
        self._in_flight.add(key)
        self._next_due[key] = t + interval

        async def probe() -> None:
            try:
                await make()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("readiness check failed unexpectedly")
            finally:
                self._in_flight.discard(key)

        task = asyncio.get_running_loop().create_task(probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _readiness(self, inst: Instance, app: Any) -> None:
        """Readiness (deployments only): HTTP GET on the named port until an accepted status."""
        check = app.readiness_checks[0]
        names = [spec.name for spec in app.port_specs() if spec.host_port is not None]
        port = inst.ports[names.index(check.port_name)] if check.port_name in names and \
            names.index(check.port_name) < len(inst.ports) else None
        result: dict[str, Any] = {"name": check.name, "taskId": inst.instance_id, "ready": False,
                                  "lastResponse": None}
        if port is not None:
            scheme = "https" if check.protocol == "HTTPS" else "http"
            url = f"{scheme}://127.0.0.1:{port}{check.path}"
            assert self._session is not None
            try:
                async with self._slots, self._session.get(
                        url, timeout=aiohttp.ClientTimeout(total=check.timeout_seconds),
                        ssl=self._insecure if scheme == "https" else None) as resp:
                    body = await resp.text() if check.preserve_last_response else ""
                    result["ready"] = resp.status in check.http_status_codes_for_ready
                    result["lastResponse"] = {"status": resp.status, "contentType": resp.content_type,
                                              "body": body}
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
        if self.scheduler.instances.get(inst.instance_id) is not None:
            self.readiness[inst.instance_id] = result
            if result["ready"]:
                self.scheduler.wake()

    async def _check(self, inst: Instance, index: int, check: HealthCheck) -> None:
        try:
            ok, status, cause = await self._probe(inst, check)
            self._record(inst, index, check, ok, status, cause)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken probe is a failed check, never a crashed checker
            log.exception("health check of %s failed unexpectedly", inst.instance_id)
            self._record(inst, index, check, False, None, f"checker error: {exc}")
        finally:
            self._in_flight.discard((inst.instance_id, index))

    async def _probe(self, inst: Instance, check: HealthCheck) -> tuple[bool | None, int | None, str | None]:
        protocol = check.protocol
        timeout = float(check.timeout_seconds)
        if protocol in ("COMMAND",) or (protocol.startswith("MESOS_") and check.command is not None):
            return await self._command(inst, check, timeout)
        port = check_port(check, inst)
        if port is None:
            return False, None, f"task has no port at index {check.port_index}"
        host = "127.0.0.1"
        if protocol in ("TCP", "MESOS_TCP"):
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True, None, None
            except (OSError, asyncio.TimeoutError) as exc:
                return False, None, f"TCP connection to {host}:{port} failed: {exc or 'timed out'}"
        scheme = "https" if protocol in ("HTTPS", "MESOS_HTTPS") else "http"
        url = f"{scheme}://{host}:{port}{check.path or '/'}"
        assert self._session is not None
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=timeout),
                                         ssl=self._insecure if scheme == "https" else None,
                                         allow_redirects=False) as resp:
                if 200 <= resp.status < 400:
                    return True, resp.status, None
                return False, resp.status, f"HTTP {resp.status} from {url}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            return False, None, f"GET {url}: {reason}"

    async def _command(self, inst: Instance, check: HealthCheck, timeout: float) -> tuple[bool, None, str | None]:
        command = check.command.value if check.command is not None else ""
        env = {**os.environ, "HOST": inst.host, "MESOS_TASK_ID": inst.instance_id,
               **{f"PORT{i}": str(p) for i, p in enumerate(inst.ports)}}
        if inst.ports:
            env["PORT"] = str(inst.ports[0])
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", command, env=env,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return False, None, f"command timed out after {timeout:g} s"
        return (True, None, None) if code == 0 else (False, None, f"command exited with status {code}")

    def _record(self, inst: Instance, index: int, check: HealthCheck, ok: bool | None, status: int | None,
                cause: str | None) -> None:
        current = self.scheduler.instances.get(inst.instance_id)
        if current is None or current.killing:
            return
        records = self.records.setdefault(inst.instance_id, [])
        while len(records) <= index:
            records.append(HealthRecord(inst.instance_id))
        outcome = record_check(records[index], policy_of(check), ok=ok, status=status, cause=cause, now=now(),
                               started_at=current.started_at or current.staged_at)
        records[index] = outcome.record
        self.scheduler.on_health(current, check_json(check), outcome)


def render_results(records: Mapping[str, list[HealthRecord]], instance_id: str) -> list[dict[str, Any]]:
    from .clock import iso_timestamp

    def ts(value: float | None) -> str | None:
        return iso_timestamp(value) if value is not None else None

    return [{"alive": r.alive, "consecutiveFailures": r.consecutive_failures, "firstSuccess": ts(r.first_success),
             "lastSuccess": ts(r.last_success), "lastFailure": ts(r.last_failure),
             "lastFailureCause": r.last_failure_cause, "instanceId": r.instance_id}
            for r in records.get(instance_id, [])]
