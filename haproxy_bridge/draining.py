"""Servers on their way out of a backend: set to `drain` through the Runtime API (no new
sessions, running ones finish), deleted once idle or after `drain_seconds`.

Draining is a small lifecycle of its own: a Runtime API update starts or cancels drains
(`applied`), the supervisor reaps them (`reap`), and a reload or restart hands them all to the
old worker, which finishes their sessions itself (`clear`). Which servers drain is plan.py's
decision.
"""

from __future__ import annotations

import time
from collections.abc import ItemsView
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .plan import RuntimePlan, ServerRef, reap_commands, runtime_answer_ok
from .servers import Server

if TYPE_CHECKING:
    from .haproxy import HaproxyProcess


@dataclass
class Drain:
    server: Server
    since: float
    deadline: float


class Draining:
    """The servers draining now, by (backend, server name)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._drains: dict[ServerRef, Drain] = {}

    def __bool__(self) -> bool:
        return bool(self._drains)

    def items(self) -> ItemsView[ServerRef, Drain]:
        return self._drains.items()

    def servers(self) -> dict[ServerRef, Server]:
        return {ref: d.server for ref, d in self._drains.items()}

    def clear(self) -> None:
        self._drains.clear()

    def applied(self, plan: RuntimePlan) -> None:
        """`plan` went through the Runtime API: revived servers stop draining, drained ones start."""
        now = time.monotonic()
        for backend, srv in plan.revive:
            self._drains.pop((backend, srv.name), None)
        for backend, srv in plan.drain:
            self._drains[(backend, srv.name)] = Drain(srv, now, now + self.seconds)

    async def reap(self, process: HaproxyProcess) -> int:
        """Delete the servers that are idle or past their deadline; how many were deleted."""
        sessions = await process.server_sessions()
        now = time.monotonic()
        deleted = 0
        for ref, drain in list(self._drains.items()):
            if ref not in sessions:
                del self._drains[ref]
                continue
            if sessions[ref] > 0 and now < drain.deadline:
                continue
            answers = [await process.runtime(c) for c in reap_commands(ref)]
            if runtime_answer_ok(f"del server {ref[0]}/{ref[1]}", answers[-1]) or now > drain.deadline + 10:
                del self._drains[ref]
                deleted += 1
        return deleted
