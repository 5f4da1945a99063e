"""Health-check throughput: checks/s the checker sustains, and the event-loop lag it causes.

A separate process serves HTTP on a few loopback ports. In this process a real Scheduler's
HealthChecker checks N instances every second (intervalSeconds=1, the shortest Marathon
allows). The floor, measured in the same run, is a bare aiohttp GET loop at the same
concurrency (MAX_CONCURRENT_CHECKS workers, one keep-alive session) with no bookkeeping.

Two figures, because a 1 s interval caps what N instances can ask for at N checks/s:

* capacity: enough instances that more checks are due than can run (1.5x what the bare loop
  managed), so the checker runs flat out; its checks/s against the bare loop's is the ratio
  that says what the scheduling and bookkeeping cost (aim >= 0.9);
* the issue's load, 3,000 instances at 1 s: the checks/s sustained against the ~3,000/s
  asked for, and the lag it leaves on the scheduler's loop (aim p99 < 20 ms).

Event-loop lag is sampled the same way in both: a 10 ms sleep on the loop that owns the work
(the bare loop's own loop; the scheduler's loop for the checker), minus the 10 ms.

Usage: python bench/healthchecks.py [--instances 3000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.health.checker import MAX_CONCURRENT_CHECKS  # noqa: E402
from scheduler.state.model import RUNNING, Instance  # noqa: E402
from scheduler.engine.build import ServeOptions, make_scheduler  # noqa: E402
from tests.support import free_port  # noqa: E402

SERVER = """
import sys
from aiohttp import web
async def ok(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/health", ok)
async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in map(int, sys.argv[1:]):
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("ready", flush=True)
    import asyncio
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""

LAG_SLEEP = 0.01


@dataclass(frozen=True)
class Run:
    """Checks/s over the measured window and the loop lags sampled meanwhile (seconds)."""

    rate: float
    lags: list[float]

    def lag_ms(self, quantile: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000 if ordered else float("nan")


async def measure_lag(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(LAG_SLEEP)
        lags.append(time.perf_counter() - start - LAG_SLEEP)


async def bare_loop(ports: list[int], seconds: float) -> Run:
    """The floor: MAX_CONCURRENT_CHECKS workers GETting as fast as the server answers."""
    done = 0
    stop = asyncio.Event()
    lags: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_CHECKS)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(k: int) -> None:
            nonlocal done
            url = f"http://127.0.0.1:{ports[k % len(ports)]}/health"
            while time.perf_counter() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                done += 1

        lag_task = asyncio.create_task(measure_lag(stop, lags))
        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(MAX_CONCURRENT_CHECKS)))
        elapsed = time.perf_counter() - start
        stop.set()
        await lag_task
    return Run(done / elapsed, lags)


async def through_checker(ports: list[int], instances: int, seconds: float) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        sched = make_scheduler(ServeOptions(home=Path(tmp), resources={"cpus": 0, "mem": 0, "disk": 0}))
        await sched.start()
        check = {"protocol": "HTTP", "path": "/health", "intervalSeconds": 1, "timeoutSeconds": 5,
                 "gracePeriodSeconds": 0, "maxConsecutiveFailures": 0}
        record, _ = sched.writes.create_app({"id": "/bench", "cmd": "true", "instances": 0, "healthChecks": [check]})
        for k in range(instances):
            sched.state.put_instance(Instance(instance_id=f"bench.instance-{k}._app.1", app_id="/bench", version=record.version,
                                config_version=record.config_version, agent_id="agent-1", host="localhost",
                                ports=(ports[k % len(ports)],), service_ports=(), state=RUNNING,
                                staged_at=time.time(), started_at=time.time()))
        completed = 0
        subject = sched.health.subject
        original = subject.on_health

        def counting(inst, check_json, outcome):
            nonlocal completed
            completed += 1
            original(inst, check_json, outcome)

        subject.on_health = counting  # type: ignore[method-assign]
        gc.collect()
        gc.freeze()         # as `pacer serve` does once started
        stop = asyncio.Event()
        lags: list[float] = []
        checker = asyncio.create_task(sched.health.run())
        lag_task = asyncio.create_task(measure_lag(stop, lags))
        await asyncio.sleep(2)                      # warm up: first round of checks
        start_count, start = completed, time.perf_counter()
        lags.clear()
        await asyncio.sleep(seconds)
        rate = (completed - start_count) / (time.perf_counter() - start)
        stop.set()
        checker.cancel()
        await asyncio.gather(checker, lag_task, return_exceptions=True)
        healthy = sum(1 for i in sched.state.instances.values() if sched.view.healthy(i))
        await sched.close()
        sched.store.close()
        gc.unfreeze()
        print(f"  {healthy}/{instances} instances reported healthy")
        return Run(rate, lags)


def lag_text(run: Run) -> str:
    return f"lag p50 {run.lag_ms(0.5):.1f} ms, p99 {run.lag_ms(0.99):.1f} ms, max {run.lag_ms(1.0):.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=3000, help="the interval-bound load (checks due each second)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ports", type=int, default=8)
    args = parser.parse_args()
    ports = [free_port() for _ in range(args.ports)]
    server = subprocess.Popen([sys.executable, "-c", SERVER, *map(str, ports)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        bare = asyncio.run(bare_loop(ports, args.seconds))
        flat_out = int(bare.rate * 1.5)
        print(f"capacity: {flat_out} instances at 1 s interval (more due than the bare loop can run)")
        capacity = asyncio.run(through_checker(ports, flat_out, args.seconds))
        print(f"at load: {args.instances} instances at 1 s interval")
        load = asyncio.run(through_checker(ports, args.instances, args.seconds))
        print(f"bare aiohttp GET loop ({MAX_CONCURRENT_CHECKS} workers): {bare.rate:.0f} checks/s; {lag_text(bare)}")
        print(f"checker, flat out:                 {capacity.rate:.0f} checks/s; {lag_text(capacity)}")
        print(f"  ratio checker/bare: {capacity.rate / bare.rate:.2f} (aim >= 0.9)")
        print(f"checker, {args.instances} instances at 1 s:   {load.rate:.0f} checks/s "
              f"({load.rate / args.instances:.2f} of the {args.instances}/s asked); {lag_text(load)} (aim p99 < 20 ms)")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
