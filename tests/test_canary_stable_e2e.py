"""A stable task that crashes during a canary, end to end: a real `pacer serve`, real task
processes, real HTTP. The replacement runs the stable version (not a second canary), the weights
the bridge would apply come back to three stable servers and one canary, and the canary keeps
its step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .support import PacerServer, wait_until

STRATEGY = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
            "canary": {"instances": 1, "steps": [{"setWeight": 25}, {"pause": {}}]}}


def web(crash_dir: Path, release: str) -> dict[str, Any]:
    """Runs until a file named after its task id appears in `crash_dir`, then exits 3 (a crash)."""
    cmd = f'while [ ! -e "{crash_dir}/$MESOS_TASK_ID" ]; do sleep 0.2; done; exit 3'
    return {"id": "/web", "cmd": cmd, "instances": 3, "cpus": 0.01, "mem": 8, "env": {"RELEASE": release},
            "upgradeStrategy": STRATEGY}


def tasks(pacer: PacerServer) -> list[dict[str, Any]]:
    return pacer.request("GET", "/v2/apps/web?embed=app.tasks")[1]["app"]["tasks"]


def running(pacer: PacerServer, version: str) -> set[str]:
    return {t["id"] for t in tasks(pacer) if t["version"] == version and t.get("state") == "TASK_RUNNING"}


def deployments(pacer: PacerServer) -> list[dict[str, Any]]:
    return pacer.request("GET", "/v2/deployments")[1]


def test_a_stable_task_crashing_mid_canary_is_replaced_by_the_stable_version(pacer: PacerServer,
                                                                             tmp_path: Path) -> None:
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    status, body, _ = pacer.request("POST", "/v2/apps", web(crash_dir, "1"))
    assert status == 201, body
    v1 = body["version"]
    wait_until(lambda: deployments(pacer) == [] and len(running(pacer, v1)) == 3, timeout=60,
               what="/web v1 on 3 running tasks")
    status, body, _ = pacer.request("PUT", "/v2/apps/web", web(crash_dir, "2"))
    assert status == 200, body
    deployment, v2 = body["deploymentId"], body["version"]
    wait_until(lambda: [d["canary"]["weight"] for d in deployments(pacer)] == [25], timeout=60,
               what="the canary's first step")
    stable = running(pacer, v1)
    assert len(stable) == 3 and len(running(pacer, v2)) == 1
    before = pacer.request("GET", "/v2/apps/web")[1]["app"]["canaryTraffic"]

    victim = sorted(stable)[0]
    (crash_dir / victim).touch()
    wait_until(lambda: victim not in running(pacer, v1), timeout=30, what="the stable task to crash")
    replaced = wait_until(lambda: len(running(pacer, v1)) == 3 and running(pacer, v1), timeout=60,
                          what="a stable replacement running the stable version")
    assert victim not in replaced and len(replaced - stable) == 1
    assert len(running(pacer, v2)) == 1                                   # still one canary, not two
    after = pacer.request("GET", "/v2/apps/web")[1]["app"]["canaryTraffic"]
    assert (after["stableWeight"], after["canaryWeight"], after["percent"]) == \
        (before["stableWeight"], before["canaryWeight"], 25)
    (row,) = deployments(pacer)
    assert row["id"] == deployment and row["canary"]["phase"] == "steps" and row["canary"]["weight"] == 25

    status, body, _ = pacer.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "full"})
    assert status == 200, body
    wait_until(lambda: deployments(pacer) == [] and len(running(pacer, v2)) == 3 and not running(pacer, v1),
               timeout=60, what="the full roll to v2")
