"""High availability over HTTPS with authentication: a follower forwards to the leader over
TLS, verifying the leader's certificate against `--tls-ca-file`, and the leader authenticates
and authorizes the caller from the `Authorization` header the follower passed on unchanged.

End to end: two `pacer serve --zk` on a real ZooKeeper and a simulated Mesos master, with
certificates from a CA made in the test (trustme). In process: a follower's proxy against a
TLS leader it trusts, one it does not, and one it would speak plain HTTP to.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from scheduler.auth.passwords import hash_password

from .mesos_sim.harness import SimHarness
from .support import REPO, free_port, kill_task_processes, stop_process, wait_until
from .test_api_leader_proxy import ControlledLeadership
from .test_auth_tls import exchange, issue_certificates
from .test_ha import SESSION_TIMEOUT, sim  # noqa: F401  (the simulated Mesos master)
from .zk_support import ZooKeeperServer

PASSWORDS = {"root": "root-pw", "alice": "alice-pw"}
SMALL = {"cmd": "sleep 1000", "cpus": 0.01, "mem": 8}


def _basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class TlsPacer:
    """`pacer serve --zk` over HTTPS as a subprocess on a free loopback port."""

    def __init__(self, home: Path, client: ssl.SSLContext, *flags: str) -> None:
        self.home, self.client, self.flags = home, client, flags
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TlsPacer:
        log = (self.home.parent / f"serve-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacer.cli", "serve", "--listen", self.address, "--home", str(self.home),
             "--haproxy-bridge", "off", *self.flags], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        return self

    def up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"pacer serve exited; log in {self.home.parent}"
        try:
            return self.request("GET", "/ping")[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: Any = None, user: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        return exchange(self.port, self.client, method, path, body, {**(_basic(user) if user else {}),
                                                                     **(headers or {})})

    def elected(self) -> bool:
        try:
            status, info, _ = self.request("GET", "/v2/info", user="root")
        except OSError:
            return False
        return status == 200 and info.get("elected") is True

    def stop(self) -> None:
        stop_process(self.proc)
        kill_task_processes(self.home)


@pytest.fixture
def pair(tmp_path: Path, zookeeper: ZooKeeperServer, sim: SimHarness) -> Iterator[tuple[TlsPacer, TlsPacer]]:  # noqa: F811
    """Two instances sharing a ZooKeeper path, serving HTTPS with a CA of the test's: (leader, follower)."""
    client = issue_certificates(tmp_path)
    (tmp_path / "auth.toml").write_text(f'''
[users.root]
password = "{hash_password(PASSWORDS["root"])}"
roles = ["admin on /**"]

[users.alice]
password = "{hash_password(PASSWORDS["alice"])}"
roles = ["deployer on /team-a/**"]
''')
    flags = ("--master", sim.url, "--zk", zookeeper.zk_url(f"/pacer-tls-{free_port()}"),
             "--zk-session-timeout", str(SESSION_TIMEOUT), "--hostname", "127.0.0.1", "--no-autoscaler",
             "--auth-file", str(tmp_path / "auth.toml"), "--tls-cert", str(tmp_path / "cert.pem"),
             "--tls-key", str(tmp_path / "key.pem"), "--tls-ca-file", str(tmp_path / "ca.pem"))
    servers: list[TlsPacer] = []
    try:
        for i in range(2):
            home = tmp_path / f"node-{i}" / "home"
            home.mkdir(parents=True)
            servers.append(TlsPacer(home, client, *flags).start())
        wait_until(lambda: all(s.up() for s in servers), timeout=60, what="both instances answering over https")
        leader = wait_until(lambda: next((s for s in servers if s.elected()), None), timeout=SESSION_TIMEOUT + 30,
                            what="an elected leader")
        follower = next(s for s in servers if s is not leader)
        wait_until(lambda: follower.request("GET", "/v2/leader", user="root")[1] == {"leader": leader.address},
                   timeout=30, what="the follower to know the leader")
        yield leader, follower
    finally:
        for server in servers:
            server.stop()


