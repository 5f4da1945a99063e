"""The canary's HTTP face: `/v2/deployments` rows with a `canary` block (canary deployments only),
`POST /v2/deployments/{id}/promote|abort` with Marathon-style error bodies, and who may call them
(a plain deployment's row and a promote of it: test_canary_scenarios.py)."""

from __future__ import annotations

from typing import Any

from pacer.deploy import canary_line
from scheduler.auth.routes import Lookups, requirement

from .support import PacerServer, wait_until

STRATEGY = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
            "canary": {"instances": 1, "steps": [{"setWeight": 25}, {"pause": {}}]}}


def app(app_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8, **extra}


def deployments(pacer: PacerServer) -> list[dict[str, Any]]:
    return pacer.request("GET", "/v2/deployments")[1]


def started_canary(pacer: PacerServer) -> str:
    assert pacer.request("POST", "/v2/apps", app("/web", upgradeStrategy=STRATEGY))[0] == 201
    wait_until(lambda: deployments(pacer) == [], timeout=30, what="/web to be deployed")
    status, body, _ = pacer.request("PUT", "/v2/apps/web", app("/web", env={"RELEASE": "2"}, upgradeStrategy=STRATEGY))
    assert status == 200, body
    deployment: str = body["deploymentId"]
    wait_until(lambda: [d["canary"]["weight"] for d in deployments(pacer)] == [25], timeout=30,
               what="the canary's first step")
    return deployment


def errors_of(body: dict[str, Any]) -> list[str]:
    return [e for d in body.get("details", []) for e in d["errors"]]


def test_promote_and_abort_through_the_api(pacer: PacerServer) -> None:
    deployment = started_canary(pacer)
    (row,) = deployments(pacer)
    assert row["canary"] | {"stepStartedAt": 0} == {
        "app": "/web", "phase": "steps", "step": 1, "steps": 2, "weight": 25, "stepStartedAt": 0, "failures": 0,
        "waitingForPromotion": True}
    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "sideways"})
    assert status == 422 and any("next" in e for e in errors_of(body)), body
    status, body, _ = pacer.request("POST", "/v2/deployments/nope/promote", {})
    assert status == 404 and "nope" in body["message"], body

    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/abort", {"reason": "bad numbers"})
    assert status == 200 and body["id"] == deployment, body
    wait_until(lambda: deployments(pacer) == [], timeout=30, what="the rollback to finish")
    current = pacer.request("GET", "/v2/apps/web")[1]["app"]
    assert current["env"] == {} and "canaryTraffic" not in current
    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/abort", {})
    assert status == 404, body


def test_steering_a_canary_needs_deployer_on_its_apps() -> None:
    lookups = Lookups(deployment_apps={"d1": ("/shop/web",)}.get)
    for action in ("promote", "abort"):
        need = requirement("POST", f"/v2/deployments/d1/{action}", lookups=lookups)
        assert (need.kind, need.role, need.paths) == ("role", "deployer", ("/shop/web",))
    assert requirement("POST", "/v2/deployments/unknown/promote", lookups=lookups).kind == "authenticated"


def test_pacer_deploy_prints_the_canarys_progress() -> None:
    assert canary_line({"phase": "starting", "instances": 1}) == "canary: starting 1 instance(s) beside the stable ones"
    line = canary_line({"phase": "steps", "step": 3, "steps": 4, "weight": 50, "waitingForPromotion": True,
                        "lastAnalysis": {"verdict": "pass", "reason": "all 1 thresholds held over 80 canary requests"}})
    assert line == ("canary step 3/4 at 50%, last analysis pass: all 1 thresholds held over 80 canary requests; "
                    "waiting for POST /v2/deployments/<id>/promote")
    assert canary_line({"phase": "promoted"}) == "canary promoted: rolling the rest"
