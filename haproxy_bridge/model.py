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
  with the reason. Two apps claiming one vhost are both routed, the first rule wins, and the
  other app carries a warning.

This module turns each app into services and settles what apps compete for (ports, backend
names, vhosts). The Servers and Address rules are per task and need nothing else of the app
but its tasks, so they live in servers.py (as does `Server`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .labels import PortLabels, bridge_groups, group_matches, parse_labels
from .servers import Server, routable_tasks, servers_for

_APP_ID = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_HC_PATH = re.compile(r"/[A-Za-z0-9._~%/:@+=,!*?&;-]{0,1023}")
HTTP_CHECKS = {"HTTP": "http", "MESOS_HTTP": "http", "HTTPS": "https", "MESOS_HTTPS": "https"}
TCP_CHECKS = {"TCP": "tcp", "MESOS_TCP": "tcp"}

INCLUDED, SKIPPED, REJECTED = "included", "skipped", "rejected"


@dataclass(frozen=True, slots=True)
class HealthCheck:
    kind: str                   # http | https | tcp
    path: str | None = None
    interval_s: int = 60
    timeout_s: int = 20
    fall: int = 3
    port: int | None = None     # a fixed check port (healthChecks[].port), else the server's


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
        return Model(services=tuple(s for s in self.services if s.app_id not in drop), apps=self.apps)


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


def _health_for(app: Mapping[str, Any], index: int, warnings: list[str]) -> HealthCheck | None:
    for i, hc in enumerate(app.get("healthChecks") or []):
        protocol = str(hc.get("protocol", "HTTP")).upper()
        kind = HTTP_CHECKS.get(protocol) or TCP_CHECKS.get(protocol)
        if kind is None:
            continue
        fixed_port = hc.get("port")
        port_index = hc.get("portIndex")
        if fixed_port is None and port_index is None:
            port_index = 0
        if port_index is not None and port_index != index:
            continue
        path = None
        if kind != "tcp":
            path = hc.get("path") or "/"
            if not isinstance(path, str) or not _HC_PATH.fullmatch(path):
                warnings.append(f"healthChecks[{i}].path {path!r} cannot be rendered safely; "
                                "HAProxy does not check this port (Pacer's own check still gates tasks)")
                return None
        interval = hc.get("intervalSeconds", 60)
        timeout = hc.get("timeoutSeconds", 20)
        failures = hc.get("maxConsecutiveFailures", 3)
        return HealthCheck(
            kind=kind, path=path,
            interval_s=max(1, int(interval)) if isinstance(interval, (int, float)) else 60,
            timeout_s=max(1, int(timeout)) if isinstance(timeout, (int, float)) else 20,
            fall=max(1, int(failures)) if isinstance(failures, int) and failures > 0 else 3,
            port=fixed_port if isinstance(fixed_port, int) and 0 < fixed_port < 65536 else None)
    return None


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
    health = _health_for(app, index, warnings)
    mode = pl.mode or ("http" if pl.vhosts or (health and health.kind != "tcp") else "tcp")
    if mode == "tcp":
        for what, present in (("VHOST", pl.vhosts), ("PATH", pl.paths), ("STICKY", pl.sticky),
                              ("REDIRECT_TO_HTTPS", pl.redirect_to_https)):
            if present:
                raise _Reject(f"HAPROXY_{index}_{what} needs http mode, but HAPROXY_{index}_MODE is tcp")
    backend = f"{app_id.strip('/').replace('/', '_')}_{port}"
    return Service(
        app_id=app_id, index=index, backend=backend, port=port, mode=mode,
        balance=pl.balance or "roundrobin", sticky=pl.sticky, redirect_to_https=pl.redirect_to_https,
        bind_addr=pl.bind_addr, bind_options=pl.bind_options, vhosts=pl.vhosts, paths=pl.paths,
        weight=pl.backend_weight, ssl_certs=pl.ssl_certs, health=health,
        servers=servers_for(tasks, kind, index, mapping, host_addresses, waiting))


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
                previous: Model | None = None) -> Model:
    """The model for `apps` (Marathon JSON with embedded tasks) as seen by a bridge of `group`.

    `reserved` maps (address, port) the bridge binds itself to a description; `exclude` maps app
    ids to a reason they must be left out (found by the edge: a failed `haproxy -c`, a port
    that cannot be bound). When two apps want one port, an app that held all its ports in
    `previous` wins (a new label cannot take a port away from a running app), then the lower
    app id. Neither the input nor any nested value is modified.
    """
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
    # vhost routing collisions are allowed (the first rule wins) but said out loud
    owners: dict[tuple[str, str], str] = {}
    for s in sorted(final, key=route_order):
        for host in s.vhosts:
            for path in s.paths or ("",):
                key = (host, path)
                if key in owners and owners[key] != s.app_id:
                    st = statuses[s.app_id]
                    statuses[s.app_id] = st._replace(warnings=st.warnings + (
                        f"vhost {host}{path} is also routed to {owners[key]}, whose rule comes first",))
                owners.setdefault(key, s.app_id)
    return Model(services=tuple(sorted(final, key=lambda s: s.backend)),
                 apps=tuple(statuses[k] for k in sorted(statuses)))


def route_order(s: Service) -> tuple[Any, ...]:
    """Order of the shared frontends' rules: weight, then host rules before path-only ones,
    then longer path prefixes first, then backend name."""
    longest = max((len(p) for p in s.paths), default=0)
    return (-s.weight, 0 if s.vhosts else 1, 0 if s.paths else 1, -longest, s.backend)
