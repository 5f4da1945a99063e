"""`pacer.ha.LeaderLease` against a real ZooKeeper: fresh while ZooKeeper answers, stale soon
after it stops, fresh again when it is back (the gate of every launch, kill and SUBSCRIBE)."""

from __future__ import annotations

from collections.abc import Callable

from kazoo.client import KazooClient

from pacer.ha import LeaderLease

from .support import wait_until
from .zk_support import ZooKeeperServer


def test_the_lease_follows_zookeeper(zk_factory: Callable[[], ZooKeeperServer]) -> None:
    zk = zk_factory()
    client = KazooClient(hosts=zk.hosts, timeout=10)
    client.start(timeout=15)
    lease = LeaderLease(client, "/", seconds=1.0)
    try:
        lease.start()
        assert lease.fresh()
        zk.stop()
        wait_until(lambda: not lease.fresh(), timeout=5, what="the lease to run out with ZooKeeper stopped")
        zk.start()
        wait_until(lease.fresh, timeout=20, what="the lease renewed once ZooKeeper is back")
    finally:
        lease.stop()
        client.stop()
        client.close()


def test_a_lease_never_renewed_is_stale(zookeeper: ZooKeeperServer) -> None:
    client = KazooClient(hosts=zookeeper.hosts, timeout=10)
    lease = LeaderLease(client, "/", seconds=5.0)          # not started, its client not connected
    assert not lease.fresh()
