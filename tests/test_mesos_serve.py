"""`pacer serve --master` end to end against simulated masters: faults that need the whole
scheduler (deployments, the API) around the Mesos backend."""

from __future__ import annotations

import time
from typing import Any
from collections.abc import Callable, Iterator

import pytest
from marathon import MarathonClient

from .mesos_sim import AgentSpec
from .mesos_sim.harness import SimHarness
from .support import PacerServer, running_tasks, wait_until


@pytest.fixture
def sim() -> Iterator[SimHarness]:
    agents = [AgentSpec(f"agent-{i + 1}", cpus=4, mem=4096, disk=1000) for i in range(3)]
    # tasks take half a second to start, so a rolling restart of three lasts long enough to fail over in
    harness = SimHarness(agents, masters=2, heartbeat_interval=1.0, allocation_interval=0.1, run_delay=0.5).start()
    yield harness
    harness.stop()


def test_master_failover_mid_rolling_restart(sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    server = pacer_factory("--master", sim.url)      # knows the first master only: the rest is redirects
    app = {"id": "/roll", "cmd": "sleep 1000", "instances": 3, "cpus": 0.1, "mem": 16, "env": {"RELEASE": "1"},
           "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.34}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    old = {t["id"] for t in running_tasks(server, "/roll", 3)}
    wait_until(lambda: server.get("/v2/deployments")[1] == [], what="the first deployment")
    first_subscribe = sim.calls("SUBSCRIBE")[0]
    framework_id = sim.run(lambda: next(iter(sim.leader.frameworks)))
    status, body, _ = server.request("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})
    assert status == 200
    wait_until(lambda: len(server.tasks("/roll")) > 3 or not old <= {t["id"] for t in server.tasks("/roll")},
               what="the restart under way")
    new_leader = sim.failover()
    new = running_tasks(server, "/roll", 3, version=body["version"])
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
    running_tasks(server, "/a", 1)
    info = sim.calls("SUBSCRIBE")[0]["subscribe"]["framework_info"]
    assert (info["name"], info["roles"], info["user"], info["failover_timeout"]) == ("shop", ["web"], "nobody", 3600)
    assert info["webui_url"] == server.url
    agents = wait_until(lambda: server.get("/v2/agents")[1]["agents"], what="agents at /v2/agents")
    assert {a["hostname"] for a in agents} <= {"agent-1", "agent-2", "agent-3"}
    launched = sim.calls("ACCEPT")[0]["accept"]["operations"][0]["launch"]["task_infos"][0]
    assert {r["allocation_info"]["role"] for r in launched["resources"]} == {"web"}
    framework_id = sim.run(lambda: next(iter(sim.leader.frameworks)))
    _, raw, _ = server.get("/v2/info")
    config = raw["marathon_config"]
    assert raw["frameworkId"] == framework_id                      # the master's id, not Pacer's own
    assert (config["master"], config["mesos_role"], config["mesos_user"]) == (sim.url, "web", "nobody")
    assert (config["framework_name"], config["failover_timeout"]) == ("shop", 3600)
    assert config["mesos_leader_ui_url"] == sim.leader.url
    info = MarathonClient(server.url, timeout=10).get_info()       # parses Marathon's keys strictly
    assert (info.framework_id, info.marathon_config.master) == (framework_id, sim.url)
    assert (info.marathon_config.mesos_role, info.marathon_config.mesos_user) == ("web", "nobody")


def test_agent_lost_then_back_replaced_after_inactive_and_the_late_comer_killed(
        sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    """unreachableStrategy against the simulator: the instance of a lost agent still counts for
    inactiveAfterSeconds, then is replaced; when the agent comes back, its task (RUNNING again)
    is the one killed, and the app ends with exactly its two tasks."""
    server = pacer_factory("--master", sim.url)
    inactive = 3
    app = {"id": "/web", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 16,
           "constraints": [["hostname", "UNIQUE"]],
           "unreachableStrategy": {"inactiveAfterSeconds": inactive, "expungeAfterSeconds": 600}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    first = {t["id"] for t in running_tasks(server, "/web", 2)}
    victim = sorted(first)[0]
    agent_id = sim.run(lambda: sim.cluster.task(victim).agent_id)
    sim.run(lambda: sim.leader.lose_agent(agent_id))
    lost_at = time.monotonic()
    wait_until(lambda: any(t["id"] == victim and t["state"] == "TASK_UNREACHABLE" for t in server.tasks("/web")),
               what="the task reported unreachable")
    time.sleep(max(0.0, lost_at + inactive - 1.5 - time.monotonic()))
    assert {t["id"] for t in server.tasks("/web")} == first          # still counted: nothing launched yet
    replaced = wait_until(lambda: [t for t in server.running("/web") if t["id"] not in first], timeout=20,
                          what="a replacement once inactive")
    assert time.monotonic() - lost_at >= inactive
    assert len(replaced) == 1 and sim.hostname_of(replaced[0]["id"]) != sim.hostname_of(victim)
    sim.run(lambda: sim.leader.agent_back(agent_id))
    survivors = {t["id"] for t in running_tasks(server, "/web", 2)}
    assert victim not in survivors and survivors == (first - {victim}) | {replaced[0]["id"]}
    wait_until(lambda: sim.live_ids() == survivors, what="the late comer killed, none duplicated")
    assert "TASK_KILLED" in sim.run(lambda: sim.cluster.task(victim).statuses)
    assert sim.rejections() == []
    wait_until(lambda: not sim.unacknowledged(), what="every status update acknowledged")


def _release(task: Any) -> str | None:
    variables = task.info.get("command", {}).get("environment", {}).get("variables", [])
    return next((v["value"] for v in variables if v["name"] == "RELEASE"), None)


def test_mesos_health_checks_gate_a_rolling_restart(sim: SimHarness, pacer_factory: Callable[..., PacerServer]) -> None:
    """A MESOS_HTTP check runs on the agent (Mesos's), not in Pacer: its verdicts come in status
    updates, and they alone decide when the restart may go on."""
    server = pacer_factory("--master", sim.url)
    app = {"id": "/hc", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 16, "env": {"RELEASE": "1"},
           "portDefinitions": [{"port": 0}],
           "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 60,
                             "intervalSeconds": 1, "maxConsecutiveFailures": 3}],
           "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.5}}
    sim.set_health(lambda task: _release(task) != "2")
    assert server.request("POST", "/v2/apps", app)[0] == 201
    old = {t["id"] for t in running_tasks(server, "/hc", 2)}
    wait_until(lambda: server.get("/v2/apps/hc")[1]["app"]["tasksHealthy"] == 2, what="both tasks healthy")
    check = sim.calls("ACCEPT")[0]["accept"]["operations"][0]["launch"]["task_infos"][0]["health_check"]
    assert (check["type"], check["http"]["path"]) == ("HTTP", "/health")
    status, body, _ = server.request("PUT", "/v2/apps/hc", {"env": {"RELEASE": "2"}})
    assert status == 200, body
    new = wait_until(lambda: [t for t in server.tasks("/hc") if t["id"] not in old and t["state"] == "TASK_RUNNING"],
                     what="the first new task running")
    wait_until(lambda: sim.run(lambda: sim.cluster.task(new[0]["id"]).healthy) is False,
               what="the new task's check failing on its agent")
    time.sleep(2)                                      # a failing check (in its grace period): the restart waits
    assert server.get("/v2/apps/hc")[1]["app"]["tasksHealthy"] == 2
    assert old <= {t["id"] for t in server.tasks("/hc")} and len(server.tasks("/hc")) == 3
    assert server.get("/v2/deployments")[1]
    sim.set_health(lambda task: True)                  # the new release answers its check now
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=30, what="the restart to finish")
    after = running_tasks(server, "/hc", 2, version=body["version"])
    assert new[0]["id"] in {t["id"] for t in after} and not old & {t["id"] for t in after}
    wait_until(lambda: server.get("/v2/apps/hc")[1]["app"]["tasksHealthy"] == 2, what="the new tasks healthy")
    assert sim.rejections() == []
