"""The leader election with fencing: the pure choice of a leader, then contenders in this process
on separate KazooClients against a real ZooKeeper (a fresh path per test on the shared server,
a private server for the test that stops it)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient, KazooState

from scheduler.errors import FencedOut
from scheduler.ha import Leadership
from scheduler.ha.election import ZkLeadership, elect, member_sequence
from scheduler.ha.zk_url import parse_zk_url
from scheduler.state.store import PutMeta
from scheduler.state.zk_store import ZkStore, connect

from .support import wait_until
from .zk_support import ZooKeeperServer

SESSION_TIMEOUT = 4.0


# -- pure -------------------------------------------------------------------------------------
def test_the_lowest_sequence_leads_and_other_names_are_ignored() -> None:
    assert elect(["member-0000000007", "member-0000000003", "member-0000000010"]) == "member-0000000003"
    assert elect(["lock", "member-x", "member-0000000002"]) == "member-0000000002"
    assert elect([]) is None and elect(["other"]) is None
    assert member_sequence("member-0000000042") == 42 and member_sequence("member-") is None


@given(st.lists(st.integers(min_value=0, max_value=2**31 - 1), unique=True))
def test_elect_picks_the_minimum_whatever_the_order(seqs: list[int]) -> None:
    names = [f"member-{s:010d}" for s in seqs]
    assert elect(reversed(names)) == (f"member-{min(seqs):010d}" if seqs else None)


# -- real ZooKeeper ---------------------------------------------------------------------------
class Contenders:
    """Contenders on their own clients; every client and contender is closed afterwards."""

    def __init__(self, hosts: str, root: str) -> None:
        self.hosts, self.root = hosts, root
        self.clients: list[KazooClient] = []
        self.members: list[ZkLeadership] = []

    def client(self) -> KazooClient:
        c = connect(parse_zk_url(f"zk://{self.hosts}{self.root}"), timeout=10, session_timeout=SESSION_TIMEOUT)
        self.clients.append(c)
        return c

    def add(self, n: int, **kw: object) -> ZkLeadership:
        member = ZkLeadership(self.client(), self.root, f"10.0.0.{n}:8080", **kw)  # type: ignore[arg-type]
        member.start()
        self.members.append(member)
        return member

    def leaders(self) -> list[ZkLeadership]:
        return [m for m in self.members if m.is_leader()]

    def one_leader(self, among: list[ZkLeadership] | None = None) -> ZkLeadership:
        pool = among if among is not None else self.members
        found = wait_until(lambda: [m for m in pool if m.is_leader()] if len(self.leaders()) == 1 else None,
                           timeout=SESSION_TIMEOUT + 10, what="exactly one leader")
        return found[0]

    def close(self) -> None:
        for m in self.members:
            m.close()
        for c in self.clients:
            c.stop()
            c.close()


@pytest.fixture
def contenders(zookeeper: ZooKeeperServer) -> Iterator[Contenders]:
    group = Contenders(zookeeper.hosts, f"/pacer-election-{uuid.uuid4().hex[:12]}")
    yield group
    group.close()


def _agree(group: Contenders, address: str) -> bool:
    return all(m.leader_address() == address for m in group.members)


def test_exactly_one_of_three_leads_and_all_agree_on_its_address(contenders: Contenders) -> None:
    members = [contenders.add(n) for n in (1, 2, 3)]
    leader = contenders.one_leader()
    as_seen_by_pacer: Leadership = leader           # the protocol every part of Pacer uses
    assert as_seen_by_pacer.leader_address() == leader.address
    wait_until(lambda: _agree(contenders, leader.address), what="every contender names the leader")
    assert leader.fence() is not None and all(m.fence() is None for m in members if m is not leader)


def test_abdicate_hands_the_leadership_on(contenders: Contenders) -> None:
    for n in (1, 2, 3):
        contenders.add(n)
    first = contenders.one_leader()
    asyncio.run(first.abdicate())
    assert not first.is_leader()
    second = contenders.one_leader([m for m in contenders.members if m is not first])
    wait_until(lambda: _agree(contenders, second.address), what="every contender names the new leader")
    assert second.fence() != first.fence()


def test_the_leaders_client_closing_hands_over_within_the_session_timeout(contenders: Contenders) -> None:
    for n in (1, 2, 3):
        contenders.add(n)
    leader = contenders.one_leader()
    started = time.monotonic()
    client = contenders.clients[contenders.members.index(leader)]
    client.stop()
    others = [m for m in contenders.members if m is not leader]
    successor = wait_until(lambda: [m for m in others if m.is_leader()], timeout=SESSION_TIMEOUT + 5,
                           what="another leader")[0]
    print(f"\nhand-over after the leader's client closed: {time.monotonic() - started:.2f} s")
    wait_until(lambda: all(m.leader_address() == successor.address for m in others), what="agreement")


def _expire_session(client: KazooClient, hosts: str) -> None:
    """Expire `client`'s session from outside, as ZooKeeper would after a partition: a second
    client attaches to the same session id and password and closes it (kazoo's own test trick)."""
    twin = KazooClient(hosts=hosts, client_id=client.client_id)
    twin.start(timeout=10)
    twin.stop()
    twin.close()


def test_a_deposed_leaders_late_write_is_fenced_out(contenders: Contenders, zookeeper: ZooKeeperServer) -> None:
    a = contenders.add(1, on_session_loss="rejoin")
    wait_until(a.is_leader, what="a leads")
    b = contenders.add(2)
    a_client, b_client = contenders.clients
    a_store = ZkStore(a_client, contenders.root)
    b_store = ZkStore(b_client, contenders.root)
    old_fence = a.fence()
    assert old_fence is not None
    a_store.commit([PutMeta("written-by", "a")], old_fence)
    _expire_session(a_client, zookeeper.hosts)
    wait_until(b.is_leader, timeout=SESSION_TIMEOUT + 10, what="b leads after a's session expired")
    assert not a.is_leader()
    wait_until(lambda: a_client.state == KazooState.CONNECTED, what="a's client back on a new session")
    with pytest.raises(FencedOut):
        a_store.commit([PutMeta("written-by", "a, late")], old_fence)
    new_fence = b.fence()
    assert new_fence is not None
    b_store.commit([PutMeta("written-by", "b")], new_fence)
    assert b_store.load().meta["written-by"] == "b"
    wait_until(lambda: a.leader_address() == b.address, what="a rejoined as a follower of b")


def test_session_loss_with_exit_calls_the_exit_callback_once(contenders: Contenders,
                                                             zookeeper: ZooKeeperServer) -> None:
    exited = threading.Event()
    calls: list[int] = []
    a = contenders.add(1, on_exit=lambda: (calls.append(1), exited.set()))
    b = contenders.add(2)
    wait_until(a.is_leader, what="a leads")
    _expire_session(contenders.clients[0], zookeeper.hosts)
    assert exited.wait(SESSION_TIMEOUT + 10)
    wait_until(b.is_leader, what="b leads")
    assert not a.is_leader() and calls == [1]
    wait_until(lambda: contenders.clients[0].state == KazooState.CONNECTED, what="a's client reconnected")
    assert not a.is_leader()                                     # exited: it does not contend again


def test_zookeeper_stopped_ends_leadership_at_once_and_restarted_restores_it(
        zk_factory: Callable[[], ZooKeeperServer]) -> None:
    server = zk_factory()
    group = Contenders(server.hosts, "/pacer")
    try:
        a = group.add(1, on_session_loss="rejoin")
        group.add(2, on_session_loss="rejoin")
        leader = group.one_leader()
        server.stop()
        started = time.monotonic()
        wait_until(lambda: not leader.is_leader(), timeout=5, interval=0.05, what="leadership dropped")
        print(f"\nleader stopped acting {time.monotonic() - started:.2f} s after ZooKeeper went down")
        wait_until(lambda: all(m.leader_address() is None and not m.is_leader() for m in group.members),
                   timeout=5, interval=0.05, what="no contender names a leader while ZooKeeper is down")
        server.start()
        group.one_leader()
        assert a in group.members
    finally:
        group.close()


def test_on_change_runs_callbacks_on_the_asyncio_loop(contenders: Contenders) -> None:
    async def main() -> list[tuple[bool, bool]]:
        seen: list[tuple[bool, bool]] = []
        loop_thread = threading.get_ident()

        async def record(leading: bool) -> None:
            seen.append((leading, threading.get_ident() == loop_thread))

        member = ZkLeadership(contenders.client(), contenders.root, "10.0.0.9:8080", on_session_loss="rejoin")
        contenders.members.append(member)
        member.on_change(record)
        member.start()
        await asyncio.to_thread(wait_until, lambda: (True, True) in seen, 15, 0.05, "a True callback")
        await member.abdicate()
        await asyncio.to_thread(wait_until, lambda: seen.count((True, True)) == 2, 15, 0.05, "leading again")
        return seen

    seen = asyncio.run(main())
    assert seen == [(True, True), (False, True), (True, True)]
