"""Runtime-API plans: which server changes need no reload (pure).

A change that only adds, removes or moves servers of backends that exist in both models,
with every other setting equal, is applied through HAProxy's Runtime API:

    new server       add server B/N ADDR:PORT [check …]; enable health B/N; enable server B/N
    moved server     set server B/N addr A port P
    removed server   set server B/N state drain   … later: state maint; del server B/N
    new weight       set server B/N weight W      (a canary step; no weight: back to 1)
    came back        set server B/N addr A port P; set server B/N state ready  (was draining)
    sticky backend   enable dynamic-cookie backend B   (cookies follow the server's address)

Anything else (a new app, a label change, a backend whose algorithm cannot take dynamic
servers) returns None: the caller reloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import Model, Service
from .render import dynamic_servers_ok, server_options, weight_option
from .servers import Server

ServerRef = tuple[str, str]      # (backend, server name)


@dataclass(frozen=True)
class RuntimePlan:
    add: tuple[tuple[str, Server], ...] = ()
    move: tuple[tuple[str, Server], ...] = ()
    revive: tuple[tuple[str, Server], ...] = ()     # draining servers taken back into service
    drain: tuple[tuple[str, Server], ...] = ()
    reweigh: tuple[tuple[str, Server], ...] = ()    # servers whose weight changed (canary steps)

    @property
    def empty(self) -> bool:
        return not (self.add or self.move or self.revive or self.drain or self.reweigh)

    def count(self) -> int:
        return len(self.add) + len(self.move) + len(self.revive) + len(self.drain) + len(self.reweigh)


def plan_runtime(live: Model, target: Model, draining: Mapping[ServerRef, Server] | None = None) -> RuntimePlan | None:
    """The Runtime-API plan from `live` to `target`, or None when only a reload can do it."""
    if live.shape() != target.shape():
        return None
    draining = draining or {}
    add: list[tuple[str, Server]] = []
    move: list[tuple[str, Server]] = []
    revive: list[tuple[str, Server]] = []
    drain: list[tuple[str, Server]] = []
    reweigh: list[tuple[str, Server]] = []
    for old, new in zip(live.services, target.services):
        if old.servers == new.servers:
            continue
        if not dynamic_servers_ok(new):
            return None
        before = {s.name: s for s in old.servers}
        after = {s.name: s for s in new.servers}
        for name in sorted(after):
            srv = after[name]
            if name in before:
                if (before[name].address, before[name].port) != (srv.address, srv.port):
                    move.append((new.backend, srv))
                if _weight(before[name]) != _weight(srv):
                    reweigh.append((new.backend, srv))
            elif (new.backend, name) in draining:
                revive.append((new.backend, srv))
                if _weight(draining[(new.backend, name)]) != _weight(srv):
                    reweigh.append((new.backend, srv))
            else:
                add.append((new.backend, srv))
        for name in sorted(set(before) - set(after)):
            drain.append((old.backend, before[name]))
    return RuntimePlan(tuple(add), tuple(move), tuple(revive), tuple(drain), tuple(reweigh))


def _weight(srv: Server) -> int:
    """The weight HAProxy gives the server (1 when the file names none)."""
    return 1 if srv.weight is None else srv.weight


def with_servers_of(live: Model, target: Model) -> Model:
    """`live` with the servers `target` gives its backends: the server-only part of a change
    whose other parts need a reload (applied now; the reload follows when it is due)."""
    wanted = {s.backend: s.servers for s in target.services}
    return Model(services=tuple(s._replace(servers=wanted.get(s.backend, s.servers)) for s in live.services),
                 apps=target.apps, owners=target.owners)


def _addr_port(srv: Server) -> str:
    return f"addr {srv.address} port {srv.port}"


def plan_commands(plan: RuntimePlan, target: Model) -> list[str]:
    """Runtime API commands, one per line, in the order they must run."""
    services: dict[str, Service] = {s.backend: s for s in target.services}
    out: list[str] = []
    sticky: set[str] = set()
    for backend, srv in plan.add:
        svc = services[backend]
        out.append(f"add server {backend}/{srv.name} {srv.endpoint}{weight_option(srv)}{server_options(svc)}")
        if svc.health is not None:
            out.append(f"enable health {backend}/{srv.name}")
        out.append(f"enable server {backend}/{srv.name}")
        if svc.sticky:
            sticky.add(backend)
    for backend, srv in plan.move + plan.revive:
        out.append(f"set server {backend}/{srv.name} {_addr_port(srv)}")
        if services[backend].sticky:
            sticky.add(backend)
    for backend, srv in plan.revive:
        out.append(f"set server {backend}/{srv.name} state ready")
    out += weight_commands(plan.reweigh)
    for backend, srv in plan.drain:
        out.append(f"set server {backend}/{srv.name} state drain")
    out += [f"enable dynamic-cookie backend {b}" for b in sorted(sticky)]
    return out


def weight_commands(servers: tuple[tuple[str, Server], ...]) -> list[str]:
    """``set server B/N weight W`` for each server, those going up first: between two commands
    no backend has all its servers at weight 0 (HAProxy would answer 503)."""
    ordered = sorted(servers, key=lambda bs: -_weight(bs[1]))
    return [f"set server {backend}/{srv.name} weight {_weight(srv)}"
            for backend, srv in ordered]


def reap_commands(ref: ServerRef) -> list[str]:
    """Commands that remove a drained server for good."""
    backend, name = ref
    return [f"set server {backend}/{name} state maint", f"del server {backend}/{name}"]


def runtime_answer_ok(command: str, answer: str) -> bool:
    """Did HAProxy accept this Runtime API command? (its answers are free text)"""
    text = answer.strip()
    if command.startswith("add server "):
        return "New server registered" in text
    if command.startswith("del server "):
        return "Server deleted" in text
    if command.startswith("set server ") and " addr " in command:
        return "changed" in text or "no need" in text.lower()
    return text == ""
