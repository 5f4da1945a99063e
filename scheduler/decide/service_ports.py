"""Service ports: the cluster-wide ports load balancers listen on, one set per app.

Marathon gives a requested port of 0 a unique port from `[local_port_min, local_port_max)`
(10000-20000) and keeps ports chosen by the user, but historically did not enforce their
uniqueness consistently (issues #3122, #3999). Pacer enforces it: a port another app already
uses is a conflict (409 at the API), named with the app that holds it. Ports the app itself
holds stay free for it, so an update that passes the app's current ports keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_RANGE = (10000, 20000)


class ServicePortConflict(Exception):
    """A requested service port is already used by another app."""

    def __init__(self, port: int, owner: str) -> None:
        super().__init__(f"Requested service port {port} conflicts with a service port in use by app '{owner}'")
        self.port = port
        self.owner = owner


class ServicePortsExhausted(Exception):
    """No free port left in the service port range."""

    def __init__(self, port_range: tuple[int, int]) -> None:
        super().__init__(f"All ports in the range [{port_range[0]}-{port_range[1]}) are already in use")
        self.port_range = port_range


def assign_service_ports(requested: Sequence[int], used: Mapping[int, str], app_id: str,
                         port_range: tuple[int, int] = DEFAULT_RANGE) -> tuple[int, ...]:
    """The app's service ports: `requested` with every 0 replaced by the lowest free port.

    `used` maps each port in use to the app holding it (this app's own entries are ignored).
    A non-zero port is kept; if another app holds it, `ServicePortConflict` is raised.
    """
    low, high = port_range
    if not 0 < low < high <= 65536:
        raise ValueError(f"bad service port range [{low}-{high})")
    if any(p < 0 or p > 65535 for p in requested):
        raise ValueError(f"service ports must be within 0..65535, got {tuple(requested)}")
    fixed = [p for p in requested if p > 0]
    if len(set(fixed)) != len(fixed):
        raise ValueError(f"service port listed twice in {tuple(requested)}")
    for port in fixed:
        owner = used.get(port)
        if owner is not None and owner != app_id:
            raise ServicePortConflict(port, owner)
    taken = set(fixed)
    candidate = low
    result = []
    for port in requested:
        if port == 0:
            while candidate < high and (candidate in taken or used.get(candidate, app_id) != app_id):
                candidate += 1
            if candidate >= high:
                raise ServicePortsExhausted(port_range)
            port = candidate
            taken.add(port)
        result.append(port)
    return tuple(result)
