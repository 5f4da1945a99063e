"""Health-check throughput: checks/s the checker sustains, and the event-loop lag it causes.

A separate process serves HTTP on a few loopback ports. In this process a real Scheduler's
HealthChecker checks N instances every second (intervalSeconds=1). The baseline, measured in
the same run, is a bare aiohttp GET loop at the same concurrency with no bookkeeping.

Usage: python bench/healthchecks.py [--instances 3000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import tempfile
import time
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


async def measure_lag(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - start - 0.01)


async def baseline(ports: list[int], seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:
        async def worker(k: int) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(f"http://127.0.0.1:{ports[k % len(ports)]}/health") as resp:
                    await resp.read()
                done += 1
        await asyncio.gather(*(worker(k) for k in range(MAX_CONCURRENT_CHECKS)))
    return done / seconds


async def through_checker(ports: list[int], instances: int, seconds: float) -> tuple[float, list[float]]:
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
        print(f"  {healthy}/{instances} instances reported healthy")
        return rate, lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ports", type=int, default=8)
    args = parser.parse_args()
    ports = [free_port() for _ in range(args.ports)]
    server = subprocess.Popen([sys.executable, "-c", SERVER, *map(str, ports)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        raw = asyncio.run(baseline(ports, min(args.seconds, 5)))
        rate, lags = asyncio.run(through_checker(ports, args.instances, args.seconds))
        lags.sort()
        p99 = lags[int(len(lags) * 0.99)] * 1000 if lags else float("nan")
        print(f"health checks: {rate:.0f}/s sustained for {args.instances} instances at 1 s interval "
              f"(bare GET loop at the same concurrency: {raw:.0f}/s, ratio {rate / raw:.2f}); "
              f"event-loop lag median {statistics.median(lags) * 1000:.1f} ms, p99 {p99:.1f} ms, "
              f"max {lags[-1] * 1000:.1f} ms (aim >= 2000/s, lag < 50 ms)")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
