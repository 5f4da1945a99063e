"""Canary deployments on every write path: blue/green releases are accepted on POST, PUT and
group PUT, and a group written whole with two canary apps runs both canaries in one deployment
(`/v2/deployments` shows a block per app; `?appId=` names one of them, and is checked). The
canaries stepping through real processes: test_canary_multi_api.py."""

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


def test_a_group_with_two_canary_apps_is_one_deployment_with_a_canary_block_per_app(api: InProcessApi) -> None:
    canary = {"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": CANARY}}
    group = {"id": "/shop", "apps": [app("/shop/web", **canary), app("/shop/api", **canary)]}
    status, body, _ = http("PUT", api.url, "/v2/groups/shop", group)       # created: no canary yet
    assert status == 200, body
    changed = {"id": "/shop", "apps": [app(a["id"], env={"RELEASE": "2"}, **canary) for a in group["apps"]]}
    status, body, _ = http("PUT", api.url, "/v2/groups/shop?force=true", changed)
    assert status == 200, body
    rows = [r for r in http("GET", api.url, "/v2/deployments")[1] if r["id"] == body["deploymentId"]]
    (row,) = rows
    assert [(b["app"], b["phase"]) for b in row["canaries"]] == [("/shop/api", "starting"), ("/shop/web", "starting")]
    assert row["canary"] == row["canaries"][0]                              # the one-canary view: the first
    status, body, _ = http("POST", api.url, f"/v2/deployments/{row['id']}/promote?appId=/shop/nope", {})
    assert status == 404 and "/shop/api, /shop/web" in body["message"], body
    status, body, _ = http("POST", api.url, f"/v2/deployments/{row['id']}/promote?appId=bad%20id", {})
    assert status == 422 and any("appId" in d["path"] for d in body["details"]), body
    status, body, _ = http("POST", api.url, f"/v2/deployments/{row['id']}/promote", {})
    assert status == 409 and "/shop/api, /shop/web" in body["message"], body   # neither has begun its steps
