"""Start-up failures of the `pacer` commands read as errors: one line naming the flag, and
exit 2 (cannot run as given) or 1 (a service it was pointed at does not answer).

Each case runs the real command (`python -m pacer.cli`, as `make run` and CI run `pacer`) and
checks the exit status, that stderr is one line naming the address, path or URL and the flag
that changes it, and that no traceback appears anywhere in the output.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import REPO, PacerServer, free_port, kill_task_processes, wait_until

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")


def pacer_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def the_error_line(result: subprocess.CompletedProcess[str], *needles: str, status: int = 2) -> str:
    """The run failed with `status` and said so in one line holding every needle, no traceback."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stderr
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another server listens on."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve_args(home: Path, port: int, *extra: str) -> list[str]:
    return ["serve", "--listen", f"127.0.0.1:{port}", "--home", str(home), *extra]


# -- pacer serve ----------------------------------------------------------------------------

def test_listen_address_in_use(pacer_home: Path, taken_port: int) -> None:
    result = pacer_cli(*serve_args(pacer_home, taken_port, "--haproxy-bridge", "off"))
    line = the_error_line(result, f"127.0.0.1:{taken_port}", "already in use", "--listen HOST:PORT", "LISTEN=")
    assert line.startswith("pacer: ")


def test_home_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = blocker / "home"
    result = pacer_cli(*serve_args(home, free_port(), "--haproxy-bridge", "off"))
    the_error_line(result, str(home), "--home", "$PACER_HOME")


def test_docker_host_that_does_not_answer(pacer_home: Path, tmp_path: Path) -> None:
    silent = f"unix://{tmp_path}/no-engine.sock"
    result = pacer_cli(*serve_args(pacer_home, free_port(), "--haproxy-bridge", "off", "--docker-host", silent))
    the_error_line(result, silent, "--docker-host", "--docker-host none", status=1)


@needs_haproxy
def test_bridge_on_with_its_stats_port_in_use(pacer_home: Path, taken_port: int) -> None:
    result = pacer_cli(*serve_args(pacer_home, free_port(), "--haproxy-bridge", "on", *bridge_ports(taken_port)))
    the_error_line(result, f"127.0.0.1:{taken_port}", "--haproxy-stats-port", "--haproxy-bridge off")


def bridge_ports(stats_port: int) -> list[str]:
    return ["--haproxy-http-port", str(free_port()), "--haproxy-https-port", str(free_port()),
            "--haproxy-stats-port", str(stats_port), "--haproxy-apps-port", str(free_port())]


@needs_haproxy
def test_bridge_auto_with_its_stats_port_in_use_keeps_serving(pacer_home: Path, taken_port: int) -> None:
    server = PacerServer(pacer_home, "--haproxy-bridge", "auto", *bridge_ports(taken_port))
    try:
        server.start()
        status, body, _ = server.get("/v2/haproxy")
        assert status == 200 and f"127.0.0.1:{taken_port}" in str(body), body
        code = stop(server)
    finally:
        server.stop(signal.SIGKILL)
        kill_task_processes(pacer_home)
    log = server_log(server)
    assert code == 0, log
    assert "Traceback" not in log
    [line] = [line for line in log.splitlines() if "HAProxy bridge not started" in line]
    assert "--haproxy-stats-port" in line and f"127.0.0.1:{taken_port}" in line


def test_influxdb_that_does_not_answer_is_said_once_and_is_not_fatal(pacer_home: Path) -> None:
    silent = f"http://127.0.0.1:{free_port()}"
    server = PacerServer(pacer_home, "--influxdb-url", silent, "--metrics-interval", "1", "--autoscale-interval", "1")
    try:
        server.start()
        app = {"id": "/sampled", "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 8}
        assert server.request("POST", "/v2/apps", app)[0] == 201
        wait_until(lambda: server.running("/sampled"), what="a task to sample")
        wait_until(lambda: "does not answer" in server_log(server), timeout=10, what="the InfluxDB note")
        assert server.get("/ping")[0] == 200
        code = stop(server)
    finally:
        server.stop(signal.SIGKILL)
        kill_task_processes(pacer_home)
    log = server_log(server)
    assert code == 0, log
    assert "Traceback" not in log
    notes = [line for line in log.splitlines() if "InfluxDB at" in line and "does not answer" in line]
    assert len(notes) == 1, notes
    assert silent in notes[0] and "--influxdb-url" in notes[0]


def stop(server: PacerServer) -> int:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=15)
    server.proc = None
    return code


def server_log(server: PacerServer) -> str:
    return (server.home.parent / f"serve-{server.port}.log").read_text(errors="replace")


# -- pacer autoscaler, deploy, haproxy-bridge -----------------------------------------------

def nothing_listens() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_autoscaler_with_an_unreachable_master(tmp_path: Path) -> None:
    master = nothing_listens()
    result = pacer_cli("autoscaler", "--master", master, "--listen", f"127.0.0.1:{free_port()}",
                       "--state-dir", str(tmp_path / "autoscaler"))
    the_error_line(result, master, "--master", status=1)


def test_autoscaler_listen_address_in_use(tmp_path: Path, taken_port: int) -> None:
    result = pacer_cli("autoscaler", "--master", nothing_listens(), "--listen", f"127.0.0.1:{taken_port}",
                       "--state-dir", str(tmp_path / "autoscaler"))
    the_error_line(result, f"127.0.0.1:{taken_port}", "--listen")


def test_deploy_with_an_unreachable_master(tmp_path: Path) -> None:
    definition = tmp_path / "app.json"
    definition.write_text('{"id": "/svc", "cmd": "sleep 1000", "instances": 1}')
    master = nothing_listens()
    result = pacer_cli("deploy", "-f", str(definition), "--master", master)
    the_error_line(result, master, "--master", status=1)


def test_haproxy_bridge_with_an_unreachable_master(tmp_path: Path) -> None:
    master = nothing_listens()
    result = pacer_cli("haproxy-bridge", "--master", master, "--config-dir", str(tmp_path / "haproxy"),
                       *standalone_ports(free_port()))
    the_error_line(result, master, "--master", status=1)


def standalone_ports(stats_port: int) -> list[str]:
    return ["--http-port", str(free_port()), "--https-port", str(free_port()), "--stats-port", str(stats_port),
            "--apps-port", str(free_port()), "--status-port", str(free_port())]


@needs_haproxy
def test_haproxy_bridge_with_its_stats_port_in_use(pacer, tmp_path: Path, taken_port: int) -> None:
    result = pacer_cli("haproxy-bridge", "--master", pacer.url, "--config-dir", str(tmp_path / "haproxy"),
                       *standalone_ports(taken_port))
    the_error_line(result, f"127.0.0.1:{taken_port}", "--stats-port")
    assert not (tmp_path / "haproxy" / "haproxy.pid").exists(), "no HAProxy may be left running"


def test_the_exit_statuses_are_documented() -> None:
    result = pacer_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "exit status" in text and "2 cannot run as given" in text and "does not answer" in text
