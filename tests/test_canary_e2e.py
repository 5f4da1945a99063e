"""A canary release end to end: a real `pacer serve` with its embedded HAProxy bridge, two
versions of a small HTTP server, real requests through HAProxy counted by the version that
answered them, then a promote to the full roll."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from haproxy_bridge.servers import server_name

from .haproxy_support import needs_haproxy
from .support import EventRecorder, free_port, wait_until

pytestmark = needs_haproxy


def fetch(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


def site(tmp_path: Path, version: str) -> Path:
    root = tmp_path / version
    root.mkdir()
    (root / "index.html").write_text(version)
    return root


def shop(root: Path, service_port: int) -> dict[str, Any]:
    return {"id": "/shop", "cmd": f"exec python3 -m http.server --bind 127.0.0.1 --directory {root} $PORT0",
            "instances": 2, "cpus": 0.05, "mem": 32, "portDefinitions": [{"port": service_port}],
            "labels": {"HAPROXY_GROUP": "external"},
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
                                "canary": {"instances": 1, "steps": [{"setWeight": 10}, {"pause": {}},
                                                                     {"setWeight": 50}, {"pause": {}}]}}}


def measured_share(port: int, requests: int = 200) -> float:
    """Percent of `requests` sequential requests through HAProxy that the new version answered."""
    answers = Counter(fetch(port) for _ in range(requests))
    assert answers[None] == 0, answers                             # none failed on the way
    return 100 * answers["v2"] / requests


def test_a_canary_gets_its_weight_of_real_requests_at_each_step_then_is_promoted(pacer_factory, tmp_path: Path) -> None:
    http_port, stats_port = free_port(), free_port()
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                           "--haproxy-http-port", str(http_port), "--haproxy-https-port", str(free_port()),
                           "--haproxy-stats-port", str(stats_port), "--haproxy-apps-port", str(free_port()))
    service_port = free_port()
    v1, v2 = site(tmp_path, "v1"), site(tmp_path, "v2")
    status, body, _ = server.request("POST", "/v2/apps", shop(v1, service_port))
    assert status == 201, body
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(service_port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")
    reloads = server.get("/v2/haproxy")[1]["counters"]["reloads"]

    status, body, headers = server.request("PUT", "/v2/apps/shop", shop(v2, service_port))
    assert status == 200, body
    deployment = body["deploymentId"]

    def canary() -> dict[str, Any] | None:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        return rows[0].get("canary") if rows else None

    def weights_applied(stable: int, new: int) -> bool:
        config = server.get("/v2/haproxy/config")[1]
        return config.count(f" weight {stable}") == 2 and config.count(f" weight {new}") == 1

    wait_until(lambda: (canary() or {}).get("weight") == 10, timeout=60, what="the canary to reach its 10% step")
    wait_until(lambda: weights_applied(9, 2), timeout=30, what="the 10% weights to reach HAProxy")
    wait_until(lambda: fetch(service_port) == "v2", timeout=60, what="the canary to answer through HAProxy")
    shares = {10: measured_share(service_port)}

    status, body, _ = server.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "next"})
    assert status == 200 and body["canary"]["weight"] == 50, body
    block = canary()
    assert block is not None and block["waitingForPromotion"] is True and block["app"] == "/shop"
    app = server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]
    assert app["canaryTraffic"]["percent"] == 50 and len(app["canaryTraffic"]["canaryTasks"]) == 1
    assert len(app["tasks"]) == 3                                  # two stable, one canary beside them
    wait_until(lambda: weights_applied(1, 2), timeout=30, what="the 50% weights to reach HAProxy")
    shares[50] = measured_share(service_port)
    assert all(abs(share - weight) <= 5 for weight, share in shares.items()), shares
    assert server.get("/v2/haproxy")[1]["counters"]["reloads"] == reloads     # weights went through the Runtime API

    status, body, _ = server.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "full"})
    assert status == 200, body
    assert body["canary"]["phase"] == "promoted"
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=90, what="the full roll to finish")
    assert "canaryTraffic" not in server.get("/v2/apps/shop")[1]["app"]
    wait_until(lambda: len(server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]) == 2, timeout=60,
               what="the stable instances to be drained and gone")
    wait_until(lambda: " weight " not in server.get("/v2/haproxy/config")[1], timeout=30,
               what="the weights to be cleared from the HAProxy config")
    assert Counter(fetch(service_port) for _ in range(30)) == Counter({"v2": 30})


FAILING_SERVER = '''
import http.server, sys
class Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"bad")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Failing).serve_forever()
'''


def fetch_status(port: int) -> int | str:
    """The answer's body for a 200, its status otherwise (0: no answer at all)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def analysed(cmd: str, service_port: int, pause: int) -> dict[str, Any]:
    app = shop(Path("/"), service_port)
    app["cmd"] = cmd
    app["labels"]["HAPROXY_0_MODE"] = "http"       # HAProxy counts HTTP statuses in http mode only
    app["upgradeStrategy"]["canary"] = {
        "instances": 1, "steps": [{"setWeight": 50}, {"pause": {"seconds": pause}}],
        "analysis": {"intervalSeconds": 2, "minRequests": 10, "maxErrorRate": 0.05, "failureLimit": 1}}
    return app


