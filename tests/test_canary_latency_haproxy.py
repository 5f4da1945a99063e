"""A canary's p95 from a real HAProxy's request log: the config the bridge renders for a
latency-judged canary, HAProxy 2.6 in front of a fast stable server and a canary answering after
200 ms, real requests through the app's service port and through the shared vhost frontend (which
also routes another app), and `pacer serve`'s reader on the socket HAProxy logs to.

What it shows on the real thing: the backend's `http-request set-log-level info` wins over the
frontend's `silent` (backend rules run after the frontend's), so every request of the canary app
is logged and none of the other app's, through the shared frontend too; and the per-version p95
of the logged `%Tr` tells the slow canary from the fast stable version."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from haproxy_bridge.model import build_model
from haproxy_bridge.render import RenderSettings, render_haproxy_config
from pacer.request_log import RequestLog
from scheduler.canary import percentile_by_version

from .haproxy_support import HAPROXY, get, needs_haproxy, wait_for
from .support import answering_server, free_port, stop_process
from .test_haproxy_render import app, task

pytestmark = needs_haproxy

SLOW_SECONDS = 0.2


@pytest.fixture
def canary_haproxy() -> Iterator[dict[str, Any]]:
    """HAProxy on the bridge's config for /shop (stable fast, canary slow, weights 1:1, a
    maxLatencyP95Ratio) and /blog (fast, no canary), both on one vhost frontend."""
    run = Path(tempfile.mkdtemp(prefix="p95-", dir="/tmp"))     # short: unix socket paths are limited
    servers = {name: answering_server(name.encode(), delay=delay) for name, delay in
               (("stable", 0.0), ("canary", SLOW_SECONDS), ("blog", 0.0))}
    shop_port, blog_port, http_port = free_port(), free_port(), free_port()
    strategy = {"canary": {"instances": 1, "steps": [{"setWeight": 50}],
                           "analysis": {"intervalSeconds": 2, "maxLatencyP95Ratio": 1.5}}}
    traffic = {"percent": 50, "canaryTasks": ["shop.2"], "canaryWeight": 1, "stableWeight": 1}
    apps = [app("/shop", [shop_port], {"HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "shop.test"},
                [task("shop.1", servers["stable"][1]), task("shop.2", servers["canary"][1])],
                upgradeStrategy=strategy, canaryTraffic=traffic),
            app("/blog", [blog_port], {"HAPROXY_0_VHOST": "blog.test"}, [task("blog.1", servers["blog"][1])])]
    settings = RenderSettings(http_port=http_port, https_port=free_port(), stats_port=free_port(), apps_port=None,
                              admin_socket=str(run / "admin.sock"), request_log=str(run / "reqlog.sock"))
    cfg = run / "haproxy.cfg"
    cfg.write_text(render_haproxy_config(build_model(apps), settings))
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{blog_port}/")[1] == "blog", 10, "haproxy to serve /blog")
        yield {"run": run, "shop": shop_port, "blog": blog_port, "http": http_port,
               "versions": {f"shop_{shop_port}/shop.1": "stable", f"shop_{shop_port}/shop.2": "canary"}}
    finally:
        stop_process(proc, 5)
        for server, _ in servers.values():
            server.shutdown()
            server.server_close()
        shutil.rmtree(run, ignore_errors=True)


def _requests(h: dict[str, Any], rounds: int) -> dict[str, int]:
    """Per round: two to /shop on its port, two to /shop and one to /blog through the vhost
    frontend, one to /blog on its port. Answers counted by who gave them."""
    seen: dict[str, int] = {}
    for _ in range(rounds):
        for url, host in ((f"http://127.0.0.1:{h['shop']}/", None), (f"http://127.0.0.1:{h['shop']}/", None),
                          (f"http://127.0.0.1:{h['http']}/", "shop.test"), (f"http://127.0.0.1:{h['http']}/", "shop.test"),
                          (f"http://127.0.0.1:{h['http']}/", "blog.test"), (f"http://127.0.0.1:{h['blog']}/", None)):
            status, body, _ = get(url, host=host)
            assert status == 200, (url, host, status, body)
            seen[body] = seen.get(body, 0) + 1
    return seen


@pytest.mark.timeout(90)
async def test_the_log_carries_every_canary_request_and_its_p95_shows_the_slow_version(
        canary_haproxy: dict[str, Any]) -> None:
    h = canary_haproxy
    reader = RequestLog(h["run"] / "reqlog.sock")
    receiving = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.bound.wait(), 5)
        mark = reader.now()
        seen = await asyncio.to_thread(_requests, h, 10)
        assert seen == {"stable": 20, "canary": 20, "blog": 20}, seen       # roundrobin 1:1, and /blog
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while reader.received < 40 and loop.time() < deadline:              # datagrams trail the answers
            await asyncio.sleep(0.02)
        samples = reader.samples_between(mark, reader.now())
    finally:
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
    assert (reader.received, reader.bad) == (40, 0), (reader.received, reader.bad)
    by_key: dict[str, int] = {}
    for key, _ in samples:
        by_key[key] = by_key.get(key, 0) + 1
    assert by_key == {key: 20 for key in h["versions"]}, by_key             # /blog's requests: not one logged
    p95 = percentile_by_version(samples, h["versions"])
    assert p95["canary"] >= 0.75 * SLOW_SECONDS * 1000, p95
    assert p95["stable"] < 50, p95
    print(f"\np95 %Tr from HAProxy's log: stable {p95['stable']:.1f} ms, canary {p95['canary']:.1f} ms")
