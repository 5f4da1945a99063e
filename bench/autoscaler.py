"""Metrics and autoscaler benchmark, every figure against a baseline measured in the same run.

Prints:
  * decision time for A apps × T tasks × S samples: ``decide_all`` (one numpy pass) vs. the
    same decisions app by app (``desired_instances``); the aim is ≤ 100 ms for 2,000 × 10 × 30;
  * embedded store: write throughput (points/s) and the autoscaler's usage query for all apps;
  * InfluxDB v1 sink throughput (points/s, batched async writes through ``InfluxV1Sink``) vs. a
    plain loop POSTing the same line protocol in the same batch size, on a private ``influxd``
    (skipped when influxd is not installed).

Usage: python bench/autoscaler.py [--apps 2000] [--tasks 10] [--samples 30] [--points 200000]
                                     [--skip-influx]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoscaler.decision import AppInputs, AppState, decide_all, desired_instances  # noqa: E402
from autoscaler.policy import parse_policy  # noqa: E402
from metrics import EmbeddedStore, Point, Series  # noqa: E402
from metrics.lineprotocol import encode_points  # noqa: E402
from metrics.schema import NS_PER_S  # noqa: E402

NOW = 1_700_000_000.0


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_decision(apps: int, tasks: int, samples: int) -> None:
    rng = np.random.default_rng(7)
    times = NOW - samples + 1 + np.arange(samples, dtype=float)
    items = []
    for a in range(apps):
        ids = tuple(f"a{a}.t{i}" for i in range(tasks))
        usage = {t: Series(times, rng.uniform(0, 0.6, samples)) for t in ids}
        policy = parse_policy(f"/a{a}", {"target": 50, "max": 4 * tasks, "window": samples})
        items.append((policy, AppInputs(f"/a{a}", tasks, ids, usage, scale=100 / 0.5), AppState()))
    batched = best_of(lambda: decide_all(items, NOW))
    single = best_of(lambda: [desired_instances(p, i, s, NOW) for p, i, s in items], repeat=3)
    print(f"decision, {apps} apps × {tasks} tasks × {samples} samples: decide_all {batched * 1000:.1f} ms "
          f"(aim ≤ 100 ms) vs app by app {single * 1000:.1f} ms (×{single / batched:.1f})")


def bench_store(apps: int, tasks: int, samples: int) -> None:
    points = [Point("cpu_usage_total", {"app_id": f"/a{a}", "task_id": f"t{t}", "machine": "m"},
                    {"value": s * 10**8}, int((NOW - samples + s) * NS_PER_S))
              for s in range(samples) for a in range(apps) for t in range(tasks)]
    store = EmbeddedStore(retention=3600, interval=10)
    start = time.perf_counter()
    store.write(points)
    write = time.perf_counter() - start
    query = best_of(lambda: store.usage("cpu", NOW - samples, NOW), repeat=3)
    print(f"embedded store: {len(points) / write:,.0f} points/s written ({len(store)} series); "
          f"usage query for all {apps} apps {query * 1000:.0f} ms")


async def _post_loop(url: str, db: str, lines: list[str], batch: int) -> float:
    import aiohttp
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for i in range(0, len(lines), batch):
            async with session.post(f"{url}/write", params={"db": db, "precision": "ns"},
                                    data="\n".join(lines[i:i + batch]).encode()) as resp:
                assert resp.status == 204, await resp.text()
    return time.perf_counter() - start


async def _sink(url: str, db: str, points: list[Point], batch: int) -> float:
    from metrics.influx_v1 import InfluxV1Sink
    sink = InfluxV1Sink(url, db, batch_size=batch, max_buffer=len(points) + 1, flush_interval=0.01)
    sink.write(points[:1])
    await sink.flush()                  # database created, connection open: like the baseline's session
    start = time.perf_counter()
    for i in range(0, len(points), 1000):
        sink.write(points[i:i + 1000])   # as a sampler would, in passes
        await asyncio.sleep(0)
    while sink.stats()["written"] < len(points):
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    await sink.close()
    return elapsed


def bench_influx(n: int, batch: int = 5000) -> None:
    from tests.influx_support import InfluxServer, influxd_available
    if not influxd_available():
        print("influxdb sink: skipped (influxd not installed)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxServer(Path(tmp) / "influxd").start()
        try:
            server.create_database("plain")
            points = [Point("cpu_usage_total", {"app_id": f"/a{i % 200}", "task_id": f"t{i % 2000}", "machine": "m"},
                            {"value": i}, int(NOW * NS_PER_S) + i) for i in range(n)]
            lines = encode_points(points)
            encode = best_of(lambda: encode_points(points), repeat=3)
            plain = asyncio.run(_post_loop(server.url, "plain", lines, batch))
            sink = asyncio.run(_sink(server.url, "sink", points, batch))
            print(f"influxdb v1 sink: {n / sink:,.0f} points/s (encode + batch + POST) vs plain POST loop of "
                  f"pre-encoded lines {n / plain:,.0f} points/s (×{plain / sink:.2f}); "
                  f"encoding alone {n / encode:,.0f} points/s")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--skip-influx", action="store_true")
    args = parser.parse_args()
    bench_decision(args.apps, args.tasks, args.samples)
    bench_store(args.apps, args.tasks, args.samples)
    if not args.skip_influx:
        bench_influx(args.points)


if __name__ == "__main__":
    main()
