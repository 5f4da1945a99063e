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

This module turns each app into services and settles what apps compete for (ports, backend
names, vhosts). The Servers and Address rules are per task and need nothing else of the app
but its tasks, so they live in servers.py (as does `Server`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .checks import HealthCheck, health_for
from .labels import BasicAuth, PortLabels, bridge_groups, group_matches, parse_labels
from .ownership import AppClaims, Claim, RouteKey, route_keys, settle
from .routes import shared_routes
from .servers import Server, routable_tasks, servers_for

_APP_ID = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")

INCLUDED, SKIPPED, REJECTED = "included", "skipped", "rejected"


class Service(NamedTuple):
    """One app service port: a frontend on `bind_addr:port` and a backend of servers."""
    app_id: str
    index: int
    backend: str
    port: int
    mode: str
    balance: str = "roundrobin"
    sticky: bool = False
    redirect_to_https: bool = False
    bind_addr: str | None = None          # None: the bridge's bind address
    bind_options: tuple[str, ...] = ()
    vhosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    weight: int = 0
    ssl_certs: tuple[str, ...] = ()
    health: HealthCheck | None = None
    auth: BasicAuth | None = None
    proxypass_path: str | None = None
    revproxy_path: str | None = None
    hsts: bool = False
    networks_allowed: tuple[str, ...] = ()
    servers: tuple[Server, ...] = ()

    def shape(self) -> "Service":
        """Everything but the servers: what a reload is needed for."""
        return self._replace(servers=())


class AppStatus(NamedTuple):
    app_id: str
    state: str                              # included | skipped | rejected
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    servers: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.app_id, "state": self.state, "included": self.state == INCLUDED,
                "reasons": list(self.reasons), "warnings": list(self.warnings),
                "backends": list(self.backends), "servers": self.servers}


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


class _Reject(Exception):
    pass


