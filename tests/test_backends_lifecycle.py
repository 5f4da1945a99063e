"""One lifecycle suite, two backends: the embedded agents and a Mesos master (simulated).

Every scenario runs a real `pacer serve` subprocess and talks to it over `/v2`. The `cluster`
fixture says where tasks really run (processes of the embedded agents, or tasks of the
simulated Mesos cluster), so each scenario can check that what Pacer reports is what runs.
With the simulator, every test also checks that Pacer sent no call the v1 protos refuse and
left no status update unacknowledged.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .mesos_sim import AgentSpec, text_attribute
from .mesos_sim.harness import SimHarness
from .support import PacerServer, task_pids, wait_until

HOSTS = ("agent-1", "agent-2", "agent-3")
RACKS = {"agent-1": "r1", "agent-2": "r2", "agent-3": "r1"}


class EmbeddedCluster:
    """Three embedded agents; tasks are processes."""

    name = "embedded"

    def __init__(self, home: Path, factory: Callable[..., PacerServer]) -> None:
        self.home = home
        self._factory = factory

    def serve(self) -> PacerServer:
        racks = [f"{host}:rack={rack}" for host, rack in RACKS.items()]
        return self._factory("--agents", "3", "--agent-resources", "cpus=4,mem=4096,disk=1000",
                             *[arg for r in racks for arg in ("--attribute", r)])

    def live(self) -> set[str]:
        return set(task_pids(self.home).values())

    def fail(self, task_id: str) -> None:
        pid = next(p for p, tid in task_pids(self.home).items() if tid == task_id)
        os.kill(pid, signal.SIGKILL)

    def check(self) -> None:
        pass


class MesosCluster:
    """Three agents of a simulated Mesos master; tasks are simulated."""

    name = "mesos"

    def __init__(self, sim: SimHarness, factory: Callable[..., PacerServer]) -> None:
        self.sim = sim
        self._factory = factory

    def serve(self) -> PacerServer:
        return self._factory("--master", self.sim.url, "--framework-name", "pacer-test")

    def live(self) -> set[str]:
        return self.sim.live_ids()

    def fail(self, task_id: str) -> None:
        self.sim.fail(task_id)

    def check(self) -> None:
        assert self.sim.rejections() == []
        wait_until(lambda: not self.sim.unacknowledged(), timeout=10, what="every status update acknowledged")


@pytest.fixture(params=["embedded", "mesos"])
def cluster(request: pytest.FixtureRequest, pacer_home: Path,
            pacer_factory: Callable[..., PacerServer]) -> Iterator[Any]:
    if request.param == "embedded":
        yield EmbeddedCluster(pacer_home, pacer_factory)
        return
    agents = [AgentSpec(host, cpus=4, mem=4096, disk=1000, ports=((31000 + 1000 * i, 31999 + 1000 * i),),
                        attributes=(text_attribute("rack", RACKS[host]),)) for i, host in enumerate(HOSTS)]
    sim = SimHarness(agents, heartbeat_interval=1.0, allocation_interval=0.1).start()
    try:
        yield MesosCluster(sim, pacer_factory)
    finally:
        sim.stop()


def _app(app_id: str, instances: int, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": instances, "cpus": 0.1, "mem": 16, **extra}


def _running(server: PacerServer, app_id: str, count: int) -> list[dict[str, Any]]:
    return wait_until(lambda: len(server.running(app_id)) == count and len(server.tasks(app_id)) == count
                      and server.running(app_id), timeout=30, what=f"{count} running tasks of {app_id}")


def _settled(server: PacerServer) -> None:
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=30, what="no deployment left")


def test_launch_scale_up_and_down(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/web", 3))[0] == 201
    first = _running(server, "/web", 3)
    assert len({(t["host"], t["ports"][0]) for t in first}) == 3
    wait_until(lambda: cluster.live() == {t["id"] for t in first}, what="the 3 tasks to run")
    assert server.request("PUT", "/v2/apps/web", {"instances": 5})[0] == 200
    _running(server, "/web", 5)
    assert server.request("PUT", "/v2/apps/web", {"instances": 2})[0] == 200
    survivors = _running(server, "/web", 2)
    _settled(server)
    wait_until(lambda: cluster.live() == {t["id"] for t in survivors}, what="the killed tasks to end")
    assert {t["id"] for t in survivors} <= {t["id"] for t in first}   # YOUNGEST_FIRST kept the oldest
    cluster.check()


def test_failed_task_is_replaced_and_killed_task_too(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/crashy", 2, backoffSeconds=1))[0] == 201
    tasks = _running(server, "/crashy", 2)
    cluster.fail(tasks[0]["id"])
    replaced = wait_until(lambda: [t for t in server.running("/crashy") if t["id"] != tasks[0]["id"]]
                          if len(server.running("/crashy")) == 2 and tasks[0]["id"] not in
                          {t["id"] for t in server.tasks("/crashy")} else None, what="a replacement")
    failure = server.get("/v2/apps/crashy")[1]["app"]["lastTaskFailure"]
    assert failure["taskId"] == tasks[0]["id"] and failure["state"] == "TASK_FAILED"
    victim = replaced[0]["id"]
    status, _, _ = server.request("DELETE", f"/v2/apps/crashy/tasks/{victim}")
    assert status == 200
    after = wait_until(lambda: server.running("/crashy") if len(server.running("/crashy")) == 2
                       and victim not in {t["id"] for t in server.tasks("/crashy")} else None,
                       what="the killed task replaced")
    wait_until(lambda: cluster.live() == {t["id"] for t in after}, what="exactly the running tasks to run")
    cluster.check()


def test_hostname_unique_and_attribute_like(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/spread", 4, constraints=[["hostname", "UNIQUE"]]))[0] == 201
    assert server.request("POST", "/v2/apps", _app("/rack", 4, constraints=[["rack", "LIKE", "r1"]]))[0] == 201
    spread = _running(server, "/spread", 3)
    assert sorted(t["host"] for t in spread) == list(HOSTS)
    queued = wait_until(lambda: [q for q in server.get("/v2/queue?embed=reason")[1]["queue"]
                                 if q["app"]["id"] == "/spread"], what="the 4th instance in the queue")
    assert queued[0]["count"] == 1
    # The queue names the constraint. With pushed offers, the offers it refused are declined and
    # the passes after that weigh none until something frees up: they keep the reason they had.
    assert "[hostname, UNIQUE]" in queued[0]["reason"], queued[0]["reason"]
    time.sleep(2)                                     # passes with no offer to weigh come and go
    [again] = [q for q in server.get("/v2/queue?embed=reason")[1]["queue"] if q["app"]["id"] == "/spread"]
    assert "[hostname, UNIQUE]" in again["reason"] and again["processedOffersSummary"]["rejectSummaryLastOffers"], again
    rack = _running(server, "/rack", 4)
    assert {t["host"] for t in rack} <= {h for h, r in RACKS.items() if r == "r1"}
    cluster.check()


def test_rolling_restart_replaces_every_task(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/roll", 3, env={"RELEASE": "1"}))[0] == 201
    old = {t["id"] for t in _running(server, "/roll", 3)}
    _settled(server)
    status, body, _ = server.request("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})
    assert status == 200, body
    new_version = body["version"]
    _settled(server)
    new = _running(server, "/roll", 3)
    assert not old & {t["id"] for t in new}
    assert {t["version"] for t in new} == {new_version}
    wait_until(lambda: cluster.live() == {t["id"] for t in new}, what="only the new tasks to run")
    cluster.check()


def test_kill_minus_nine_then_reconciliation_keeps_the_same_tasks(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/durable", 3))[0] == 201
    before = {t["id"] for t in _running(server, "/durable", 3)}
    _settled(server)
    server.stop(signal.SIGKILL)
    restarted = cluster.serve()
    after = {t["id"] for t in _running(restarted, "/durable", 3)}
    assert after == before
    wait_until(lambda: cluster.live() == before, what="the same 3 tasks, none duplicated")
    assert restarted.get("/v2/apps/durable")[1]["app"]["tasksRunning"] == 3
    cluster.check()


def test_delete_ends_every_task(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/doomed", 3))[0] == 201
    _running(server, "/doomed", 3)
    assert server.request("DELETE", "/v2/apps/doomed")[0] == 200
    wait_until(lambda: not cluster.live(), what="every task to end")
    cluster.check()


def test_scale_down_with_oldest_first_kills_the_oldest(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/old", 2, killSelection="OLDEST_FIRST"))[0] == 201
    first = {t["id"] for t in _running(server, "/old", 2)}
    _settled(server)
    assert server.request("PUT", "/v2/apps/old", {"instances": 4})[0] == 200
    newer = {t["id"] for t in _running(server, "/old", 4)} - first
    _settled(server)
    assert server.request("PUT", "/v2/apps/old", {"instances": 2})[0] == 200
    survivors = {t["id"] for t in _running(server, "/old", 2)}
    assert survivors == newer
    wait_until(lambda: cluster.live() == survivors, what="the two oldest tasks to end")
    cluster.check()


def test_a_deployment_rolled_back_restores_the_previous_version(cluster: Any) -> None:
    server = cluster.serve()
    assert server.request("POST", "/v2/apps", _app("/rb", 2, env={"RELEASE": "1"}))[0] == 201
    old = {t["id"] for t in _running(server, "/rb", 2)}
    _settled(server)
    first_version = server.get("/v2/apps/rb")[1]["app"]["version"]
    # the new version cannot be placed (too much memory): its deployment stays, and is rolled back
    status, body, _ = server.request("PUT", "/v2/apps/rb", {"env": {"RELEASE": "2"}, "mem": 100000})
    assert status == 200, body
    deployment = wait_until(lambda: [d for d in server.get("/v2/deployments")[1] if d["id"] == body["deploymentId"]],
                            what="the stuck deployment")[0]
    status, rollback, _ = server.request("DELETE", f"/v2/deployments/{deployment['id']}")
    assert status == 200, rollback
    _settled(server)
    app = server.get("/v2/apps/rb")[1]["app"]
    assert (app["mem"], app["env"]) == (16, {"RELEASE": "1"}) and app["version"] != first_version
    after = {t["id"] for t in _running(server, "/rb", 2)}
    assert after == old                                    # the old tasks never stopped
    wait_until(lambda: cluster.live() == old, what="only the old tasks on the cluster")
    cluster.check()
