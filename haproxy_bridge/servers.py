"""Which of an app's tasks serve, and as which HAProxy servers (pure; part of `build_model`).

This is the per-task half of the model: the Servers and Address rules in model.py's docstring
are implemented here, and nothing here knows about labels, services or other apps. model.py
turns one app into services and settles the conflicts between apps; for each service port it
asks this module for the servers. `Server` lives here so that this module needs nothing from
model.py. No I/O: host names arrive already resolved in `host_addresses` (the edge resolves them).
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

_SERVER_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]")


class Server(NamedTuple):
    name: str
    address: str
    port: int
    task_id: str
    weight: int | None = None       # set during a canary (`canary_weights`); None: HAProxy's default, 1

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def _ip(value: Any) -> str | None:
    return _ip_text(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=8192)
def _ip_text(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def task_address(task: Mapping[str, Any], kind: str, host_addresses: Mapping[str, str]) -> str | None:
    """The Address rule (see `haproxy_bridge.model`): container networks use the task IP;
    otherwise the host when it is (or resolves to) an address, else the task IP."""
    ips = task.get("ipAddresses")
    try:
        first_ip = _ip(ips[0].get("ipAddress")) if ips else None
    except (AttributeError, KeyError, TypeError):
        first_ip = None
    if kind == "container" and first_ip:
        return first_ip
    host = task.get("host")
    if type(host) is str:
        resolved = _ip_text(host) or _ip(host_addresses.get(host))
        if resolved:
            return resolved
    return first_ip


@functools.lru_cache(maxsize=65536)
def server_name(task_id: str) -> str:
    return _SERVER_NAME_BAD.sub("_", task_id)[:100] or "task"


_NAME = operator.itemgetter(0)

#: the same Server object for the same task on every refresh: a model of 20,000 servers then
#: allocates none for the tasks that did not move, which keeps the garbage collector's full
#: passes (whose cost grows with every object alive) out of most renders
_server = functools.lru_cache(maxsize=65536)(Server)


def routable_tasks(app: Mapping[str, Any], known_healthy: frozenset[str],
                   waiting: dict[str, int]) -> list[Mapping[str, Any]]:
    """The app's tasks that may serve, sorted by id; the others are counted in `waiting`."""
    has_checks = bool(app.get("healthChecks"))
    out = []
    for task in app.get("tasks") or ():
        if task.get("state") != "TASK_RUNNING":
            why = "not running"
        elif not has_checks:
            why = None
        elif results := task.get("healthCheckResults"):
            why = None if all(r.get("alive") for r in results) else "failing health checks"
        else:
            why = None if task.get("id") in known_healthy else "no health result yet"
        if why is None:
            out.append(task)
        else:
            waiting[why] = waiting.get(why, 0) + 1
    out.sort(key=lambda t: str(t.get("id")))
    return out


def canary_weights(app: Mapping[str, Any]) -> tuple[frozenset[str], int, int] | None:
    """``(canary task ids, canary weight, stable weight)`` from the app's ``canaryTraffic``
    (Pacer shows it while a canary deployment runs), or None: every server weighs the same.
    A malformed block is ignored rather than guessed at: equal weights are the safe default."""
    block = app.get("canaryTraffic")
    if not isinstance(block, Mapping):
        return None
    tasks, canary, stable = block.get("canaryTasks"), block.get("canaryWeight"), block.get("stableWeight")
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        return None
    if type(canary) is not int or type(stable) is not int or not (0 <= canary <= 256 and 0 <= stable <= 256):
        return None
    return frozenset(tasks), canary, stable


def servers_for(tasks: list[Mapping[str, Any]], kind: str, index: int, mapping: Mapping[str, Any],
                host_addresses: Mapping[str, str], waiting: dict[str, int],
                weights: tuple[frozenset[str], int, int] | None = None) -> tuple[Server, ...]:
    """Service port `index`'s servers, sorted by name (unique within the backend); tasks without
    an address or port are counted in `waiting`."""
    out: list[Server] = []
    names: set[str] = set()
    container_port = mapping.get("containerPort") if kind == "container" else None
    fixed_port = container_port if isinstance(container_port, int) and container_port > 0 else None
    for task in tasks:
        address = task_address(task, kind, host_addresses)
        port: Any = fixed_port
        if port is None:
            try:
                port = task.get("ports")[index]
            except (TypeError, IndexError, KeyError):
                port = None
        if address is None or type(port) is not int or not 0 < port < 65536:
            waiting["no address or port"] = waiting.get("no address or port", 0) + 1
            continue
        task_id = task.get("id")
        if type(task_id) is not str:
            task_id = str(task_id)
        name = server_name(task_id)
        if name in names:
            base, k = name, 2
            while name in names:
                name, k = f"{base}-{k}", k + 1
        names.add(name)
        weight = None if weights is None else (weights[1] if task_id in weights[0] else weights[2])
        out.append(_server(name, address, port, task_id, weight))
    out.sort(key=_NAME)
    return tuple(out)


def track_known_healthy(known: set[str], apps: Iterable[Mapping[str, Any]]) -> set[str]:
    """The `known_healthy` the bridge carries between refreshes: `known` updated by the tasks'
    health results (all alive: add; any failing: drop; none: unchanged), less tasks now gone."""
    healthy = set(known)
    present: set[Any] = set()
    for app in apps:
        for task in app.get("tasks") or []:
            tid = task.get("id")
            present.add(tid)
            results = task.get("healthCheckResults") or []
            if results and all(r.get("alive") for r in results):
                healthy.add(tid)
            elif results:
                healthy.discard(tid)
    return healthy & present
