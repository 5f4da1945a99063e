"""From `/v2/apps?embed=apps.tasks` JSON to the load balancer's model (pure).

`build_model(apps, group)` never mutates its input, reads no clock, touches no network. Every
app gets a verdict (`AppStatus`): included, skipped (not in the bridge's group, no service
port) or rejected (a label or field the bridge cannot render safely), with the reasons.

Rules:
- An app is considered when `HAPROXY_GROUP` (or `HAPROXY_{n}_GROUP` for port n) intersects
  the bridge's group; `*` matches every app, even one without a group label.
- One service per service port: `portDefinitions[n].port` (host networking) or
  `portMappings[n].servicePort` (bridge/container networking), `HAPROXY_{n}_PORT` overriding.
  Backend name: `<app id without leading '/', '/' -> '_'>_<port>`.
- Mode: `HAPROXY_{n}_MODE`, else `http` when a VHOST or an HTTP health check is set, else `tcp`.
  Labels that only HTTP can honour (VHOST, PATH, STICKY, AUTH, the PROXYPASS/REVPROXY paths,
  USE_HSTS) on a tcp port reject the app; REDIRECT_TO_HTTPS without a VHOST does nothing
  (marathon-lb redirects only what arrives for the vhost) and says so in a warning.
- Servers: TASK_RUNNING tasks only. When the app has health checks, a task is a server only
  when Pacer reports every result alive; a task without results (Pacer just restarted, or the
  first check has not run) keeps its place if it was seen alive before (`known_healthy`),
  so a scheduler failover never empties a backend (as it did with marathon-lb).
- Address: the task's `host` when it is an IP literal or resolves (`host_addresses`, filled by
  the edge); otherwise `ipAddresses[0].ipAddress` (embedded agents are named agent-1, agent-2…
  and all run on this machine). Container (IP-per-task) networking uses `ipAddresses[0]` and the
  container port.
- Bind conflicts: two services on one port (or on a port the bridge itself uses) — the app
  that already held it (`previous`) keeps it, else the lower app id; the other is rejected
  with the reason.
- Vhosts: the app that claimed a vhost (with its path) first keeps it; a later claimant is
  rejected unless both carry the same HAPROXY_DEPLOYMENT_GROUP (ownership.py). `owners` is the
  bridge's record of the owners, and `Model.owners` the record after this model.

This module settles what apps compete for (ports, backend names, vhosts). Turning one app into
services needs no other app, so it lives in app_model.py (`app_part`), which is what lets the
incremental renderer keep unchanged apps' parts; the Servers and Address rules are per task and
live in servers.py (as does `Server`). `settle_parts` also returns each app's `Fate` — what the
competition did to it — so a part that changed without changing its footprint can be put in
place of the old one without settling everything again (incremental.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .app_model import (INCLUDED, REJECTED, SKIPPED, AppPart, AppStatus, Service, app_part)
from .labels import bridge_groups
from .ownership import AppClaims, Claim, RouteKey, route_keys, settle
from .routes import shared_routes

__all__ = ["INCLUDED", "REJECTED", "SKIPPED", "AppStatus", "Fate", "Model", "Service", "Settled", "backend_of",
           "build_model", "finalize", "settle_parts"]


@dataclass(frozen=True, slots=True)
class Model:
    services: tuple[Service, ...] = ()      # sorted by backend name
    apps: tuple[AppStatus, ...] = ()        # sorted by app id
    owners: tuple[tuple[RouteKey, Claim], ...] = ()     # the vhost record, sorted by key

    def service(self, backend: str) -> Service | None:
        for s in self.services:
            if s.backend == backend:
                return s
        return None

    def shape(self) -> tuple[Service, ...]:
        return tuple(s.shape() for s in self.services)

    def app(self, app_id: str) -> AppStatus | None:
        for a in self.apps:
            if a.app_id == app_id:
                return a
        return None

    def without_apps(self, app_ids: Iterable[str]) -> "Model":
        drop = set(app_ids)
        return Model(services=tuple(s for s in self.services if s.app_id not in drop), apps=self.apps,
                     owners=self.owners)


class Fate(NamedTuple):
    """What competing with the other apps did to one app: left out (why), or notes added."""
    rejected: str | None = None
    notes: tuple[str, ...] = ()


NO_FATE = Fate()
_DUPLICATE = "app id listed twice"


def finalize(status: AppStatus, fate: Fate) -> AppStatus:
    """An app's verdict once the competition is settled."""
    if fate.rejected is not None:
        return status._replace(state=REJECTED, reasons=(fate.rejected,), backends=(), servers=0)
    for note in fate.notes:
        if note not in status.warnings:
            status = status._replace(warnings=status.warnings + (note,))
    return status


class Settled(NamedTuple):
    model: Model
    fates: Mapping[str, Fate]               # app id -> its fate, for the apps that had one
    port_conflicts: bool                    # did an app lose a port or backend name to another?
    duplicates: bool                        # was an app id listed twice?


def _overlaps(a: str, b: str) -> bool:
    wild = ("*", "0.0.0.0", "::")
    return a == b or a in wild or b in wild


