"""One app's part of the load balancer's model, computed without looking at any other app (pure).

`build_model` (model.py) works in two phases: this module turns each app into an `AppPart`
(its verdict before the apps compete, its services, and what it claims), and model.py settles
what apps compete for (ports, backend names, vhosts). The split is what lets the incremental
renderer (incremental.py) keep the parts of unchanged apps between refreshes: a part depends
on the app's JSON, the bridge's groups, and two outside facts it records as it reads them — the
addresses its task hosts resolve to and whether its unchecked tasks were seen healthy — so a
kept part can be proved still valid by asking those two questions again.

The rules themselves (groups, service ports, modes, labels that need HTTP) are model.py's
docstring; the per-task Servers and Address rules are servers.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .checks import HealthCheck, health_for
from .labels import AppLabels, BasicAuth, PortLabels, group_matches, parse_labels
from .ownership import AppClaims, RouteKey, route_keys
from .request_log import judges_latency
from .servers import Server, canary_weights, routable_tasks, servers_for

_APP_ID = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_READ_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError)

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
    log_requests: bool = False            # an http port of a latency-judged canary (request_log.py)

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


Claims = AppClaims | str | None     # what it claims; its id alone: labels unreadable; None: no name
#: everything of a part that the settling of competing apps (and the shared frontends) reads
Footprint = tuple[bool, Claims, tuple[tuple[Any, ...], ...]]


HostReads = tuple[tuple[str, str | None], ...]        # task host -> the address it resolved to
HealthyReads = tuple[tuple[Any, bool], ...]           # unchecked task id -> seen healthy before


class AppPart(NamedTuple):
    """One app before the apps compete: verdict, services, claims, and the outside facts read
    (None: not recorded, so the part is never reused)."""
    status: AppStatus
    services: tuple[Service, ...]
    claims: Claims
    host_reads: HostReads | None = None
    healthy_reads: HealthyReads | None = None

    @property
    def app_id(self) -> str:
        return self.status.app_id

    @property
    def footprint(self) -> Footprint:
        """What the other apps and the shared frontends see of this part. Claims of no route
        key weigh nothing, so an app without them looks the same as an absent app."""
        claims = self.claims
        if isinstance(claims, AppClaims) and not claims.keys:
            claims = None
        return (self.status.state == INCLUDED, claims,
                tuple((s.bind_addr, s.port, s.backend, s.index, s.mode, s.vhosts, s.paths, s.weight, s.ssl_certs,
                       s.log_requests) for s in self.services))

    def still_valid(self, host_addresses: Mapping[str, str], known_healthy: frozenset[str]) -> bool:
        """Would the same app JSON give this part again, with these outside facts?"""
        if self.host_reads is None or self.healthy_reads is None:
            return False
        for host, address in self.host_reads:
            if host_addresses.get(host) != address:
                return False
        for task_id, healthy in self.healthy_reads:
            if (task_id in known_healthy) != healthy:
                return False
        return True


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


_Read = tuple[AppLabels, tuple[str, list[Mapping[str, Any]]]] | Exception


def _read(app: Mapping[str, Any]) -> _Read:
    """The app's labels and port specs, read once for both the services and the claims."""
    try:
        return parse_labels(app.get("labels") or {}), _ports_of(app)
    except _READ_ERRORS as exc:
        return exc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(f"{what} is not an integer: {value!r}")
    return value


_HTTP_ONLY = (("VHOST", "vhosts"), ("PATH", "paths"), ("STICKY", "sticky"), ("AUTH", "auth"),
              ("HTTP_BACKEND_PROXYPASS_PATH", "proxypass_path"), ("HTTP_BACKEND_REVPROXY_PATH", "revproxy_path"),
              ("USE_HSTS", "hsts"))


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
        for what, attr in _HTTP_ONLY:
            if getattr(pl, attr):
                raise _Reject(f"HAPROXY_{index}_{what} needs http mode, but HAPROXY_{index}_MODE is tcp")
    if pl.redirect_to_https and not pl.vhosts:
        warnings.append(f"HAPROXY_{index}_REDIRECT_TO_HTTPS does nothing without HAPROXY_{index}_VHOST "
                        "(only requests for the vhost are redirected)")
    backend = f"{app_id.strip('/').replace('/', '_')}_{port}"
    return Service(
        app_id, index, backend, port, mode, pl.balance or "roundrobin", pl.sticky,
        pl.redirect_to_https and bool(pl.vhosts), pl.bind_addr, pl.bind_options, pl.vhosts, pl.paths,
        pl.backend_weight, pl.ssl_certs, health, pl.auth, pl.proxypass_path, pl.revproxy_path, pl.hsts,
        pl.networks_allowed, servers_for(tasks, kind, index, mapping, host_addresses, waiting, canary_weights(app)),
        log_requests=mode == "http" and judges_latency(app))


