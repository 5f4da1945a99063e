"""Scheduled cutovers and approval gates through a real `pacer serve`: real processes, real
HTTP, a real SQLite store under --home, and `kill -9` of the server between submit and start.
The pass-by-pass behaviour (time zones, refusals, expiry) is in test_scheduled_deployments.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scheduler.auth.passwords import hash_password
from scheduler.state.clock import parse_timestamp

from .support import REPO, EventRecorder, PacerServer, running_tasks, wait_until
from .test_ha import Ha, ha, sim  # noqa: F401  (fixtures: three pacer serve on ZooKeeper, a Mesos simulator)
from .test_ha import _app as _ha_app

SHANGHAI = timezone(timedelta(hours=8))


def app(app_id: str, release: str = "1") -> dict:
    return {"id": app_id, "cmd": "sleep 3600", "instances": 1, "cpus": 0.05, "mem": 16,
            "env": {"RELEASE": release}}


def ahead(seconds: float) -> str:
    """A start time `seconds` from now, written in UTC+8 as the teams write theirs."""
    return (datetime.now(SHANGHAI) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def entry(server: PacerServer, deployment_id: str) -> dict | None:
    return next((d for d in server.get("/v2/deployments?embed=pending")[1] if d["id"] == deployment_id), None)


def version_of(server: PacerServer, app_id: str) -> str:
    return server.get(f"/v2/apps{app_id}")[1]["app"]["version"]


def running_release(server: PacerServer, app_id: str, release: str) -> bool:
    body = server.get(f"/v2/apps{app_id}")[1]["app"]
    return body["env"].get("RELEASE") == release and body["tasksRunning"] == 1


def test_a_scheduled_cutover_starts_on_time_and_shows_as_scheduled_until_then(pacer):
    assert pacer.request("POST", "/v2/apps", app("/shop"))[0] == 201
    wait_until(lambda: running_release(pacer, "/shop", "1"), what="/shop running")
    recorder = EventRecorder(pacer.url, "deployment_scheduled", "deployment_scheduled_started")
    at = ahead(6)
    status, body, headers = pacer.request("PUT", f"/v2/apps/shop?at={at.replace('+', '%2B')}", app("/shop", "2"))
    assert status == 200, body
    assert body["scheduledAt"] == at and body["status"] == "scheduled"
    assert headers["marathon-deployment-id"] == body["deploymentId"]
    listed = entry(pacer, body["deploymentId"])     # (its shape while far from its time: the test below)
    assert listed is not None and listed.get("status", "scheduled") == "scheduled"
    wait_until(lambda: running_release(pacer, "/shop", "2"), timeout=60, what="the cutover to run release 2")
    assert version_of(pacer, "/shop") == body["version"]
    wait_until(lambda: recorder.of_type("deployment_scheduled_started"), timeout=10, what="the started event")
    recorder.close()
    started = recorder.of_type("deployment_scheduled_started")[0]
    assert started["id"] == body["deploymentId"]
    lag = parse_timestamp(started["timestamp"]) - datetime.fromisoformat(at).timestamp()
    print(f"the cutover started {lag:.3f} s after its time")
    assert lag >= 0                                                                   # never early
    assert recorder.of_type("deployment_scheduled")[0]["scheduledAt"] == at


def test_a_scheduled_cutover_survives_kill_9_and_starts_after_the_restart(pacer_factory):
    args = ("--agent-resources", "cpus=16,mem=16384,disk=10000")
    server = pacer_factory(*args)
    assert server.request("POST", "/v2/apps", app("/kept"))[0] == 201
    wait_until(lambda: running_release(server, "/kept", "1"), what="/kept running")
    status, body, _ = server.request("POST", f"/v2/apps/kept?at={ahead(8).replace('+', '%2B')}", app("/kept", "2"))
    assert status == 200, body
    server.stop(signal.SIGKILL)
    restarted = pacer_factory(*args)
    listed = entry(restarted, body["deploymentId"])
    # still scheduled, or (on a slow machine, the restart outlasting the 8 s) already running or done
    assert listed is None or listed.get("status") == "scheduled" or (listed.get("currentStep", 0) >= 1
                                                                     and "status" not in listed), listed
    wait_until(lambda: running_release(restarted, "/kept", "2"), timeout=60, what="the cutover after the restart")
    assert version_of(restarted, "/kept") == body["version"]


def test_changed_since_refusal_cancel_and_bad_times_over_http(pacer):
    assert pacer.request("POST", "/v2/apps", app("/moved"))[0] == 201
    wait_until(lambda: running_release(pacer, "/moved", "1") and not pacer.get("/v2/deployments")[1],
               what="/moved deployed")
    # 10 s: the hotfix below must come first even on a loaded machine
    status, pending, _ = pacer.request("PUT", f"/v2/apps/moved?at={ahead(10).replace('+', '%2B')}", app("/moved", "2"))
    assert status == 200, pending
    status, hotfix, _ = pacer.request("PUT", "/v2/apps/moved", {"env": {"RELEASE": "hotfix"}})
    assert status == 200
    failed = wait_until(lambda: (e := entry(pacer, pending["deploymentId"])) and e.get("status") == "failed" and e,
                        timeout=30, what="the refusal")
    assert "/moved changed to version" in failed["reason"] and hotfix["version"] in failed["reason"]
    assert pacer.get("/v2/apps/moved")[1]["app"]["env"]["RELEASE"] == "hotfix"
    assert pacer.request("DELETE", f"/v2/deployments/{pending['deploymentId']}")[0] == 202
    assert entry(pacer, pending["deploymentId"]) is None

    # cancel before the start; move; past and zone-less times are 422s naming the field
    status, later, _ = pacer.request("POST", f"/v2/apps?at={ahead(3600).replace('+', '%2B')}", app("/new"))
    assert status == 201 and later["status"] == "scheduled"
    listed = entry(pacer, later["deploymentId"])
    assert listed is not None and listed["status"] == "scheduled" and listed["scheduledAt"] == later["scheduledAt"]
    assert listed["affectedApps"] == ["/new"] and listed["currentActions"] == [] and listed["currentStep"] == 0
    assert listed["totalSteps"] >= 1 and listed["version"] == later["version"]
    assert pacer.get("/v2/apps/new")[0] == 404
    status, moved, _ = pacer.request("PUT", f"/v2/deployments/{later['deploymentId']}",
                                     {"scheduledAt": "2099-01-01T00:00:00Z"})
    assert status == 200 and moved["scheduledAt"] == "2099-01-01T00:00:00Z"
    assert pacer.request("DELETE", f"/v2/deployments/{later['deploymentId']}")[0] == 202
    assert entry(pacer, later["deploymentId"]) is None
    for bad, words in [("2020-01-01T00:00:00%2B08:00", "in the past"), ("2099-01-01T00:00:00", "no UTC offset")]:
        status, body, _ = pacer.request("PUT", f"/v2/apps/moved?at={bad}", app("/moved", "3"))
        assert status == 422 and body["details"][0]["path"] == "/at" and words in body["details"][0]["errors"][0]
    status, body, _ = pacer.request("PUT", f"/v2/apps/moved?at={ahead(60).replace('+', '%2B')}",
                                    {"id": "/moved", "cmd": "x", "instances": -1})
    assert status == 422 and any(d["path"] == "/instances" for d in body["details"])
    assert not [d for d in pacer.get("/v2/deployments?embed=pending")[1] if d.get("status")]


def test_pacer_deploy_at_prints_what_was_scheduled(pacer, tmp_path: Path):
    definition = tmp_path / "app.json"
    definition.write_text(json.dumps(app("/cli")))
    at = ahead(3600)
    out = subprocess.run([sys.executable, "-m", "pacer.cli", "deploy", "-f", str(definition), "--master", pacer.url,
                          "--at", at], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (scheduled,) = [d for d in pacer.get("/v2/deployments?embed=pending")[1] if d.get("status") == "scheduled"]
    assert scheduled["id"] not in {d["id"] for d in pacer.get("/v2/deployments")[1]}  # Marathon's listing: running only
    assert f"scheduled /cli version {scheduled['version']} for {at}" in out.stdout
    assert scheduled["id"] in out.stdout


AUTH_FILE = """
[users.alice]
password = "{alice}"
roles = ["deployer on /prod/**", "viewer on /**"]

