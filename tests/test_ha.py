"""High availability end to end: three `pacer serve --zk` on a real ZooKeeper and a simulated
Mesos master. One leads (subscribed, scheduling), two follow and proxy; the leader dies or
freezes, another takes over from the state in ZooKeeper with the same framework id."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .mesos_sim import AgentSpec
from .mesos_sim.harness import SimHarness
from .support import PacerServer, running_tasks, free_port, kill_task_processes, wait_until
from .zk_support import ZooKeeperServer
from .test_api_telemetry import scrape, value

SESSION_TIMEOUT = 4.0


class Ha:
    """Three `pacer serve` sharing one ZooKeeper path and one master."""

    def __init__(self, root: Path, zk: ZooKeeperServer, sim: SimHarness, path: str) -> None:
        self.root, self.zk, self.sim, self.path = root, zk, sim, path
        self.servers: list[PacerServer] = []

    def start(self, count: int = 3, *extra: str) -> list[PacerServer]:
        for _ in range(count):
            home = self.root / f"node-{len(self.servers)}" / "home"
            home.mkdir(parents=True)
            server = PacerServer(home, "--master", self.sim.url, "--zk", self.zk.zk_url(self.path),
                                 "--zk-session-timeout", str(SESSION_TIMEOUT), "--hostname", "127.0.0.1",
                                 "--no-autoscaler", *extra)
            self.servers.append(server.start())
        return self.servers

    def alive(self) -> list[PacerServer]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def leader(self) -> PacerServer:
        def elected() -> PacerServer | None:
            leaders = [s for s in self.alive() if _info(s).get("elected")]
            return leaders[0] if len(leaders) == 1 else None
        return wait_until(elected, timeout=SESSION_TIMEOUT + 15, what="exactly one elected leader")

    def followers(self) -> list[PacerServer]:
        leader = self.leader()
        return [s for s in self.alive() if s is not leader]

    def stop(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                try:
                    server.proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
            server.stop()
            kill_task_processes(server.home)


def _info(server: PacerServer) -> dict[str, Any]:
    try:
        status, body, _ = server.get("/v2/info")
    except OSError:
        return {}
    return body if status == 200 else {}


@pytest.fixture
def sim() -> Iterator[SimHarness]:
    agents = [AgentSpec(f"agent-{i + 1}", cpus=4, mem=4096, disk=1000) for i in range(3)]
    harness = SimHarness(agents, heartbeat_interval=1.0, allocation_interval=0.1, run_delay=0.3).start()
    yield harness
    harness.stop()


@pytest.fixture
def ha(tmp_path: Path, zookeeper: ZooKeeperServer, sim: SimHarness, request: pytest.FixtureRequest) -> Iterator[Ha]:
    cluster = Ha(tmp_path, zookeeper, sim, f"/pacer-{request.node.name[:40]}-{free_port()}")
    yield cluster
    cluster.stop()


def _app(app_id: str, instances: int, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": instances, "cpus": 0.1, "mem": 16, **extra}


def test_one_leader_followers_proxy_and_agree(ha: Ha) -> None:
    servers = ha.start(3)
    leader = ha.leader()
    followers = [s for s in servers if s is not leader]
    address = f"127.0.0.1:{leader.port}"
    for server in servers:
        status, body, headers = server.get("/v2/leader")
        assert (status, body) == (200, {"leader": address})
        assert headers.get("x-marathon-leader") == f"http://{address}"
        assert _info(server)["elected"] is (server is leader)
        assert value(scrape(server.url), "pacer_leader") == (1.0 if server is leader else 0.0)
    status, body, headers = followers[0].request("POST", "/v2/apps", _app("/web", 2))
    assert status == 201, body
    running_tasks(leader, "/web", 2)
    views = [sorted(t["id"] for t in s.tasks("/web")) for s in servers]
    assert views[0] == views[1] == views[2]
    # only the leader holds a framework connection
    assert len(ha.sim.calls("SUBSCRIBE")) == 1
    # the event stream through a follower carries the leader's events
    request = urllib.request.Request(f"{followers[1].url}/v2/events?event_type=api_post_event",
                                     headers={"Accept": "text/event-stream"})
    with urllib.request.urlopen(request, timeout=20) as stream:
        assert followers[0].request("POST", "/v2/apps", _app("/other", 0))[0] == 201
        data = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not data:
            line = stream.readline().decode()
            if line.startswith("data:"):
                data = line[5:].strip()
    assert json.loads(data)["appDefinition"]["id"] == "/other"


def test_kill_9_of_the_leader_mid_rolling_restart_loses_nothing(ha: Ha) -> None:
    ha.start(3)
    leader = ha.leader()
    app = _app("/roll", 3, env={"RELEASE": "1"},
               upgradeStrategy={"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.34})
    assert leader.request("POST", "/v2/apps", app)[0] == 201
    old = {t["id"] for t in running_tasks(leader, "/roll", 3)}
    wait_until(lambda: leader.get("/v2/deployments")[1] == [], what="the first deployment")
    framework_id = ha.sim.run(lambda: next(iter(ha.sim.leader.frameworks)))
    status, body, _ = leader.request("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})
    assert status == 200
    new_version = body["version"]
    wait_until(lambda: len(leader.tasks("/roll")) > 3, what="the restart under way")
    leader.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    successor = ha.leader()
    failover = time.monotonic() - killed_at
    print(f"failover: a new leader {failover:.1f} s after kill -9 (session timeout {SESSION_TIMEOUT:.0f} s)")
    assert failover <= SESSION_TIMEOUT + 5
    new = running_tasks(successor, "/roll", 3, version=new_version)
    wait_until(lambda: successor.get("/v2/deployments")[1] == [], what="the restart to finish")
    assert not old & {t["id"] for t in new}
    wait_until(lambda: ha.sim.live_ids() == {t["id"] for t in new}, what="only the new tasks on the cluster")
    subscribes = ha.sim.calls("SUBSCRIBE")
    assert [c["framework_id"]["value"] for c in subscribes[1:]] == [framework_id]
    launched = [t["task_id"]["value"] for c in ha.sim.calls("ACCEPT") for op in c["accept"]["operations"]
                for t in op.get("launch", {}).get("task_infos", [])]
    assert len(launched) == len(set(launched)) == 6          # 3 old, 3 new: none launched twice
    for server in ha.alive():
        assert server.get("/v2/apps/roll")[1]["app"]["version"] == new_version


def test_a_frozen_leader_does_nothing_when_it_thaws(ha: Ha) -> None:
    ha.start(2)
    leader = ha.leader()
    assert leader.request("POST", "/v2/apps", _app("/web", 2))[0] == 201
    running_tasks(leader, "/web", 2)
    assert leader.proc is not None
    old_streams = ha.sim.run(lambda: {sid for m in ha.sim.masters for _, _, sid, _ in m.attempts if sid})
    leader.proc.send_signal(signal.SIGSTOP)
    successor = wait_until(lambda: next((s for s in ha.alive() if s is not leader and _info(s).get("elected")), None),
                           timeout=SESSION_TIMEOUT + 15, what="another leader while the first is frozen")
    wait_until(lambda: len(ha.sim.calls("SUBSCRIBE")) == 2, what="the successor subscribed")
    assert successor.request("PUT", "/v2/apps/web", {"instances": 3})[0] == 200
    running_tasks(successor, "/web", 3)
    thawed_at = time.monotonic()
    leader.proc.send_signal(signal.SIGCONT)
    assert leader.proc.wait(timeout=30) != 0                   # its session is gone: it stops (--on-session-loss exit)
    attempts = ha.sim.run(lambda: [a for m in ha.sim.masters for a in m.attempts if a[0] >= thawed_at])
    # the thawed leader took nothing back: no SUBSCRIBE of its own, no launch or kill on its old stream
    assert not [a for a in attempts if a[1] == "SUBSCRIBE" and a[3] == leader.url]
    assert not [a for a in attempts if a[1] in ("ACCEPT", "KILL") and a[2] in old_streams]
    assert len(running_tasks(successor, "/web", 3)) == 3
    assert ha.sim.live_ids() == {t["id"] for t in successor.tasks("/web")}
    assert len(ha.sim.calls("SUBSCRIBE")) == 2


def test_zookeeper_down_reads_answer_writes_refused_then_resume(tmp_path: Path, sim: SimHarness,
                                                                 zk_factory: Callable[[], ZooKeeperServer]) -> None:
    zk = zk_factory()
    cluster = Ha(tmp_path, zk, sim, "/pacer-outage")
    try:
        cluster.start(1, "--zk-session-timeout", "30")
        leader = cluster.leader()
        assert leader.request("POST", "/v2/apps", _app("/web", 1))[0] == 201
        running_tasks(leader, "/web", 1)
        zk.stop()
        down_at = time.monotonic()
        status, body, _ = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(
            leader.request("POST", "/v2/apps", _app("/refused", 1))), timeout=15, what="writes refused with 503")
        assert "ZooKeeper" in body["message"]
        status, body, _ = leader.get("/v2/apps/web")
        assert status == 200 and body["app"]["id"] == "/web"
        time.sleep(max(0.0, down_at + 20 - time.monotonic()))
        zk.start()
        wait_until(lambda: leader.request("POST", "/v2/apps", _app("/after", 1))[0] == 201, timeout=30,
                   what="writes accepted again")
        running_tasks(leader, "/after", 1)
        assert leader.proc is not None and leader.proc.poll() is None
    finally:
        cluster.stop()


def test_takeover_loads_five_thousand_apps(ha: Ha) -> None:
    ha.start(2)
    leader = ha.leader()
    group = {"id": "/big", "apps": [{"id": f"app-{i:04d}", "cmd": "sleep 1000", "instances": 0, "cpus": 0.01,
                                     "mem": 1, "labels": {"TEAM": f"team-{i % 40}", "INDEX": str(i)}}
                                    for i in range(5000)]}
    began = time.monotonic()
    status, body, _ = leader.request("POST", "/v2/groups", group, timeout=120)
    assert status == 201, body
    print(f"a group of 5,000 apps created in {time.monotonic() - began:.1f} s")
    wait_until(lambda: leader.get("/v2/deployments")[1] == [], timeout=60, what="the group deployed")
    leader.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    successor = ha.leader()
    elected = time.monotonic() - killed_at
    apps = wait_until(lambda: (lambda r: r[1]["apps"] if r[0] == 200 and len(r[1]["apps"]) == 5000 else None)(
        successor.get("/v2/apps")), timeout=60, what="5,000 apps on the new leader")
    took = time.monotonic() - killed_at
    print(f"takeover of 5,000 apps: elected {elected:.1f} s, serving them {took:.1f} s after kill -9 of the leader")
    assert {a["labels"]["INDEX"] for a in apps} == {str(i) for i in range(5000)}