def test_a_follower_forwards_to_the_leader_over_https_with_the_callers_credentials(
        pair: tuple[TlsPacer, TlsPacer]) -> None:
    leader, follower = pair
    assert not follower.elected()
    for headers in ({}, _basic("root", "wrong")):
        status, body, answer_headers = follower.request("GET", "/v2/apps", headers=headers)
        assert status == 401, body
        assert 'realm="pacer"' in answer_headers["www-authenticate"]

    status, body, headers = follower.request("POST", "/v2/apps", {"id": "/team-a/web", "instances": 0, **SMALL},
                                             user="root")
    assert status == 201, body
    assert f"1.1 {follower.address}" in headers["x-marathon-via"]          # relayed from the leader
    assert headers["x-marathon-leader"] == f"https://{leader.address}"
    status, body, _ = leader.request("GET", "/v2/apps/team-a/web", user="root")
    assert status == 200 and body["app"]["id"] == "/team-a/web"

    # the leader authenticated the caller itself: its audit log names the user and the follower's hop
    status, body, _ = follower.request("GET", "/v2/audit?user=root", user="root")
    assert status == 200, body
    created = [e for e in body["entries"] if e["method"] == "POST" and e["path"] == "/v2/apps"]
    assert created and created[-1]["status"] == 201 and created[-1]["forwardedFor"] == "127.0.0.1"
    assert (leader.home / "audit" / "audit.log").exists()

    status, body, _ = follower.request("GET", "/v2/apps", user="alice")
    assert status == 200 and [a["id"] for a in body["apps"]] == ["/team-a/web"]
    status, body, _ = follower.request("PUT", "/v2/apps/team-b/web", {"instances": 1}, user="alice")
    assert status == 403 and "needs deployer on /team-b/web" in body["message"]


def test_the_leader_authorizes_a_forwarded_rollback_with_its_own_state(pair: tuple[TlsPacer, TlsPacer]) -> None:
    """The follower's copy of the state is not the leader's: it forwards a rollback that only the
    leader can judge (the version it restores is privileged), and the leader refuses it."""
    leader, follower = pair
    privileged = {"id": "/team-a/db", "instances": 0, "cpus": 0.01, "mem": 8,
                  "container": {"type": "DOCKER", "docker": {"image": "busybox", "privileged": True}}}
    versions = []
    unprivileged = {**privileged, "container": {"type": "DOCKER", "docker": {"image": "busybox", "privileged": False}}}
    for app in (privileged, unprivileged):
        status, body, _ = leader.request("PUT", "/v2/apps/team-a/db?force=true", app, user="root")
        assert status in (200, 201), body
        versions.append(body["version"])
    status, body, headers = follower.request("PUT", "/v2/apps/team-a/db?force=true", {"version": versions[0]},
                                             user="alice")
    assert status == 403, body
    assert "needs admin on /team-a/db" in body["message"] and "privileged" in body["message"]
    assert f"1.1 {follower.address}" in headers["x-marathon-via"]          # the leader's refusal
    status, body, _ = follower.request("PUT", "/v2/apps/team-a/db?force=true", {"version": versions[1]},
                                       user="alice")
    assert status == 200, body


# --- in process: what the proxy verifies -------------------------------------------------------

async def _tls_leader(certs: Path) -> tuple[web.AppRunner, int, list[str | None]]:
    """A stand-in leader over HTTPS that answers every request with 200 and records the
    `Authorization` header it received."""
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"apps": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    return runner, port, seen


async def _follower(home: Path, leader_port: int,
                    leader_tls: ssl.SSLContext | None) -> tuple[web.AppRunner, str, Any]:
    """A real follower's API (its scheduler never starts: a follower forwards) on plain HTTP."""
    from scheduler.api import build_api
    from scheduler.engine.build import ServeOptions, make_scheduler

    port = free_port()
    leadership = ControlledLeadership(f"127.0.0.1:{port}")
    leadership.leader = f"127.0.0.1:{leader_port}"
    sched = make_scheduler(ServeOptions(home=home, resources={"cpus": 0, "mem": 0, "disk": 0}))
    app = build_api(sched, leadership=leadership, leader_tls=leader_tls)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", sched


@pytest.mark.parametrize("trust", ["the leader's CA", "another CA", "plain http"])
async def test_the_proxy_verifies_the_leaders_certificate(tmp_path: Path, trust: str) -> None:
    issue_certificates(tmp_path)
    leader, leader_port, seen = await _tls_leader(tmp_path)
    if trust == "the leader's CA":
        context: ssl.SSLContext | None = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    elif trust == "another CA":
        other = tmp_path / "other"
        other.mkdir()
        issue_certificates(other)
        context = ssl.create_default_context(cafile=str(other / "ca.pem"))
    else:
        context = None
    follower, url, sched = await _follower(tmp_path / "home", leader_port, context)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/v2/apps", headers={"Authorization": "Bearer opaque-token"}) as response:
                body = json.loads(await response.read())
                status, leader_header = response.status, response.headers.get("X-Marathon-Leader")
    finally:
        await follower.cleanup()
        await sched.close()
        await leader.cleanup()
    if trust == "the leader's CA":
        assert (status, body) == (200, {"apps": []})
        assert seen == ["Bearer opaque-token"]                # passed on unchanged
        assert leader_header == f"https://127.0.0.1:{leader_port}"
    else:
        assert status == 502 and body["message"] == "Failed to successfully establish a connection to the leader."
        assert trust == "plain http" or seen == []           # nothing reached an unverified leader
