"""The one place that changes the running HAProxy: to a target model, by the cheapest safe way.

    same text as live         nothing
    a text that failed        nothing: retrying it on every event would only repeat the failure;
                              a change to the apps or a full resync retries
    servers only              Runtime API; the file is rewritten so a later reload keeps them
    reload too soon           the server part through the Runtime API now, the reload when the
                              debounce window ends (each reload leaves an old worker behind)
    anything else             `haproxy -c`, narrowed to the offending apps -> atomic write ->
                              reload through the master; a refused reload puts the last good
                              file back, and the app HAProxy's error names is left out

Servers that leave a backend are set to `drain`; a reload hands them to the old worker, which
finishes their sessions the same way, so the draining list starts afresh after every reload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .config_files import ConfigChecker, ConfigFiles
from .draining import Draining
from .errors import ConfigRejected
from .haproxy import HaproxyProcess
from .model import Model
from .outcomes import (Outcome, Rejected, ReloadDeferred, Reloaded, ReloadFailed, ServerChanges, ServersUpdated,
                       Started, Unchanged)
from .plan import RuntimePlan, plan_commands, plan_runtime, runtime_answer_ok, with_servers_of
from .render import RenderSettings, render_haproxy_config
from .state import BridgeState
from .targets import Target
from .validate import ConfigValidator

log = logging.getLogger(__name__)

ScheduleRefresh = Callable[[float, str], None]


class HaproxyApplier:
    def __init__(self, *, settings: RenderSettings, process: HaproxyProcess, files: ConfigFiles,
                 check: ConfigChecker, validator: ConfigValidator, draining: Draining, state: BridgeState,
                 debounce_seconds: float, schedule_refresh: ScheduleRefresh) -> None:
        self.settings = settings
        self.process = process
        self.files = files
        self.check = check
        self.validator = validator
        self.draining = draining
        self.state = state
        self.debounce_seconds = debounce_seconds
        self.schedule_refresh = schedule_refresh
        self._last_reload_at = -1e9

    async def start_empty(self) -> None:
        """HAProxy on a configuration without apps: the bridge's own listeners must work before
        any app is routed, and a bad flag (a missing certificate, a port in use) shows here."""
        empty = Model()
        text = render_haproxy_config(empty, self.settings)
        result = await self.check(text)
        if not result.ok:
            raise ConfigRejected("the bridge's own configuration does not pass haproxy -c "
                                 "(check --ssl-cert and the ports)", result.output)
        self.files.write_live(text)
        await self.process.start()
        self.state.went_live(empty, text)

    async def converge(self, target: Target) -> Outcome:
        model = target.model
        text = target.text if target.text is not None else render_haproxy_config(model, self.settings)
        live = self.state.live_model
        if not self.process.alive() or live is None:
            return await self._reload_to(target, start=True)
        if text == self.state.live_config:
            self.state.counters.unchanged += 1
            return Unchanged()
        if text == self.state.held_config:
            self.state.counters.unchanged += 1
            return Unchanged(held=True)
        draining = self.draining.servers()
        plan = plan_runtime(live, model, draining)
        if plan is not None:
            updated = await self._update_servers(plan, model, text)
            if updated is not None:
                return updated
        wait = self._last_reload_at + self.debounce_seconds - time.monotonic()
        if wait > 0 and plan is None:
            partial = with_servers_of(live, model)
            part_plan = plan_runtime(live, partial, draining)
            updated = None
            if part_plan is not None and not part_plan.empty:
                updated = await self._update_servers(part_plan, partial, render_haproxy_config(partial, self.settings))
            self.schedule_refresh(wait, "reload deferred by debounce")
            return ReloadDeferred(reload_in_seconds=wait, servers=updated.servers if updated else None)
        outcome = await self._reload_to(target)
        self.state.held_config = text if isinstance(outcome, (ReloadFailed, Rejected)) else None
        return outcome

    async def restart(self, text: str | None = None) -> None:
        """(Re)start HAProxy on `text`, else on the live configuration."""
        text = text or self.state.live_config
        if text is None:
            return
        if self.process.pid is not None:
            log.error("haproxy exited unexpectedly (%s); starting it again", self.process.log_tail()[-300:])
            self.state.counters.haproxy_restarts += 1
            await self.process.stop()
        self.files.write_live(text)
        self.draining.clear()
        await self.process.start()

    async def _update_servers(self, plan: RuntimePlan, model: Model, text: str) -> ServersUpdated | None:
        """None: HAProxy refused a command, and a reload has to do it."""
        started = time.monotonic()
        for command in plan_commands(plan, model):
            answer = await self.process.runtime(command)
            self.state.counters.runtime_commands += 1
            if not runtime_answer_ok(command, answer):
                self.state.counters.runtime_refused += 1
                log.warning("runtime API refused %r: %s; falling back to a reload", command, answer.strip())
                return None
        self.draining.applied(plan)
        took = time.monotonic() - started
        self.files.write_live(text)
        self.state.went_live(model, text)
        self.state.counters.runtime_updates += 1
        return ServersUpdated(runtime_seconds=took, servers=ServerChanges.of(plan))

    async def _reload_to(self, target: Target, *, start: bool = False) -> Outcome:
        state = self.state
        model = target.model
        for _attempt in range(2):
            try:
                model, text = await self.validator.validated(model, target.rebuild)
            except ConfigRejected as exc:
                state.counters.rejected_configs += 1
                state.last_error = f"{exc}: {exc.output[-500:]}"
                log.error("no valid configuration; keeping the last good one: %s", state.last_error)
                return Rejected(state.last_error)
            state.model = model
            self.files.write_live(text)
            if start or not self.process.alive():
                await self.restart(text)
                state.went_live(model, text)
                return Started()
            result = await self.process.reload()
            self._last_reload_at = time.monotonic()
            state.last_reload = result
            if result.ok:
                if state.live_config is not None:
                    self.files.write_previous(state.live_config)
                state.went_live(model, text)
                self.draining.clear()
                state.counters.reloads += 1
                return Reloaded(worker_pid=result.worker_pid, reload_seconds=result.seconds)
            state.counters.failed_reloads += 1
            log.error("reload failed: %s", result.message)
            if state.live_config is not None:
                self.files.write_live(state.live_config)
            if not self.validator.blame_reload(result.message, model):
                break
            model = target.rebuild()
        state.last_error = state.last_reload.message if state.last_reload else "reload failed"
        return ReloadFailed(state.last_error)
