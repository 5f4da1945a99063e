"""Mesos scale: the whole scheduler placing 100,000 instances on 10,000 agents of a simulated master.

    python bench/mesos_scale.py [--agents 10000] [--apps 1000] [--per-app 100] [--quick]
                                [--profile FILE] [--sim-profile FILE] [--trace] [--timeout SECONDS]

The simulated master (`tests/mesos_sim`, as strict as in the tests) runs in a process of its
own with `--agents` agents (4 cpus, 4 GB, ports 31000-32000, a `rack` attribute). The scheduler
is the real one, in this process: `Scheduler` on a SQLite store in a temporary home, the Mesos
backend and its HTTP client. It subscribes and holds one offer of every agent; then `--apps`
apps of `--per-app` instances each (`cpus: 0.01, mem: 1`, one host port) are queued, and the
scheduling loop starts. Figures, each next to the issue's aim:

* end to end: instances / seconds from the loop's start, offers in hand, until the simulator
  has every task TASK_RUNNING (placement, TaskInfos, one ACCEPT per agent, status updates and
  their acknowledgements all on the way); also the time to the last ACCEPT, and until the
  scheduler itself records every instance RUNNING;
* placement alone: `place_tasks` for every app on the same offers, each app consuming its share
  of an `OfferTable`, as a scheduling pass does;
* the scheduler's CPU seconds per 1,000 placements (`time.process_time` of this process, which
  holds nothing but the scheduler, from the loop's start until it recorded every instance
  RUNNING: acknowledgements and scheduling passes included);
* the peak RSS of this process (`ru_maxrss`).

`--quick` is 500 agents and 50 × 100 = 5,000 instances (well under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.backends.mesos import FrameworkIds, MesosBackend, MesosConfig  # noqa: E402
from scheduler.decide.placement import AgentOffer, OfferTable, place_tasks  # noqa: E402
from scheduler.engine.core import Scheduler  # noqa: E402
from scheduler.state.model import RUNNING  # noqa: E402
from scheduler.state.sqlite_store import SqliteStore  # noqa: E402

AIM_END_TO_END = 5_000.0        # placements per second
AIM_PLACEMENT = 50_000.0        # placements per second
AIM_RSS_MB = 1024.0


@dataclass(frozen=True)
class Size:
    agents: int
    apps: int
    per_app: int

    @property
    def instances(self) -> int:
        return self.apps * self.per_app


FULL = Size(agents=10_000, apps=1_000, per_app=100)
QUICK = Size(agents=500, apps=50, per_app=100)


@dataclass
class Figures:
    size: Size
    placement_seconds: float = 0.0          # CPU seconds of place_tasks and consuming, all apps
    placed_alone: int = 0
    end_to_end_seconds: float = 0.0         # loop start → every task RUNNING in the simulator
    last_accept_seconds: float = 0.0        # loop start → the last ACCEPT the simulator took
    scheduler_running_seconds: float = 0.0  # loop start → the scheduler records every instance RUNNING
    cpu_seconds: float = 0.0                # this process, over the end-to-end run
    peak_rss_mb: float = 0.0
    launched: int = 0                       # tasks RUNNING in the simulator
    recorded_running: int = 0               # instances the scheduler records RUNNING
    calls: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejections: list[Any] = field(default_factory=list)

    @property
    def end_to_end_rate(self) -> float:
        return self.launched / self.end_to_end_seconds if self.end_to_end_seconds else 0.0

    @property
    def placement_rate(self) -> float:
        return self.placed_alone / self.placement_seconds if self.placement_seconds else 0.0

    @property
    def cpu_per_thousand(self) -> float:
        return self.cpu_seconds / (self.launched / 1000) if self.launched else 0.0


class SimProcess:
    """The simulated master's process (`python -m tests.mesos_sim.serve`)."""

    def __init__(self, agents: int, target: int, profile: str | None) -> None:
        command = [sys.executable, "-m", "tests.mesos_sim.serve", "--agents", str(agents), "--target", str(target)]
        if profile:
            command += ["--profile", profile]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulated master did not start")
        self.url = str(json.loads(line)["url"])

    def status(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def _rss_mb() -> float:
    """This process's resident set now (the trace shows when memory peaks)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def app_definition(i: int, instances: int) -> dict[str, Any]:
    return {"id": f"/scale/app-{i:04d}", "cmd": "sleep 100000", "instances": instances, "cpus": 0.01, "mem": 1}


async def _until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def place_alone(offers: list[AgentOffer], sched: Scheduler, figures: Figures) -> None:
    """What a pass's `_place` does for every app, on the same offers, and nothing else."""
    records = [sched.state.apps[a] for a in sorted(sched.state.apps)]
    requests = [r.task_request for r in records]
    start = time.process_time()
    placed = 0
    table = OfferTable(offers)
    for seed, (record, request) in enumerate(zip(records, requests), 1):
        result = place_tasks(request, record.definition.instances, table, [], seed=seed)
        table = table.consumed(request, result.placements)
        placed += len(result.placements)
    figures.placement_seconds = time.process_time() - start
    figures.placed_alone = placed


async def run_scheduler(size: Size, sim: SimProcess, home: Path, timeout: float,
                        profiler: cProfile.Profile | None, trace: bool = False) -> Figures:
    figures = Figures(size)
    config = MesosConfig(masters=(sim.url,), user="nobody", framework_name="pacer-bench",
                         launch_timeout=timeout, offer_wait=timeout)
    ids = FrameworkIds()
    sched = Scheduler(SqliteStore(home / "state.sqlite"), lambda listener: MesosBackend(config, listener, ids))
    ids.bind(sched.state)
    backend = sched.backend
    assert isinstance(backend, MesosBackend)
    loop_task: asyncio.Task[None] | None = None
    try:
        await sched.start()
        await _until(lambda: len(backend.book.agents) >= size.agents, timeout, f"offers of {size.agents} agents")
        for i in range(size.apps):
            sched.writes.create_app(app_definition(i, size.per_app))
        place_alone(backend.offers({}), sched, figures)

        running = 0

        def all_recorded() -> bool:
            nonlocal running
            running = sum(1 for inst in sched.state.instances.values() if inst.state == RUNNING)
            return running >= size.instances

        if profiler is not None:
            profiler.enable()
        cpu0, t0 = time.process_time(), time.monotonic()
        loop_task = asyncio.get_running_loop().create_task(sched.run(), name="scheduling-loop")
        deadline = t0 + timeout
        while True:
            status = await asyncio.to_thread(sim.status)
            if trace:
                calls = status["calls"]
                print(f"  {time.monotonic() - t0:6.1f} s  simulator: {status['running']:,} RUNNING, "
                      f"{calls.get('ACCEPT', 0):,} ACCEPT, {calls.get('ACKNOWLEDGE', 0):,} ACKNOWLEDGE; scheduler: "
                      f"{sched.loop.stats.rounds} passes, {len(sched.state.instances):,} instances, "
                      f"RSS {_rss_mb():,.0f} MB", flush=True)
            if status["all_running_at"] is not None or loop_task.done():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for every task RUNNING in the simulator")
            await asyncio.sleep(0.5 if trace else 0.25)
        await _until(lambda: all_recorded() or loop_task.done(), timeout, "the scheduler to record them",
                     interval=0.25)
        figures.scheduler_running_seconds = time.monotonic() - t0
        figures.cpu_seconds = time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
        if loop_task.done():
            loop_task.result()     # the loop died: say why
        status = sim.status()
        figures.end_to_end_seconds = float(status["all_running_at"]) - t0
        figures.last_accept_seconds = float(status["last_call_at"].get("ACCEPT", t0)) - t0
        figures.launched = int(status["running"])
        figures.recorded_running = running
        figures.calls = dict(status["calls"])
        figures.rejected = int(status["rejected"])
        figures.rejections = list(status["rejections"])
        figures.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return figures
    finally:
        if loop_task is not None:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
        await sched.close()
        sched.store.close()


def run(size: Size, *, timeout: float = 1800.0, profile: str | None = None,
        sim_profile: str | None = None, trace: bool = False) -> Figures:
    """One run at `size`; the figures, measured."""
    sim = SimProcess(size.agents, size.instances, sim_profile)
    profiler = cProfile.Profile() if profile else None
    try:
        with tempfile.TemporaryDirectory(prefix="pacer-mesos-scale-") as home:
            figures = asyncio.run(run_scheduler(size, sim, Path(home), timeout, profiler, trace))
    finally:
        sim.stop()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return figures


def _against(value: float, aim: float, higher_is_better: bool = True) -> str:
    ratio = value / aim
    met = ratio >= 1 if higher_is_better else ratio <= 1
    return f"{ratio:5.2f} × the aim ({'met' if met else 'missed'})"


def report(f: Figures) -> str:
    s = f.size
    lines = [
        f"Mesos scale: {s.agents:,} simulated agents, {s.apps:,} apps × {s.per_app:,} = {s.instances:,} instances "
        f"(cpus 0.01, mem 1, one port)",
        f"  end to end       {f.end_to_end_rate:10,.0f} placements/s   aim ≥ {AIM_END_TO_END:,.0f}/s   "
        f"{_against(f.end_to_end_rate, AIM_END_TO_END)}",
        f"                   {f.launched:,} RUNNING in the simulator {f.end_to_end_seconds:.1f} s after the loop "
        f"started; last ACCEPT at {f.last_accept_seconds:.1f} s; the scheduler recorded {f.recorded_running:,} "
        f"RUNNING at {f.scheduler_running_seconds:.1f} s",
        f"  placement alone  {f.placement_rate:10,.0f} placements/s   aim ≥ {AIM_PLACEMENT:,.0f}/s  "
        f"{_against(f.placement_rate, AIM_PLACEMENT)}   ({f.placed_alone:,} in {f.placement_seconds:.2f} s CPU)",
        f"  scheduler CPU    {f.cpu_per_thousand:10.3f} s per 1,000 placements   "
        f"({f.cpu_seconds:.1f} s CPU from the loop's start until it recorded every instance RUNNING)",
        f"  peak RSS         {f.peak_rss_mb:10,.0f} MB             aim ≤ {AIM_RSS_MB:,.0f} MB  "
        f"{_against(f.peak_rss_mb, AIM_RSS_MB, higher_is_better=False)}",
        "  calls            " + ", ".join(f"{k} {v:,}" for k, v in sorted(f.calls.items()))
        + f"; refused by the protos: {f.rejected}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.agents} agents, {QUICK.instances:,} instances")
    parser.add_argument("--agents", type=int)
    parser.add_argument("--apps", type=int)
    parser.add_argument("--per-app", type=int)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--profile", help="write a cProfile of the scheduler's end-to-end run here")
    parser.add_argument("--sim-profile", help="write a cProfile of the simulated master here")
    parser.add_argument("--trace", action="store_true", help="print progress twice a second")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    size = Size(args.agents or base.agents, args.apps or base.apps, args.per_app or base.per_app)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    figures = run(size, timeout=args.timeout, profile=args.profile, sim_profile=args.sim_profile, trace=args.trace)
    print(report(figures))
    return 0 if figures.launched == size.instances and figures.rejected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
