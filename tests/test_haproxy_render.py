"""Golden-file tests of the pure renderer: one case per label and mode.

Regenerate after an intended change with `PACER_UPDATE_GOLDEN=1 pytest tests/test_haproxy_render.py`
and review the diff of tests/golden/haproxy/.
"""

from __future__ import annotations

import copy
import difflib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from haproxy_bridge.model import build_model
from haproxy_bridge.render import RenderSettings, render_haproxy_config

from .haproxy_support import HAPROXY, needs_haproxy

GOLDEN = Path(__file__).parent / "golden" / "haproxy"
SETTINGS = RenderSettings(bind_address="127.0.0.1", http_port=18080, https_port=18443, stats_port=19090,
                          apps_port=19092, admin_socket="/run/pacer-haproxy/admin.sock")
#: `openssl passwd -6 -salt abcdefgh s3cret`
SECRET_HASH = "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPFlcWdxjB."


def task(tid: str, *ports: int, host: str = "127.0.0.1", state: str = "TASK_RUNNING",
         alive: bool | None = None, ip: str = "127.0.0.1") -> dict[str, Any]:
    return {"id": tid, "host": host, "ports": list(ports), "state": state,
            "ipAddresses": [{"ipAddress": ip, "protocol": "IPv4"}],
            "healthCheckResults": [] if alive is None else [{"alive": alive}]}


def app(app_id: str, ports: list[int], labels: dict[str, str] | None = None, tasks: list[dict] | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "labels": labels or {}, "portDefinitions": [{"port": p} for p in ports],
            "networks": [{"mode": "host"}], "tasks": tasks or [], **extra}


HTTP_CHECK = [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 5,
               "timeoutSeconds": 3, "maxConsecutiveFailures": 2}]

