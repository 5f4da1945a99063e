"""Writes committed behind the event loop: the order and the outcome a commit at once would give.

A fake store commit that blocks on an event stands for a slow fsync, so each test can hold a
transaction in flight and look at what the loop does meanwhile; the last test runs the real
`SqliteStore` under a `ClusterState` and reads the file back with a fresh store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from scheduler.errors import StoreFull
from scheduler.state.cluster import ClusterState
from scheduler.state.model import RUNNING, STAGING, Instance
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.store import DeleteDeployment, DeleteInstance, Fence, PutDeployment, PutInstance, Write
from scheduler.state.write_behind import WriteBehind


def _inst(iid: str, state: str = RUNNING) -> Instance:
    return Instance(iid, "/app", "v1", "v1", "a1", "127.0.0.1", (), (), state=state,
                    resources={"cpus": 0.1, "mem": 1.0, "disk": 0.0})


class SlowStore:
    """Records each transaction; holds it until `release` is set, or fails it when told to."""

    def __init__(self) -> None:
        self.transactions: list[list[Write]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_next = False

    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        self.started.set()
        self.release.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise StoreFull("disk full")
        self.transactions.append(list(writes))


def _behind(store: SlowStore) -> WriteBehind:
    return WriteBehind(store.commit, lambda: None, background=True)


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_flush_returns_while_its_transaction_is_in_flight_and_writes_after_it_go_in_the_next() -> None:
    store = SlowStore()
    behind = _behind(store)
    store.release.clear()
    behind.put(PutInstance(_inst("i1", STAGING)))
    behind.flush()
    await asyncio.get_running_loop().run_in_executor(None, store.started.wait, 5)
    assert store.transactions == []                     # still in flight, and the loop runs
    behind.put(PutInstance(_inst("i1", RUNNING)))
    behind.put(PutInstance(_inst("i2")))
    behind.put(DeleteInstance("i2"))                    # the last write of a record wins
    behind.flush()                                      # one in flight: this one waits for it
    store.release.set()
    await _until(lambda: len(store.transactions) == 2, "the second transaction")
    first, second = store.transactions
    assert first == [PutInstance(_inst("i1", STAGING))]
    assert second == [PutInstance(_inst("i1", RUNNING)), DeleteInstance("i2")]
    assert not behind
    behind.close()


async def test_a_failed_transaction_is_retried_under_newer_writes_of_the_same_records() -> None:
    store = SlowStore()
    behind = _behind(store)
    store.fail_next = True
    store.release.clear()
    behind.put(PutInstance(_inst("i1", STAGING)))
    behind.put(PutInstance(_inst("i2", STAGING)))
    behind.flush()
    await asyncio.get_running_loop().run_in_executor(None, store.started.wait, 5)
    behind.put(PutInstance(_inst("i1", RUNNING)))       # newer than the one failing
    store.release.set()
    await _until(lambda: not behind._in_flight, "the failure")  # noqa: SLF001
    await asyncio.sleep(0.05)
    behind.flush()
    await _until(lambda: len(store.transactions) == 1, "the retry")
    assert sorted(store.transactions[0], key=repr) == sorted(
        [PutInstance(_inst("i1", RUNNING)), PutInstance(_inst("i2", STAGING))], key=repr)
    behind.close()


async def test_a_write_at_once_lands_after_the_transaction_in_flight_and_replaces_buffered_ones() -> None:
    store = SlowStore()
    behind = _behind(store)
    store.release.clear()
    behind.put(PutDeployment("d1", {"step": 1}))
    behind.flush()
    await asyncio.get_running_loop().run_in_executor(None, store.started.wait, 5)
    behind.put(PutDeployment("d1", {"step": 2}))        # buffered, then replaced by a delete at once
    threading.Timer(0.1, store.release.set).start()
    behind.before_commit()                              # waits for step 1 to be stored
    assert store.transactions == [[PutDeployment("d1", {"step": 1})]]
    store.commit([DeleteDeployment("d1")])
    behind.committed([DeleteDeployment("d1")])
    behind.flush()
    await asyncio.sleep(0.05)
    assert store.transactions == [[PutDeployment("d1", {"step": 1})], [DeleteDeployment("d1")]]
    assert not behind
    behind.close()


def test_without_a_loop_a_flush_commits_at_once_and_a_failure_keeps_the_writes() -> None:
    store = SlowStore()
    behind = _behind(store)
    behind.put(PutInstance(_inst("i1")))
    store.fail_next = True
    with pytest.raises(StoreFull):
        behind.flush()
    assert behind
    behind.flush()
    assert store.transactions == [[PutInstance(_inst("i1"))]]
    behind.close()


async def test_the_cluster_state_writes_a_pass_behind_and_drain_makes_it_durable(tmp_path: Path) -> None:
    state = ClusterState(SqliteStore(tmp_path / "state.sqlite"), write_behind=True)
    for n in range(50):
        state.put_instance(_inst(f"i{n}", STAGING))
    state.flush()
    for n in range(50):
        state.put_instance(_inst(f"i{n}", RUNNING))
    state.remove_instance("i7")
    state.flush()
    state.drain()
    stored = {inst.instance_id: inst.state for inst in SqliteStore(tmp_path / "state.sqlite").load().instances}
    assert len(stored) == 49 and "i7" not in stored and set(stored.values()) == {RUNNING}
    state.close()
