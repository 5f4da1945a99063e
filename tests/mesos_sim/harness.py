"""Simulated masters on an event loop thread of their own, for tests that drive a subprocess.

A `pacer serve --master URL` subprocess talks HTTP to them; the test reads and changes the
simulated cluster through `run`, which executes a function on the simulator's loop (its objects
are not thread-safe) and returns the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .agents import AgentSpec, Cluster, SimTask
from .master import SimulatedMaster

T = TypeVar("T")


class SimHarness:
    def __init__(self, agents: Sequence[AgentSpec], *, masters: int = 1, **options: Any) -> None:
        self.cluster = Cluster()
        for spec in agents:
            self.cluster.add_agent(spec)
        self._options = options
        self._count = masters
        self.masters: list[SimulatedMaster] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mesos-sim", daemon=True)

    def start(self) -> "SimHarness":
        self._thread.start()
        self.masters = self._await(self._start())
        return self

    async def _start(self) -> list[SimulatedMaster]:
        masters = []
        for i in range(self._count):
            master = SimulatedMaster(self.cluster, f"master-{i + 1}", **self._options)
            await master.start(elected=i == 0)
            masters.append(master)
        for master in masters[1:]:
            master.leader = masters[0]
        return masters

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the simulator's loop; its result (or exception) here."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:   # handed to the caller's thread
                done.set_exception(exc)
        self.loop.call_soon_threadsafe(call)
        return done.result(30)

    @property
    def leader(self) -> SimulatedMaster:
        return next(m for m in self.masters if m.elected)

    @property
    def url(self) -> str:
        return self.masters[0].url

    @property
    def urls(self) -> str:
        return ",".join(m.url for m in self.masters)

    # -- reads -------------------------------------------------------------------------------
    def tasks(self) -> list[SimTask]:
        return self.run(lambda: list(self.cluster.tasks.values()))

    def running_ids(self) -> set[str]:
        return self.run(lambda: {t.task_id for t in self.cluster.running()})

    def live_ids(self) -> set[str]:
        """Tasks that hold resources: everything not ended."""
        return self.run(lambda: {t.task_id for t in self.cluster.tasks.values() if not t.terminal})

    def rejections(self) -> list[tuple[int, str]]:
        return self.run(lambda: [r for m in self.masters for r in m.rejections])

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self.run(lambda: [c for m in self.masters for c in m.calls if kind is None or c["type"] == kind])

    def unacknowledged(self) -> list[tuple[str, str]]:
        return self.run(self.cluster.unacknowledged)

    def hostname_of(self, task_id: str) -> str:
        return self.run(lambda: self.cluster.agents[self.cluster.task(task_id).agent_id].spec.hostname)

    # -- changes -------------------------------------------------------------------------------
    def fail(self, task_id: str) -> None:
        self.run(lambda: self.cluster.fail(task_id))

    def finish(self, task_id: str) -> None:
        self.run(lambda: self.cluster.finish(task_id))

    def set_health(self, healthy_if: Callable[[SimTask], bool]) -> None:
        """From now on the tasks' Mesos health checks answer `healthy_if(task)`; running tasks
        report a changed verdict at once."""
        def apply() -> None:
            self.cluster.healthy_if = healthy_if
            for task in list(self.cluster.tasks.values()):
                self.cluster.check_health(task)
        self.run(apply)

    def drop_streams(self) -> None:
        self.run(lambda: [self.leader.drop_stream(f) for f in list(self.leader.frameworks)])

    def failover(self) -> SimulatedMaster:
        """The leader loses leadership to the next master; the old one redirects to it."""
        def move() -> SimulatedMaster:
            old = self.leader
            new = self.masters[(self.masters.index(old) + 1) % len(self.masters)]
            old.demote(new)
            new.elect()
            for master in self.masters:
                if master is not new:
                    master.leader = new
            return new
        return self.run(move)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._await(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    async def _stop(self) -> None:
        for master in self.masters:
            await master.stop()
