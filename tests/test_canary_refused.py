"""Until deployments carry canaries out, an app asking for one is refused with a 422 that says so,
on every write path (POST, PUT, group PUT), and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import InProcessApi, http, kill_task_processes

CANARY = {"instances": 1, "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}}]}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "home").start()
    yield server
    server.stop()
    kill_task_processes(tmp_path / "home")


def app(app_id: str, **extra: object) -> dict[str, object]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8, **extra}


def test_a_canary_is_refused_on_every_write_path_and_nothing_is_stored(api: InProcessApi) -> None:
    strategy = {"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": CANARY}}
    for method, path, body in [("POST", "/v2/apps", app("/shop/web", **strategy)),
                               ("PUT", "/v2/apps/shop/web", app("/shop/web", **strategy)),
                               ("PUT", "/v2/groups/shop", {"id": "/shop", "apps": [app("/shop/web", **strategy)]})]:
        status, body, _ = http(method, api.url, path, body)
        assert status == 422, (method, path, body)
        errors = [e for d in body["details"] for e in d["errors"]]
        assert any("not carried out" in e and "/shop/web" in e for e in errors), body
    assert http("GET", api.url, "/v2/apps")[1]["apps"] == []
    status, body, _ = http("POST", api.url, "/v2/apps", app("/shop/web"))        # without it: accepted
    assert status == 201, body
