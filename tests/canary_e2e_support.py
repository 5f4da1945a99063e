"""Shared pieces of the canary and blue/green end-to-end tests: a `pacer serve` with its embedded
HAProxy bridge, small HTTP servers standing for the versions of `/shop`, and clients that send
real requests through HAProxy and record which version answered each one.

Every version is told apart by its answer's body (`v1`, `v2`), so a count of answers is a count of
the requests each version got; a failed request shows as its status (0: no answer at all).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .support import PacerServer, free_port, wait_until

STATIC = "exec python3 -m http.server --bind 127.0.0.1 --directory {} $PORT0"

FAILING_SERVER = '''
import http.server, sys
class Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"bad")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Failing).serve_forever()
'''

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

SLOW_SERVER = '''
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"v2")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
'''


# -- requests through HAProxy ---------------------------------------------------------------

def answer(port: int) -> tuple[int, str]:
    """``(status, body)`` of one request through HAProxy; ``(0, "")`` when none came back."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()
    except OSError:
        return 0, ""


def fetch(port: int) -> str | None:
    """The body of a successful answer; None for a failed request."""
    status, body = answer(port)
    return body if 200 <= status < 300 else None


def fetch_status(port: int) -> int | str:
    """The answer's body for a success, its status otherwise (0: no answer at all)."""
    status, body = answer(port)
    return body if 200 <= status < 300 else status


def traffic_until(server: PacerServer, port: int, done: Callable[[], Any], *, limit: float = 60.0) -> Counter[Any]:
    """Requests through HAProxy, one after another, until `done()` (bounded in time)."""
    seen: Counter[Any] = Counter()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for _ in range(20):
            seen[fetch_status(port)] += 1
        if done():
            return seen
    raise AssertionError(f"not done after {limit}s of traffic: {seen}; {server.get('/v2/deployments')[1]}")


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

    def since(self, moment: float) -> int:
        """How many requests started after `moment` (wall clock) have been answered."""
        return sum(1 for started, *_ in self.seen if started > moment)

    def stop(self) -> list[tuple[float, float, int, str]]:
        self._stop.set()
        self._thread.join(30)
        return list(self.seen)


# -- HAProxy's own view -----------------------------------------------------------------------

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


# -- the server and the app -------------------------------------------------------------------

def serve_with_stats(pacer_factory: Callable[..., PacerServer]) -> tuple[PacerServer, int]:
    """`pacer serve` with its embedded HAProxy bridge; the port of HAProxy's stats page."""
    stats_port = free_port()
    return pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                         "--haproxy-http-port", str(free_port()), "--haproxy-https-port", str(free_port()),
                         "--haproxy-stats-port", str(stats_port), "--haproxy-apps-port", str(free_port())), stats_port


def site(tmp_path: Path, version: str) -> Path:
    """A directory whose index page is the version's name."""
    root = tmp_path / version
    root.mkdir()
    (root / "index.html").write_text(version)
    return root


def static_cmd(tmp_path: Path, version: str) -> str:
    """The command of an instance answering every request with the version's name."""
    return STATIC.format(site(tmp_path, version))


def shop(root: Path, service_port: int) -> dict[str, Any]:
    return {"id": "/shop", "cmd": f"exec python3 -m http.server --bind 127.0.0.1 --directory {root} $PORT0",
            "instances": 2, "cpus": 0.05, "mem": 32, "portDefinitions": [{"port": service_port}],
            "labels": {"HAPROXY_GROUP": "external"},
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
                                "canary": {"instances": 1, "steps": [{"setWeight": 10}, {"pause": {}},
                                                                     {"setWeight": 50}, {"pause": {}}]}}}


def steps_app(cmd: str, service_port: int, steps: list[dict[str, Any]], analysis: dict[str, Any]) -> dict[str, Any]:
    """/shop running `cmd`, routed in http mode (HAProxy counts HTTP statuses in http mode only)."""
    app = shop(Path("/"), service_port)
    app["cmd"] = cmd
    app["labels"]["HAPROXY_0_MODE"] = "http"
    app["upgradeStrategy"]["canary"] = {"instances": 1, "steps": steps, "analysis": analysis}
    return app


def shop_tasks(server: PacerServer) -> list[dict[str, Any]]:
    return server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]["tasks"]


def wait_serving(server: PacerServer, port: int, version: str = "v1") -> None:
    """Until no deployment runs and HAProxy answers with `version`."""
    wait_until(lambda: server.get("/v2/deployments")[1] == [] and fetch(port) == version, timeout=60,
               what=f"/shop {version} to serve through HAProxy")


def analysed(cmd: str, service_port: int, pause: int) -> dict[str, Any]:
    """/shop with one 50% step judged every 2 s (10 requests at least, 5% errors at most)."""
    analysis = {"intervalSeconds": 2, "minRequests": 10, "maxErrorRate": 0.05, "failureLimit": 1}
    return steps_app(cmd, service_port, [{"setWeight": 50}, {"pause": {"seconds": pause}}], analysis)


def settled_reloads(server: PacerServer) -> int:
    """The bridge's reload count once nothing is left for it to do (no refresh asked for, and no
    reload the debounce deferred): read earlier, a reload still due from the app's start
    would count against the step that follows."""
    wait_until(lambda: not server.get("/v2/haproxy")[1]["refreshPending"], timeout=30,
               what="the HAProxy bridge to settle")
    return server.get("/v2/haproxy")[1]["counters"]["reloads"]


def assert_no_reload_since(server: PacerServer, reloads: int) -> None:
    """Weights went through the Runtime API alone; if not, say why each update happened."""
    status = server.get("/v2/haproxy")[1]
    assert status["counters"]["reloads"] == reloads, {
        "reloads": status["counters"]["reloads"], "before": reloads,
        "runtimeRefused": status["counters"]["runtimeRefused"], "history": status["history"]}


def stable_steps_app(pacer_factory: Callable[..., PacerServer], tmp_path: Path, steps: list[dict[str, Any]],
                     analysis: dict[str, Any]) -> tuple[PacerServer, int, str]:
    """`pacer serve` with its bridge, and /shop v1 (static) serving through HAProxy with these
    canary steps and analysis: the server, the service port and v1's command."""
    server, _ = serve_with_stats(pacer_factory)
    port = free_port()
    good = static_cmd(tmp_path, "v1")
    assert server.request("POST", "/v2/apps", steps_app(good, port, steps, analysis))[0] == 201
    wait_serving(server, port)
    return server, port, good


def put_canary_script(server: PacerServer, tmp_path: Path, name: str, script: str, port: int,
                      steps: list[dict[str, Any]], analysis: dict[str, Any]) -> str:
    """Release /shop as the Python `script` (written to tmp_path/name); the deployment's id."""
    path = tmp_path / name
    path.write_text(script)
    status, body, _ = server.request("PUT", "/v2/apps/shop", steps_app(f"exec python3 {path} $PORT0", port, steps,
                                                                      analysis))
    assert status == 200, body
    return body["deploymentId"]
