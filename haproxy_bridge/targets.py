"""From the apps Pacer reports to the model HAProxy should run.

The model and its text come from the incremental renderer (incremental.py: the same result as
the pure `build_model` + `render_haproxy_config`, redone only for the apps that changed since
the last refresh). Besides the apps, three memories decide it: task host names resolved to
addresses (cached, so a slow resolver never delays a routing change), the tasks seen healthy
before (a task without a health result yet keeps its place, so a scheduler failover never
empties a backend), and the apps left out because HAProxy refused them (the validator's).
A port another process already holds rejects its app here, before any configuration is
written, because HAProxy would otherwise fail the whole reload over it. The vhost record
(ownership.py) is read from the config dir once and written back whenever a claim is made or
released, before the configuration that relies on it is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config_files import ConfigFiles
from .incremental import IncrementalRenderer, Rendered
from .model import Model
from .netprobe import HostResolver, bind_problem, blocked_binds
from .options import BridgeOptions
from .ownership import Claim, RouteKey
from .servers import track_known_healthy
from .validate import ConfigValidator

BindProbe = Callable[[str, int], str | None]     # (address, port) -> why it cannot be bound


def reserved_binds(options: BridgeOptions) -> dict[tuple[str, int], str]:
    """The bridge's own listeners: an app asking for one of these is rejected."""
    out = {(options.bind_address, options.http_port): "the bridge's HTTP frontend",
           (options.bind_address, options.https_port): "the bridge's HTTPS frontend",
           (options.bind_address, options.stats_port): "the bridge's stats page"}
    if options.apps_port:
        out[(options.bind_address, options.apps_port)] = "the bridge's app-id frontend (X-Marathon-App-Id)"
    if options.status_port:
        out[("127.0.0.1", options.status_port)] = "the bridge's status server"
    return out


@dataclass(frozen=True)
class Target:
    model: Model
    rebuild: Callable[[], Model]    # the same apps again, honouring exclusions made since
    text: str | None = None         # `model` rendered (None: render it)


class TargetBuilder:
    def __init__(self, options: BridgeOptions, validator: ConfigValidator, *, files: ConfigFiles | None = None,
                 resolver: HostResolver | None = None, probe: BindProbe = bind_problem,
                 renderer: IncrementalRenderer | None = None) -> None:
        self.options = options
        self.validator = validator
        # keeps each app's part and sections between refreshes: a change to one app redoes that app
        self.renderer = renderer or IncrementalRenderer(validator.settings)
        self.resolver = resolver or HostResolver()
        self.probe = probe                          # replaceable: tests make every port free
        self._known_healthy: set[str] = set()
        self._reserved = reserved_binds(options)
        self._files = files                         # None: the vhost record lives in memory only
        self._owners: dict[RouteKey, Claim] | None = None

    async def build(self, apps: list[dict[str, Any]], *, full: bool, live: Model | None,
                    haproxy_running: bool) -> Target:
        """`live` is the model HAProxy runs: its apps keep contested ports, and while HAProxy
        runs, its own binds are not probed (HAProxy holds them, of course)."""
        hosts = await self.resolver.resolve(_task_hosts(apps))
        known_healthy = self._known_healthy = track_known_healthy(self._known_healthy, apps)
        self.validator.start_refresh(apps, full=full)
        if self._owners is None:
            self._owners = self._files.read_owners() if self._files else {}
        owners = self._owners

        def render() -> Rendered:
            return self.renderer.render(apps, self.options.group, reserved=self._reserved, host_addresses=hosts,
                                        known_healthy=known_healthy, default_bind=self.options.bind_address,
                                        exclude=self.validator.reasons(), previous=live, owners=owners)

        def rebuild() -> Model:
            return render().model

        rendered = render()
        blocked = blocked_binds(rendered.model, self._held_binds(live) if haproxy_running else set(),
                                self.options.bind_address, self.probe)
        if blocked:
            for app_id, why in blocked.items():
                self.validator.exclude(app_id, why)
            rendered = render()
        model = rendered.model
        record = dict(model.owners)
        if record != owners:
            if self._files is not None:
                self._files.write_owners(record)
            self._owners = record
        return Target(model, rebuild, rendered.text)

    def _held_binds(self, live: Model | None) -> set[tuple[str, int]]:
        if live is None:
            return set()
        return {(s.bind_addr or self.options.bind_address, s.port) for s in live.services}


def _task_hosts(apps: list[dict[str, Any]]) -> list[str]:
    return [t["host"] for a in apps for t in a.get("tasks") or [] if isinstance(t.get("host"), str)]
