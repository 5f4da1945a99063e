"""What canary deployments do not carry out is refused with a 422 that says so: two canaries
in one deployment. Blue/green releases are accepted on every write path (POST, PUT, group PUT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import InProcessApi, http, kill_task_processes

CANARY = {"instances": 1, "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}}]}
BLUE_GREEN = {**CANARY, "blueGreen": True}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "home").start()
    yield server
    server.stop()
    kill_task_processes(tmp_path / "home")


def app(app_id: str, **extra: object) -> dict[str, object]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8, **extra}


def test_blue_green_is_accepted_on_every_write_path(api: InProcessApi) -> None:
    strategy = {"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": BLUE_GREEN}}
    for method, path, body, created in [("POST", "/v2/apps", app("/shop/web", **strategy), 201),
                                        ("PUT", "/v2/apps/shop/api", app("/shop/api", **strategy), 201),
                                        ("PUT", "/v2/groups/store", {"id": "/store", "apps": [
                                            app("/store/web", **strategy), app("/store/api", **strategy)]}, 200)]:
        status, body, _ = http(method, api.url, path, body)
        assert status == created, (method, path, body)
    apps = http("GET", api.url, "/v2/apps")[1]["apps"]
    assert sorted(a["id"] for a in apps) == ["/shop/api", "/shop/web", "/store/api", "/store/web"]
    assert all(a["upgradeStrategy"]["canary"]["blueGreen"] is True for a in apps)


def test_two_canaries_in_one_deployment_are_refused(api: InProcessApi) -> None:
    canary = {"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": CANARY}}
    group = {"id": "/shop", "apps": [app("/shop/web", **canary), app("/shop/api", **canary)]}
    status, body, _ = http("PUT", api.url, "/v2/groups/shop", group)       # created: no canary yet
    assert status == 200, body
    changed = {"id": "/shop", "apps": [app(a["id"], env={"RELEASE": "2"}, **canary) for a in group["apps"]]}
    status, body, _ = http("PUT", api.url, "/v2/groups/shop?force=true", changed)
    assert status == 422, body
    errors = [e for d in body["details"] for e in d["errors"]]
    assert any("one canary at a time" in e for e in errors), body