CASES: dict[str, dict[str, Any]] = {
    "tcp_service_port": dict(apps=[
        app("/db", [10001], {"HAPROXY_GROUP": "external"}, [task("db.2", 31002), task("db.1", 31001)])]),
    "vhost": dict(apps=[
        app("/web", [10002], {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com"},
            [task("web.1", 31003)])]),
    "vhost_list_and_wildcard": dict(apps=[
        app("/shop", [10003], {"HAPROXY_0_VHOST": "Shop.Example.com, *.shops.example.com,shop.example.org"},
            [task("shop.1", 31004)])]),
    "path": dict(apps=[
        app("/api", [10004], {"HAPROXY_0_VHOST": "example.com", "HAPROXY_0_PATH": "/api /v2"}, [task("api.1", 31005)]),
        app("/site", [10005], {"HAPROXY_0_VHOST": "example.com"}, [task("site.1", 31006)])]),
    "path_only": dict(apps=[
        app("/static", [10006], {"HAPROXY_0_MODE": "http", "HAPROXY_0_PATH": "/static"}, [task("static.1", 31007)])]),
    "port_override": dict(apps=[
        app("/svc", [10007], {"HAPROXY_0_PORT": "18500"}, [task("svc.1", 31008)])]),
    "mode_from_health_check": dict(apps=[
        app("/checked", [10008], {}, [task("checked.1", 31009, alive=True)], healthChecks=HTTP_CHECK),
        app("/tcpcheck", [10009], {}, [task("tcpcheck.1", 31010, alive=True)],
            healthChecks=[{"protocol": "TCP", "portIndex": 0, "intervalSeconds": 10}])]),
    "mode_label": dict(apps=[
        app("/plainhttp", [10010], {"HAPROXY_0_MODE": "http"}, [task("plainhttp.1", 31011)]),
        app("/forcedtcp", [10011], {"HAPROXY_0_MODE": "tcp"}, [task("forcedtcp.1", 31012, alive=True)],
            healthChecks=HTTP_CHECK)]),
    "balance": dict(apps=[
        app("/lc", [10012], {"HAPROXY_0_BALANCE": "leastconn"}, [task("lc.1", 31013)]),
        app("/src", [10013], {"HAPROXY_0_BALANCE": "source"}, [task("src.1", 31014)]),
        app("/param", [10014], {"HAPROXY_0_MODE": "http", "HAPROXY_0_BALANCE": "url_param user"},
            [task("param.1", 31015)])]),
    "sticky": dict(apps=[
        app("/cart", [10015], {"HAPROXY_0_VHOST": "cart.example.com", "HAPROXY_0_STICKY": "true"},
            [task("cart.1", 31016), task("cart.2", 31017)])]),
    "redirect_to_https": dict(apps=[
        app("/secure", [10016], {"HAPROXY_0_VHOST": "secure.example.com", "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                                 "HAPROXY_0_SSL_CERT": "/certs/secure.pem"}, [task("secure.1", 31018)])]),
    "ssl_cert": dict(apps=[
        app("/tls", [10017], {"HAPROXY_0_VHOST": "tls.example.com", "HAPROXY_0_SSL_CERT": "/certs/tls.pem"},
            [task("tls.1", 31019)]),
        app("/plain", [10018], {"HAPROXY_0_VHOST": "plain.example.com"}, [task("plain.1", 31020)])]),
    "bind_addr_and_options": dict(apps=[
        app("/bound", [10019], {"HAPROXY_0_BIND_ADDR": "127.0.0.2",
                                "HAPROXY_0_BIND_OPTIONS": "defer-accept maxconn 100 backlog 50"},
            [task("bound.1", 31021)])]),
    "enabled": dict(apps=[
        app("/two", [10020, 10021], {"HAPROXY_1_ENABLED": "false", "HAPROXY_0_ENABLED": "true"},
            [task("two.1", 31022, 31023)])]),
    "backend_weight": dict(apps=[
        app("/low", [10022], {"HAPROXY_0_VHOST": "w.example.com", "HAPROXY_DEPLOYMENT_GROUP": "w"},
            [task("low.1", 31024)]),
        app("/high", [10023], {"HAPROXY_0_VHOST": "w.example.com", "HAPROXY_0_BACKEND_WEIGHT": "10",
                               "HAPROXY_DEPLOYMENT_GROUP": "w"}, [task("high.1", 31025)]),
        app("/deep", [10024], {"HAPROXY_0_VHOST": "w.example.com", "HAPROXY_0_PATH": "/a/b"}, [task("deep.1", 31026)]),
        app("/neg", [10025], {"HAPROXY_0_VHOST": "w.example.com", "HAPROXY_0_PATH": "/a",
                              "HAPROXY_0_BACKEND_WEIGHT": "-5"}, [task("neg.1", 31027)])]),
    "group": dict(group="external", apps=[
        app("/ext", [10026], {"HAPROXY_GROUP": "external"}, [task("ext.1", 31028)]),
        app("/int", [10027], {"HAPROXY_GROUP": "internal"}, [task("int.1", 31029)]),
        app("/none", [10028], {}, [task("none.1", 31030)]),
        app("/mixed", [10029, 10030], {"HAPROXY_GROUP": "internal", "HAPROXY_1_GROUP": "external,edge"},
            [task("mixed.1", 31031, 31032)])]),
    "bridge_network": dict(apps=[
        {"id": "/bridged", "labels": {}, "networks": [{"mode": "container/bridge"}],
         "container": {"type": "DOCKER", "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 10031}]},
         "tasks": [task("bridged.1", 31033)]}]),
    "container_network": dict(apps=[
        {"id": "/ippt", "labels": {"HAPROXY_0_VHOST": "ippt.example.com"}, "networks": [{"mode": "container", "name": "overlay"}],
         "container": {"type": "DOCKER", "portMappings": [{"containerPort": 8080, "servicePort": 10032}]},
         "tasks": [task("ippt.1", host="agent-1", ip="10.0.0.7"), task("ippt.2", host="agent-2", ip="10.0.0.8")]}]),
    "health_gating": dict(known_healthy=["gated.4"], apps=[
        app("/gated", [10033], {}, [task("gated.1", 31034, alive=True), task("gated.2", 31035, alive=False),
                                    task("gated.3", 31036), task("gated.4", 31037),
                                    task("gated.5", 31038, state="TASK_KILLING", alive=True),
                                    task("gated.6", 31039, state="TASK_STAGING")], healthChecks=HTTP_CHECK)]),
    "host_resolution": dict(hosts={"node-a": "127.0.0.9"}, apps=[
        app("/res", [10034], {}, [task("res.1", 31040, host="node-a", ip="127.0.0.1"),
                                  task("res.2", 31041, host="agent-2", ip="127.0.0.1"),
                                  task("res.3", 31042, host="127.0.0.5")])]),
    "rejected_label_left_out": dict(apps=[
        app("/good", [10035], {"HAPROXY_0_VHOST": "good.example.com"}, [task("good.1", 31043)]),
        app("/evil", [10036], {"HAPROXY_0_VHOST": "evil.example.com\n  bind :22"}, [task("evil.1", 31044)])]),
    "multi_port": dict(apps=[
        app("/multi", [10037, 10038], {"HAPROXY_0_VHOST": "m.example.com", "HAPROXY_1_MODE": "tcp",
                                       "HAPROXY_1_BALANCE": "leastconn"}, [task("multi.1", 31045, 31046)])]),
    "stats_status_and_default_cert": dict(
        settings=dict(status_backend="127.0.0.1:19091", default_certs=("/certs/default.pem",)),
        apps=[app("/web", [10039], {"HAPROXY_0_VHOST": "web.example.com"}, [task("web.1", 31047)])]),
    "no_apps": dict(apps=[]),
    "redirect_with_path": dict(apps=[
        app("/login", [10040], {"HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_0_PATH": "/login",
                                "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}, [task("login.1", 31048)]),
        app("/nohost", [10041], {"HAPROXY_0_MODE": "http", "HAPROXY_0_REDIRECT_TO_HTTPS": "true"},
            [task("nohost.1", 31049)])]),
    "auth": dict(apps=[
        app("/private", [10042], {"HAPROXY_0_VHOST": "private.example.com",
                                  "HAPROXY_0_AUTH": f"Private area:alice:{SECRET_HASH}",
                                  "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}, [task("private.1", 31050)])]),
    "proxypass_revproxy": dict(apps=[
        app("/legacy", [10043], {"HAPROXY_0_VHOST": "www.example.com,*.example.org", "HAPROXY_0_PATH": "/legacy",
                                 "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/legacy",
                                 "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": "/legacy/"}, [task("legacy.1", 31051)])]),
    "network_allowed_and_hsts": dict(apps=[
        app("/admin", [10044], {"HAPROXY_0_VHOST": "admin.example.com", "HAPROXY_0_USE_HSTS": "true",
                                "HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/8 127.0.0.1"},
            [task("admin.1", 31052)]),
        app("/db2", [10045], {"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "192.168.0.0/16"}, [task("db2.1", 31053)])]),
    "route_classes": dict(apps=[
        app("/exact", [10046], {"HAPROXY_0_VHOST": "a.example.com"}, [task("exact.1", 31054)]),
        app("/wide", [10047], {"HAPROXY_0_VHOST": "*.example.com", "HAPROXY_0_BACKEND_WEIGHT": "1000"},
            [task("wide.1", 31055)]),
        app("/narrow", [10048], {"HAPROXY_0_VHOST": "*.b.example.com"}, [task("narrow.1", 31056)]),
        app("/anyhost", [10049], {"HAPROXY_0_MODE": "http", "HAPROXY_0_PATH": "/",
                                  "HAPROXY_0_BACKEND_WEIGHT": "1000"}, [task("anyhost.1", 31057)])]),
    "vhost_taken": dict(apps=[
        app("/victim", [10050], {"HAPROXY_0_VHOST": "victim.example.com"}, [task("victim.1", 31058)],
            versionInfo={"lastConfigChangeAt": "2024-01-01T00:00:00.000Z"}),
        app("/attacker", [10051], {"HAPROXY_0_VHOST": "victim.example.com", "HAPROXY_0_BACKEND_WEIGHT": "1000"},
            [task("attacker.1", 31059)], versionInfo={"lastConfigChangeAt": "2024-02-01T00:00:00.000Z"})]),
}


def render_case(case: dict[str, Any], settings: RenderSettings | None = None) -> str:
    model = build_model(case["apps"], case.get("group", "*"), host_addresses=case.get("hosts", {}),
                        known_healthy=case.get("known_healthy", ()))
    base = settings or SETTINGS
    if case.get("settings"):
        from dataclasses import replace
        base = replace(base, **case["settings"])
    return render_haproxy_config(model, base)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = render_case(CASES[name])
    path = GOLDEN / f"{name}.cfg"
    if os.environ.get("PACER_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden", "rendered"))
        pytest.fail(f"{name} differs from {path}:\n{diff}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_is_deterministic_and_pure(name: str) -> None:
    case = CASES[name]
    before = copy.deepcopy(case["apps"])
    first = render_case(case)
    shuffled = dict(case, apps=list(reversed(case["apps"])))
    assert render_case(shuffled) == first, "app order must not change the output"
    assert case["apps"] == before, "build_model/render mutated their input"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("certs")
    for name in ("secure", "tls", "default"):
        make_cert(d / f"{name}.pem", f"{name}.example.com")
    return d


def make_cert(path: Path, cn: str) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={cn}", "-keyout", str(path), "-out", str(path) + ".crt"],
                   check=True, capture_output=True)
    path.write_text(path.read_text() + Path(str(path) + ".crt").read_text())


@needs_haproxy
def test_every_golden_passes_haproxy_check(tmp_path: Path, certs: Path) -> None:
    """One `haproxy -c` over all cases at once would hide which one fails: check each."""
    failures = []
    for name in sorted(CASES):
        text = (GOLDEN / f"{name}.cfg").read_text().replace("/certs/", f"{certs}/")
        cfg = tmp_path / f"{name}.cfg"
        cfg.write_text(text)
        result = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"{name}: {result.stdout}{result.stderr}")
    assert not failures, "\n".join(failures)


def test_verdicts_name_the_reasons() -> None:
    model = build_model(CASES["group"]["apps"], "external")
    states = {a.app_id: (a.state, a.backends) for a in model.apps}
    assert states == {"/ext": ("included", ("ext_10026",)), "/int": ("skipped", ()),
                      "/mixed": ("included", ("mixed_10030",)), "/none": ("skipped", ())}
    assert "internal" in model.app("/int").reasons[0]
    evil = build_model(CASES["rejected_label_left_out"]["apps"]).app("/evil")
    assert evil.state == "rejected" and "newline" in evil.reasons[0]
    gated = build_model(CASES["health_gating"]["apps"], known_healthy=["gated.4"]).app("/gated")
    assert gated.servers == 2
    assert sorted(gated.warnings) == ["1 task(s) not routed: failing health checks",
                                      "1 task(s) not routed: no health result yet",
                                      "2 task(s) not routed: not running"]