def settle_parts(parts: Sequence[AppPart], *,
                 reserved: Mapping[tuple[str, int], str] | None = None,
                 default_bind: str = "*",
                 exclude: Mapping[str, str] | None = None,
                 previous: Model | None = None,
                 owners: Mapping[RouteKey, Claim] | None = None) -> Settled:
    """The model of `parts` once they have competed (see `build_model` for the rules)."""
    exclude = exclude or {}
    pre: dict[str, AppStatus] = {}
    rejected: dict[str, str] = {}
    duplicates: set[str] = set()
    services_by_app: dict[str, tuple[Service, ...]] = {}
    for part in parts:
        app_id = part.status.app_id
        services = part.services
        if app_id in exclude and part.status.state == INCLUDED:
            rejected[app_id], services = exclude[app_id], ()
        if app_id in pre:
            duplicates.add(app_id)
            services = ()
        pre[app_id] = part.status
        services_by_app[app_id] = services
    record, losers = _settle_vhosts(parts, owners if owners is not None else
                                    dict(previous.owners) if previous else {})
    for app_id, why in losers.items():
        if app_id not in duplicates and app_id not in rejected and pre[app_id].state == INCLUDED:
            rejected[app_id] = why
            services_by_app[app_id] = ()
    # bind conflicts and duplicate names: an app holding its ports keeps them, then the lower app id
    taken: dict[int, list[tuple[str, str]]] = {}      # port -> [(address, owner)]
    for (raddr, rport), owner in (reserved or {}).items():
        taken.setdefault(rport, []).append((raddr, owner))
    names: dict[str, str] = {}
    final: list[Service] = []
    held = {(s.bind_addr or default_bind, s.port, s.app_id) for s in previous.services} if previous else set()

    def incumbent(app_id: str) -> bool:
        services = services_by_app[app_id]
        return bool(services) and all((s.bind_addr or default_bind, s.port, app_id) in held for s in services)

    port_conflicts = False
    order = sorted(services_by_app, key=lambda a: (not incumbent(a), a)) if held else sorted(services_by_app)
    for app_id in order:
        services = services_by_app[app_id]
        if not services:
            continue
        conflict = None
        for s in services:
            addr = s.bind_addr or default_bind
            for taddr, owner in taken.get(s.port, ()):
                if _overlaps(addr, taddr):
                    conflict = f"port {s.port} (HAPROXY_{s.index}_PORT or service port) is already bound by {owner}"
                    break
            if conflict is None and s.backend in names:
                conflict = f"backend name {s.backend} is already used by {names[s.backend]}"
            if conflict:
                break
        if conflict:
            rejected[app_id] = conflict
            port_conflicts = True
            continue
        for s in services:
            taken.setdefault(s.port, []).append((s.bind_addr or default_bind, f"app {app_id}"))
            names[s.backend] = app_id
            final.append(s)
    # a vhost shared by a deployment group: the first rule takes the traffic; say so on the others
    notes: dict[str, list[str]] = {}
    first: dict[RouteKey, str] = {}
    for route in shared_routes(final):
        for key in sorted(route_keys(route.patterns(), route.service.paths)):
            app_id = route.service.app_id
            if first.setdefault(key, app_id) != app_id:
                notes.setdefault(app_id, []).append(
                    f"vhost {key[0]}{key[1]} is also routed to {first[key]}, whose rule comes first")
    fates = {app_id: Fate(rejected.get(app_id), tuple(notes.get(app_id, ())))
             for app_id in rejected.keys() | notes.keys()}
    statuses = [AppStatus(app_id, REJECTED, (_DUPLICATE,)) if app_id in duplicates
                else finalize(pre[app_id], fates.get(app_id, NO_FATE)) for app_id in sorted(pre)]
    final.sort(key=backend_of)
    return Settled(Model(services=tuple(final), apps=tuple(statuses), owners=tuple(sorted(record.items()))),
                   fates, port_conflicts, bool(duplicates))


def backend_of(s: Service) -> str:
    return s.backend


def build_model(apps: Iterable[Mapping[str, Any]], group: str = "*", *,
                reserved: Mapping[tuple[str, int], str] | None = None,
                host_addresses: Mapping[str, str] | None = None,
                known_healthy: Iterable[str] = (),
                default_bind: str = "*",
                exclude: Mapping[str, str] | None = None,
                previous: Model | None = None,
                owners: Mapping[RouteKey, Claim] | None = None) -> Model:
    """The model for `apps` (Marathon JSON with embedded tasks) as seen by a bridge of `group`.

    `reserved` maps (address, port) the bridge binds itself to a description; `exclude` maps app
    ids to a reason they must be left out (found by the edge: a failed `haproxy -c`, a port
    that cannot be bound). When two apps want one port, an app that held all its ports in
    `previous` wins (a new label cannot take a port away from a running app), then the lower
    app id. `owners` is the vhost record (default: `previous.owners`). Neither the input nor any
    nested value is modified.
    """
    groups = bridge_groups(group)
    hosts = dict(host_addresses or {})
    healthy = frozenset(known_healthy)
    parts = [app_part(app, groups, hosts, healthy, record_reads=False) for app in apps]
    return settle_parts(parts, reserved=reserved, default_bind=default_bind, exclude=exclude,
                        previous=previous, owners=owners).model


def _settle_vhosts(parts: Sequence[AppPart],
                   record: Mapping[RouteKey, Claim]) -> tuple[dict[RouteKey, Claim], dict[str, str]]:
    claims: list[AppClaims] = []
    holding: list[str] = []
    for part in parts:
        c = part.claims
        if isinstance(c, AppClaims):
            claims.append(c)
        elif c is not None:
            holding.append(c)
    return settle(claims, holding, record)