def _claims(app: Any, read: _Read | None, groups: frozenset[str]) -> Claims:
    """The route keys `app` claims; its id alone when its labels cannot be read (it keeps what
    the record gives it); None for an app that cannot be named."""
    app_id = app.get("id") if isinstance(app, Mapping) else None
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        return None
    if read is None or isinstance(read, Exception):
        return app_id
    labels, (_, specs) = read
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


def _app_services(app: Mapping[str, Any], read: _Read | None, groups: frozenset[str],
                  host_addresses: Mapping[str, str],
                  known_healthy: frozenset[str]) -> tuple[AppStatus, tuple[Service, ...]]:
    app_id = app.get("id")
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        return AppStatus(str(app_id), REJECTED, (f"app id {app_id!r} cannot name a HAProxy section",)), ()
    if not isinstance(app.get("labels") or {}, Mapping):
        return AppStatus(app_id, REJECTED, ("labels is not an object",)), ()
    if read is None or isinstance(read, Exception):
        raise read or ValueError("app JSON could not be read")
    labels, (kind, specs) = read
    wanted = [n for n in range(len(specs)) if group_matches(labels.groups_of(n), groups)]
    if not wanted and not labels.group_error:
        why = "no service ports" if not specs else \
            f"group {','.join(labels.groups) or '(none)'} is not served by this bridge ({','.join(sorted(groups))})"
        return AppStatus(app_id, SKIPPED, (why,)), ()
    if labels.errors:
        return AppStatus(app_id, REJECTED, labels.errors, labels.warnings), ()
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
        return AppStatus(app_id, SKIPPED, ("no service port to route",), tuple(warnings)), ()
    for why, count in sorted(waiting.items()):
        warnings.append(f"{count} task(s) not routed: {why}")
    return AppStatus(app_id, INCLUDED, (), tuple(warnings), tuple(s.backend for s in services),
                     servers=len({srv.task_id for s in services for srv in s.servers})), tuple(services)


def _outside_reads(app: Any, host_addresses: Mapping[str, str], known_healthy: frozenset[str]
                   ) -> tuple[HostReads, HealthyReads]:
    """Every outside fact the app's part may have read (a superset is fine: it only makes a kept
    part be rebuilt more often): the address of each task host, and for apps with health checks,
    whether each task without results was seen healthy."""
    tasks = app.get("tasks") if isinstance(app, Mapping) else None
    if not isinstance(tasks, list) or not tasks:
        return (), ()
    hosts: dict[str, str | None] = {}
    healthy: dict[Any, bool] = {}
    checked = bool(app.get("healthChecks"))
    for task in tasks:
        if not isinstance(task, Mapping):
            continue
        host = task.get("host")
        if type(host) is str and host not in hosts:
            hosts[host] = host_addresses.get(host)
        if checked and not task.get("healthCheckResults"):
            task_id = task.get("id")
            try:
                healthy[task_id] = task_id in known_healthy
            except TypeError:       # unhashable: the app is rejected whatever the set holds
                pass
    return tuple(hosts.items()), tuple(healthy.items())


#: the footprint of an app that is not there
ABSENT: Footprint = (False, None, ())


def app_part(app: Any, groups: frozenset[str], host_addresses: Mapping[str, str],
             known_healthy: frozenset[str], *, record_reads: bool = True) -> AppPart:
    """`app` (Marathon JSON with embedded tasks) as a part of the model; never raises for bad JSON:
    an app that cannot be read is rejected with the reason. Without `record_reads` (a one-off
    model) the outside facts are not noted and the part cannot be reused."""
    read = _read(app) if isinstance(app, Mapping) else None
    try:
        if not isinstance(app, Mapping):
            app.get("id")           # raises the AttributeError its verdict reports
        status, services = _app_services(app, read, groups, host_addresses, known_healthy)
    except (_Reject, *_READ_ERRORS) as exc:
        app_id = str(app.get("id")) if isinstance(app, Mapping) else repr(app)[:60]
        reason = str(exc) if isinstance(exc, _Reject) else f"malformed app JSON: {type(exc).__name__}: {exc}"
        status, services = AppStatus(app_id, REJECTED, (reason,)), ()
    claims = _claims(app, read, groups)
    if not record_reads:
        return AppPart(status, services, claims)
    return AppPart(status, services, claims, *_outside_reads(app, host_addresses, known_healthy))
