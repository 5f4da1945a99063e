"""`--master zk://…`: the leading Mesos master found in ZooKeeper.

The pure parts (the URL, which znode leads, the address a MasterInfo names) get unit and
property tests; the watcher runs against a real ZooKeeper (tests/zk_support.py); and
`pacer serve --master zk://…` follows a master failover of the simulator the way a real
cluster announces it: each master holds its own ZooKeeper session and an ephemeral sequential
`json.info_` znode, the old leader's session ends, the new leader's znode is the lowest.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from scheduler.backends.mesos_discovery import (
    DiscoveryError,
    ZkMasters,
    ZkMasterWatch,
    leader_node,
    leader_url,
    master_url,
    parse_zk_url,
)

from .mesos_sim import AgentSpec, SimulatedMaster
from .mesos_sim.harness import SimHarness
from .support import PacerServer, free_port, wait_until
from .test_startup_errors import pacer_cli, the_error_line
from .zk_support import ZooKeeperServer

pytestmark = pytest.mark.timeout(120)


# -- the URL ---------------------------------------------------------------------------------

def test_parse_zk_url() -> None:
    assert parse_zk_url("zk://h1:2181,h2:2182/mesos") == ZkMasters("h1:2181,h2:2182", "/mesos")
    assert parse_zk_url("zk://zk.example/a/b/") == ZkMasters("zk.example:2181", "/a/b")
    parsed = parse_zk_url("zk://ops:p@ss:w0rd@h1:2181/mesos")
    assert parsed.credentials == ("ops", "p@ss:w0rd") and parsed.hosts == "h1:2181"
    assert parsed.url == "zk://h1:2181/mesos" and "w0rd" not in repr(parsed)


@pytest.mark.parametrize("value, needle", [
    ("zk://h1:2181", "path"), ("zk://h1:2181/", "path"), ("zk://h1:notaport/mesos", "port 'notaport'"),
    ("zk://h1:2181,,h2/mesos", "empty host"), ("zk://:2181/mesos", "not a host name"),
    ("zk://user@h1/mesos", "user:password"), ("http://h1:5050", "zk://"),
])
def test_parse_zk_url_refuses(value: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_zk_url(value)


# -- who leads -------------------------------------------------------------------------------

def test_the_lowest_json_info_leads() -> None:
    children = ["json.info_0000000012", "log_replicas", "info_0000000001", "json.info_0000000007",
                "json.info_", "json.info_x1"]
    assert leader_node(children) == "json.info_0000000007"
    assert leader_node(["log_replicas", "info_0000000001"]) is None
    assert leader_node([]) is None


@given(st.sets(st.integers(0, 2**31 - 1), min_size=1, max_size=20),
       st.lists(st.sampled_from(["log_replicas", "info_0000000000", "json.info_", "json.info_-1"]), max_size=4))
def test_leader_is_the_minimum_sequence(sequences: set[int], noise: list[str]) -> None:
    names = [f"json.info_{seq:010d}" for seq in sequences] + noise
    assert leader_node(names) == f"json.info_{min(sequences):010d}"
    assert leader_node(reversed(names)) == leader_node(names)


def _info(port: int = 5050, **extra: Any) -> bytes:
    info = {"id": "m1", "ip": 16777343, "port": port, "hostname": "master-a.example", "version": "1.11.0",
            "address": {"hostname": "master-a.example", "ip": "127.0.0.1", "port": port}}
    info.update(extra)
    return json.dumps({k: v for k, v in info.items() if v is not None}).encode()


def test_master_url_prefers_the_pid_then_the_addresses() -> None:
    assert master_url(_info(5051, pid="master@10.0.0.9:5052")) == "http://10.0.0.9:5052"
    assert master_url(_info(5051)) == "http://127.0.0.1:5051"
    assert master_url(_info(5051, address={"hostname": "h.example", "port": 5051})) == "http://127.0.0.1:5051"
    only_name = json.dumps({"id": "m", "hostname": "h.example", "port": 5050}).encode()
    assert master_url(only_name) == "http://h.example:5050"
    assert master_url(_info(5050, address={"ip": "::1", "port": 5050})) == "http://[::1]:5050"


@pytest.mark.parametrize("data", [b"not json", b"[1]", json.dumps({"id": "m"}).encode(),
                                  json.dumps({"hostname": "h", "port": "5050"}).encode(),
                                  json.dumps({"hostname": "h", "port": 0}).encode()])
def test_master_url_refuses_what_names_no_address(data: bytes) -> None:
    with pytest.raises(ValueError):
        master_url(data)


@given(st.ip_addresses(v=4).filter(lambda ip: int(ip) != 0), st.integers(1, 65535))
def test_the_uint32_ip_is_network_order(ip: ipaddress.IPv4Address, port: int) -> None:
    """(0.0.0.0, Mesos's "no address", is refused with the other addressless infos.)"""
    as_mesos_writes_it = int.from_bytes(ip.packed, "little")    # in_addr.s_addr read as a host integer
    data = json.dumps({"id": "m", "ip": as_mesos_writes_it, "port": port}).encode()
    assert master_url(data) == f"http://{ip}:{port}"


def test_leader_url_of_a_listing() -> None:
    nodes: dict[str, bytes | None] = {"json.info_0000000003": _info(5053), "json.info_0000000002": _info(5052)}
    assert leader_url(nodes) == "http://127.0.0.1:5052"
    assert leader_url({"log_replicas": b""}) is None
    with pytest.raises(ValueError, match="vanished"):
        leader_url({"json.info_0000000001": None})


# -- the watcher, against a real ZooKeeper -------------------------------------------------------

@pytest.fixture
def zk_path() -> str:
    return f"/mesos-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sessions(zookeeper: ZooKeeperServer) -> Iterator[Callable[..., KazooClient]]:
    """ZooKeeper sessions standing for masters (each holds its znode while it lives)."""
    clients: list[KazooClient] = []

    def session(**kw: Any) -> KazooClient:
        client = KazooClient(hosts=zookeeper.hosts, timeout=5.0, **kw)
        client.start(timeout=20)
        clients.append(client)
        return client

    yield session
    for client in clients:
        client.stop()
        client.close()


def register(session: KazooClient, path: str, port: int, **kw: Any) -> str:
    """What a Mesos master does when it contends: an ephemeral sequential json.info_ znode."""
    return session.create(f"{path}/json.info_", _info(port), ephemeral=True, sequence=True, makepath=True, **kw)


def test_watch_follows_the_znodes(zookeeper: ZooKeeperServer, sessions: Callable[..., KazooClient],
                                  zk_path: str) -> None:
    async def scenario() -> None:
        watch = ZkMasterWatch(parse_zk_url(zookeeper.zk_url(zk_path)))
        seen: list[str | None] = []
        watch.on_change(seen.append)
        try:
            assert await watch.leader() is None                    # no path yet: nobody registered
            first, second = sessions(), sessions()
            register(first, zk_path, 5051)
            register(second, zk_path, 5052)
            assert await watch.leader() == "http://127.0.0.1:5051"
            await _eventually(lambda: "http://127.0.0.1:5051" in seen, "the watch on the new path to fire")
            await asyncio.to_thread(first.stop)                    # the leader's session ends: its znode goes
            await _eventually(lambda: seen[-1:] == ["http://127.0.0.1:5052"], "the watch to name the next leader")
            assert await watch.leader() == "http://127.0.0.1:5052"
        finally:
            await watch.close()
    asyncio.run(scenario())


def test_watch_uses_digest_credentials(zookeeper: ZooKeeperServer, sessions: Callable[..., KazooClient],
                                       zk_path: str) -> None:
    """Marathon's zk://user:password@… form: a path only that user may read is read with them."""
    acl = [make_digest_acl("ops", "s3cret", all=True)]
    owner = sessions(auth_data=[("digest", "ops:s3cret")])
    owner.create(zk_path, b"", acl=acl)
    register(owner, zk_path, 5055, acl=acl)

    async def scenario() -> None:
        allowed = ZkMasterWatch(parse_zk_url(f"zk://ops:s3cret@{zookeeper.hosts}{zk_path}"))
        refused = ZkMasterWatch(parse_zk_url(zookeeper.zk_url(zk_path)))
        try:
            assert await allowed.leader() == "http://127.0.0.1:5055"
            with pytest.raises(DiscoveryError, match="NoAuth"):
                await refused.leader()
        finally:
            await allowed.close()
            await refused.close()
    asyncio.run(scenario())


def test_a_zookeeper_outage_is_a_discovery_error_until_it_is_back(zk_factory: Callable[[], ZooKeeperServer],
                                                                   zk_path: str) -> None:
    """While ZooKeeper is down a read fails within its timeout (the subscription loop logs it and
    tries again); once it is back on the same data, the leader is read again."""
    server = zk_factory()
    master = KazooClient(hosts=server.hosts, timeout=30.0)
    master.start(timeout=20)
    register(master, zk_path, 5057)

    async def scenario() -> None:
        watch = ZkMasterWatch(parse_zk_url(server.zk_url(zk_path)), read_timeout=2.0)
        try:
            assert await watch.leader() == "http://127.0.0.1:5057"
            await asyncio.to_thread(server.kill)
            with pytest.raises(DiscoveryError, match="ZooKeeper"):
                await watch.leader()
            await asyncio.to_thread(server.start)
            await _eventually_async(watch.leader, "http://127.0.0.1:5057", "the leader read again")
        finally:
            await watch.close()
    try:
        asyncio.run(scenario())
    finally:
        master.stop()
        master.close()


async def _eventually_async(read: Callable[[], Any], expected: Any, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            if await read() == expected:
                return
        except DiscoveryError:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _eventually(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- pacer serve --master zk://… ---------------------------------------------------------------

@pytest.fixture
def sim() -> Iterator[SimHarness]:
    agents = [AgentSpec(f"agent-{i + 1}", cpus=4, mem=4096, disk=1000) for i in range(2)]
    harness = SimHarness(agents, masters=2, heartbeat_interval=1.0, allocation_interval=0.1).start()
    yield harness
    harness.stop()


def test_serve_finds_the_leader_in_zookeeper_and_follows_a_failover(
        zookeeper: ZooKeeperServer, sessions: Callable[..., KazooClient], zk_path: str, sim: SimHarness,
        pacer_factory: Callable[..., PacerServer]) -> None:
    first, second = sim.masters
    first_session = sessions()
    register(first_session, zk_path, first.port)
    zk_url = zookeeper.zk_url(zk_path)
    server = pacer_factory("--master", zk_url)
    app = {"id": "/zk", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 16}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    before = {t["id"] for t in wait_until(lambda: _all_running(server, "/zk", 2), what="2 tasks running")}
    framework_id = sim.run(lambda: next(iter(first.frameworks)))
    _, info, _ = server.get("/v2/info")
    assert (info["frameworkId"], info["marathon_config"]["master"]) == (framework_id, zk_url)
    assert info["marathon_config"]["mesos_leader_ui_url"] == first.url

    # Failover as ZooKeeper shows it: the old leader goes silent (no redirect: only ZooKeeper knows
    # the new one), its session ends and its znode with it; the new leader registers.
    sim.failover()
    sim.run(lambda: setattr(first, "leader", None))          # the old master answers 503 from now on
    first_session.stop()
    register(sessions(), zk_path, second.port)
    wait_until(lambda: sim.run(lambda: _subscribed(second)), what="a subscription at the new leader")
    resubscribed = sim.run(lambda: [c for c in second.calls if c["type"] == "SUBSCRIBE"])
    assert resubscribed[0]["framework_id"] == {"value": framework_id}
    assert sim.run(lambda: list(second.frameworks)) == [framework_id]
    wait_until(lambda: server.get("/v2/info")[1]["marathon_config"]["mesos_leader_ui_url"] == second.url,
               what="/v2/info to name the new leader")
    assert server.request("PUT", "/v2/apps/zk", {"instances": 3})[0] == 200
    after = {t["id"] for t in wait_until(lambda: _all_running(server, "/zk", 3), what="3 tasks running")}
    assert before < after                                     # the old tasks were kept, one was added
    assert sim.run(lambda: [c for c in second.calls if c["type"] == "ACCEPT"])
    assert sim.rejections() == []


def _all_running(server: PacerServer, app_id: str, count: int) -> list[dict[str, Any]] | None:
    tasks = server.tasks(app_id)
    return tasks if len(tasks) == count and all(t["state"] == "TASK_RUNNING" for t in tasks) else None


def _subscribed(master: SimulatedMaster) -> bool:
    return bool(master.frameworks) and all(f.connection is not None for f in master.frameworks.values())


def test_an_unreachable_zookeeper_is_one_line_naming_master(tmp_path: Any) -> None:
    url = f"zk://127.0.0.1:{free_port()}/mesos"
    result = pacer_cli("serve", "--master", url, "--home", str(tmp_path / "home"), "--haproxy-bridge", "off",
                       "--listen", f"127.0.0.1:{free_port()}")
    line = the_error_line(result, "ZooKeeper", "--master", url, status=1)
    assert "http://HOST:5050" in line


@pytest.mark.parametrize("url, needle", [("zk://h1:2181", "path"), ("zk://h1:x/mesos", "port 'x'")])
def test_a_bad_zk_url_is_a_usage_error(tmp_path: Any, url: str, needle: str) -> None:
    result = pacer_cli("serve", "--master", url, "--home", str(tmp_path / "home"), "--haproxy-bridge", "off")
    the_error_line(result, "--master", needle, status=2)


# -- the connection and its master source -------------------------------------------------------

class FakeSource:
    """A `MasterSource` the test moves by hand."""

    describe = "zk://fake/mesos"

    def __init__(self, leader: str | None) -> None:
        self.current = leader
        self.reads = 0
        self.callbacks: list[Callable[[str | None], None]] = []

    def start(self) -> None:
        pass

    async def leader(self) -> str | None:
        self.reads += 1
        return self.current

    def on_change(self, callback: Callable[[str | None], None]) -> None:
        self.callbacks.append(callback)

    def move(self, leader: str | None) -> None:
        self.current = leader
        for callback in self.callbacks:
            callback(leader)

    async def close(self) -> None:
        pass


class Handler:
    def __init__(self) -> None:
        self.subscribed: list[tuple[str, str]] = []

    def on_subscribed(self, framework_id: str, master: str) -> None:
        self.subscribed.append((framework_id, master))

    def on_event(self, event: dict[str, Any]) -> None:
        pass

    def on_disconnected(self, reason: str) -> None:
        pass

    def on_refused(self, message: str) -> None:
        pass


async def test_a_new_leader_named_while_subscribed_ends_the_old_subscription() -> None:
    """Both masters still answer (the old one has not noticed yet): the source decides, and the
    subscription moves to the new leader as the same framework."""
    from scheduler.backends.mesos_client import MesosClient
    from scheduler.backends.mesos_connection import Backoff, FrameworkConnection

    from .mesos_sim import Cluster

    masters = [await SimulatedMaster(Cluster(), f"m{i}", heartbeat_interval=0.5).start() for i in range(2)]
    source = FakeSource(None)
    handler = Handler()

    def subscribe_call(framework_id: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {"user": "nobody", "name": "pacer", "roles": ["*"], "failover_timeout": 60.0,
                                "capabilities": [{"type": "MULTI_ROLE"}]}
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if framework_id:
            info["id"] = call["framework_id"] = {"value": framework_id}
        return call

    connection = FrameworkConnection(MesosClient(["http://unused.invalid:1"]), subscribe_call, handler,
                                     backoff=Backoff(first=5.0, cap=5.0), discovery=source)
    try:
        connection.start()
        await _eventually(lambda: source.reads >= 1, "a first read of the source")
        source.move(masters[0].url)          # no master yet → a long backoff, cut short by the news
        await _eventually(lambda: len(handler.subscribed) == 1, "a subscription to the first master")
        framework_id, master = handler.subscribed[0]
        assert master == masters[0].url
        source.move(masters[0].url)          # the same leader read again: nothing happens
        source.move(masters[1].url)
        await _eventually(lambda: len(handler.subscribed) == 2, "a subscription to the new leader")
        assert handler.subscribed[1] == (framework_id, masters[1].url)
        assert [c.get("framework_id") for c in masters[1].calls] == [{"value": framework_id}]
        assert len(masters[0].calls) == 1
    finally:
        await connection.close()
        for sim_master in masters:
            await sim_master.stop()
    assert [r for m in masters for r in m.rejections] == []