[users.carol]
password = "{carol}"
roles = ["approver on /prod/**"]

[users.root]
password = "{root}"
roles = ["admin on /**"]

[[approval]]
paths = ["/prod/**"]
expiry = "1h"
"""


def _basic(user: str) -> dict[str, str]:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{user}-pw".encode()).decode()}


def test_an_approval_gate_holds_a_prod_deployment_until_another_user_approves(pacer_factory, tmp_path: Path):
    auth = tmp_path / "auth.toml"
    auth.write_text(AUTH_FILE.format(**{u: hash_password(f"{u}-pw") for u in ("alice", "carol", "root")}))
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000", "--auth-file", str(auth))
    alice, carol = _basic("alice"), _basic("carol")
    status, held, _ = server.request("POST", "/v2/apps", app("/prod/shop"), headers=alice)
    assert status == 201 and held["status"] == "awaiting approval", held
    assert held["approval"]["approvers"] == ["carol", "root"]
    assert server.request("GET", "/v2/apps/prod/shop", headers=alice)[0] == 404        # nothing yet
    deployment = f"/v2/deployments/{held['deploymentId']}"
    status, body, _ = server.request("POST", f"{deployment}/approve", {"comment": "mine"}, headers=alice)
    assert status == 403 and "approver" in body["message"]          # alice has no approver role at all
    status, body, _ = server.request("POST", f"{deployment}/approve", {"comment": "ok for the sale"}, headers=carol)
    assert status == 200 and body["approval"]["approvedBy"] == "carol", body
    wait_until(lambda: server.request("GET", "/v2/apps/prod/shop", headers=alice)[0] == 200, timeout=30,
               what="the approved deployment to create the app")
    audit = server.request("GET", "/v2/audit", headers=_basic("root"))[1]["entries"]
    (approval,) = [e for e in audit if e["path"].endswith("/approve") and e["status"] == 200]
    assert approval["user"] == "carol" and approval["appIds"] == ["/prod/shop"]
    assert approval["approval"] == {"decision": "approved", "by": "carol", "comment": "ok for the sale"}
    refused = [e for e in audit if e["path"].endswith("/approve") and e["status"] == 403]
    assert refused and refused[0]["user"] == "alice"

    # an admin deploying is an author too: another admin or approver must approve
    status, own, _ = server.request("PUT", "/v2/apps/prod/shop", app("/prod/shop", "2"), headers=_basic("root"))
    assert status == 200 and own["status"] == "awaiting approval"
    status, body, _ = server.request("POST", f"/v2/deployments/{own['deploymentId']}/approve", {},
                                     headers=_basic("root"))
    assert status == 403 and "cannot approve" in body["message"]
    status, body, _ = server.request("POST", f"/v2/deployments/{own['deploymentId']}/reject",
                                     {"comment": "not now"}, headers=carol)
    assert status == 200 and body["status"] == "failed" and body["reason"] == "rejected by carol: not now"

    # writes that cannot be held are refused on the gated path, not let through
    status, body, _ = server.request("DELETE", "/v2/apps/prod/shop", headers=_basic("root"))
    assert status == 403 and "needs an approval" in body["message"]

    # `pacer deploy` waits for the approval, saying who may give it, then for the rollout
    definition = tmp_path / "shop.json"
    definition.write_text(json.dumps(app("/prod/shop", "3")))
    deploy = subprocess.Popen([sys.executable, "-m", "pacer.cli", "deploy", "-f", str(definition), "--master",
                               server.url, "--wait", "120"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PACER_CREDENTIALS": "alice:alice-pw"})
    try:
        held_id = wait_until(lambda: next((d["id"] for d in server.request("GET", "/v2/deployments?embed=pending", headers=alice)[1]
                                           if d.get("status") == "awaiting approval"), None),
                             timeout=30, what="pacer deploy's change to be held")
        status, _, _ = server.request("POST", f"/v2/deployments/{held_id}/approve", {"comment": "go"}, headers=carol)
        assert status == 200
        out, err = deploy.communicate(timeout=120)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
    assert deploy.returncode == 0, err
    assert "awaiting approval until" in out and "by one of: carol, root (not alice, who submitted it)" in out
    assert "/prod/shop: deployment finished" in out
    assert server.request("GET", "/v2/apps/prod/shop", headers=alice)[1]["app"]["env"]["RELEASE"] == "3"


def test_a_scheduled_cutover_survives_a_change_of_leader(ha: Ha) -> None:
    """Three-way HA on ZooKeeper: submitted through a follower, the leader killed with -9
    before the start; the new leader loads the pending cutover from ZooKeeper and starts it."""
    ha.start(2)
    leader = ha.leader()
    follower = next(s for s in ha.alive() if s is not leader)
    assert leader.request("POST", "/v2/apps", _ha_app("/cut", 1, env={"RELEASE": "1"}))[0] == 201
    running_tasks(leader, "/cut", 1)
    wait_until(lambda: leader.get("/v2/deployments")[1] == [], what="the first deployment")
    status, body, _ = follower.request("PUT", f"/v2/apps/cut?at={ahead(10).replace('+', '%2B')}",
                                       {"env": {"RELEASE": "2"}})
    assert status == 200 and body["status"] == "scheduled", body
    assert (entry(leader, body["deploymentId"]) or {}).get("status") == "scheduled"
    leader.stop(signal.SIGKILL)
    successor = ha.leader()
    running_tasks(successor, "/cut", 1, version=body["version"])
    assert successor.get("/v2/apps/cut")[1]["app"]["env"]["RELEASE"] == "2"
