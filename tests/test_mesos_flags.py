"""`pacer serve --master` flags against the simulated master over real HTTP: authentication
(`--mesos-authentication-principal` / `--mesos-authentication-secret-file`), the
`--reconciliation-interval`, the embedded-agent flags that do nothing on Mesos, and what
/v2/info shows of them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from marathon import MarathonClient

from .mesos_sim import AgentSpec
from .mesos_sim.harness import SimHarness
from .support import REPO, PacerServer, free_port, wait_until
from .test_startup_errors import pacer_cli, the_error_line

pytestmark = pytest.mark.timeout(120)

AGENT_FLAGS_WARNING = "the embedded-agent flags"


def _sim(**options: Any) -> SimHarness:
    agents = [AgentSpec(f"agent-{i + 1}", cpus=4, mem=4096, disk=1000) for i in range(2)]
    return SimHarness(agents, heartbeat_interval=1.0, allocation_interval=0.1, **options).start()


@pytest.fixture
def sim() -> Iterator[SimHarness]:
    harness = _sim()
    yield harness
    harness.stop()


@pytest.fixture
def secured() -> Iterator[SimHarness]:
    """A master started with --authenticate_http_frameworks: basic auth, principal `pacer`."""
    harness = _sim(credentials={"pacer": "s3cret word"})
    yield harness
    harness.stop()


def _log(server: PacerServer) -> str:
    return (server.home.parent / f"serve-{server.port}.log").read_text(errors="replace")


def _run_one(server: PacerServer, app_id: str) -> dict[str, Any]:
    assert server.request("POST", "/v2/apps", {"id": app_id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16})[0] == 201
    return wait_until(lambda: server.running(app_id), what=f"a task of {app_id} running")[0]


# -- authentication ---------------------------------------------------------------------------

def test_authenticated_framework_runs_tasks(secured: SimHarness, tmp_path: Path,
                                            pacer_factory: Callable[..., PacerServer]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret word\n")                 # as `echo` writes it: the newline is not the secret's
    server = pacer_factory("--master", secured.url, "--mesos-authentication-principal", "pacer",
                           "--mesos-authentication-secret-file", str(secret))
    _run_one(server, "/auth")
    info = secured.calls("SUBSCRIBE")[0]["subscribe"]["framework_info"]
    assert info["principal"] == "pacer"
    kinds = {c["type"] for c in secured.calls()}
    assert {"SUBSCRIBE", "ACCEPT", "ACKNOWLEDGE", "RECONCILE"} <= kinds       # every call carried the credentials
    assert secured.run(lambda: secured.leader.unauthorized) == 0
    assert secured.rejections() == []
    assert "s3cret" not in _log(server)
    _, body, _ = server.get("/v2/info")
    assert "s3cret" not in str(body)


@pytest.fixture
def unready(pacer_home: Path) -> Iterator[Callable[..., PacerServer]]:
    """`pacer serve` started without waiting for /ping (it waits for a master that refuses it);
    stopped by its pid afterwards."""
    started: list[PacerServer] = []

    def spawn(*extra: str) -> PacerServer:
        server = PacerServer(pacer_home, *extra)
        with open(server.home.parent / f"serve-{server.port}.log", "ab") as log:
            server.proc = subprocess.Popen(
                [sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{server.port}",
                 "--home", str(server.home), *server.extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.stop()


def test_wrong_secret_is_refused_and_named(secured: SimHarness, tmp_path: Path,
                                          unready: Callable[..., PacerServer]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not it\n")
    server = unready("--master", secured.url, "--mesos-authentication-principal", "pacer",
                     "--mesos-authentication-secret-file", str(secret))
    wait_until(lambda: secured.run(lambda: secured.leader.unauthorized) >= 2, what="refused SUBSCRIBEs")
    line = wait_until(lambda: [l for l in _log(server).splitlines() if "(401)" in l], what="the refusal logged")[0]
    assert "--mesos-authentication-secret-file" in line and "not it" not in line
    assert secured.run(lambda: dict(secured.leader.frameworks)) == {}
    assert secured.calls() == []                         # nothing got past the authentication
    assert server.proc is not None and server.proc.poll() is None   # it keeps trying (the secret may be rotated)


def test_a_principal_alone_only_names_the_framework(sim: SimHarness,
                                                    pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url, "--mesos-authentication-principal", "web-team")
    _run_one(server, "/named")
    assert sim.calls("SUBSCRIBE")[0]["subscribe"]["framework_info"]["principal"] == "web-team"


@pytest.mark.parametrize("case", ["missing", "unreadable", "empty", "no-principal"])
def test_secret_file_problems_are_usage_errors(case: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    flags = ["--mesos-authentication-principal", "pacer", "--mesos-authentication-secret-file", str(secret)]
    if case == "unreadable":
        secret.mkdir()                                   # a directory: unreadable as a file, even for root
    elif case == "empty":
        secret.write_text("\n")
    elif case == "no-principal":
        secret.write_text("s3cret\n")
        flags = flags[2:]
    result = pacer_cli("serve", "--master", f"http://127.0.0.1:{free_port()}", "--home", str(tmp_path / "home"),
                       "--haproxy-bridge", "off", *flags)
    line = the_error_line(result, "--mesos-authentication-secret-file", status=2)
    if case != "no-principal":
        assert str(secret) in line


# -- reconciliation -----------------------------------------------------------------------------

def test_reconciliation_interval_is_honoured(sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url, "--reconciliation-interval", "0.5")
    _run_one(server, "/rec")

    def implicit() -> int:
        return len([c for c in sim.calls("RECONCILE") if not c["reconcile"].get("tasks")])

    wait_until(lambda: implicit() >= 2, what="a periodic implicit reconciliation")
    started, count = time.monotonic(), implicit()
    wait_until(lambda: implicit() >= count + 3, timeout=20, what="three more implicit reconciliations")
    assert time.monotonic() - started >= 2 * 0.5 * 0.9   # at the interval, not faster
    explicit = [c for c in sim.calls("RECONCILE") if c["reconcile"].get("tasks")]
    assert len(explicit) >= 2                              # the running task is asked for explicitly too
    assert server.get("/v2/info")[1]["marathon_config"]["reconciliation_interval"] == 500
    assert sim.rejections() == []


def test_reconciliation_interval_must_be_positive(tmp_path: Path) -> None:
    result = pacer_cli("serve", "--master", f"http://127.0.0.1:{free_port()}", "--home", str(tmp_path / "home"),
                       "--haproxy-bridge", "off", "--reconciliation-interval", "0")
    the_error_line(result, "--reconciliation-interval", status=2)


# -- the embedded-agent flags, and /v2/info -------------------------------------------------------

def test_embedded_agent_flags_warn_once_when_given(sim: SimHarness,
                                                   pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url, "--agents", "3", "--agent-resources", "cpus=1,mem=128",
                           "--attribute", "rack=r1")
    _run_one(server, "/flags")
    lines = [l for l in _log(server).splitlines() if AGENT_FLAGS_WARNING in l]
    assert len(lines) == 1 and "WARNING" in lines[0]
    assert all(flag in lines[0] for flag in ("--agents", "--agent-resources", "--attribute"))


def test_info_shows_the_framework_as_marathon_does(sim: SimHarness,
                                                   pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url, "--mesos-role", "web", "--framework-name", "shop")
    _run_one(server, "/info")
    assert not [l for l in _log(server).splitlines() if AGENT_FLAGS_WARNING in l]   # none given: no warning
    framework_id = sim.run(lambda: next(iter(sim.leader.frameworks)))
    _, body, _ = server.get("/v2/info")
    config = body["marathon_config"]
    assert body["frameworkId"] == framework_id
    assert (config["master"], config["mesos_role"], config["framework_name"]) == (sim.url, "web", "shop")
    assert (config["failover_timeout"], config["reconciliation_interval"]) == (604800, 600000)
    assert (config["task_launch_timeout"], config["checkpoint"]) == (300000, True)
    assert config["mesos_leader_ui_url"] == sim.leader.url
    info = MarathonClient(server.url, timeout=10).get_info()   # Marathon's keys only: the strict client parses it
    assert (info.framework_id, info.marathon_config.reconciliation_interval) == (framework_id, 600000)
