"""HaproxyBridge: the bridge's parts wired together, and started, run and stopped as one.

One refresh: fetch `/v2/apps?embed=apps.tasks` -> the target model (targets.py) -> HAProxy
brought to it (applier.py) -> an `Update` recorded in the state (state.py) for the status page.
Refreshes are asked for by the watcher (watch.py) and run one at a time by the refresh loop
(refresh.py); the supervisor (supervisor.py) restarts a dead HAProxy and reaps drained
servers. The lock keeps the apply step and the supervisor from changing HAProxy at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pacer_client import ClientError, PacerClient

from .applier import HaproxyApplier
from .config_files import ConfigChecker, ConfigFiles
from .draining import Draining
from .haproxy import HaproxyProcess
from .options import BridgeOptions
from .outcomes import Update
from .refresh import RefreshLoop
from .render import RenderSettings
from .state import BridgeState
from .status_view import status_document
from .supervisor import HaproxySupervisor
from .targets import TargetBuilder
from .validate import ConfigValidator
from .watch import Watcher

log = logging.getLogger(__name__)

MAX_REASONS = 10


def render_settings(options: BridgeOptions, process: HaproxyProcess) -> RenderSettings:
    return RenderSettings(
        bind_address=options.bind_address, http_port=options.http_port, https_port=options.https_port,
        stats_port=options.stats_port, apps_port=options.apps_port, admin_socket=str(process.admin_socket),
        status_backend=f"127.0.0.1:{options.status_port}" if options.status_port else None,
        default_certs=tuple(options.ssl_certs), hard_stop_after=f"{options.hard_stop_after_seconds}s",
        request_log=str(process.request_log_socket) if options.request_log else None)


class HaproxyBridge:
    def __init__(self, options: BridgeOptions, *, client: PacerClient | None = None) -> None:
        self.options = options
        self.files = ConfigFiles(options.config_dir)
        self.process = HaproxyProcess(options.haproxy_bin, self.files.live)
        self.settings = render_settings(options, self.process)
        self.state = BridgeState()
        self.draining = Draining(options.drain_seconds)
        check = ConfigChecker(options.haproxy_bin, self.files, self.state.counters)
        validator = ConfigValidator(self.settings, check)
        self.targets = TargetBuilder(options, validator, files=self.files)
        self.refreshes = RefreshLoop(lambda full, reasons: self.refresh(full=full, reasons=reasons), self.state,
                                     options.debounce_seconds)
        self.applier = HaproxyApplier(settings=self.settings, process=self.process, files=self.files, check=check,
                                      validator=validator, draining=self.draining, state=self.state,
                                      debounce_seconds=options.debounce_seconds,
                                      schedule_refresh=self.refreshes.request_later)
        self._lock = asyncio.Lock()
        self.supervisor = HaproxySupervisor(process=self.process, applier=self.applier, draining=self.draining,
                                            state=self.state, lock=self._lock)
        self.watcher = Watcher(options.master, self.refreshes.request, poll_seconds=options.poll_seconds,
                               resync_seconds=options.resync_seconds, idle_seconds=options.stream_idle_seconds,
                               max_backoff=options.max_backoff_seconds, access=options.access)
        self._client = client
        self._own_client = client is None

    @property
    def client(self) -> PacerClient:
        if self._client is None:
            self._client = PacerClient(self.options.master, timeout=30.0, access=self.options.access)
        return self._client

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start HAProxy on a config without apps, then apply the cluster once (if reachable)."""
        self.files.create_dir()
        await self.applier.start_empty()
        try:
            await self.refresh(full=True)
        except ClientError as exc:
            self.state.last_error = str(exc)
            log.warning("cannot read apps from %s yet (%s); will retry", self.options.master, exc)

    async def run(self) -> None:
        """Follow the cluster until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watcher.run(), name="haproxy-bridge-watch")
            tg.create_task(self.refreshes.run(), name="haproxy-bridge-refresh")
            tg.create_task(self.supervisor.run(), name="haproxy-bridge-supervisor")

    async def close(self) -> None:
        self.supervisor.stopped = True
        self.refreshes.cancel_later()
        async with self._lock:
            await self.process.stop()
        if self._own_client and self._client is not None:
            await self._client.close()

    # -- refreshes ----------------------------------------------------------------------------
    def request_refresh(self, reason: str, full: bool = False) -> None:
        self.refreshes.request(reason, full)

    async def refresh(self, *, full: bool = False, reasons: list[str] | None = None) -> Update:
        apps = await self.client.list_apps()
        return await self.apply(apps, full=full, reasons=reasons)

    async def apply(self, apps: list[dict[str, Any]], *, full: bool = False,
                    reasons: list[str] | None = None) -> Update:
        """Bring HAProxy to `apps` (Marathon JSON with embedded tasks); a full apply forgets the
        apps left out and the config that failed, so both are tried again."""
        async with self._lock:
            started = time.monotonic()
            self.state.counters.refreshes += 1
            if full:
                self.state.held_config = None
            target = await self.targets.build(apps, full=full, live=self.state.live_model,
                                              haproxy_running=self.process.alive())
            self.state.model = target.model
            outcome = await self.applier.converge(target)
            update = Update(outcome, seconds=time.monotonic() - started,
                            reasons=tuple(sorted(set(reasons or []))[:MAX_REASONS]), at=time.time())
            self.state.record(update)
            return update

    def status(self) -> dict[str, Any]:
        """The document GET /v2/haproxy serves."""
        return status_document(self)
