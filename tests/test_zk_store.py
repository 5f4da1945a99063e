"""The Store contract against SqliteStore and ZkStore alike, then what only ZooKeeper needs:
chunked records, 5,000-app groups (the takeover load time), and ZooKeeper going away.

Real ZooKeeper (tests/zk_support.py): the shared `zookeeper` under a fresh path per test, or a
private one from `zk_factory` for the tests that stop it.
"""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from scheduler.api.errors import error_body
from scheduler.errors import FencedOut, StoreUnavailable
from scheduler.ha.zk_url import parse_zk_url
from scheduler.state.model import Instance
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.store import (
    MAX_VERSIONS_PER_APP,
    DeleteApp,
    DeleteDeployment,
    DeleteInstance,
    Fence,
    PutAppVersion,
    PutBackoff,
    PutDeployment,
    PutInstance,
    PutMeta,
    Store,
)
from scheduler.state.zk_store import ZkStore, connect

from .support import wait_until
from .zk_support import ZooKeeperServer


def _instance(app_id: str, n: int = 0) -> Instance:
    return Instance(instance_id=f"{app_id.strip('/').replace('/', '_')}.instance-{n}._app.1", app_id=app_id,
                    version="2026-01-01T00:00:00.000Z", config_version="2026-01-01T00:00:00.000Z",
                    agent_id="agent-1", host="127.0.0.1", ports=(31000 + n,), service_ports=(10000,),
                    resources={"cpus": 0.1, "mem": 32.0})


