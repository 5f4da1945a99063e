"""HAProxy bridge benchmark: Runtime API against full reloads, rendering at scale, a scale storm.

Prints three figures, each against a baseline measured in the same run:
  * apply time of a server-only change (Runtime API: add/drain server, no reload) vs a change
    that needs a reload (haproxy -c, atomic write, reload through the master socket, until the
    new worker is up), on the same HAProxy serving --apps apps; the ratio reload / runtime;
  * render time of --render-apps apps x 4 tasks (build_model + render_haproxy_config), cold and
    warm (label parsing memoised), against the 250 ms aim; then the incremental renderer the
    bridge runs: a change to one app's tasks re-rendered from the change alone (as an event
    tells it) against the 5 ms aim and as a ratio of the full warm render, and from the whole
    fetched list (as a refresh sees it);
  * a scale storm: --storm-events scale-ups/downs over --storm-apps apps (plus two app
    creations), applied in debounced batches as the watch loop would: reloads vs runtime updates.

HAProxy runs on 127.0.0.1 free ports in a temporary directory and is stopped by its pid.
Usage: python bench/haproxy_render.py [--apps 200] [--rounds 15] [--render-apps 5000]
                                      [--storm-apps 50] [--storm-events 300] [--batch 5] [--render-only]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haproxy_bridge.incremental import IncrementalRenderer  # noqa: E402
from haproxy_bridge.model import build_model  # noqa: E402
from haproxy_bridge.options import BridgeOptions  # noqa: E402
from haproxy_bridge.outcomes import Reloaded, ServersUpdated, Started  # noqa: E402
from haproxy_bridge.render import RenderSettings, render_haproxy_config  # noqa: E402
from haproxy_bridge.service import HaproxyBridge  # noqa: E402
from tests.haproxy_support import HAPROXY, free_port  # noqa: E402


def make_app(i: int, service_port: int, tasks: int, *, vhost: bool = True, gen: int = 0) -> dict[str, Any]:
    labels = {"HAPROXY_GROUP": "external"}
    if vhost:
        labels["HAPROXY_0_VHOST"] = f"app{i}.example.com"
    return {"id": f"/team{i % 20}/app{i}", "labels": labels, "portDefinitions": [{"port": service_port}],
            "networks": [{"mode": "host"}],
            "tasks": [{"id": f"team{i % 20}_app{i}.instance-{gen}-{k}._app.1", "host": "agent-1",
                       "ports": [20000 + (i * 7 + k + gen * 3) % 40000], "state": "TASK_RUNNING",
                       "ipAddresses": [{"ipAddress": "127.0.0.1"}], "healthCheckResults": []} for k in range(tasks)]}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def reload_vs_runtime(n_apps: int, rounds: int, workdir: Path) -> None:
    opts = BridgeOptions(master=f"http://127.0.0.1:{free_port()}", config_dir=workdir / "reload",
                         http_port=free_port(), https_port=free_port(), stats_port=free_port(),
                         haproxy_bin=HAPROXY, debounce_seconds=0.001)
    bridge = HaproxyBridge(opts)
    apps = [make_app(i, free_port(), 4) for i in range(n_apps)]
    try:
        await bridge.start()
        outcome = (await bridge.apply(apps)).outcome
        assert isinstance(outcome, (Reloaded, Started)), outcome
        runtime, reload, runtime_haproxy, reload_haproxy = [], [], [], []
        for r in range(rounds):
            k = r % n_apps
            fresh = make_app(k, apps[k]["portDefinitions"][0]["port"], 4, gen=r + 1)   # every task replaced
            apps[k] = {**apps[k], "tasks": fresh["tasks"]}
            started = time.perf_counter()
            outcome = (await bridge.apply(apps)).outcome
            runtime.append(time.perf_counter() - started)
            assert isinstance(outcome, ServersUpdated), outcome
            runtime_haproxy.append(outcome.runtime_seconds)
            apps[k] = copy.deepcopy(apps[k])
            labels = apps[k]["labels"]
            labels["HAPROXY_0_BALANCE"] = "source" if labels.get("HAPROXY_0_BALANCE") == "leastconn" else "leastconn"
            started = time.perf_counter()
            reloaded = (await bridge.apply(apps)).outcome
            reload.append(time.perf_counter() - started)
            assert isinstance(reloaded, Reloaded), reloaded
            reload_haproxy.append(reloaded.reload_seconds)
        rt, rl = statistics.median(runtime), statistics.median(reload)
        print(f"apply a server change, {n_apps} apps x 4 tasks, median of {rounds}:")
        print(f"  Runtime API (4 servers added, 4 drained, no reload): {ms(rt)}")
        print(f"  full reload (haproxy -c + reload + new worker up):   {ms(rl)}")
        print(f"  ratio reload / runtime: {rl / rt:.1f}x   (counters: {bridge.state.counters.reloads} reloads, "
              f"{bridge.state.counters.runtime_updates} runtime updates, "
              f"{bridge.state.counters.runtime_commands} commands)")
        hr, hl = statistics.median(runtime_haproxy), statistics.median(reload_haproxy)
        print(f"  HAProxy's part alone: 12 Runtime API commands {ms(hr)} vs reload until the new worker is up "
              f"{ms(hl)} ({hl / hr:.1f}x); the rest is fetch-free build + render of all {n_apps} apps")
    finally:
        await bridge.close()


def render_at_scale(n_apps: int) -> None:
    apps = []
    for i in range(n_apps):
        app = make_app(i, 10000 + i, 4, vhost=i % 2 == 0)
        if i % 3 == 0:
            app["healthChecks"] = [{"protocol": "HTTP", "path": "/health", "portIndex": 0}]
            for t in app["tasks"]:
                t["healthCheckResults"] = [{"alive": True}]
        apps.append(app)
    settings = RenderSettings()
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        model = build_model(apps, "*")
        built = time.perf_counter()
        text = render_haproxy_config(model, settings)
        timings.append((built - started, time.perf_counter() - built))
    cold = sum(timings[0])
    warm = min(sum(t) for t in timings[1:])
    build_ms, render_ms = min(t[0] for t in timings[1:]), min(t[1] for t in timings[1:])
    print(f"render {n_apps} apps x 4 tasks ({text.count(chr(10))} config lines):")
    print(f"  cold {ms(cold)}, warm {ms(warm)} (build_model {ms(build_ms)} + render {ms(render_ms)}); "
          f"aim 250 ms: {'met' if warm <= 0.25 else 'NOT met'} warm, {'met' if cold <= 0.25 else 'not met'} cold")
    incremental_at_scale(apps, settings, text, warm)


def incremental_at_scale(apps: list[dict[str, Any]], settings: RenderSettings, full_text: str, full_warm: float,
                         rounds: int = 21) -> None:
    """The bridge's renderer: one app's tasks replaced, re-rendered from the change and from the list."""
    renderer = IncrementalRenderer(settings)
    started = time.perf_counter()
    first = renderer.render(apps)
    first_s = time.perf_counter() - started
    assert first.text == full_text
    started = time.perf_counter()
    renderer.render(apps)
    unchanged_s = time.perf_counter() - started
    by_event, by_list = [], []
    sections_before = renderer.stats.sections_rendered
    for r in range(rounds):
        k = (r * 37) % len(apps)
        fresh = make_app(k, apps[k]["portDefinitions"][0]["port"], 4, gen=r + 1)
        apps[k] = {**apps[k], "tasks": fresh["tasks"]}
        started = time.perf_counter()
        renderer.update([apps[k]])
        by_event.append(time.perf_counter() - started)
        k2 = (r * 53 + 11) % len(apps)
        fresh = make_app(k2, apps[k2]["portDefinitions"][0]["port"], 4, gen=r + 1)
        apps[k2] = {**apps[k2], "tasks": fresh["tasks"]}
        started = time.perf_counter()
        last = renderer.render(apps)
        by_list.append(time.perf_counter() - started)
    assert last.text == render_haproxy_config(build_model(apps, "*"), settings), "incremental != full render"
    sections = renderer.stats.sections_rendered - sections_before
    event, listed = statistics.median(by_event), statistics.median(by_list)
    print(f"incremental render (the bridge's), {len(apps)} apps, one app's tasks replaced, median of {rounds}:")
    print(f"  from the change alone: {ms(event)} (max {ms(max(by_event))}); aim 5 ms: "
          f"{'met' if event <= 0.005 else 'NOT met'}; {full_warm / event:.0f}x faster than the full warm render")
    print(f"  from the whole fetched list: {ms(listed)} ({full_warm / listed:.1f}x faster than the full render); "
          f"unchanged list {ms(unchanged_s)}; first render {ms(first_s)}")
    print(f"  sections rendered for {2 * rounds} one-app changes: {sections}; "
          f"byte-identical to the full render: yes")


async def scale_storm(n_apps: int, events: int, batch: int, workdir: Path) -> None:
    opts = BridgeOptions(master=f"http://127.0.0.1:{free_port()}", config_dir=workdir / "storm",
                         http_port=free_port(), https_port=free_port(), stats_port=free_port(),
                         haproxy_bin=HAPROXY, drain_seconds=0.5, debounce_seconds=0.001)
    bridge = HaproxyBridge(opts)
    rng = random.Random(7)
    sizes = [4] * n_apps
    ports = [free_port() for _ in range(n_apps + 2)]
    gens = [0] * n_apps

    def apps_now(extra: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n_apps):
            app = make_app(i, ports[i], 0)
            app["tasks"] = [make_app(i, ports[i], 1, gen=g)["tasks"][0] | {"id": f"app{i}.instance-{g}._app.1"}
                            for g in range(gens[i] - sizes[i], gens[i])] if sizes[i] else []
            out.append(app)
        return out + [make_app(n_apps + j, ports[n_apps + j], 2) for j in range(extra)]

    try:
        await bridge.start()
        gens = [4] * n_apps
        await bridge.apply(apps_now(0))
        base = dataclasses.replace(bridge.state.counters)
        extra = 0
        started = time.perf_counter()
        for e in range(events):
            i = rng.randrange(n_apps)
            if rng.random() < 0.5 or sizes[i] == 0:
                sizes[i] += 1
                gens[i] += 1
            else:
                sizes[i] -= 1
            if e in (events // 3, 2 * events // 3):
                extra += 1          # a new app: a new frontend, the only thing that needs a reload
            if (e + 1) % batch == 0 or e == events - 1:
                await bridge.apply(apps_now(extra))
        took = time.perf_counter() - started
        c = bridge.state.counters
        print(f"scale storm: {events} scale events over {n_apps} apps + 2 new apps, applied in batches of {batch} "
              f"({took:.1f} s):")
        print(f"  {c.reloads - base.reloads} reloads, {c.runtime_updates - base.runtime_updates} "
              f"Runtime API updates ({c.runtime_commands - base.runtime_commands} commands), "
              f"{c.failed_reloads} failed reloads")
    finally:
        await bridge.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--render-apps", type=int, default=5000)
    parser.add_argument("--storm-apps", type=int, default=50)
    parser.add_argument("--storm-events", type=int, default=300)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--render-only", action="store_true", help="only the rendering figures (no HAProxy)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.render_only:
        render_at_scale(args.render_apps)
        return
    with tempfile.TemporaryDirectory(prefix="pacer-hx-bench-") as tmp:
        await reload_vs_runtime(args.apps, args.rounds, Path(tmp))
        render_at_scale(args.render_apps)
        await scale_storm(args.storm_apps, args.storm_events, args.batch, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