def serve_with_bridge(pacer_factory: Any) -> Any:
    return pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                         "--haproxy-http-port", str(free_port()), "--haproxy-https-port", str(free_port()),
                         "--haproxy-stats-port", str(free_port()), "--haproxy-apps-port", str(free_port()))


def traffic_until(server: Any, port: int, done: Any, *, limit: float = 60.0) -> Counter[Any]:
    """Requests through HAProxy, one after another, until `done()` (bounded in time)."""
    seen: Counter[Any] = Counter()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for _ in range(20):
            seen[fetch_status(port)] += 1
        if done():
            return seen
    raise AssertionError(f"not done after {limit}s of traffic: {seen}; {server.get('/v2/deployments')[1]}")


def test_a_failing_canary_is_aborted_by_its_analysis_and_the_app_rolls_back(pacer_factory, tmp_path: Path) -> None:
    server = serve_with_bridge(pacer_factory)
    port = free_port()
    v1 = site(tmp_path, "v1")
    good = f"exec python3 -m http.server --bind 127.0.0.1 --directory {v1} $PORT0"
    assert server.request("POST", "/v2/apps", analysed(good, port, 600))[0] == 201
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")
    script = tmp_path / "failing.py"
    script.write_text(FAILING_SERVER)
    status, body, _ = server.request("PUT", "/v2/apps/shop", analysed(f"exec python3 {script} $PORT0", port, 600))
    assert status == 200, body
    seen = traffic_until(server, port, lambda: server.get("/v2/deployments")[1] == [])
    assert seen[500] > 0, seen                                   # the canary did get its share, and failed it
    assert set(seen) <= {"v1", 500}, seen                        # no request failed on the way (502, 503, reset)
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == good and "canaryTraffic" not in app       # the stable version is back
    wait_until(lambda: len(server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]) == 2, timeout=60,
               what="the canary instance to be gone")
    assert Counter(fetch_status(port) for _ in range(40)) == Counter({"v1": 40})


def test_a_good_canary_passes_its_analysis_and_rolls_on_by_itself(pacer_factory, tmp_path: Path) -> None:
    server = serve_with_bridge(pacer_factory)
    port = free_port()
    v1, v2 = site(tmp_path, "v1"), site(tmp_path, "v2")
    cmd = "exec python3 -m http.server --bind 127.0.0.1 --directory {} $PORT0"
    assert server.request("POST", "/v2/apps", analysed(cmd.format(v1), port, 3))[0] == 201
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")
    assert server.request("PUT", "/v2/apps/shop", analysed(cmd.format(v2), port, 3))[0] == 200
    seen = traffic_until(server, port, lambda: server.get("/v2/deployments")[1] == [])
    assert seen["v2"] > 0 and not {k for k in seen if isinstance(k, int)}, seen     # no failed request
    assert server.get("/v2/apps/shop")[1]["app"]["cmd"] == cmd.format(v2)


