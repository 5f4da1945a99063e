"""Scale-down and delete through a real HAProxy: no request is cut mid-response.

A task of an app with HAPROXY_* labels is taken out of the load balancer (TASK_KILLING, which
the bridge drains) before it is signalled, so HAProxy never hands a request to a server that
is going away. Clients loop GETs of a large file through HAProxy the whole time and every
outcome is counted.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from pathlib import Path

from .haproxy_support import needs_haproxy
from .support import free_port, wait_until

pytestmark = needs_haproxy

BODY_BYTES = 2 * 1024 * 1024     # long enough that a kill would land in the middle of a response


class Load:
    """Threads looping GETs through HAProxy, counting each outcome by kind."""

    def __init__(self, port: int, host: str, threads: int = 3) -> None:
        self.port, self.host = port, host
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._count(self._one())

    def _one(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/big.bin", headers={"Host": self.host})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                return "ok" if len(body) == BODY_BYTES else "short body"
            return f"status {resp.status}"
        except ConnectionRefusedError:
            return "refused"
        except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionResetError) as exc:
            return f"cut: {type(exc).__name__}"
        except OSError as exc:
            return f"error: {type(exc).__name__}"
        finally:
            conn.close()

    def served(self) -> int:
        with self._lock:
            return self.outcomes["ok"]


def web_app(app_id: str, site: Path, instances: int, vhost: str) -> dict:
    return {"id": app_id, "cmd": f"exec python3 -m http.server --bind 127.0.0.1 --directory {site} $PORT0",
            "instances": instances, "cpus": 0.05, "mem": 16,
            "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 0, "intervalSeconds": 1,
                              "timeoutSeconds": 3, "maxConsecutiveFailures": 3}],
            "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost}}


def start(pacer_factory, tmp_path: Path) -> tuple[object, int, Path]:
    http_port = free_port()
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                           "--haproxy-http-port", str(http_port), "--haproxy-https-port", str(free_port()),
                           "--haproxy-stats-port", str(free_port()), "--haproxy-apps-port", str(free_port()))
    site = tmp_path / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(b"x" * BODY_BYTES)
    (site / "index.html").write_text("ok")
    return server, http_port, site


def healthy(server, app_id: str, n: int) -> bool:
    app = server.get(f"/v2/apps{app_id}")[1]["app"]
    return app["tasksHealthy"] == n == len(app["tasks"]) and not app["deployments"]


def routed(port: int, host: str) -> bool:
    return Load(port, host)._one() == "ok"


def test_scale_down_through_haproxy_cuts_no_request(pacer_factory, tmp_path):
    server, http_port, site = start(pacer_factory, tmp_path)
    assert server.request("POST", "/v2/apps", web_app("/shop", site, 4, "shop.test"))[0] == 201
    wait_until(lambda: healthy(server, "/shop", 4), timeout=60, what="4 healthy instances")
    wait_until(lambda: routed(http_port, "shop.test"), timeout=30, what="the vhost to route")
    with Load(http_port, "shop.test") as load:
        wait_until(lambda: load.served() >= 5, timeout=30, what="traffic before the scale-down")
        assert server.request("PUT", "/v2/apps/shop", {"instances": 1})[0] == 200
        wait_until(lambda: healthy(server, "/shop", 1), timeout=60, what="the scale-down to finish")
        served = load.served()
        wait_until(lambda: load.served() >= served + 5, timeout=30, what="traffic after the scale-down")
    assert set(load.outcomes) == {"ok"}, load.outcomes


def test_deleting_one_of_two_apps_refuses_its_requests_but_cuts_none(pacer_factory, tmp_path):
    server, http_port, site = start(pacer_factory, tmp_path)
    assert server.request("POST", "/v2/apps", web_app("/keep", site, 2, "keep.test"))[0] == 201
    assert server.request("POST", "/v2/apps", web_app("/gone", site, 2, "gone.test"))[0] == 201
    for app_id, host in (("/keep", "keep.test"), ("/gone", "gone.test")):
        wait_until(lambda: healthy(server, app_id, 2), timeout=60, what=f"{app_id} healthy")
        wait_until(lambda: routed(http_port, host), timeout=30, what=f"{host} to route")
    with Load(http_port, "keep.test") as keep, Load(http_port, "gone.test") as gone:
        wait_until(lambda: keep.served() >= 5 and gone.served() >= 5, timeout=30, what="traffic to both")
        assert server.request("DELETE", "/v2/apps/gone")[0] == 200
        wait_until(lambda: not server.get("/v2/apps/gone")[0] == 200 and not server.get("/v2/deployments")[1],
                   timeout=60, what="the delete to finish")
        wait_until(lambda: not [t for t in server.get("/v2/tasks")[1]["tasks"] if t["appId"] == "/gone"],
                   timeout=60, what="the deleted app's tasks to end")
        served = keep.served()
        wait_until(lambda: keep.served() >= served + 5, timeout=30, what="traffic after the delete")
    assert set(keep.outcomes) == {"ok"}, keep.outcomes
    cut = {k: n for k, n in gone.outcomes.items() if k not in ("ok", "refused", "status 503")}
    assert cut == {}, gone.outcomes
