"""Two canary apps in one group deployment through a real `pacer serve` (real processes, real HTTP):
each canary steps on its own, `?appId=` promotes one of them while the other keeps its step, and
the abort of the other rolls the whole deployment back, both apps to their stable version."""

from __future__ import annotations

from typing import Any

from .support import PacerServer, wait_until

CANARY = {"instances": 1, "steps": [{"setWeight": 25}, {"pause": {}}]}
STRATEGY = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": CANARY}


def app(app_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8,
            "upgradeStrategy": STRATEGY, **extra}


def group(release: str | None = None) -> dict[str, Any]:
    env = {} if release is None else {"env": {"RELEASE": release}}
    return {"id": "/shop", "apps": [app("/shop/web", **env), app("/shop/api", **env)]}


def rows(pacer: PacerServer) -> list[dict[str, Any]]:
    return pacer.request("GET", "/v2/deployments")[1]


def blocks(pacer: PacerServer) -> list[tuple[str, str, int]]:
    return [(b["app"], b["phase"], b["weight"]) for row in rows(pacer) for b in row.get("canaries", [])]


def envs(pacer: PacerServer) -> dict[str, dict[str, str]]:
    apps = pacer.request("GET", "/v2/apps")[1]["apps"]
    return {a["id"]: a.get("env", {}) for a in apps}


def test_one_canary_promoted_by_app_the_other_aborted_rolls_the_whole_group_back(pacer: PacerServer) -> None:
    assert pacer.request("PUT", "/v2/groups/shop", group())[0] == 200
    wait_until(lambda: rows(pacer) == [], timeout=60, what="/shop to be deployed")
    status, body, _ = pacer.request("PUT", "/v2/groups/shop", group("2"))
    assert status == 200, body
    deployment = body["deploymentId"]
    wait_until(lambda: blocks(pacer) == [("/shop/api", "steps", 25), ("/shop/web", "steps", 25)], timeout=60,
               what="both canaries at their first weight")
    for app_id in ("/shop/api", "/shop/web"):
        traffic = pacer.request("GET", f"/v2/apps{app_id}")[1]["app"]["canaryTraffic"]
        assert traffic["percent"] == 25 and len(traffic["canaryTasks"]) == 1       # each app its own weights

    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/promote?appId=/shop/web", {"mode": "full"})
    assert status == 200, body
    assert [(b["app"], b["phase"]) for b in body["canaries"]] == [("/shop/api", "steps"), ("/shop/web", "promoted")]
    wait_until(lambda: "canaryTraffic" not in pacer.request("GET", "/v2/apps/shop/web")[1]["app"], timeout=30,
               what="/shop/web's weights cleared for its full roll")
    assert pacer.request("GET", "/v2/apps/shop/api")[1]["app"]["canaryTraffic"]["percent"] == 25

    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/abort?appId=/shop/api",
                                    {"reason": "api errors"})
    assert status == 200, body
    wait_until(lambda: rows(pacer) == [], timeout=60, what="the rollback of the whole deployment")
    assert envs(pacer) == {"/shop/api": {}, "/shop/web": {}}
