"""`pacer serve --master` end to end against simulated masters: faults that need the whole
scheduler (deployments, the API) around the Mesos backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .mesos_sim import AgentSpec
from .mesos_sim.harness import SimHarness
from .support import PacerServer, wait_until


@pytest.fixture
def sim() -> Iterator[SimHarness]:
    agents = [AgentSpec(f"agent-{i + 1}", cpus=4, mem=4096, disk=1000) for i in range(3)]
    # tasks take half a second to start, so a rolling restart of three lasts long enough to fail over in
    harness = SimHarness(agents, masters=2, heartbeat_interval=1.0, allocation_interval=0.1, run_delay=0.5).start()
    yield harness
    harness.stop()


def _running(server: PacerServer, app_id: str, count: int, version: str | None = None) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        tasks = server.tasks(app_id)
        running = [t for t in tasks if t["state"] == "TASK_RUNNING" and version in (None, t["version"])]
        return running if len(running) == count == len(tasks) else None
    return wait_until(ready, timeout=40, what=f"{count} running tasks of {app_id}")


def test_master_failover_mid_rolling_restart(sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url)      # knows the first master only: the rest is redirects
    app = {"id": "/roll", "cmd": "sleep 1000", "instances": 3, "cpus": 0.1, "mem": 16, "env": {"RELEASE": "1"},
           "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.34}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    old = {t["id"] for t in _running(server, "/roll", 3)}
    wait_until(lambda: server.get("/v2/deployments")[1] == [], what="the first deployment")
    first_subscribe = sim.calls("SUBSCRIBE")[0]
    framework_id = sim.run(lambda: next(iter(sim.leader.frameworks)))
    status, body, _ = server.request("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})
    assert status == 200
    wait_until(lambda: len(server.tasks("/roll")) > 3 or not old <= {t["id"] for t in server.tasks("/roll")},
               what="the restart under way")
    new_leader = sim.failover()
    new = _running(server, "/roll", 3, version=body["version"])
    wait_until(lambda: server.get("/v2/deployments")[1] == [], what="the restart to finish")
    assert not old & {t["id"] for t in new}
    wait_until(lambda: sim.live_ids() == {t["id"] for t in new}, what="only the new tasks on the cluster")
    resubscribed = sim.run(lambda: [c for c in new_leader.calls if c["type"] == "SUBSCRIBE"])
    assert resubscribed[0]["framework_id"] == {"value": framework_id}
    assert sim.run(lambda: [c for c in new_leader.calls if c["type"] == "ACCEPT"])   # launched after the failover
    assert "framework_id" not in first_subscribe          # the very first SUBSCRIBE asked the master for an id
    assert sim.rejections() == []


def test_agents_and_framework_show_in_the_api(sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url, "--framework-name", "shop", "--mesos-role", "web",
                           "--mesos-user", "nobody", "--failover-timeout", "3600")
    assert server.request("POST", "/v2/apps", {"id": "/a", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16})[0] == 201
    _running(server, "/a", 1)
    info = sim.calls("SUBSCRIBE")[0]["subscribe"]["framework_info"]
    assert (info["name"], info["roles"], info["user"], info["failover_timeout"]) == ("shop", ["web"], "nobody", 3600)
    assert info["webui_url"] == server.url
    agents = wait_until(lambda: server.get("/v2/agents")[1]["agents"], what="agents at /v2/agents")
    assert {a["hostname"] for a in agents} <= {"agent-1", "agent-2", "agent-3"}
    launched = sim.calls("ACCEPT")[0]["accept"]["operations"][0]["launch"]["task_infos"][0]
    assert {r["allocation_info"]["role"] for r in launched["resources"]} == {"web"}
