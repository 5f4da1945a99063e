"""The bridge's two questions to the host's network stack: what address does a task host name
have, and can HAProxy bind a port.

Everything touching `socket` (and the resolver's background lookups) sits here, so the model
stays pure: targets.py passes the resolved addresses to `build_model`, and leaves out the apps
whose new binds `blocked_binds` reports (a port another process holds rejects that app, not
the whole configuration).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterable

from .model import Model


class HostResolver:
    """Task host names -> addresses, cached (negative answers too) for `ttl` seconds.

    A host seen for the first time is looked up before the refresh goes on; an expired entry is
    served stale while it is looked up again in the background, so a slow resolver never delays
    a routing change (a killed task must leave its backend within seconds)."""

    def __init__(self, ttl: float = 60.0, timeout: float = 2.0) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def _lookup(self, host: str) -> str | None:
        loop = asyncio.get_running_loop()
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM), self.timeout)
            except (OSError, asyncio.TimeoutError, UnicodeError):
                continue
            if infos:
                return str(infos[0][4][0])
        return None

    async def _refresh(self, host: str) -> None:
        self._cache[host] = (await self._lookup(host), time.monotonic() + self.ttl)

    async def resolve(self, hosts: Iterable[str]) -> dict[str, str]:
        now = time.monotonic()
        new: list[str] = []
        for host in set(hosts):
            try:
                ipaddress.ip_address(host)
                continue
            except ValueError:
                pass
            cached = self._cache.get(host)
            if cached is None:
                new.append(host)
            elif cached[1] < now:
                self._cache[host] = (cached[0], now + self.ttl)      # one background lookup at a time
                task = asyncio.get_running_loop().create_task(self._refresh(host))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        if new:
            await asyncio.gather(*(self._refresh(h) for h in new))
        return {h: a for h, (a, _) in self._cache.items() if a is not None}


def bind_problem(address: str, port: int) -> str | None:
    """Can HAProxy bind here? (None: yes.) Only used for binds the running HAProxy does not hold."""
    host = "0.0.0.0" if address == "*" else address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return f"cannot bind {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}" + (
                " (another process holds it)" if exc.errno == errno.EADDRINUSE else "")
    return None


def blocked_binds(model: Model, held: set[tuple[str, int]], default_bind: str,
                  probe: Callable[[str, int], str | None] = bind_problem) -> dict[str, str]:
    """App id -> why HAProxy could not bind one of its services; binds in `held` (the running
    HAProxy's own) are not probed."""
    blocked: dict[str, str] = {}
    for s in model.services:
        bind = (s.bind_addr or default_bind, s.port)
        if bind in held or s.app_id in blocked:
            continue
        problem = probe(*bind)
        if problem:
            blocked[s.app_id] = problem
    return blocked