FLAKY_SERVER = '''
import http.server, sys, threading
lock, served = threading.Lock(), [0]
class Flaky(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            served[0] += 1
            status = 500 if served[0] % 5 == 0 else 200
        self.send_response(status); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"v2")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Flaky).serve_forever()
'''


def answer(port: int) -> tuple[int, str]:
    """``(status, body)`` of one request through HAProxy; ``(0, "")`` when none came back."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()
    except OSError:
        return 0, ""


def stats_servers(stats_port: int) -> dict[str, tuple[int, str]]:
    """``(runtime weight, status)`` of every server of the app's backends, from HAProxy's own stats page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/haproxy?stats;csv", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {r["svname"]: (int(r["weight"]), r["status"]) for r in rows
            if r["pxname"] != "pacer_stats" and r["svname"] not in ("FRONTEND", "BACKEND")}


def stats_weights(stats_port: int) -> dict[str, int]:
    return {name: weight for name, (weight, _) in stats_servers(stats_port).items()}


def steps_app(cmd: str, service_port: int, steps: list[dict[str, Any]], analysis: dict[str, Any]) -> dict[str, Any]:
    app = shop(Path("/"), service_port)
    app["cmd"] = cmd
    app["labels"]["HAPROXY_0_MODE"] = "http"
    app["upgradeStrategy"]["canary"] = {"instances": 1, "steps": steps, "analysis": analysis}
    return app


def serve_with_stats(pacer_factory: Any) -> tuple[Any, int]:
    stats_port = free_port()
    return pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                         "--haproxy-http-port", str(free_port()), "--haproxy-https-port", str(free_port()),
                         "--haproxy-stats-port", str(stats_port), "--haproxy-apps-port", str(free_port())), stats_port


def test_a_canary_failing_a_fifth_of_its_requests_is_aborted_and_stable_clients_see_no_failure(
        pacer_factory, tmp_path: Path) -> None:
    server, _ = serve_with_stats(pacer_factory)
    port = free_port()
    good = f"exec python3 -m http.server --bind 127.0.0.1 --directory {site(tmp_path, 'v1')} $PORT0"
    analysis = {"intervalSeconds": 2, "minRequests": 20, "maxErrorRate": 0.05, "failureLimit": 2}
    steps = [{"setWeight": 30}, {"pause": {"seconds": 600}}]
    assert server.request("POST", "/v2/apps", steps_app(good, port, steps, analysis))[0] == 201
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_SERVER)
    events = EventRecorder(server.url, "canary_aborted_event")
    status, body, _ = server.request("PUT", "/v2/apps/shop", steps_app(f"exec python3 {script} $PORT0", port, steps,
                                                                      analysis))
    assert status == 200, body
    deployment = body["deploymentId"]
    seen: Counter[tuple[int, str]] = Counter()
    deadline = time.monotonic() + 120
    while server.get("/v2/deployments")[1] != [] and time.monotonic() < deadline:
        seen.update(answer(port) for _ in range(20))
    assert server.get("/v2/deployments")[1] == [], seen
    canary_ok, canary_failed = seen[(200, "v2")], seen[(500, "v2")]
    assert canary_failed > 0 and canary_ok > 0, seen                 # the canary got its share and failed a part
    assert set(seen) <= {(200, "v1"), (200, "v2"), (500, "v2")}, seen   # stable answered every request it got
    wait_until(lambda: events.of_type("canary_aborted_event"), timeout=30, what="the canary_aborted_event")
    events.close()
    (aborted,) = events.of_type("canary_aborted_event")
    assert aborted["id"] == deployment and "maxErrorRate" in aborted["reason"], aborted
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == good and "canaryTraffic" not in app
    wait_until(lambda: len(server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]) == 2, timeout=60,
               what="the canary instance to be gone")
    after = Counter(answer(port) for _ in range(100))
    assert after == Counter({(200, "v1"): 100}), after
    print(f"\nflaky canary {deployment}: stable 200s {seen[(200, 'v1')]}, canary 200s {canary_ok}, "
          f"canary 500s {canary_failed} ({100 * canary_failed / (canary_ok + canary_failed):.1f}%), "
          f"other failures {sum(n for k, n in seen.items() if k[1] not in ('v1', 'v2'))}")