def _app(app_id: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": f"sleep {n}", "instances": 1, "cpus": 0.1, "mem": 32, **extra}


def _version(n: int) -> str:
    return f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z"


@dataclass
class StoreCase:
    store: Store
    valid_fence: Fence
    stale_fence: Fence


@pytest.fixture
def zk_root() -> str:
    return f"/pacer-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def zk_client(zookeeper: ZooKeeperServer) -> Iterator[KazooClient]:
    client = connect(parse_zk_url(zookeeper.zk_url("/x")), timeout=10, session_timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture(params=["sqlite", "zookeeper"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "state.db")
        store.commit([PutMeta("leader-token", "a")])
        yield StoreCase(store, Fence("leader-token", "a"), Fence("leader-token", "b"))
        store.close()
        return
    client: KazooClient = request.getfixturevalue("zk_client")
    root: str = request.getfixturevalue("zk_root")
    zk = request.getfixturevalue("zookeeper")
    store = ZkStore(client, root, location=zk.zk_url(root))
    client.create(f"{root}/leader-fence", b"", makepath=True)
    client.set(f"{root}/leader-fence", b"x")                    # version 1
    yield StoreCase(store, Fence("leader-fence", "1"), Fence("leader-fence", "0"))
    store.close()


# -- the contract, both stores ---------------------------------------------------------------
def test_every_write_type_round_trips(case: StoreCase) -> None:
    s = case.store
    inst = _instance("/prod/web")
    s.commit([PutAppVersion("/prod/web", _version(1), _app("/prod/web")),
              PutAppVersion("/db", _version(1), _app("/db")),
              PutInstance(inst), PutInstance(_instance("/db", 1)),
              PutDeployment("d-1", {"id": "d-1", "steps": [["/prod/web"]]}),
              PutDeployment("d-2", {"id": "d-2"}),
              PutBackoff("/prod/web", {"delay": 2.0, "until": 10.5}),
              PutMeta("framework-id", "fw-1")], case.valid_fence)
    s.commit([DeleteInstance(_instance("/db", 1).instance_id), DeleteDeployment("d-2"),
              PutBackoff("/db", None), PutInstance(inst.with_(state="TASK_RUNNING"))], case.valid_fence)
    state = s.load()
    assert [(a, v) for a, v, _ in state.apps] == [("/db", _version(1)), ("/prod/web", _version(1))]
    assert dict((a, d) for a, _, d in state.apps)["/prod/web"] == _app("/prod/web")
    assert state.instances == [inst.with_(state="TASK_RUNNING")]
    assert state.deployments == [{"id": "d-1", "steps": [["/prod/web"]]}]
    assert state.backoffs == {"/prod/web": {"delay": 2.0, "until": 10.5}}
    assert state.meta["framework-id"] == "fw-1"


def test_a_stale_fence_refuses_the_whole_commit(case: StoreCase) -> None:
    s = case.store
    s.commit([PutAppVersion("/a", _version(1), _app("/a"))])
    with pytest.raises(FencedOut):
        s.commit([PutAppVersion("/b", _version(1), _app("/b")), DeleteApp("/a"), PutMeta("k", "v")],
                 case.stale_fence)
    state = s.load()
    assert [a for a, _, _ in state.apps] == ["/a"]
    assert "k" not in state.meta
    s.commit([PutMeta("k", "v")], case.valid_fence)           # and the store still works
    assert s.load().meta["k"] == "v"


def test_history_is_trimmed_newest_first(case: StoreCase) -> None:
    s = case.store
    for n in range(MAX_VERSIONS_PER_APP + 5):
        s.commit([PutAppVersion("/web", _version(n), _app("/web", n))])
    versions = s.app_versions("/web")
    assert versions == [_version(n) for n in reversed(range(5, MAX_VERSIONS_PER_APP + 5))]
    assert s.app_version("/web", _version(4)) is None
    assert s.app_version("/web", _version(7)) == _app("/web", 7)
    assert s.load().apps[0][1] == _version(MAX_VERSIONS_PER_APP + 4)


def test_delete_app_removes_history_and_backoff(case: StoreCase) -> None:
    s = case.store
    s.commit([PutAppVersion("/web", _version(1), _app("/web", 1)), PutBackoff("/web", {"delay": 1.0})])
    s.commit([PutAppVersion("/web", _version(2), _app("/web", 2))])
    s.commit([DeleteApp("/web")])
    assert s.app_versions("/web") == []
    assert s.app_version("/web", _version(1)) is None
    state = s.load()
    assert state.apps == [] and state.backoffs == {}
    s.commit([DeleteApp("/web"), PutAppVersion("/web", _version(3), _app("/web", 3))])   # and again
    assert s.app_versions("/web") == [_version(3)]


def test_meta_overwrites(case: StoreCase) -> None:
    case.store.commit([PutMeta("framework-id", "one")])
    case.store.commit([PutMeta("framework-id", "two"), PutMeta("other", "x")])
    assert {k: v for k, v in case.store.load().meta.items() if k != "leader-token"} == {
        "framework-id": "two", "other": "x"}


# -- ZooKeeper only ----------------------------------------------------------------------------
@pytest.fixture
def zk_store(zk_client: KazooClient, zk_root: str, zookeeper: ZooKeeperServer) -> Iterator[ZkStore]:
    store = ZkStore(zk_client, zk_root, location=zookeeper.zk_url(zk_root))
    yield store
    store.close()


def test_a_record_above_one_megabyte_is_chunked_and_round_trips(zk_store: ZkStore, zk_client: KazooClient,
                                                                zk_root: str) -> None:
    blob = base64.b64encode(os.urandom(2_000_000)).decode()        # ~2.7 MB, ~2 MB compressed
    big = _app("/big", env={"BLOB": blob})
    zk_store.commit([PutAppVersion("/big", _version(1), big), PutInstance(_instance("/big"))])
    app_dir = f"{zk_root}/state/apps/%2Fbig"
    assert len([c for c in zk_client.get_children(app_dir) if "~c" in c]) >= 2
    assert zk_store.app_version("/big", _version(1)) == big
    reopened = ZkStore(zk_client, zk_root)
    assert reopened.load().apps == [("/big", _version(1), big)]
    zk_store.commit([DeleteApp("/big")])
    assert not zk_client.exists(app_dir)
    assert zk_client.get_children(f"{zk_root}/state/journal") == []
    assert zk_client.get_children(f"{zk_root}/state/staged") == []


def test_an_index_wrong_about_a_node_is_listed_again_and_the_commit_retried(
        zk_store: ZkStore, zk_client: KazooClient, zk_root: str) -> None:
    zk_store.load()
    inst = _instance("/web")
    zk_client.create(f"{zk_root}/state/instances/{inst.instance_id.replace('.', '%2E')}", b"junk")
    zk_store.commit([PutInstance(inst)])
    assert zk_store.load().instances == [inst]


def _group(n: int) -> list[PutAppVersion]:
    return [PutAppVersion(f"/group/app-{i:04d}", _version(1),
                          _app(f"/group/app-{i:04d}", i, labels={"HAPROXY_GROUP": "external", "team": f"t{i % 7}"},
                               env={"ROLE": "web", "INDEX": str(i)}))
            for i in range(n)]


def _timed_load(store: Store) -> tuple[float, Any]:
    started = time.monotonic()
    state = store.load()
    return time.monotonic() - started, state


def test_five_thousand_apps_in_one_group_commit_store_and_load(zk_store: ZkStore, zk_client: KazooClient,
                                                               zk_root: str, zookeeper: ZooKeeperServer) -> None:
    writes = _group(5000)
    started = time.monotonic()
    zk_store.commit(writes, None)
    stored = time.monotonic() - started
    assert zk_client.get_children(f"{zk_root}/state/journal") == []
    fresh = ZkStore(zk_client, zk_root, location=zookeeper.zk_url(zk_root))
    seconds, state = _timed_load(fresh)
    print(f"\none commit of a 5,000-app group: {stored:.2f} s")
    print(f"takeover load of 5,000 apps: {seconds:.2f} s")
    assert [a for a, _, _ in state.apps] == [w.app_id for w in writes]
    assert state.apps[4321][2] == writes[4321].definition
    fresh.commit([DeleteApp("/group/app-0000")])          # the loaded index serves the next commit
    assert len(zk_store.load().apps) == 4999


def test_five_thousand_apps_in_separate_commits_store_and_load(zk_store: ZkStore, zookeeper: ZooKeeperServer,
                                                               zk_client: KazooClient, zk_root: str) -> None:
    writes = _group(5000)
    started = time.monotonic()
    for w in writes:
        zk_store.commit([w])
    stored = time.monotonic() - started
    seconds, state = _timed_load(ZkStore(zk_client, zk_root))
    print(f"\n5,000 separate app commits: {stored:.2f} s")
    print(f"takeover load of 5,000 apps: {seconds:.2f} s")
    assert len(state.apps) == 5000


def test_a_commit_cut_after_its_journal_entry_is_seen_by_load_and_finished_by_the_next_commit(
        zk_client: KazooClient, zk_root: str) -> None:
    store = ZkStore(zk_client, zk_root, txn_budget=4096)        # every commit here is two-phase
    store.load()
    applied: list[str] = []
    real_apply = store._apply

    def crash(*args: Any) -> None:
        applied.append("cut")
        raise StoreUnavailable("simulated loss between the journal entry and its application")

    store._apply = crash  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        store.commit(_group(40))
    store._apply = real_apply  # type: ignore[method-assign]
    assert applied and len(zk_client.get_children(f"{zk_root}/state/journal")) == 1
    other = ZkStore(zk_client, zk_root, txn_budget=4096)
    assert len(other.load().apps) == 40                         # overlaid from the journal
    other.commit([PutMeta("k", "v")])                            # finishes the entry first
    assert zk_client.get_children(f"{zk_root}/state/journal") == []
    assert zk_client.get_children(f"{zk_root}/state/staged") == []
    assert len(ZkStore(zk_client, zk_root).load().apps) == 40


def test_unavailable_maps_to_503_with_marathons_body() -> None:
    status, body = error_body(StoreUnavailable("ZooKeeper at zk://h:2181/p is unreachable: down"))
    assert status == 503 and "ZooKeeper at zk://h:2181/p is unreachable" in body["message"]


def _raises_unavailable_within(fn: Callable[[], Any], seconds: float) -> str:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        fn()
    assert time.monotonic() - started < seconds
    return info.value.message


def test_zookeeper_stopped_refuses_commits_promptly_and_restarted_takes_them(zk_factory: Callable[[], ZooKeeperServer]) -> None:
    server = zk_factory()
    url = parse_zk_url(server.zk_url("/pacer"))
    store = ZkStore.open(url, timeout=3.0, session_timeout=4.0)
    try:
        store.commit([PutAppVersion("/web", _version(1), _app("/web"))])
        store.load()
        server.stop()
        deadline = time.monotonic() + 6.0                       # beyond the session timeout
        while time.monotonic() < deadline:
            message = _raises_unavailable_within(lambda: store.commit([PutMeta("k", "v")]), 3.0 + 1.5)
            assert "ZooKeeper at zk://127.0.0.1" in message and "unreachable" in message
            time.sleep(0.5)
        server.start()
        wait_until(lambda: _commits(store), timeout=20, what="commits after ZooKeeper restarted")
        assert store.load().meta == {"k": "v"}
        assert store.app_version("/web", _version(1)) == _app("/web")
    finally:
        store.close()


def _commits(store: ZkStore) -> bool:
    try:
        store.commit([PutMeta("k", "v")])
        return True
    except StoreUnavailable:
        return False


def test_a_frozen_zookeeper_makes_commits_fail_within_the_timeout(zk_factory: Callable[[], ZooKeeperServer]) -> None:
    server = zk_factory()
    store = ZkStore.open(parse_zk_url(server.zk_url("/pacer")), timeout=2.0, session_timeout=10.0)
    assert server.proc is not None
    try:
        store.load()
        os.kill(server.proc.pid, signal.SIGSTOP)                # our own server, by its pid
        try:
            _raises_unavailable_within(lambda: store.commit([PutMeta("k", "v")]), 2.0 + 1.5)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        wait_until(lambda: _commits(store), timeout=20, what="commits after ZooKeeper thawed")
    finally:
        store.close()


def test_a_two_phase_commit_is_fenced_at_its_commit_point(zk_client: KazooClient, zk_root: str) -> None:
    store = ZkStore(zk_client, zk_root, txn_budget=4096)        # 40 apps need several multis
    zk_client.create(f"{zk_root}/leader-fence", b"", makepath=True)
    zk_client.set(f"{zk_root}/leader-fence", b"a")             # version 1
    with pytest.raises(FencedOut):
        store.commit(_group(40), Fence("leader-fence", "0"))
    assert store.load().apps == []
    assert zk_client.get_children(f"{zk_root}/state/journal") == []
    assert zk_client.get_children(f"{zk_root}/state/staged") != []          # orphaned, unreferenced
    store.commit(_group(40), Fence("leader-fence", "1"))
    assert len(store.load().apps) == 40
    assert zk_client.get_children(f"{zk_root}/state/staged") == []          # collected by the leader


def test_digest_credentials_protect_the_nodes(zookeeper: ZooKeeperServer, zk_root: str) -> None:
    from kazoo.exceptions import NoAuthError
    store = ZkStore.open(parse_zk_url(f"zk://pacer:s3cret@{zookeeper.hosts}{zk_root}"))
    anonymous = KazooClient(hosts=zookeeper.hosts)
    anonymous.start(timeout=10)
    try:
        store.commit([PutMeta("framework-id", "fw")])
        assert store.load().meta == {"framework-id": "fw"}
        assert "s3cret" not in store.location
        with pytest.raises(NoAuthError):
            anonymous.get(f"{zk_root}/state/meta/framework-id")
    finally:
        anonymous.stop()
        anonymous.close()
        store.close()
