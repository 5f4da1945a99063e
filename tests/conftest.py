from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import InProcessApi, PacerServer, http, kill_task_processes


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


_NEEDS_HAPROXY = ("test_haproxy_process", "test_haproxy_e2e", "test_haproxy_cli", "test_haproxy_render",
                  "test_haproxy_properties", "test_pacer_serve_haproxy")


def pytest_collection_modifyitems(config, items) -> None:
    """Without the haproxy binary (a non-root `make test` cannot install it), the tests that
    drive a real HAProxy are skipped, saying why; everything else still runs."""
    import shutil

    if shutil.which("haproxy") is not None:
        return
    skip = pytest.mark.skip(reason="haproxy is not installed (apt-get install haproxy)")
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in _NEEDS_HAPROXY:
            item.add_marker(skip)