def test_a_good_canary_is_promoted_by_its_analysis_through_every_weight_and_each_share_matches(
        pacer_factory, tmp_path: Path) -> None:
    """Requests are counted for a step only in batches that HAProxy's runtime weights and the
    app's ``canaryTraffic`` did not change around: each step's share is measured at that step."""
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    cmd = "exec python3 -m http.server --bind 127.0.0.1 --directory {} $PORT0"
    v1, v2 = cmd.format(site(tmp_path, "v1")), cmd.format(site(tmp_path, "v2"))
    analysis = {"intervalSeconds": 2, "minRequests": 10, "maxErrorRate": 0.01, "failureLimit": 1}
    steps = [{"setWeight": 20}, {"pause": {"seconds": 4}}, {"setWeight": 50}, {"pause": {"seconds": 4}},
             {"setWeight": 100}, {"pause": {"seconds": 4}}]
    assert server.request("POST", "/v2/apps", steps_app(v1, port, steps, analysis))[0] == 201
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")

    def snapshot() -> tuple[int, tuple[int, ...]] | None:
        """The canary's percent, if HAProxy carries out the weights the app shows for it."""
        traffic = server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"].get("canaryTraffic")
        if traffic is None or len(traffic["canaryTasks"]) != 1:
            return None
        weights = stats_weights(stats_port)
        if len(weights) != 3:
            return None
        wanted = sorted([traffic["stableWeight"]] * 2 + [traffic["canaryWeight"]])
        return (traffic["percent"], tuple(sorted(weights.values()))) if sorted(weights.values()) == wanted else None

    status, body, _ = server.request("PUT", "/v2/apps/shop", steps_app(v2, port, steps, analysis))
    assert status == 200, body
    per_step: dict[int, Counter[tuple[int, str]]] = {}
    everything: Counter[tuple[int, str]] = Counter()
    deadline = time.monotonic() + 180
    while server.get("/v2/deployments")[1] != [] and time.monotonic() < deadline:
        before = snapshot()
        batch = Counter(answer(port) for _ in range(20))
        everything.update(batch)
        if before is not None and snapshot() == before:
            per_step.setdefault(before[0], Counter()).update(batch)
    assert server.get("/v2/deployments")[1] == [], everything
    assert set(everything) <= {(200, "v1"), (200, "v2")}, everything       # no request failed on the way
    shares = {weight: 100 * seen[(200, "v2")] / sum(seen.values()) for weight, seen in sorted(per_step.items())}
    counts = {weight: sum(seen.values()) for weight, seen in sorted(per_step.items())}
    print(f"\nmeasured canary shares by weight: "
          + ", ".join(f"{w}%: {s:.1f}% of {counts[w]}" for w, s in shares.items())
          + f"; failed requests {sum(n for k, n in everything.items() if k[0] != 200)} of {sum(everything.values())}")
    assert {20, 50, 100} <= set(shares), counts
    assert all(counts[w] >= 200 for w in (20, 50, 100)), counts
    assert all(abs(shares[w] - w) <= 5 for w in (20, 50, 100)), shares
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == v2 and "canaryTraffic" not in app
    wait_until(lambda: len(server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]) == 2, timeout=60,
               what="the stable instances to be gone")
    assert Counter(answer(port) for _ in range(50)) == Counter({(200, "v2"): 50})


