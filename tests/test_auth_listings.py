"""Listings as two teams see them, against a real `pacer serve` with nested groups.

Team A (``deployer on /team-a/**``) and team B (``deployer on /team-b/**``) share one
scheduler; each team has apps at several depths, some running, some queued for good (more
CPU than the agent has), and one deployment touches both teams. Every listing
(``/v2/apps`` with embeds, ``/v2/apps/<group>/*``, ``/v2/groups`` and its nested trees and
versions, ``/v2/tasks``, ``/v2/queue``, ``/v2/deployments``) must show each team its own
apps, at every depth, and never name the other team's; an admin sees everything.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.auth.passwords import hash_password

from .support import PacerServer, kill_task_processes, wait_until

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
SMALL = {"cmd": "sleep 1000", "cpus": 0.01, "mem": 8}
HUGE = {"cmd": "sleep 1000", "cpus": 100, "mem": 8}     # never fits: stays queued, its deployment never ends
RUNNING = {"/team-a/web", "/team-a/back/api", "/team-a/back/db/store", "/team-b/web", "/team-b/jobs/cron",
           "/team-b/jobs/nightly/report"}
QUEUED_ALONE = {"/team-a/back/huge", "/team-b/jobs/huge"}
QUEUED_SHARED = {"/team-a/back/db/wide", "/team-b/jobs/wide"}


def _headers(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _auth_file(path: Path) -> Path:
    path.write_text(f'''
[users.alice]
password = "{hash_password(PASSWORDS["alice"])}"
roles = ["deployer on /team-a/**"]

[users.bob]
password = "{hash_password(PASSWORDS["bob"])}"
roles = ["deployer on /team-b/**"]

[users.root]
password = "{hash_password(PASSWORDS["root"])}"
roles = ["admin on /**"]
''')
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacerServer]:
    base = tmp_path_factory.mktemp("auth-listings")
    home = base / "home"
    home.mkdir()
    pacer = PacerServer(home, "--auth-file", str(_auth_file(base / "auth.toml")),
                        "--agent-resources", "cpus=4,mem=4096,disk=1000", "--no-autoscaler")
    try:
        pacer.start()
        for app_id in sorted(RUNNING):
            _ok(pacer, "root", "POST", "/v2/apps", {"id": app_id, "instances": 1, **SMALL})
        wait_until(lambda: {t["appId"] for t in _get(pacer, "root", "/v2/tasks")["tasks"]
                            if t["state"] == "TASK_RUNNING"} == RUNNING, timeout=60, what="a running task of each app")
        for app_id in sorted(QUEUED_ALONE):
            _ok(pacer, "root", "POST", "/v2/apps", {"id": app_id, "instances": 1, **HUGE})
        # one deployment over both teams
        _ok(pacer, "root", "PUT", "/v2/apps", [{"id": a, "instances": 1, **HUGE} for a in sorted(QUEUED_SHARED)])
        wait_until(lambda: {q["app"]["id"] for q in _get(pacer, "root", "/v2/queue")["queue"]}
                   >= QUEUED_ALONE | QUEUED_SHARED, timeout=60, what="the huge apps in the queue")
        yield pacer
    finally:
        pacer.stop()
        kill_task_processes(home)


def _ok(pacer: PacerServer, user: str, method: str, path: str, body: Any) -> Any:
    status, answer, _ = pacer.request(method, path, body, headers=_headers(user))
    assert status in (200, 201), (status, answer)
    return answer


def _get(pacer: PacerServer, user: str, path: str) -> Any:
    status, body, _ = pacer.request("GET", path, headers=_headers(user))
    assert status == 200, (path, status, body)
    return body


def _team(user: str) -> str:
    return {"alice": "/team-a/", "bob": "/team-b/"}[user]


def _other(user: str) -> str:
    return {"alice": "team-b", "bob": "team-a"}[user]


def _mine(ids: set[str], user: str) -> set[str]:
    return {a for a in ids if a.startswith(_team(user))}


TEAMS = ["alice", "bob"]
ALL_APPS = RUNNING | QUEUED_ALONE | QUEUED_SHARED


@pytest.mark.parametrize("user", TEAMS)
def test_apps_with_embedded_tasks_and_deployments(server: PacerServer, user: str) -> None:
    path = "/v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.lastTaskFailure"
    assert {a["id"] for a in _get(server, "root", path)["apps"]} == ALL_APPS
    body = _get(server, user, path)
    assert {a["id"] for a in body["apps"]} == _mine(ALL_APPS, user)
    assert {t["appId"] for a in body["apps"] for t in a["tasks"]} == _mine(RUNNING, user)
    assert _other(user) not in json.dumps(body)


@pytest.mark.parametrize("user", TEAMS)
def test_apps_beneath_a_group(server: PacerServer, user: str) -> None:
    assert {a["id"] for a in _get(server, user, "/v2/apps/*")["*"]} == _mine(ALL_APPS, user)
    inner, other = {"alice": "/team-a/back", "bob": "/team-b/jobs"}[user], _other(user)
    assert {a["id"] for a in _get(server, user, f"/v2/apps{inner}/*")["*"]} == {
        a for a in _mine(ALL_APPS, user) if a.startswith(f"{inner}/")}
    assert _get(server, user, f"/v2/apps/{other}/*")["*"] == []


def _tree_apps(tree: dict[str, Any]) -> set[str]:
    return {a["id"] for a in tree.get("apps", [])} | {a for g in tree.get("groups", []) for a in _tree_apps(g)}


def _tree_groups(tree: dict[str, Any]) -> set[str]:
    return {g["id"] for g in tree.get("groups", [])} | {x for g in tree.get("groups", []) for x in _tree_groups(g)}


@pytest.mark.parametrize("user", TEAMS)
def test_nested_group_trees(server: PacerServer, user: str) -> None:
    everything = _get(server, "root", "/v2/groups")
    assert _tree_apps(everything) == ALL_APPS
    own = _team(user).rstrip("/")
    tree = _get(server, user, "/v2/groups")
    assert _tree_apps(tree) == _mine(ALL_APPS, user)
    expected_groups = {g for g in _tree_groups(everything) if g == own or g.startswith(own + "/")}
    assert _tree_groups(tree) == expected_groups and len(expected_groups) >= 3     # nested two deep
    assert _other(user) not in json.dumps(tree)
    inner = {"alice": "/team-a/back", "bob": "/team-b/jobs"}[user]
    subtree = _get(server, user, f"/v2/groups{inner}")
    assert _tree_apps(subtree) == {a for a in _mine(ALL_APPS, user) if a.startswith(inner + "/")}
    shape = _get(server, user, "/v2/groups?embed=group.groups")
    assert _tree_groups(shape) == expected_groups and _other(user) not in json.dumps(shape)
    status, body, _ = server.request("GET", f"/v2/groups/{_other(user)}", headers=_headers(user))
    assert status == 404, body
    assert _other(user) in json.dumps(_get(server, "root", f"/v2/groups/{_other(user)}"))


@pytest.mark.parametrize("user", TEAMS)
def test_group_versions(server: PacerServer, user: str) -> None:
    own = _team(user).rstrip("/")
    versions = _get(server, user, "/v2/groups/versions")
    assert versions and set(versions) <= set(_get(server, "root", "/v2/groups/versions"))
    assert set(versions) == set(_get(server, user, f"/v2/groups{own}/versions"))
    as_of = _get(server, user, f"/v2/groups/versions/{versions[0]}")
    assert _tree_apps(as_of) and all(a.startswith(own + "/") for a in _tree_apps(as_of))


@pytest.mark.parametrize("user", TEAMS)
def test_tasks(server: PacerServer, user: str) -> None:
    assert {t["appId"] for t in _get(server, "root", "/v2/tasks")["tasks"]} == RUNNING
    body = _get(server, user, "/v2/tasks")
    assert {t["appId"] for t in body["tasks"]} == _mine(RUNNING, user)
    assert {t["appId"] for t in _get(server, user, "/v2/tasks?status=running")["tasks"]} == _mine(RUNNING, user)


@pytest.mark.parametrize("user", TEAMS)
def test_queue(server: PacerServer, user: str) -> None:
    body = _get(server, user, "/v2/queue?embed=reason")
    assert {q["app"]["id"] for q in body["queue"]} == _mine(QUEUED_ALONE | QUEUED_SHARED, user)
    assert _other(user) not in json.dumps(body)


@pytest.mark.parametrize("user", TEAMS)
def test_deployments(server: PacerServer, user: str) -> None:
    everything = _get(server, "root", "/v2/deployments")
    shared = [d for d in everything if set(d["affectedApps"]) == QUEUED_SHARED]
    assert len(shared) == 1
    body = _get(server, user, "/v2/deployments")
    assert _other(user) not in json.dumps(body)
    assert {a for d in body for a in d["affectedApps"]} == _mine(QUEUED_ALONE | QUEUED_SHARED, user)
    seen = {d["id"]: d for d in body}
    mine = seen[shared[0]["id"]]             # the shared deployment, cut down to this team's app
    assert mine["affectedApps"] == sorted(_mine(QUEUED_SHARED, user))
    assert mine["totalSteps"] == shared[0]["totalSteps"]
    assert {a["app"] for step in mine["steps"] for a in step["actions"]} == _mine(QUEUED_SHARED, user)
    assert {d["id"] for d in everything} - set(seen) == {
        d["id"] for d in everything if not any(a.startswith(_team(user)) for a in d["affectedApps"])}
    # cancelling it needs deployer on both teams' apps: refused without naming the other's
    status, refusal, _ = server.request("DELETE", f"/v2/deployments/{shared[0]['id']}", headers=_headers(user))
    assert status == 403 and _other(user) not in json.dumps(refusal), refusal