def _ports_of(app: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    """(network kind, per-port specs) — kind is host | bridge | container."""
    networks = app.get("networks") or []
    mode = (networks[0] or {}).get("mode", "host") if networks else "host"
    container = app.get("container") or {}
    docker = container.get("docker") or {}
    legacy = str(docker.get("network") or "").upper()
    if mode == "container/bridge" or legacy == "BRIDGE":
        kind = "bridge"
    elif mode == "container" or legacy == "USER" or app.get("ipAddress"):
        kind = "container"
    else:
        kind = "host"
    if kind == "host":
        defs = app.get("portDefinitions")
        if defs is None:
            defs = [{"port": p} for p in app.get("ports") or []]
        return kind, [{"servicePort": d.get("port", 0)} for d in defs]
    mappings = container.get("portMappings") or docker.get("portMappings") or []
    return kind, list(mappings)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(f"{what} is not an integer: {value!r}")
    return value


def _overlaps(a: str, b: str) -> bool:
    wild = ("*", "0.0.0.0", "::")
    return a == b or a in wild or b in wild


def _service(app: Mapping[str, Any], app_id: str, pl: PortLabels, index: int,
             kind: str, mapping: Mapping[str, Any], service_port: int, host_addresses: Mapping[str, str],
             tasks: list[Mapping[str, Any]], warnings: list[str], waiting: dict[str, int]) -> Service | None:
    port = pl.port or service_port
    if not port:
        warnings.append(f"service port {index} has no port (0) and no HAPROXY_{index}_PORT; not routed")
        return None
    health = health_for(app, index, warnings)
    mode = pl.mode or ("http" if pl.vhosts or (health and health.kind != "tcp") else "tcp")
    if mode == "tcp":
        for what, present in (("VHOST", pl.vhosts), ("PATH", pl.paths), ("STICKY", pl.sticky),
                              ("AUTH", pl.auth), ("HTTP_BACKEND_PROXYPASS_PATH", pl.proxypass_path),
                              ("HTTP_BACKEND_REVPROXY_PATH", pl.revproxy_path), ("USE_HSTS", pl.hsts)):
            if present:
                raise _Reject(f"HAPROXY_{index}_{what} needs http mode, but HAPROXY_{index}_MODE is tcp")
    if pl.redirect_to_https and not pl.vhosts:
        warnings.append(f"HAPROXY_{index}_REDIRECT_TO_HTTPS does nothing without HAPROXY_{index}_VHOST "
                        "(only requests for the vhost are redirected)")
    backend = f"{app_id.strip('/').replace('/', '_')}_{port}"
    return Service(
        app_id=app_id, index=index, backend=backend, port=port, mode=mode,
        balance=pl.balance or "roundrobin", sticky=pl.sticky,
        redirect_to_https=pl.redirect_to_https and bool(pl.vhosts),
        bind_addr=pl.bind_addr, bind_options=pl.bind_options, vhosts=pl.vhosts, paths=pl.paths,
        weight=pl.backend_weight, ssl_certs=pl.ssl_certs, health=health, auth=pl.auth,
        proxypass_path=pl.proxypass_path, revproxy_path=pl.revproxy_path, hsts=pl.hsts,
        networks_allowed=pl.networks_allowed,
        servers=servers_for(tasks, kind, index, mapping, host_addresses, waiting))


def _claims(app: Mapping[str, Any], groups: frozenset[str]) -> AppClaims | str | None:
    """The route keys `app` claims; its id alone when its labels cannot be read (it keeps what
    the record gives it); None for an app that cannot be named."""
    app_id = app.get("id") if isinstance(app, Mapping) else None
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        return None
    try:
        labels = parse_labels(app.get("labels") or {})
        specs = _ports_of(app)[1]
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return app_id
    if labels.errors:
        return app_id
    keys: set[RouteKey] = set()
    for n in range(len(specs)):
        pl = labels.port(n)
        if pl.enabled and (pl.vhosts or pl.paths) and group_matches(labels.groups_of(n), groups):
            keys |= route_keys(pl.vhosts, pl.paths)
    info = app.get("versionInfo")
    since = info.get("lastConfigChangeAt") if isinstance(info, Mapping) else None
    since = since if isinstance(since, str) else app.get("version")
    return AppClaims(app_id, frozenset(keys), since if isinstance(since, str) else None, labels.deployment_group)


def _app_services(app: Mapping[str, Any], groups: frozenset[str], host_addresses: Mapping[str, str],
                  known_healthy: frozenset[str]) -> tuple[AppStatus, list[Service]]:
    app_id = app.get("id")
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        return AppStatus(str(app_id), REJECTED, (f"app id {app_id!r} cannot name a HAProxy section",)), []
    labels_raw = app.get("labels") or {}
    if not isinstance(labels_raw, Mapping):
        return AppStatus(app_id, REJECTED, ("labels is not an object",)), []
    labels = parse_labels(labels_raw)
    kind, specs = _ports_of(app)
    wanted = [n for n in range(len(specs)) if group_matches(labels.groups_of(n), groups)]
    if not wanted and not labels.group_error:
        why = "no service ports" if not specs else \
            f"group {','.join(labels.groups) or '(none)'} is not served by this bridge ({','.join(sorted(groups))})"
        return AppStatus(app_id, SKIPPED, (why,)), []
    if labels.errors:
        return AppStatus(app_id, REJECTED, labels.errors, labels.warnings), []
    warnings = list(labels.warnings)
    for n in sorted(labels.ports):
        if n >= len(specs):
            warnings.append(f"HAPROXY_{n}_* labels name service port {n}, but the app has {len(specs)}; ignored")
    services: list[Service] = []
    waiting: dict[str, int] = {}
    tasks = routable_tasks(app, known_healthy, waiting)
    for n in wanted:
        pl = labels.port(n)
        if not pl.enabled:
            warnings.append(f"HAPROXY_{n}_ENABLED is false; service port {n} not routed")
            continue
        service_port = _int(specs[n].get("servicePort") or 0, f"service port {n}")
        if not service_port:
            task_ports = next((t.get("servicePorts") for t in app.get("tasks") or [] if t.get("servicePorts")), [])
            service_port = task_ports[n] if n < len(task_ports) and isinstance(task_ports[n], int) else 0
        svc = _service(app, app_id, pl, n, kind, specs[n], service_port, host_addresses,
                       tasks, warnings, waiting)
        if svc is not None:
            services.append(svc)
    if not services:
        return AppStatus(app_id, SKIPPED, ("no service port to route",), tuple(warnings)), []
    for why, count in sorted(waiting.items()):
        warnings.append(f"{count} task(s) not routed: {why}")
    return AppStatus(app_id, INCLUDED, (), tuple(warnings), tuple(s.backend for s in services),
                     servers=len({srv.task_id for s in services for srv in s.servers})), services


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
    apps = list(apps)
    groups = bridge_groups(group)
    hosts = dict(host_addresses or {})
    healthy = frozenset(known_healthy)
    exclude = dict(exclude or {})
    statuses: dict[str, AppStatus] = {}
    services_by_app: dict[str, list[Service]] = {}
    for app in apps:
        try:
            status, services = _app_services(app, groups, hosts, healthy)
        except (_Reject, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            app_id = str(app.get("id")) if isinstance(app, Mapping) else repr(app)[:60]
            reason = str(exc) if isinstance(exc, _Reject) else f"malformed app JSON: {type(exc).__name__}: {exc}"
            status, services = AppStatus(app_id, REJECTED, (reason,)), []
        if status.app_id in exclude and status.state == INCLUDED:
            status, services = status._replace(state=REJECTED, reasons=(exclude[status.app_id],),
                                       backends=(), servers=0), []
        if status.app_id in statuses:
            status, services = AppStatus(status.app_id, REJECTED, ("app id listed twice",)), []
            services_by_app.pop(status.app_id, None)
        statuses[status.app_id] = status
        services_by_app[status.app_id] = services
    record, losers = _settle_vhosts(apps, groups, owners if owners is not None else
                                    dict(previous.owners) if previous else {})
    for app_id, why in losers.items():
        if statuses[app_id].state == INCLUDED:
            statuses[app_id] = statuses[app_id]._replace(state=REJECTED, reasons=(why,), backends=(), servers=0)
            services_by_app[app_id] = []
    # bind conflicts and duplicate names: the lower app id keeps the port
    taken: dict[int, list[tuple[str, str]]] = {}      # port -> [(address, owner)]
    for (raddr, rport), owner in (reserved or {}).items():
        taken.setdefault(rport, []).append((raddr, owner))
    names: dict[str, str] = {}
    final: list[Service] = []
    held = {(s.bind_addr or default_bind, s.port, s.app_id) for s in previous.services} if previous else set()

    def incumbent(app_id: str) -> bool:
        services = services_by_app[app_id]
        return bool(services) and all((s.bind_addr or default_bind, s.port, app_id) in held for s in services)

    for app_id in sorted(services_by_app, key=lambda a: (not incumbent(a), a)):
        services = services_by_app[app_id]
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
            statuses[app_id] = statuses[app_id]._replace(state=REJECTED, reasons=(conflict,), backends=(), servers=0)
            continue
        for s in services:
            taken.setdefault(s.port, []).append((s.bind_addr or default_bind, f"app {app_id}"))
            names[s.backend] = app_id
            final.append(s)
    # a vhost shared by a deployment group: the first rule takes the traffic; say so on the others
    first: dict[RouteKey, str] = {}
    for route in shared_routes(final):
        for key in sorted(route_keys(route.patterns(), route.service.paths)):
            app_id = route.service.app_id
            if first.setdefault(key, app_id) != app_id:
                st = statuses[app_id]
                note = f"vhost {key[0]}{key[1]} is also routed to {first[key]}, whose rule comes first"
                if note not in st.warnings:
                    statuses[app_id] = st._replace(warnings=st.warnings + (note,))
    return Model(services=tuple(sorted(final, key=lambda s: s.backend)),
                 apps=tuple(statuses[k] for k in sorted(statuses)), owners=tuple(sorted(record.items())))


def _settle_vhosts(apps: list[Any], groups: frozenset[str],
                   record: Mapping[RouteKey, Claim]) -> tuple[dict[RouteKey, Claim], dict[str, str]]:
    claims: list[AppClaims] = []
    holding: list[str] = []
    for app in apps:
        c = _claims(app, groups)
        if isinstance(c, AppClaims):
            claims.append(c)
        elif c is not None:
            holding.append(c)
    return settle(claims, holding, record)
