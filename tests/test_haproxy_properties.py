"""Properties: label values are data. Whatever one app's labels hold, the other apps' routes
survive `haproxy -c`, rendering is deterministic, and the input is never modified."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haproxy_bridge.labels import SUPPORTED_PORT_LABELS
from haproxy_bridge.model import build_model
from haproxy_bridge.narrow import apps_blamed
from haproxy_bridge.render import RenderSettings, render_haproxy_config, render_lines

from .haproxy_support import HAPROXY, needs_haproxy
from .test_haproxy_render import app, task

SETTINGS = RenderSettings(http_port=18080, https_port=18443, stats_port=19090, admin_socket="/run/pacer-test/admin.sock")
RESERVED = {("127.0.0.1", 18080): "http", ("127.0.0.1", 18443): "https", ("127.0.0.1", 19090): "stats"}
GOOD = [
    app("/good/web", [10100], {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "good.example.com",
                               "HAPROXY_0_STICKY": "true"}, [task("good_web.1", 31100), task("good_web.2", 31101)]),
    app("/good/db", [10101], {"HAPROXY_GROUP": "external"}, [task("good_db.1", 31102)]),
]
PREVIOUS = build_model(GOOD, reserved=RESERVED, default_bind="127.0.0.1")

INJECTIONS = ["x.com\n  bind :22", "a\r\nlisten evil", "' bind", '"quoted"', "#comment", "${HOME}", "a\\b",
              "}\n{", "/p\nserver x 1.1.1.1:22", "10100", "18080", "true", "tcp", "http", "0", "-1", "*",
              "127.0.0.1", "::1", "leastconn", "hdr(x)", "url_param", "ssl", "maxconn 5", "crt /etc/shadow",
              "good.example.com", "/", "/etc/ssl/none.pem", "", " ", "\x00", "\u2028", "a" * 300]
PLAUSIBLE = ["a.example.com", "*.b.example.com", "/api", "/a /b", "8080", "http", "tcp", "roundrobin", "source",
             "true", "false", "127.0.0.2", "defer-accept", "10", "external", "internal", "/certs/x.pem"]

label_names = st.sampled_from(
    ["HAPROXY_GROUP"] + [f"HAPROXY_{n}_{name}" for n in (0, 1, 7) for name in sorted(SUPPORTED_PORT_LABELS)]
    + ["HAPROXY_0_FRONTEND_HEAD", "HAPROXY_0_BACKEND_HTTP_OPTIONS", "HAPROXY_0_AUTH"])
label_values = st.one_of(st.sampled_from(INJECTIONS), st.sampled_from(PLAUSIBLE), st.text(max_size=40),
                         st.text(alphabet="abc.-_/:*,# \n'\"\\$0123456789", max_size=30))
labels = st.dictionaries(label_names, label_values, max_size=8)


def fuzzed(lbls: dict[str, str], service_ports: list[int]) -> list[dict[str, Any]]:
    return GOOD + [app("/fuzz", service_ports, lbls, [task("fuzz.1", *[31200 + i for i in range(len(service_ports))])])]


ports = st.lists(st.sampled_from([0, 10100, 10102, 10103, 18080]), min_size=0, max_size=3, unique=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lbls=labels, service_ports=ports)
def test_other_apps_always_routed_and_rendering_pure(lbls: dict[str, str], service_ports: list[int]) -> None:
    apps = fuzzed(lbls, service_ports)
    before = copy.deepcopy(apps)
    model = build_model(apps, "*", reserved=RESERVED, default_bind="127.0.0.1", previous=PREVIOUS)
    assert apps == before
    again = build_model(copy.deepcopy(apps)[::-1], "*", reserved=RESERVED, default_bind="127.0.0.1", previous=PREVIOUS)
    assert render_haproxy_config(model, SETTINGS) == render_haproxy_config(again, SETTINGS)
    for good in ("/good/web", "/good/db"):
        assert model.app(good).state == "included", model.app(good)
    assert {s.backend for s in model.services} >= {"good_web_10100", "good_db_10101"}
    fuzz = model.app("/fuzz")
    assert fuzz.state in ("included", "skipped", "rejected")
    if fuzz.state != "included":
        assert fuzz.reasons and all("\n" not in r for r in fuzz.reasons)
    text = render_haproxy_config(model, SETTINGS)
    for line in text.splitlines():
        assert line.isprintable(), f"unprintable line {line!r}"


@pytest.fixture(scope="module")
def check_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("haproxy-check")


def haproxy_check(text: str, check_dir: Path) -> tuple[bool, str]:
    cfg = check_dir / "haproxy.cfg"
    cfg.write_text(text)
    result = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
    return result.returncode == 0, result.stdout + result.stderr


@needs_haproxy
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lbls=labels, service_ports=ports)
def test_haproxy_never_rejects_other_apps(check_dir: Path, lbls: dict[str, str], service_ports: list[int]) -> None:
    """`haproxy -c` may refuse the fuzzed app (a certificate that does not exist), never another."""
    model = build_model(fuzzed(lbls, service_ports), "*", reserved=RESERVED, default_bind="127.0.0.1",
                        previous=PREVIOUS)
    lines = render_lines(model, SETTINGS)
    ok, output = haproxy_check("\n".join(t for t, _ in lines) + "\n", check_dir)
    if ok:
        return
    blamed = apps_blamed(output, [o for _, o in lines], model)
    assert set(blamed) == {"/fuzz"}, output
    ok, output = haproxy_check(render_haproxy_config(model.without_apps(blamed), SETTINGS), check_dir)
    assert ok, output
