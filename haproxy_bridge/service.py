"""HaproxyBridge: the loops around the pure parts, and the one place that changes HAProxy.

One refresh: fetch `/v2/apps?embed=apps.tasks` -> resolve task hosts -> `build_model` ->
probe new bind addresses (a port another process holds rejects that app, not the config) ->
`render_haproxy_config` -> unchanged: nothing; servers only: Runtime API, file rewritten,
no reload; otherwise: `haproxy -c` (narrowed to the offending apps when it fails) -> atomic
write -> reload through the master -> on failure the last good file is put back.

Servers that leave a backend are set to `drain` (no new sessions, running ones finish) and
deleted once idle or after `drain_seconds`; a reload hands them to the old worker, which
finishes their sessions the same way. Apps left out because HAProxy refused them stay out
until their definition changes or the next full resync.

This module keeps the sequence above and the state it needs between refreshes (the live model
and config, the held config, the loops' timing). The parts with a state or a concern of their
own sit beside it, so the sequence reads in one place:

    validate.py     haproxy -c narrowing and the exclusions it produces (fingerprint lives there)
    netprobe.py     host name resolution cache and bind probes (everything that uses socket)
    draining.py     servers draining after a Runtime API update, and their reaping
    status_view.py  the status document (status(), GET /v2/haproxy)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from pacer_client import ClientError, PacerClient

from .errors import BridgeError, ConfigRejected, HaproxyError
from .haproxy import HaproxyProcess, ReloadResult, check_config
from .draining import Drain, Draining
from .model import Model, build_model
from .netprobe import HostResolver, blocked_binds
from .options import BridgeOptions
from .plan import RuntimePlan, plan_commands, plan_runtime, runtime_answer_ok, with_servers_of
from .render import RenderSettings, render_haproxy_config
from .servers import track_known_healthy
from .status_view import iso, status_document
from .validate import ConfigValidator, fingerprint
from .watch import Watcher

# Defined in the modules named above; kept importable from here, where they used to live.
__all__ = ["HaproxyBridge", "Drain", "HostResolver", "fingerprint", "iso", "wait_closed", "write_atomic"]

log = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class HaproxyBridge:
    def __init__(self, options: BridgeOptions, *, client: PacerClient | None = None) -> None:
        self.options = options
        self.config_dir = Path(os.path.abspath(options.config_dir))
        self.config_path = self.config_dir / "haproxy.cfg"
        self.process = HaproxyProcess(options.haproxy_bin, self.config_path)
        self.settings = RenderSettings(
            bind_address=options.bind_address, http_port=options.http_port, https_port=options.https_port,
            stats_port=options.stats_port, admin_socket=str(self.process.admin_socket),
            status_backend=f"127.0.0.1:{options.status_port}" if options.status_port else None,
            default_certs=tuple(options.ssl_certs), hard_stop_after=f"{options.hard_stop_after_seconds}s")
        self._client = client
        self._own_client = client is None
        self.watcher = Watcher(options.master, self.request_refresh, poll_seconds=options.poll_seconds,
                               resync_seconds=options.resync_seconds, idle_seconds=options.stream_idle_seconds,
                               max_backoff=options.max_backoff_seconds)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending: list[str] = []
        self._pending_full = False
        self._live: Model | None = None          # what HAProxy runs (draining servers aside)
        self._live_config: str | None = None
        self._model = Model()                    # the latest verdicts, for the status view
        self._draining = Draining(options.drain_seconds)
        self._known_healthy: set[str] = set()
        self._validator = ConfigValidator(self.settings, self._check)   # and the apps it leaves out
        self._resolver = HostResolver()
        self._closing = False
        self._restart_failures = 0
        self._next_restart_at = 0.0
        self._held: str | None = None            # a rendered config that failed to load
        self._last_reload_at = -1e9
        self._deferred: asyncio.TimerHandle | None = None
        self.counters = {"refreshes": 0, "reloads": 0, "failedReloads": 0, "runtimeUpdates": 0,
                         "runtimeCommands": 0, "unchanged": 0, "checks": 0, "rejectedConfigs": 0,
                         "haproxyRestarts": 0, "fetchErrors": 0, "drained": 0}
        self.last_reload: ReloadResult | None = None
        self.last_update: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=50)

    # -- lifecycle ----------------------------------------------------------------------------
    def _reserved(self) -> dict[tuple[str, int], str]:
        o = self.options
        out = {(o.bind_address, o.http_port): "the bridge's HTTP frontend",
               (o.bind_address, o.https_port): "the bridge's HTTPS frontend",
               (o.bind_address, o.stats_port): "the bridge's stats page"}
        if o.status_port:
            out[("127.0.0.1", o.status_port)] = "the bridge's status server"
        return out

    @property
    def client(self) -> PacerClient:
        if self._client is None:
            self._client = PacerClient(self.options.master, timeout=30.0)
        return self._client

    async def start(self) -> None:
        """Start HAProxy on a config without apps, then apply the cluster once (if reachable)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        empty = Model()
        text = render_haproxy_config(empty, self.settings)
        result = await self._check(text)
        if not result.ok:
            raise ConfigRejected("the bridge's own configuration does not pass haproxy -c "
                                 "(check --ssl-cert and the ports)", result.output)
        write_atomic(self.config_path, text)
        await self.process.start()
        self._live, self._live_config = empty, text
        try:
            await self.refresh(full=True)
        except ClientError as exc:
            self.last_error = str(exc)
            log.warning("cannot read apps from %s yet (%s); will retry", self.options.master, exc)

    async def run(self) -> None:
        """Follow the cluster until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watcher.run(), name="haproxy-bridge-watch")
            tg.create_task(self._refresh_loop(), name="haproxy-bridge-refresh")
            tg.create_task(self._housekeeping_loop(), name="haproxy-bridge-housekeeping")

    async def close(self) -> None:
        self._closing = True
        if self._deferred is not None:
            self._deferred.cancel()
        async with self._lock:
            await self.process.stop()
        if self._own_client and self._client is not None:
            await self._client.close()

    # -- triggers -----------------------------------------------------------------------------
    def request_refresh(self, reason: str, full: bool = False) -> None:
        self._pending.append(reason)
        self._pending_full = self._pending_full or full
        self._wake.set()

    async def _refresh_loop(self) -> None:
        """Events are gathered for 20 ms, refreshes are serial and start at most every 100 ms
        (`debounce_seconds` if smaller), so a burst of events makes few fetches. Reloads are
        what `debounce_seconds` spaces out (see `_converge`); server changes are applied at once,
        because when Pacer reports a new instance healthy it kills an old one right away, and
        every moment the new server is missing from HAProxy is a window for failed requests."""
        debounce = self.options.debounce_seconds
        gather = min(0.02, debounce)
        spacing = min(0.1, debounce)
        last_start = -1e9
        while True:
            await self._wake.wait()
            wait = max(gather, last_start + spacing - time.monotonic())
            await asyncio.sleep(wait)
            self._wake.clear()
            last_start = time.monotonic()
            reasons, self._pending = self._pending, []
            full, self._pending_full = self._pending_full, False
            try:
                await self.refresh(full=full, reasons=reasons)
            except ClientError as exc:
                self.counters["fetchErrors"] += 1
                self.last_error = str(exc)
                log.warning("cannot read apps: %s", exc)
            except BridgeError as exc:
                self.last_error = str(exc)
                log.error("%s", exc)
            except Exception as exc:  # the loop must outlive any single bad refresh
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("refresh failed")

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                async with self._lock:
                    if self._closing:
                        return
                    if (not self.process.alive() and self._live_config is not None
                            and time.monotonic() >= self._next_restart_at):
                        try:
                            await self._restart_haproxy()
                            self._restart_failures = 0
                        except HaproxyError:
                            self._restart_failures += 1
                            self._next_restart_at = time.monotonic() + min(30.0, 2.0 ** self._restart_failures)
                            raise
                    elif self._draining:
                        await self._draining.reap(self.process, self.counters)
            except BridgeError as exc:
                self.last_error = str(exc)
                log.warning("%s", exc)

    # -- the apply step -----------------------------------------------------------------------
    async def refresh(self, *, full: bool = False, reasons: list[str] | None = None) -> dict[str, Any]:
        apps = await self.client.list_apps()
        return await self.apply(apps, full=full, reasons=reasons)

    async def apply(self, apps: list[dict[str, Any]], *, full: bool = False,
                    reasons: list[str] | None = None) -> dict[str, Any]:
        async with self._lock:
            started = time.monotonic()
            self.counters["refreshes"] += 1
            if full:
                self._held = None
            hosts = await self._resolver.resolve(
                t["host"] for a in apps for t in a.get("tasks") or [] if isinstance(t.get("host"), str))
            self._known_healthy = track_known_healthy(self._known_healthy, apps)
            self._validator.start_refresh(apps, full=full)

            def rebuild() -> Model:
                return build_model(apps, self.options.group, reserved=self._reserved(), host_addresses=hosts,
                                   known_healthy=self._known_healthy, default_bind=self.options.bind_address,
                                   exclude=self._validator.reasons(),
                                   previous=self._live)

            model = rebuild()
            blocked = self._probe_binds(model)
            if blocked:
                for app_id, why in blocked.items():
                    self._validator.exclude(app_id, why)
                model = rebuild()
            self._model = model
            outcome = await self._converge(model, rebuild)
            outcome.update(seconds=round(time.monotonic() - started, 4), reasons=sorted(set(reasons or []))[:10],
                           at=iso(time.time()))
            self.last_update = outcome
            if outcome["kind"] != "unchanged":
                self.history.append(outcome)
            return outcome

    async def _converge(self, model: Model, rebuild: Any) -> dict[str, Any]:
        text = render_haproxy_config(model, self.settings)
        if not self.process.alive():
            return await self._reload_to(model, rebuild, start=True)
        if text == self._live_config:
            self.counters["unchanged"] += 1
            return {"kind": "unchanged"}
        if text == self._held:
            # this exact configuration already failed; retrying it on every event would only
            # repeat the failure (and its cost). A change to the apps or a full resync retries.
            self.counters["unchanged"] += 1
            return {"kind": "unchanged", "held": True}
        assert self._live is not None
        draining = self._draining.servers()
        plan = plan_runtime(self._live, model, draining)
        if plan is not None:
            outcome = await self._runtime_to(plan, model, text)
            if outcome is not None:
                return outcome
        wait = self._last_reload_at + self.options.debounce_seconds - time.monotonic()
        if wait > 0 and plan is None:
            # Reloads come at most once per debounce window (each leaves an old worker behind for
            # a while). The server changes in this update cannot wait: a new healthy instance
            # missing while Pacer kills the old one is an outage. Apply them now, reload later.
            partial = with_servers_of(self._live, model)
            part_plan = plan_runtime(self._live, partial, draining)
            outcome = None
            if part_plan is not None and not part_plan.empty:
                outcome = await self._runtime_to(part_plan, partial, render_haproxy_config(partial, self.settings))
            self._schedule_refresh(wait, "reload deferred by debounce")
            return {"kind": "deferred", "reloadInSeconds": round(wait, 3),
                    "servers": (outcome or {}).get("servers")}
        outcome = await self._reload_to(model, rebuild)
        self._held = text if outcome["kind"] in ("failed", "rejected") else None
        return outcome

    async def _runtime_to(self, plan: RuntimePlan, model: Model, text: str) -> dict[str, Any] | None:
        started = time.monotonic()
        if not await self._apply_runtime(plan, model):
            return None
        took = time.monotonic() - started
        write_atomic(self.config_path, text)
        self._live, self._live_config = model, text
        self.counters["runtimeUpdates"] += 1
        return {"kind": "runtime", "runtimeSeconds": round(took, 4),
                "servers": {"added": len(plan.add), "moved": len(plan.move),
                            "revived": len(plan.revive), "draining": len(plan.drain)}}

    def _schedule_refresh(self, delay: float, reason: str) -> None:
        if self._deferred is not None and not self._deferred.cancelled():
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._deferred = None
            self.request_refresh(reason)

        self._deferred = loop.call_later(delay, fire)

    async def _apply_runtime(self, plan: RuntimePlan, model: Model) -> bool:
        for command in plan_commands(plan, model):
            answer = await self.process.runtime(command)
            self.counters["runtimeCommands"] += 1
            if not runtime_answer_ok(command, answer):
                log.warning("runtime API refused %r: %s; falling back to a reload", command, answer.strip())
                return False
        self._draining.applied(plan)
        return True

    async def _reload_to(self, model: Model, rebuild: Any, *, start: bool = False) -> dict[str, Any]:
        for attempt in range(2):
            try:
                model, text = await self._validator.validated(model, rebuild)
            except ConfigRejected as exc:
                self.counters["rejectedConfigs"] += 1
                self.last_error = f"{exc}: {exc.output[-500:]}"
                log.error("no valid configuration; keeping the last good one: %s", self.last_error)
                return {"kind": "rejected", "error": self.last_error}
            self._model = model
            write_atomic(self.config_path, text)
            if start or not self.process.alive():
                await self._restart_haproxy(text)
                self._live, self._live_config = model, text
                return {"kind": "started"}
            result = await self.process.reload()
            self._last_reload_at = time.monotonic()
            self.last_reload = result
            if result.ok:
                if self._live_config is not None:
                    write_atomic(self.config_path.with_name("haproxy.cfg.prev"), self._live_config)
                self._live, self._live_config = model, text
                self._draining.clear()      # the old worker drains them now
                self.counters["reloads"] += 1
                return {"kind": "reload", "workerPid": result.worker_pid,
                        "reloadSeconds": round(result.seconds, 4)}
            self.counters["failedReloads"] += 1
            log.error("reload failed: %s", result.message)
            if self._live_config is not None:
                write_atomic(self.config_path, self._live_config)
            if not self._validator.blame_reload(result.message, model):
                break
            model = rebuild()
        self.last_error = self.last_reload.message if self.last_reload else "reload failed"
        return {"kind": "failed", "error": self.last_error}

    async def _check(self, text: str) -> Any:
        path = self.config_path.with_name("haproxy.cfg.check")
        write_atomic(path, text)
        self.counters["checks"] += 1
        return await check_config(self.options.haproxy_bin, path)

    def _probe_binds(self, model: Model) -> dict[str, str]:
        held: set[tuple[str, int]] = set()
        if self.process.alive() and self._live is not None:
            held = {(s.bind_addr or self.options.bind_address, s.port) for s in self._live.services}
        return blocked_binds(model, held, self.options.bind_address)

    async def _restart_haproxy(self, text: str | None = None) -> None:
        text = text or self._live_config
        if text is None:
            return
        if self.process.pid is not None:
            log.error("haproxy exited unexpectedly (%s); starting it again", self.process.log_tail()[-300:])
            self.counters["haproxyRestarts"] += 1
            await self.process.stop()
        write_atomic(self.config_path, text)
        self._draining.clear()
        await self.process.start()

    # -- the status view ----------------------------------------------------------------------
    @property
    def live_config(self) -> str | None:
        return self._live_config

    @property
    def model(self) -> Model:
        return self._model

    @property
    def draining(self) -> Draining:
        return self._draining

    def status(self) -> dict[str, Any]:
        return status_document(self)


async def wait_closed(bridge: HaproxyBridge, task: asyncio.Task[Any]) -> None:
    """Cancel a bridge's run() task and close it (helper for embedders)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await bridge.close()


