"""The rules of the shared frontends (:80, :443) and their order (pure).

HAProxy takes the first `use_backend` whose condition holds, so the order is the routing policy:

    1. exact hosts            (api.example.com)
    2. wildcard hosts         (*.example.com), longer suffixes first
    3. path-only services     (no vhost: any host)

and within each class: higher HAPROXY_{n}_BACKEND_WEIGHT first, then services with a path
before those without, longer path prefixes first, then the backend name. The classes come
before the weight so that no label of another app — a weight of 1000, a wildcard, a bare path —
can put its rule ahead of an app's own exact vhost (ownership.py settles identical claims).
One service with exact and wildcard hosts gets one rule per class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

EXACT, WILDCARD, ANY_HOST = 0, 1, 2


class Routed(Protocol):
    """What routing reads of a service (model.Service; a protocol, so model.py can use routes)."""

    @property
    def app_id(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def vhosts(self) -> tuple[str, ...]: ...
    @property
    def paths(self) -> tuple[str, ...]: ...
    @property
    def weight(self) -> int: ...


class Route(NamedTuple):
    service: Routed
    kind: int                       # EXACT | WILDCARD | ANY_HOST
    hosts: tuple[str, ...]          # exact names, or one suffix ('.example.com'), or ()
    acl: str                        # the host ACL's name ('' for ANY_HOST)

    def order(self) -> tuple[object, ...]:
        s = self.service
        longest = max((len(p) for p in s.paths), default=0)
        suffix = len(self.hosts[0]) if self.kind == WILDCARD else 0
        return (self.kind, -suffix, -s.weight, 0 if s.paths else 1, -longest, s.backend, self.acl)

    def patterns(self) -> tuple[str, ...]:
        """The vhost label values this rule serves (wildcards as written: '*.example.com')."""
        return tuple("*" + h for h in self.hosts) if self.kind == WILDCARD else self.hosts


def service_routes(s: Routed) -> list[Route]:
    exact = tuple(h for h in s.vhosts if not h.startswith("*."))
    wild = [h[1:] for h in s.vhosts if h.startswith("*.")]
    out = [Route(s, EXACT, exact, f"host_{s.backend}")] if exact else []
    out += [Route(s, WILDCARD, (suffix,), f"wild{i}_{s.backend}") for i, suffix in enumerate(wild)]
    if not s.vhosts and s.paths:
        out.append(Route(s, ANY_HOST, (), ""))
    return out


def shared_routes(services: Iterable[Routed]) -> list[Route]:
    """Every rule of the shared frontends, in the order they are tried."""
    return sorted((r for s in services if s.mode == "http" for r in service_routes(s)), key=Route.order)
