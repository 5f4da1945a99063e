"""The HAProxy bridge inside `pacer serve`: routes follow apps, status at /v2/haproxy."""

from __future__ import annotations

import urllib.request

from .haproxy_support import needs_haproxy
from .support import free_port, wait_until

pytestmark = needs_haproxy


def fetch(port: int, host: str = "localhost") -> str | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def test_builtin_bridge_routes_a_vhost_and_a_service_port(pacer_factory, tmp_path):
    http_port, https_port, stats_port = free_port(), free_port(), free_port()
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--haproxy-bridge", "on",
                           "--haproxy-http-port", str(http_port), "--haproxy-https-port", str(https_port),
                           "--haproxy-stats-port", str(stats_port), "--haproxy-apps-port", str(free_port()))
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from pacer")
    service_port = free_port()
    app = {"id": "/site", "cmd": f"exec python3 -m http.server --bind 127.0.0.1 --directory {site} $PORT0",
           "instances": 2, "cpus": 0.05, "mem": 16, "portDefinitions": [{"port": service_port}],
           "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "site.example"}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: fetch(http_port, "site.example") == "hello from pacer", timeout=30,
               what="the vhost to route through HAProxy")
    assert fetch(service_port) == "hello from pacer"
    status, body, _ = server.get("/v2/haproxy")
    assert status == 200, body
    verdicts = server.get("/v2/haproxy/apps")[1]["apps"]
    assert [v["id"] for v in verdicts if v["included"]] == ["/site"], verdicts
    assert server.request("DELETE", "/v2/apps/site")[0] == 200
    wait_until(lambda: fetch(http_port, "site.example") != "hello from pacer", timeout=30,
               what="the route to go with the app")