class Client:
    """One client sending requests through HAProxy one after another, in a thread, recording
    ``(started, ended, status, body)`` of each (wall-clock times, to compare with the API's)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[float, float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            status, body = answer(self.port)
            self.seen.append((started, time.time(), status, body))

    def stop(self) -> list[tuple[float, float, int, str]]:
        self._stop.set()
        self._thread.join(30)
        return list(self.seen)


def test_blue_green_switches_every_request_to_the_new_set_at_once_with_no_failed_request(
        pacer_factory, tmp_path: Path) -> None:
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    cmd = "exec python3 -m http.server --bind 127.0.0.1 --directory {} $PORT0"
    v1, v2 = cmd.format(site(tmp_path, "v1")), cmd.format(site(tmp_path, "v2"))

    def blue_green(command: str) -> dict[str, Any]:
        app = steps_app(command, port, [{"pause": {"seconds": 3}}], {})
        app["upgradeStrategy"]["canary"] = {"blueGreen": True, "steps": [{"pause": {"seconds": 3}}]}
        return app

    assert server.request("POST", "/v2/apps", blue_green(v1))[0] == 201
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == "v1", timeout=60,
               what="/shop v1 to serve through HAProxy")
    old_tasks = {t["id"] for t in server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]}
    reloads = server.get("/v2/haproxy")[1]["counters"]["reloads"]
    client = Client(port)
    status, body, _ = server.request("PUT", "/v2/apps/shop", blue_green(v2))
    assert status == 200, body
    deployment = body["deploymentId"]
    observed: list[tuple[float, dict[str, Any]]] = []

    def switched() -> bool:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        observed.append((time.time(), rows[0]["canary"] if rows else {}))
        return not rows or observed[-1][1].get("switched") is True

    wait_until(switched, timeout=120, what="the blue/green switch")
    healthy_at = min(t for t, block in observed if block.get("phase") == "steps")     # the new set was healthy
    unswitched_at = max(t for t, block in observed if block.get("switched") is False)  # not switched yet
    tasks = server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]
    new_servers = {server_name(t["id"]) for t in tasks if t["id"] not in old_tasks}
    assert len(new_servers) == 2

    def all_on_new() -> bool:
        """Every new server takes requests, no old one does (weight 0, or drained on its way out)."""
        servers = stats_servers(stats_port)
        return new_servers <= set(servers) and all(
            (weight > 0 and not status.startswith(("DRAIN", "MAINT", "DOWN"))) if name in new_servers
            else (weight == 0 or status.startswith(("DRAIN", "MAINT")))
            for name, (weight, status) in servers.items())

    wait_until(all_on_new, timeout=30, interval=0.05, what="HAProxy to send every request to the new set")
    switched_at = time.time()
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=90, what="the deployment to finish")
    wait_until(lambda: {t["id"] for t in server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]}.isdisjoint(
        old_tasks), timeout=60, what="the old set to be drained and killed")
    done_at = time.time()
    wait_until(lambda: len(client.seen) > 0 and client.seen[-1][0] > done_at and
               sum(1 for s in client.seen if s[0] > done_at) >= 100, timeout=60, what="100 requests after the end")
    seen = client.stop()
    answers = Counter((status, body) for _, _, status, body in seen)
    assert set(answers) <= {(200, "v1"), (200, "v2")}, answers                 # not one failed request
    waiting = [b for s, e, _, b in seen if s >= healthy_at and e <= unswitched_at]
    assert waiting and set(waiting) == {"v1"}                                   # a healthy new set, no traffic
    after = Counter(b for s, _, _, b in seen if s >= switched_at)
    assert set(after) == {"v2"}, after                                          # every request after the switch
    assert server.get("/v2/haproxy")[1]["counters"]["reloads"] == reloads       # weights, no reload
    assert server.get("/v2/apps/shop")[1]["app"]["cmd"] == v2 and len(old_tasks) == 2
    window = [b for s, e, _, b in seen if e > unswitched_at and s < switched_at]
    print(f"\nblue/green: {len(seen)} requests, failed {sum(n for k, n in answers.items() if k[0] != 200)}; "
          f"v1 while the healthy new set waited: {len(waiting)}; during the switch: {Counter(window)}; "
          f"after the switch: {after}")
