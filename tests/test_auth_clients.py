"""`pacer deploy`, `pacer autoscaler` and `pacer haproxy-bridge` against a real `pacer serve` that
wants credentials and speaks only HTTPS (a CA and a certificate made in the test with trustme).

Each client is its own process, given the CA with `--ca-file` and the credentials through
`PACER_CREDENTIALS` (so they never appear on a command line); the bridge drives a real HAProxy
and must route a real task of the secured Pacer. Every process is stopped by its pid.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from .haproxy_support import HAPROXY, backend_cmd, get, needs_haproxy
from .support import REPO, free_port, kill_task_processes, stop_process, wait_until

PASSWORD = "cl1ent-pa55"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()}


@dataclass
class Secured:
    url: str
    port: int
    ca_file: Path
    context: ssl.SSLContext
    log: Path

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=15)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json", **(AUTH if auth else {})})
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data[:1] in (b"{", b"[") else data
        finally:
            conn.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secured")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    home = base / "home"
    home.mkdir()
    port = free_port()
    log = base / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{port}",
                                 "--home", str(home), "--haproxy-bridge", "off",
                                 "--http-credentials", f"ops:{PASSWORD}",
                                 "--tls-cert", str(base / "cert.pem"), "--tls-key", str(base / "key.pem")],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Secured(f"https://127.0.0.1:{port}", port, base / "ca.pem", context, log)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return server.request("GET", "/ping", auth=False)[0] == 200
        except OSError:
            return False
    try:
        wait_until(up, timeout=30, what="pacer serve over https")
        yield server
    finally:
        stop_process(proc)
        kill_task_processes(home)


def client_env(credentials: str | None = f"ops:{PASSWORD}") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACER_")}
    if credentials is not None:
        env["PACER_CREDENTIALS"] = credentials
    return env


def test_deploy_with_credentials_from_the_environment(secured: Secured, tmp_path: Path) -> None:
    definition = tmp_path / "app.json"
    definition.write_text(json.dumps({"id": "/ci/job", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 0}))
    argv = [sys.executable, "-m", "pacer.cli", "deploy", "-f", str(definition), "--master", secured.url,
            "--ca-file", str(secured.ca_file), "--wait", "0"]
    refused = subprocess.run(argv, cwd=REPO, env=client_env(f"ops:wrong-{PASSWORD}"), capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    assert PASSWORD not in refused.stderr + refused.stdout
    done = subprocess.run(argv, cwd=REPO, env=client_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert PASSWORD not in done.stderr + done.stdout
    status, body = secured.request("GET", "/v2/apps/ci/job")
    assert status == 200 and body["app"]["id"] == "/ci/job"
    untrusting = subprocess.run(argv[:-4] + ["--wait", "0"], cwd=REPO, env=client_env(), capture_output=True,
                                text=True, timeout=60)    # no --ca-file: the system CAs do not know ours
    assert untrusting.returncode != 0 and "certificate" in (untrusting.stderr + untrusting.stdout).lower()


def test_standalone_autoscaler_cycles_against_the_secured_api(secured: Secured, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "autoscaler.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pacer.cli", "autoscaler", "--master", secured.url,
                                 "--ca-file", str(secured.ca_file), "--listen", f"127.0.0.1:{port}",
                                 "--state-dir", str(tmp_path / "state"), "--autoscale-interval", "0.5"],
                                cwd=REPO, env=client_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        def cycled() -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/v2/autoscaler/status")
                body = json.loads(conn.getresponse().read())
            except OSError:
                return None
            finally:
                conn.close()
            return body if body["cycles"] >= 2 else None
        status = wait_until(cycled, timeout=30, what="two autoscaler cycles against the https API")
        assert status["errors"] == 0, status["lastError"]
    finally:
        stop_process(proc)
    assert PASSWORD not in log.read_text()


@needs_haproxy
def test_bridge_routes_a_task_of_the_secured_api(secured: Secured, tmp_path: Path) -> None:
    vhost = "secured.example.com"
    status, body = secured.request("POST", "/v2/apps", {
        "id": "/secured/web", "cmd": backend_cmd(), "instances": 1, "cpus": 0.01, "mem": 64,
        "portDefinitions": [{"port": free_port(), "name": "http"}],
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost}})
    assert status == 201, body
    http_port, stats = free_port(), free_port()
    env = {**client_env(), "PATH": f"{Path(HAPROXY).parent}:{os.environ.get('PATH', '')}"}
    log = tmp_path / "bridge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pacer.cli", "haproxy-bridge", "--master", secured.url,
                                 "--ca-file", str(secured.ca_file), "--http-port", str(http_port),
                                 "--https-port", str(free_port()), "--stats-port", str(stats),
                                 "--status-port", str(free_port()), "--apps-port", str(free_port()),
                                 "--config-dir", str(tmp_path / "hx"), "--poll-seconds", "0.3",
                                 "--debounce-seconds", "0.1"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def routed() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return get(f"http://127.0.0.1:{http_port}/", host=vhost, timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(routed, timeout=60, what="the bridge routing the secured app's task")
    finally:
        stop_process(proc)
    assert PASSWORD not in log.read_text()
