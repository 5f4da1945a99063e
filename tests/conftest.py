from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .haproxy_support import Backends, RecordedMaster
from .support import InProcessApi, PacerServer, http, kill_task_processes
from .zk_support import ZooKeeperServer, zookeeper_available


@pytest.fixture
def pacer_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    yield home
    kill_task_processes(home)


@pytest.fixture
def pacer_factory(pacer_home: Path) -> Iterator:
    """Start `pacer serve` processes on one home; every one is stopped by its pid afterwards."""
    started: list[PacerServer] = []

    def start(*extra: str) -> PacerServer:
        server = PacerServer(pacer_home, *extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    kill_task_processes(pacer_home)


@pytest.fixture
def pacer(pacer_factory) -> PacerServer:
    return pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000")


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[InProcessApi]:
    """One in-process API per test module, holding the app /existing (0 instances)."""
    home = tmp_path_factory.mktemp("api") / "home"
    server = InProcessApi(home).start()
    status, body, _ = http("POST", server.url, "/v2/apps", {"id": "/existing", "cmd": "sleep 1000", "instances": 0})
    assert status == 201, body
    yield server
    server.stop()
    kill_task_processes(home)


# -- HAProxy bridge tests: task stand-ins and a recorded /v2 master --------------------------

@pytest.fixture
def backends() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop_all()


@pytest.fixture
def master() -> Iterator[RecordedMaster]:
    m = RecordedMaster().start()
    yield m
    m.stop()


# -- ZooKeeper: a private server on loopback (tests/zk_support.py) ----------------------------

@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory) -> Iterator[ZooKeeperServer]:
    """One ZooKeeper for the session: tests that share it use paths of their own."""
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed (make test installs Debian's zookeeper when root)")
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")).start()
    yield server
    server.stop()


@pytest.fixture
def zk_factory(tmp_path: Path) -> Iterator:
    """Private ZooKeeper servers for tests that stop, kill or restart theirs."""
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed (make test installs Debian's zookeeper when root)")
    started: list[ZooKeeperServer] = []

    def start() -> ZooKeeperServer:
        server = ZooKeeperServer(tmp_path / f"zookeeper-{len(started)}").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
