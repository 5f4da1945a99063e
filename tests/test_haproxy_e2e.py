"""End to end: a real `pacer serve` running real backend processes, the bridge following it
through /v2/events (or polling), and a real master-worker HAProxy, all on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from .haproxy_support import (BridgeThread, LoadLoop, backend_cmd, bridge_options, free_port, get, needs_haproxy,
                              running_bridge, wait_for)
from .support import PacerServer

pytestmark = [pytest.mark.timeout(150), needs_haproxy]

HEALTH = [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "timeoutSeconds": 2,
           "gracePeriodSeconds": 10, "maxConsecutiveFailures": 3}]


def app_def(app_id: str, instances: int, labels: dict[str, str], *, service_port: int | None = None,
            health: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": app_id, "cmd": backend_cmd(), "instances": instances, "cpus": 0.01, "mem": 64,
                            "labels": labels, "portDefinitions": [{"port": service_port or free_port(), "name": "http"}]}
    if health:
        body["healthChecks"] = HEALTH
    return body


def post(pacer: PacerServer, body: dict[str, Any]) -> None:
    status, resp, _ = pacer.request("POST", "/v2/apps", body)
    assert status == 201, resp


def healthy(pacer: PacerServer, app_id: str, n: int) -> bool:
    tasks = pacer.running(app_id)
    return len(tasks) == n and all(t["healthCheckResults"] and t["healthCheckResults"][0]["alive"] for t in tasks)


def servers(bt: BridgeThread, backend: str) -> dict[str, str]:
    """server name -> admin state column of `show servers state` (0 = ready, 8 = drain...)."""
    out = bt.runtime(f"show servers state {backend}")
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    return {r[3]: r[6] for r in rows}


@pytest.fixture
def bridge_dir(tmp_path: Path) -> Path:
    return tmp_path / "hx"


def test_routes_follow_the_cluster(pacer: PacerServer, bridge_dir: Path) -> None:
    sp_tcp, sp_alpha, sp_evil = free_port(), free_port(), free_port()
    post(pacer, app_def("/alpha", 2, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "alpha.example.com"},
                        service_port=sp_alpha))
    post(pacer, app_def("/beta", 1, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "beta.example.com"}))
    post(pacer, app_def("/svc", 1, {"HAPROXY_GROUP": "external"}, service_port=sp_tcp, health=False))
    post(pacer, app_def("/sticky", 3, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "sticky.example.com",
                                       "HAPROXY_0_STICKY": "true"}))
    post(pacer, app_def("/evil", 1, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "evil.example.com\n  bind :22"},
                        service_port=sp_evil, health=False))
    post(pacer, app_def("/internal", 1, {"HAPROXY_GROUP": "internal"}, health=False))
    post(pacer, app_def("/badcert", 1, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "badcert.example.com",
                                        "HAPROXY_0_SSL_CERT": "/nonexistent/pacer-test.pem"}, health=False))
    for app_id, n in (("/alpha", 2), ("/beta", 1), ("/sticky", 3)):
        wait_for(lambda: healthy(pacer, app_id, n), 20, f"{app_id} healthy")

    opts = bridge_options(bridge_dir, pacer.url, group="external", status_port=free_port())
    with running_bridge(opts, status=True) as bt:
        http = f"http://127.0.0.1:{opts.http_port}/"
        # two vhosts through one port, by Host header
        wait_for(lambda: get(http, host="alpha.example.com")[1].startswith("name=alpha."), 10, "alpha routed")
        assert get(http, host="beta.example.com")[1].startswith("name=beta.")
        assert get(http, host="ALPHA.example.com:80")[1].startswith("name=alpha.")
        assert get(http, host="nobody.example.com")[0] == 503
        # a service-port app on its service port
        wait_for(lambda: get(f"http://127.0.0.1:{sp_tcp}/")[1].startswith("name=svc."), 10, "svc on its port")
        # sticky: a client with the cookie stays on one instance; without it, it moves
        status, body, headers = get(http, host="sticky.example.com")
        cookie = headers["set-cookie"].split(";")[0]
        first = body.split(" ")[0]
        assert {get(http, host="sticky.example.com", headers={"Cookie": cookie})[1].split(" ")[0]
                for _ in range(9)} == {first}
        assert len({get(http, host="sticky.example.com")[1].split(" ")[0] for _ in range(9)}) == 3
        # the malicious label: rejected with its reason, its port never bound, nobody else hurt
        status_view = json.loads(get(f"http://127.0.0.1:{opts.stats_port}/v2/haproxy")[1])
        verdicts = {a["id"]: a for a in status_view["apps"]}
        assert verdicts["/evil"]["state"] == "rejected" and "newline" in verdicts["/evil"]["reasons"][0]
        assert verdicts["/internal"]["state"] == "skipped"
        assert status_view["stream"]["mode"] == "sse", status_view["stream"]     # following Pacer's /v2/events
        # valid labels, but a config HAProxy refuses: found by `haproxy -c`, narrowed to the app
        assert verdicts["/badcert"]["state"] == "rejected"
        assert "haproxy -c rejected" in verdicts["/badcert"]["reasons"][0]
        assert status_view["counters"]["failedReloads"] == 0 and status_view["lastReload"]["ok"]
        assert "/nonexistent/" not in bt.bridge.state.live_config
        assert all(verdicts[a]["state"] == "included" for a in ("/alpha", "/beta", "/svc", "/sticky"))
        # never bound for the evil app (probing the port itself would race with other free_port() picks)
        assert f":{sp_evil}" not in bt.bridge.state.live_config
        assert not re.search(r":22(?!\d)", bt.bridge.state.live_config)    # port 22, not e.g. 22951

        # a task killed is gone from the backend within 2 s
        backend = f"alpha_{sp_alpha}"
        victim = pacer.running("/alpha")[0]["id"]
        assert victim.replace("/", "_") in servers(bt, backend)
        killed_at = time.monotonic()
        status, resp, _ = pacer.request("DELETE", f"/v2/apps/alpha/tasks/{victim}")
        assert status == 200, resp
        wait_for(lambda: victim not in servers(bt, backend), 2.0, "the killed task to leave the backend")
        took = time.monotonic() - killed_at
        assert took < 2.0
        # ...and its replacement joins once Pacer sees it healthy, without a reload
        reloads = bt.status()["counters"]["reloads"]
        wait_for(lambda: len(servers(bt, backend)) == 2, 20, "the replacement to join")
        assert bt.status()["counters"]["reloads"] == reloads
        assert {get(http, host="alpha.example.com")[1].split(" ")[0] for _ in range(6)} == \
            {f"name={t['id']}" for t in pacer.running("/alpha")}


def test_zero_failed_requests_through_a_rolling_restart_and_20_reloads(pacer: PacerServer, bridge_dir: Path) -> None:
    sp = free_port()
    post(pacer, app_def("/roll", 4, {"HAPROXY_0_VHOST": "roll.example.com"}, service_port=sp))
    wait_for(lambda: healthy(pacer, "/roll", 4), 20, "/roll healthy")
    old = {t["id"] for t in pacer.running("/roll")}
    opts = bridge_options(bridge_dir, pacer.url, debounce_seconds=0.5)    # the default reload spacing
    with running_bridge(opts) as bt:
        wait_for(lambda: get(f"http://127.0.0.1:{sp}/")[0] == 200, 10, "/roll routed")
        start = bt.status()["counters"]
        with LoadLoop(f"http://127.0.0.1:{sp}/", threads=2, max_seconds=60) as direct, \
                LoadLoop(f"http://127.0.0.1:{opts.http_port}/", threads=2, host="roll.example.com",
                         max_seconds=60) as vhost:
            status, resp, _ = pacer.request("POST", "/v2/apps/roll/restart", {})
            assert status == 200, resp
            for i in range(20):     # each new or deleted app is a new frontend: a reload
                if i % 2 == 0:
                    post(pacer, app_def(f"/extra{i}", 0, {"HAPROXY_0_VHOST": f"extra{i}.example.com"}, health=False))
                else:
                    assert pacer.request("DELETE", f"/v2/apps/extra{i - 1}")[0] == 200
                wait_for(lambda: bt.status()["counters"]["reloads"] >= start["reloads"] + i + 1, 10, f"reload {i}")
            wait_for(lambda: healthy(pacer, "/roll", 4) and not ({t["id"] for t in pacer.running("/roll")} & old)
                     and pacer.get("/v2/deployments")[1] == [], 30, "the rolling restart to finish")
            new = {t["id"] for t in pacer.running("/roll")}
            wait_for(lambda: set(servers(bt, f"roll_{sp}")) == new, 5, "the backend to hold the new tasks only")
            time.sleep(0.5)
            results = [direct.stop(), vhost.stop()]
        counters = bt.status()["counters"]
    # (the restart's server changes mostly ride along with these reloads; runtime-only changes are
    # covered by test_routes_follow_the_cluster and test_haproxy_process)
    assert counters["reloads"] - start["reloads"] >= 20 and counters["failedReloads"] == 0
    for r in results:
        assert r.failures == [], f"{len(r.failures)} failed of {r.ok + len(r.failures)}: {r.failures[:5]}"
        assert r.ok > 100
    print(f"requests: {[r.ok for r in results]} ok, 0 failed; reloads {counters['reloads'] - start['reloads']}")
    seen = set(results[0].seen) | set(results[1].seen)
    assert {f"name={t}" for t in old} <= seen and {f"name={t}" for t in new} <= seen


def test_a_later_app_cannot_take_a_vhost_from_pacer_apps(pacer: PacerServer, bridge_dir: Path) -> None:
    """With Pacer's own `versionInfo`: the app posted later loses the vhost, whatever its weight
    or id, and keeps losing it after the owner is redeployed (a newer config than the thief's)."""
    post(pacer, app_def("/victim", 1, {"HAPROXY_0_VHOST": "victim.example.com"}, health=False))
    wait_for(lambda: len(pacer.running("/victim")) == 1, 20, "/victim running")
    opts = bridge_options(bridge_dir, pacer.url, status_port=free_port())
    with running_bridge(opts) as bt:
        http = f"http://127.0.0.1:{opts.http_port}/"
        wait_for(lambda: get(http, host="victim.example.com")[1].startswith("name=victim."), 10, "victim routed")
        post(pacer, app_def("/a-thief", 1, {"HAPROXY_0_VHOST": "victim.example.com",
                                            "HAPROXY_0_BACKEND_WEIGHT": "1000"}, health=False))
        wait_for(lambda: {a["id"]: a["state"] for a in bt.status()["apps"]}.get("/a-thief") == "rejected", 20,
                 "the thief to be left out")
        status, resp, _ = pacer.request("PUT", "/v2/apps/victim", {"env": {"REDEPLOYED": "1"}})
        assert status == 200, resp
        wait_for(lambda: pacer.get("/v2/deployments")[1] == [], 30, "the victim's redeployment")
        assert {get(http, host="victim.example.com")[1].split(" ")[0].split(".")[0] for _ in range(8)} \
            == {"name=victim"}
        verdicts = {a["id"]: a for a in bt.status()["apps"]}
        assert verdicts["/victim"]["state"] == "included"
        assert not any("vhost" in w for w in verdicts["/victim"]["warnings"]), verdicts["/victim"]
        assert "belongs to /victim" in verdicts["/a-thief"]["reasons"][0]
