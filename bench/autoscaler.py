"""Metrics and autoscaler benchmark, every figure against a baseline measured in the same run.

Prints:
  * the decision for A apps × T tasks × S samples, aim ≤ 50 ms for 2,000 × 10 × 30, each figure
    also against the same work done app by app in the same run:
      - kernel: ``decide_all`` (one numpy pass) over the inputs the service builds, vs.
        ``desired_instances`` app by app;
      - tick: one whole cycle of the running service (``Autoscaler.run_once``: label policies,
        the usage query on the embedded store, the inputs, ``decide_all``, the decision log and
        its points) against a scheduler client that answers from memory (no HTTP), with a
        steady-state stabilization history; vs. the same cycle app by app (one usage query and
        one ``desired_instances`` per app);
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
import gc
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoscaler.decision import AppState, decide_all, desired_instances  # noqa: E402
from autoscaler.service import LOOKBACK_WINDOWS, Autoscaler, _inputs  # noqa: E402
from metrics import EmbeddedStore, Point  # noqa: E402
from metrics.usage import MEASUREMENT_OF_METRIC, Series  # noqa: E402
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


AIM_MS = 50.0
INTERVAL = 15.0            # the autoscaler's cycle, for the stabilization history


class MemoryClient:
    """The scheduler API's answers, already decoded: the tick without HTTP or JSON."""

    def __init__(self, apps: list[dict[str, Any]]) -> None:
        self.apps = apps
        self.running = [task for app in apps for task in app["tasks"]]   # GET /v2/tasks?status=running

    async def list_apps(self, embed: str | None = "apps.tasks") -> list[dict[str, Any]]:
        return self.apps

    async def tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        return self.running

    async def deployments(self) -> list[dict[str, Any]]:
        return []

    async def scale_app(self, app_id: str, instances: int, *, force: bool = False) -> dict[str, Any]:
        return {}


def _load(apps: int, tasks: int, samples: int) -> tuple[list[dict[str, Any]], EmbeddedStore]:
    """Apps as ``GET /v2/apps?embed=apps.tasks`` lists them (target 50 % of 0.5 cpus, every tenth
    app busy enough to scale up) and `samples` + 1 cumulative CPU samples per task, 1 s apart."""
    rng = np.random.default_rng(7)
    app_list = []
    for a in range(apps):
        app_list.append({
            "id": f"/a{a}", "instances": tasks, "cpus": 0.5, "mem": 128.0,
            "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": str(4 * tasks),
                       "AUTOSCALE_WINDOW": str(samples), "HAPROXY_GROUP": "external"},
            "tasks": [{"id": f"a{a}.t{t}", "appId": f"/a{a}", "state": "TASK_RUNNING", "host": "127.0.0.1"}
                      for t in range(tasks)]})
    store = EmbeddedStore(retention=3600, interval=1, measurements=frozenset(MEASUREMENT_OF_METRIC.values()))
    cores = np.where(np.arange(apps)[:, None] % 10 == 0, 0.5, 0.25) + rng.uniform(-0.02, 0.02, (apps, tasks))
    for s in range(samples + 1):
        time_ns = int((NOW - samples + s) * NS_PER_S)
        store.write([Point("cpu_usage_total", {"app_id": f"/a{a}", "task_id": f"a{a}.t{t}", "machine": "m"},
                           {"value": int(s * cores[a, t] * NS_PER_S)}, time_ns)
                     for a in range(apps) for t in range(tasks)])
    return app_list, store


def _steady_states(app_list: list[dict[str, Any]]) -> dict[str, AppState]:
    """What 300 s of cycles leave behind: a recommendation every INTERVAL seconds."""
    return {app["id"]: AppState(tuple((NOW - INTERVAL * k, int(app["instances"])) for k in range(20, 0, -1)))
            for app in app_list}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _against(name: str, batched: float, single: float) -> None:
    verdict = "meets" if batched * 1000 <= AIM_MS else "misses"
    print(f"  {name}: {_ms(batched)} ({batched * 1000 / AIM_MS:.2f}× the {AIM_MS:.0f} ms aim, {verdict} it) "
          f"vs app by app {_ms(single)} (×{single / batched:.1f} faster)")


def bench_decision(apps: int, tasks: int, samples: int) -> None:
    app_list, store = _load(apps, tasks, samples)
    gc.collect()
    gc.freeze()           # as `pacer serve` does after start-up: the loaded samples are not garbage
    states = _steady_states(app_list)
    with tempfile.TemporaryDirectory() as tmp:
        scaler = Autoscaler(MemoryClient(app_list), store, store, Path(tmp), interval=INTERVAL,  # type: ignore[arg-type]
                            clock=lambda: NOW)
        loop = asyncio.new_event_loop()

        def tick() -> None:
            scaler._states = dict(states)
            loop.run_until_complete(scaler.run_once())

        tick()            # the first cycle parses every app's labels; later ones reuse them
        policies = scaler.label_policies
        window = max(p.window for p in policies.values())
        usage = store.usage("cpu", NOW - window * LOOKBACK_WINDOWS, NOW)
        items = [(policies[app["id"]], _inputs(app["id"], app, policies[app["id"]], usage, None, None),
                  states[app["id"]]) for app in app_list]
        plain = [(p, replace(i, utilization=dict(i.utilization or {})), s) for p, i, s in items]

        def tick_app_by_app() -> None:
            for app in app_list:
                app_id = app["id"]
                policy = policies[app_id]
                one = store.usage(policy.metric, NOW - policy.window * LOOKBACK_WINDOWS, NOW, [app_id])
                desired_instances(policy, _inputs(app_id, app, policy, one, None, None), states[app_id], NOW)

        kernel = best_of(lambda: decide_all(items, NOW))
        kernel_single = best_of(lambda: [desired_instances(p, i, s, NOW) for p, i, s in plain], repeat=3)
        whole = best_of(tick)
        whole_single = best_of(tick_app_by_app, repeat=3)
        loop.close()
    gc.unfreeze()
    scaling = sum(1 for d in decide_all(items, NOW) if d[0].scales)
    print(f"decision, {apps} apps × {tasks} tasks × {samples} samples ({scaling} apps scale):")
    _against("kernel, decide_all", kernel, kernel_single)
    _against("tick, Autoscaler.run_once", whole, whole_single)


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
