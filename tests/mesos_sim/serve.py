"""A simulated master with many agents in a process of its own, driven over stdin/stdout.

    python -m tests.mesos_sim.serve --agents 10000 --target 100000 [--profile FILE]

For the scale benchmark (`bench/mesos_scale.py`): the scheduler under test then has a core of
its own, and its CPU time and memory are its alone. The first line written is `{"url": …}`;
each `status` line read is answered with one JSON line (tasks RUNNING, when the target was
reached, calls by type, rejections); `stop` ends the process. Times are `time.monotonic()`,
which is one clock for every process of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import threading
import time
from typing import Any

from .agents import AgentSpec, Cluster, SimTask, text_attribute
from .master import SimulatedMaster

RACKS = 20


class CountingCluster(Cluster):
    """Counts tasks reaching TASK_RUNNING, and notes when the `target`-th one did."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.running = 0
        self.all_running_at: float | None = None

    def report(self, task: SimTask, state: str, message: str = "", reason: str | None = None,
               source: str = "SOURCE_EXECUTOR") -> None:
        before = task.state
        super().report(task, state, message, reason, source)
        if state == "TASK_RUNNING" and before != state and task.state == state:
            self.running += 1
            if self.running == self.target and self.all_running_at is None:
                self.all_running_at = time.monotonic()


def agent_spec(i: int) -> AgentSpec:
    return AgentSpec(f"agent-{i:05d}", cpus=4, mem=4096, disk=10_000, ports=((31000, 32000),),
                     attributes=(text_attribute("rack", f"r{i % RACKS}"),))


def status(master: SimulatedMaster, cluster: CountingCluster) -> dict[str, Any]:
    return {"running": cluster.running, "target": cluster.target, "all_running_at": cluster.all_running_at,
            "calls": dict(master.call_counts), "last_call_at": dict(master.last_call_at),
            "rejections": [list(r) for r in master.rejections[:10]], "rejected": len(master.rejections),
            "tasks": len(cluster.tasks)}


async def serve(args: argparse.Namespace) -> None:
    cluster = CountingCluster(args.target)
    for i in range(args.agents):
        cluster.add_agent(agent_spec(i + 1))
    master = await SimulatedMaster(cluster, heartbeat_interval=args.heartbeat_interval,
                                   allocation_interval=args.allocation_interval, keep_calls=False).start()
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def read_commands() -> None:     # a thread: stdin has no asyncio reader that works everywhere
        for line in sys.stdin:
            command = line.strip()
            if command == "status":
                answer = asyncio.run_coroutine_threadsafe(_status(master, cluster), loop).result()
                sys.stdout.write(json.dumps(answer) + "\n")
                sys.stdout.flush()
            elif command == "stop":
                break
        loop.call_soon_threadsafe(stopped.set)

    print(json.dumps({"url": master.url}), flush=True)
    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    await stopped.wait()
    await master.stop()


async def _status(master: SimulatedMaster, cluster: CountingCluster) -> dict[str, Any]:
    return status(master, cluster)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--target", type=int, default=0, help="tasks RUNNING that count as done")
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument("--heartbeat-interval", type=float, default=15.0)
    parser.add_argument("--profile", default=None, help="write a cProfile of the simulator here")
    args = parser.parse_args(argv)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(serve(args))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
