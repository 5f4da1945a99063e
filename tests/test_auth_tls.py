"""The API over HTTPS (`--tls-cert`/`--tls-key`), with a CA and certificates made in the test
(trustme): a client trusting the CA gets in with credentials, a plain-HTTP client and a
client trusting nothing do not, `/v2/info` names the https port, and the in-process services
still reach the API (through their private listener)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from .support import REPO, free_port, kill_task_processes, wait_until

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:tls-pa55").decode()}


def issue_certificates(base: Path) -> ssl.SSLContext:
    """A new CA (``base/ca.pem``) and a certificate for 127.0.0.1 and localhost signed by it
    (``base/cert.pem``, chain included, and ``base/key.pem``); returns a client context that
    trusts the CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    with (base / "cert.pem").open("ab") as chain:
        for pem in cert.cert_chain_pems[1:]:
            chain.write(pem.bytes())
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return client


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    base = tmp_path_factory.mktemp("tls")
    client = issue_certificates(base)
    home = base / "home"
    home.mkdir()
    port = free_port()
    log = (base / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{port}",
                             "--home", str(home), "--haproxy-bridge", "off", "--http-credentials", "ops:tls-pa55",
                             "--tls-cert", str(base / "cert.pem"), "--tls-key", str(base / "key.pem"),
                             "--autoscale-interval", "0.5"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        assert proc.poll() is None, (base / "serve.log").read_text()
        try:
            return request(port, client, "GET", "/ping")[0] == 200
        except OSError:
            return False
    try:
        wait_until(up, timeout=20, what="pacer serve over https")
        yield port, client
    finally:
        proc.terminate()
        proc.wait(15)
        kill_task_processes(home)


def request(port: int, context: ssl.SSLContext, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, answer, _ = exchange(port, context, method, path, body, headers)
    return status, answer


def exchange(port: int, context: ssl.SSLContext, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """One HTTPS request: status, parsed JSON body (or bytes), headers (lower-case names)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        answer = json.loads(data) if data and data[:1] in b"{[" else data
        return response.status, answer, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_https_with_credentials(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = tls_server
    assert request(port, context, "GET", "/v2/apps")[0] == 401
    status, body = request(port, context, "POST", "/v2/apps", {"id": "/tls/app", "cmd": "sleep 100", "cpus": 0.01,
                                                               "mem": 8, "instances": 0}, AUTH)
    assert status == 201, body
    status, body = request(port, context, "GET", "/v2/apps", headers=AUTH)
    assert status == 200 and [a["id"] for a in body["apps"]] == ["/tls/app"]
    status, info = request(port, context, "GET", "/v2/info", headers=AUTH)
    assert info["http_config"] == {"http_port": None, "https_port": port}


def test_clients_without_tls_or_trust_are_refused(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        request(port, ssl.create_default_context(), "GET", "/ping")
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        plain.request("GET", "/ping")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.getresponse().read()
    finally:
        plain.close()


def test_in_process_services_reach_an_https_api(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = tls_server
    status, body = request(port, context, "PUT", "/v2/autoscaler/policies/tls/app",
                           {"metric": "cpu", "target": 50, "min": 1, "max": 2}, AUTH)
    assert status in (200, 201), body
    def cycled() -> dict[str, Any] | None:
        status, body = request(port, context, "GET", "/v2/autoscaler/status", headers=AUTH)
        return body if status == 200 and body["cycles"] >= 2 else None
    status_body = wait_until(cycled, timeout=20, what="two autoscaler cycles")
    assert status_body["errors"] == 0, status_body["lastError"]


def test_pem_errors_name_the_flags(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    done = subprocess.run([sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
                           "--home", str(tmp_path / "home"), "--haproxy-bridge", "off",
                           "--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", str(tmp_path / "bad.pem")],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--tls-cert" in done.stderr and "PEM" in done.stderr


@pytest.mark.parametrize("ca_file, fragment", [
    ("missing.pem", "missing.pem does not exist"),
    ("bad.pem", "cannot load it"),
])
def test_ca_file_errors_name_the_flag(tmp_path: Path, ca_file: str, fragment: str) -> None:
    issue_certificates(tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate")
    done = subprocess.run([sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
                           "--home", str(tmp_path / "home"), "--haproxy-bridge", "off",
                           "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
                           "--tls-ca-file", str(tmp_path / ca_file)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--tls-ca-file" in done.stderr and fragment in done.stderr, done.stderr
