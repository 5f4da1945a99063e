"""marathon-lb's HTTP labels against a real master-worker HAProxy, with real requests: the redirect
to HTTPS, basic auth, path rewriting both ways, the X-Marathon-App-Id frontend, routing :443 by
the SNI name, and health-check `fall`. Backends are small HTTP servers that answer with their
own name; everything listens on 127.0.0.1 free ports and is stopped by its pid."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .haproxy_support import (BridgeThread, app_json, bridge_options, free_port, get,
                              needs_haproxy, running_bridge, wait_for)
from .test_haproxy_render import make_cert

pytestmark = [pytest.mark.timeout(120), needs_haproxy]




@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("certs")
    for name in ("a", "b", "default"):
        make_cert(d / f"{name}.pem", f"{name}.test")
    return d


def crypt_sha512(password: str) -> str:
    """A crypt(3) SHA-512 hash, as `mkpasswd -m sha-512` makes (Python's crypt module is gone)."""
    return subprocess.run(["openssl", "passwd", "-6", password], check=True, capture_output=True,
                          text=True).stdout.strip()


def tls_get(port: int, sni: str | None, host: str, path: str = "/") -> tuple[int, str, bytes]:
    """GET over TLS with SNI `sni` (None: no SNI) and Host `host`: (status, body, server cert DER)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            der = tls.getpeercert(binary_form=True) or b""
    text = data.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text.partition("\r\n\r\n")[2], der


def der_of(pem_file: Path) -> bytes:
    text = pem_file.read_text()
    return ssl.PEM_cert_to_DER_cert(text[text.index("-----BEGIN CERTIFICATE-----"):])


def verdicts(opts: Any) -> dict[str, dict[str, Any]]:
    """GET /v2/haproxy/apps through HAProxy's stats port, by app id."""
    return {a["id"]: a for a in json.loads(get(f"http://127.0.0.1:{opts.stats_port}/v2/haproxy/apps")[1])["apps"]}


def name_of(body: str) -> str:
    return body.split(" ")[0]


def test_redirect_to_https_only_through_the_vhost_frontend(backends, master, tmp_path: Path, certs: Path) -> None:
    b_secure, b_login, b_site, b_nohost = (backends.start(n) for n in ("secure", "login", "site", "nohost"))
    sp_secure, sp_login, sp_site, sp_nohost = (free_port() for _ in range(4))
    master.apps = [
        app_json("/secure", sp_secure, [b_secure], labels={"HAPROXY_0_VHOST": "secure.test",
                                                             "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}),
        app_json("/login", sp_login, [b_login], labels={"HAPROXY_0_VHOST": "shop.test", "HAPROXY_0_PATH": "/login",
                                                        "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}),
        app_json("/site", sp_site, [b_site], labels={"HAPROXY_0_VHOST": "shop.test"}),
        app_json("/nohost", sp_nohost, [b_nohost], labels={"HAPROXY_0_MODE": "http",
                                                           "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}),
    ]
    opts = bridge_options(tmp_path / "hx", master.url, ssl_certs=(str(certs / "default.pem"),),
                          status_port=free_port())
    with running_bridge(opts, status=True):
        http = f"http://127.0.0.1:{opts.http_port}"
        status, _, headers = get(f"{http}/x?y=1", host="secure.test")
        assert status == 301 and headers["location"] == "https://secure.test/x?y=1"
        # the same app through its service port and the app-id frontend: plain HTTP, served
        assert name_of(get(f"http://127.0.0.1:{sp_secure}/x")[1]) == "name=secure"
        status, body, _ = get(f"http://127.0.0.1:{opts.apps_port}/x", headers={"X-Marathon-App-Id": "/secure"})
        assert status == 200 and name_of(body) == "name=secure"
        # and through :443, where it is already HTTPS
        status, body, _ = tls_get(opts.https_port, "secure.test", "secure.test", "/x")
        assert status == 200 and name_of(body) == "name=secure"
        # with a path: only the requests the path rule routes are redirected
        status, _, headers = get(f"{http}/login/form", host="shop.test")
        assert status == 301 and headers["location"] == "https://shop.test/login/form"
        assert name_of(get(f"{http}/catalog", host="shop.test")[1]) == "name=site"
        # without a vhost the label does nothing, and says so
        assert get(f"http://127.0.0.1:{sp_nohost}/")[0] == 200
        nohost = verdicts(opts)["/nohost"]
        assert nohost["state"] == "included" and "does nothing without HAPROXY_0_VHOST" in nohost["warnings"][0]


def test_basic_auth_on_every_way_in_and_a_bad_auth_label_keeps_the_app_out(backends, master, tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    b_private, b_broken, b_tcp = backends.start("private"), backends.start("broken"), backends.start("tcp")
    sp_private, sp_broken, sp_tcp = free_port(), free_port(), free_port()
    master.apps = [
        app_json("/private", sp_private, [b_private], labels={
            "HAPROXY_0_VHOST": "private.test", "HAPROXY_0_AUTH": f"Staff only:alice:{crypt_sha512('s3cret')}"}),
        app_json("/broken", sp_broken, [b_broken], labels={      # a clear-text password is not a hash
            "HAPROXY_0_VHOST": "broken.test", "HAPROXY_0_AUTH": "Staff only:bob:s3cret"}),
        app_json("/tcpauth", sp_tcp, [b_tcp], labels={
            "HAPROXY_0_MODE": "tcp", "HAPROXY_0_AUTH": f"Staff:carol:{crypt_sha512('x')}"}),
    ]
    opts = bridge_options(tmp_path / "hx", master.url, status_port=free_port())
    with running_bridge(opts, status=True) as bt:
        alice = {"Authorization": "Basic YWxpY2U6czNjcmV0"}          # alice:s3cret
        wrong = {"Authorization": "Basic YWxpY2U6d3Jvbmc="}          # alice:wrong
        ways_in = [(f"http://127.0.0.1:{opts.http_port}/", {"Host": "private.test"}),
                   (f"http://127.0.0.1:{sp_private}/", {}),
                   (f"http://127.0.0.1:{opts.apps_port}/", {"X-Marathon-App-Id": "/private"})]
        for url, extra in ways_in:
            status, _, headers = get(url, headers=extra)
            assert status == 401 and headers["www-authenticate"] == 'Basic realm="Staff only"', (url, status)
            assert get(url, headers={**extra, **wrong})[0] == 401
            status, body, _ = get(url, headers={**extra, **alice})
            assert status == 200 and name_of(body) == "name=private", url
        apps = verdicts(opts)
        assert apps["/broken"]["state"] == "rejected" and "crypt(3) hash" in apps["/broken"]["reasons"][0]
        assert apps["/tcpauth"]["state"] == "rejected" and "needs http mode" in apps["/tcpauth"]["reasons"][0]
        # left out entirely: neither its vhost nor its service port serves it unprotected
        assert get(f"http://127.0.0.1:{opts.http_port}/", host="broken.test")[0] == 503
        with pytest.raises(OSError):
            get(f"http://127.0.0.1:{sp_broken}/", timeout=1)
        assert f":{sp_tcp}" not in bt.bridge.state.live_config


def test_proxypass_and_revproxy_paths_and_the_app_id_frontend(backends, master, tmp_path: Path) -> None:
    b_legacy, b_multi0, b_multi1, b_db = (backends.start(n) for n in ("legacy", "multi0", "multi1", "db"))
    sp_legacy, sp_m0, sp_m1, sp_db = (free_port() for _ in range(4))
    multi = app_json("/multi", sp_m0, [b_multi0], labels={"HAPROXY_0_MODE": "http", "HAPROXY_1_MODE": "http"})
    multi["portDefinitions"].append({"port": sp_m1, "protocol": "tcp"})
    multi["tasks"][0].update(ports=[b_multi0, b_multi1], servicePorts=[sp_m0, sp_m1])
    master.apps = [
        app_json("/legacy", sp_legacy, [b_legacy], labels={
            "HAPROXY_0_VHOST": "legacy.test", "HAPROXY_0_PATH": "/legacy",
            "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/legacy", "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": "/legacy"}),
        multi, app_json("/db", sp_db, [b_db]),
    ]
    opts = bridge_options(tmp_path / "hx", master.url)
    with running_bridge(opts):
        http = f"http://127.0.0.1:{opts.http_port}"
        # the prefix is cut on the way in, and Host is the vhost (marathon-lb's PROXYPASS glue)
        status, body, headers = get(f"{http}/legacy/page?q=1", host="legacy.test")
        assert status == 200 and name_of(body) == "name=legacy"
        assert headers["x-seen-path"] == "/page?q=1" and headers["x-seen-host"] == "legacy.test"
        assert get(f"{http}/legacy", host="legacy.test")[2]["x-seen-path"] == "/"
        assert get(f"http://127.0.0.1:{sp_legacy}/legacy/x")[2]["x-seen-path"] == "/x"
        assert get(f"{http}/legacyfoo", host="legacy.test")[2]["x-seen-path"] == "/legacyfoo"
        # ... and put back on the app's redirects (REVPROXY), when they point into the app
        for location, expected in (("/landing", "/legacy/landing"),
                                   ("http://legacy.test:8080/in/app?x=1", "/legacy/in/app?x=1"),
                                   ("https://LEGACY.test/y", "/legacy/y"),
                                   ("http://elsewhere.test/z", "http://elsewhere.test/z")):
            status, _, headers = get(f"{http}/legacy/go?location={location}", host="legacy.test")
            assert status == 302 and headers["location"] == expected, (location, headers["location"])
        # the app-id frontend: the header picks the app's first HTTP service; TCP apps are not there
        apps_url = f"http://127.0.0.1:{opts.apps_port}/legacy/a"
        status, body, headers = get(apps_url, headers={"X-Marathon-App-Id": "/legacy"})
        assert status == 200 and name_of(body) == "name=legacy" and headers["x-seen-path"] == "/a"
        assert {name_of(get(apps_url, headers={"X-Marathon-App-Id": "/multi"})[1]) for _ in range(4)} == {"name=multi0"}
        assert get(apps_url, headers={"X-Marathon-App-Id": "/MULTI"})[0] == 200       # ids match case-insensitively
        assert get(apps_url, headers={"X-Marathon-App-Id": "/db"})[0] == 503
        assert get(apps_url)[0] == 503


def test_https_routes_by_sni_with_app_and_default_certificates(backends, master, tmp_path: Path,
                                                               certs: Path) -> None:
    b_a, b_b = backends.start("a"), backends.start("b")
    master.apps = [
        app_json("/a", free_port(), [b_a], labels={"HAPROXY_0_VHOST": "a.test",
                                                  "HAPROXY_0_SSL_CERT": str(certs / "a.pem")}),
        app_json("/b", free_port(), [b_b], labels={"HAPROXY_0_VHOST": "b.test"}),
    ]
    opts = bridge_options(tmp_path / "hx", master.url, ssl_certs=(str(certs / "default.pem"),))
    with running_bridge(opts):
        status, body, der = tls_get(opts.https_port, "a.test", "a.test")
        assert status == 200 and name_of(body) == "name=a" and der == der_of(certs / "a.pem")
        status, body, der = tls_get(opts.https_port, "b.test", "b.test")
        assert status == 200 and name_of(body) == "name=b" and der == der_of(certs / "default.pem")
        # the SNI name routes, not the Host header (marathon-lb's ssl_fc_sni rules)
        status, body, _ = tls_get(opts.https_port, "a.test", "b.test")
        assert status == 200 and name_of(body) == "name=a"
        status, _, der = tls_get(opts.https_port, None, "a.test")
        assert status == 503 and der == der_of(certs / "default.pem")
        # plain :80 still routes by Host
        assert name_of(get(f"http://127.0.0.1:{opts.http_port}/", host="b.test")[1]) == "name=b"


def _check_health(bt: BridgeThread, backend: str) -> dict[str, int]:
    """server name -> srv_check_health of `show servers state` (rise + fall - 1 once fully up)."""
    rows = [line.split() for line in bt.runtime(f"show servers state {backend}").splitlines()[2:] if line.strip()]
    return {r[3]: int(r[12]) for r in rows}


def test_health_check_fall_is_max_consecutive_failures_plus_one(backends, master, tmp_path: Path) -> None:
    b1, b2 = backends.start("one"), backends.start("two")
    sp = free_port()

    def checked(ports: list[int]) -> dict[str, Any]:
        app = app_json("/checked", sp, ports, health=True)
        app["healthChecks"][0].update(intervalSeconds=1, maxConsecutiveFailures=2)
        return app

    master.apps = [checked([b1])]
    with running_bridge(bridge_options(tmp_path / "hx", master.url)) as bt:
        backend = f"checked_{sp}"
        assert "check inter 1s fall 3 " in bt.bridge.state.live_config
        # HAProxy counts a server's health up to rise + fall - 1 (rise is 1): 3 means fall is 3
        wait_for(lambda: _check_health(bt, backend) == {f"checked.instance-{b1}._app.1": 3}, 10, "health at 3")
        time.sleep(1.5)
        assert max(_check_health(bt, backend).values()) == 3
        # a server added through the Runtime API gets the same fall
        reloads = bt.status()["counters"]["reloads"]
        master.apps = [checked([b1, b2])]
        wait_for(lambda: _check_health(bt, backend).get(f"checked.instance-{b2}._app.1") == 3, 10,
                 "the runtime-added server at health 3")
        assert bt.status()["counters"]["reloads"] == reloads
