"""Finding the leading Mesos master in ZooKeeper, as `--master zk://host:2181/mesos` asks.

Mesos masters contend for leadership in ZooKeeper: each registers an ephemeral sequential znode
`json.info_<seq>` under the path, holding its `MasterInfo` as JSON, and the one with the lowest
sequence number leads (Mesos's `ZooKeeperMasterDetector`; Marathon's `--master zk://…` finds it
the same way). When a master dies its session ends, its znode goes, and the next one leads.

The decisions are pure and take plain data: `parse_zk_url` (the `--master` value, with Marathon's
optional `user:password@` digest credentials), `leader_node` (which child leads) and
`master_url` (the scheduler API base URL a `MasterInfo` names). `ZkMasterWatch` is the edge: a
kazoo client that reads the leader when the connection subscribes (every time: a leader read once
would go stale across failovers) and watches the children, so a leader change while subscribed
ends the subscription to the old one.

Errors: everything kazoo raises while reading is translated into `DiscoveryError` (a
`MesosError`), which the subscription loop treats like an unanswered master: it logs the reason
and tries again after its backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from scheduler.backends.mesos_errors import MesosError
from scheduler.ha.zk_url import parse_zk_url as parse_ha_zk_url

log = logging.getLogger(__name__)

NODE_PREFIX = "json.info_"          # Mesos >= 0.24 registers JSON MasterInfo under this label
READ_TIMEOUT = 10.0                 # one ZooKeeper read; the subscription loop retries after its backoff
SESSION_TIMEOUT = 10.0


class DiscoveryError(MesosError):
    """ZooKeeper did not say who leads: unreachable, refused our credentials, or no usable master there."""


@dataclass(frozen=True)
class ZkMasters:
    """A parsed `zk://[user:password@]host1:2181,host2:2181/path`."""

    hosts: str                                      # "host1:2181,host2:2181", as kazoo takes it
    path: str                                       # "/mesos"
    credentials: tuple[str, str] | None = field(default=None, repr=False)   # digest user, password

    @property
    def url(self) -> str:
        """The URL without its credentials: what logs and /v2/info may show."""
        return f"zk://{self.hosts}{self.path}"


def parse_zk_url(value: str) -> ZkMasters:
    """`--master zk://…` as Marathon takes it (the `--zk` syntax, a trailing `/` allowed);
    ValueError (InvalidOption) naming `--master` and what is wrong."""
    trimmed = value.rstrip("/") if value.startswith("zk://") and value.count("/") > 3 else value
    url = parse_ha_zk_url(trimmed, flag="--master")
    return ZkMasters(url.hosts_string, url.path, url.credentials)


def _sequence(name: str) -> int | None:
    digits = name[len(NODE_PREFIX):] if name.startswith(NODE_PREFIX) else ""
    return int(digits) if digits.isdigit() else None


def leader_node(children: Iterable[str]) -> str | None:
    """The child that leads: the `json.info_<seq>` with the lowest sequence number (other
    children, such as the replicated log's or the old protobuf `info_` nodes, do not count)."""
    ranked = [(seq, name) for name in children if (seq := _sequence(name)) is not None]
    return min(ranked)[1] if ranked else None


def _ip_of_uint32(value: Any) -> str | None:
    """MasterInfo.ip: an IPv4 address as a uint32 in network byte order, read as a little-endian integer."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 32:
        return None
    return ".".join(str(b) for b in value.to_bytes(4, "little"))


def master_url(data: bytes, scheme: str = "http") -> str:
    """The base URL of the master whose `MasterInfo` JSON is `data`.

    The address comes first from the libprocess pid (`master@IP:PORT`), as Mesos's own scheduler
    library connects, then from `address.ip`, the uint32 `ip`, and the hostnames last (a name the
    scheduler's host may not resolve). ValueError when the data names no address."""
    try:
        info = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"not JSON MasterInfo: {exc}") from None
    if not isinstance(info, dict):
        raise ValueError("not a JSON MasterInfo object")
    address = info.get("address") if isinstance(info.get("address"), dict) else {}
    pid_host, pid_port = "", None
    pid = info.get("pid")
    if isinstance(pid, str) and "@" in pid:
        host_port = pid.split("@", 1)[1]
        pid_host, _, port_text = host_port.rpartition(":")
        pid_port = int(port_text) if port_text.isdigit() else None
    host = (pid_host or address.get("ip") or _ip_of_uint32(info.get("ip")) or address.get("hostname")
            or info.get("hostname"))
    port = pid_port or address.get("port") or info.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or isinstance(port, bool) \
            or not 0 < port < 65536:
        raise ValueError(f"MasterInfo names no address and port: {json.dumps(info)[:200]}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"                      # IPv6
    return f"{scheme}://{host}:{port}"


def leader_url(nodes: dict[str, bytes | None]) -> str | None:
    """The leading master's URL from the children of the masters' path and their data (None
    where a node vanished before it was read). None when no master is registered."""
    name = leader_node(nodes)
    if name is None:
        return None
    data = nodes[name]
    if data is None:
        raise ValueError(f"the leader's znode {name} vanished while it was read")
    return master_url(data)


LeaderCallback = Callable[[str | None], None]


class ZkMasterWatch:
    """The leading master, read from ZooKeeper on demand and watched for changes (a `MasterSource`).

    kazoo runs its own threads: reads go through `asyncio.to_thread`, and a fired watch (or a
    session that came back) is handed to the event loop, which reads the leader again and tells
    the callbacks."""

    def __init__(self, target: ZkMasters, *, session_timeout: float = SESSION_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.target = target
        self._read_timeout = read_timeout
        auth = [("digest", f"{target.credentials[0]}:{target.credentials[1]}")] if target.credentials else None
        self._client = KazooClient(hosts=target.hosts, timeout=session_timeout, auth_data=auth,
                                   connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=5.0),
                                   logger=logging.getLogger(f"{__name__}.kazoo"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: Any = None              # kazoo's "connected" event, once started
        self._callbacks: list[LeaderCallback] = []
        self._rereads: set[asyncio.Task[None]] = set()
        self._started = False

    @property
    def describe(self) -> str:
        return self.target.url

    def on_change(self, callback: LeaderCallback) -> None:
        """`callback(url)` on the event loop whenever the watch fires and the leader was read again."""
        self._callbacks.append(callback)

    def start(self) -> None:
        """Connect in the background (kazoo keeps reconnecting); reads wait for the connection."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._client.add_listener(self._state_changed)
        self._live = self._client.start_async()

    async def leader(self) -> str | None:
        """The leading master's URL now, or None when no master is registered."""
        if not self._started:
            self.start()
        return await asyncio.to_thread(self._read)

    def _read(self) -> str | None:
        path = self.target.path
        if not self._live.wait(self._read_timeout):   # a call made before kazoo connects fails at once
            raise DiscoveryError(f"no ZooKeeper session with {self.target.hosts} within {self._read_timeout:.0f} s")
        try:
            for _ in range(3):          # the leader's znode may go between the listing and the read
                try:
                    children = self._client.get_children_async(path, watch=self._fired).get(
                        timeout=self._read_timeout)
                except NoNodeError:     # no master has registered yet: watch for the path to appear
                    self._client.exists_async(path, watch=self._fired).get(timeout=self._read_timeout)
                    return None
                name = leader_node(children)
                if name is None:
                    return None
                try:
                    data, _ = self._client.get_async(f"{path}/{name}").get(timeout=self._read_timeout)
                except NoNodeError:
                    continue
                return leader_url({name: data})
            raise DiscoveryError(f"the leader in {self.target.url} kept changing while it was read")
        except KazooTimeoutError:
            raise DiscoveryError(f"ZooKeeper at {self.target.hosts} did not answer within "
                                 f"{self._read_timeout:.0f} s") from None
        except KazooException as exc:
            raise DiscoveryError(f"ZooKeeper at {self.target.hosts}: {type(exc).__name__} {exc}".strip()) from None
        except ValueError as exc:
            raise DiscoveryError(f"the leading master in {self.target.url}: {exc}") from None

    def _fired(self, _event: object = None) -> None:
        """A kazoo thread: a watch fired. Read again on the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._reread)

    def _state_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:      # a new session has no watches: read (and watch) again
            self._fired()

    def _reread(self) -> None:
        task = asyncio.get_running_loop().create_task(self._tell(), name="mesos-zk-leader")
        self._rereads.add(task)
        task.add_done_callback(self._rereads.discard)

    async def _tell(self) -> None:
        try:
            url = await self.leader()
        except DiscoveryError as exc:
            log.warning("cannot read the leading Mesos master: %s", exc)
            return
        for callback in self._callbacks:
            callback(url)

    async def close(self) -> None:
        for task in list(self._rereads):
            task.cancel()
        await asyncio.gather(*self._rereads, return_exceptions=True)
        if self._started:
            await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._client.stop()
        self._client.close()


def check_reachable(target: ZkMasters, timeout: float) -> str | None:
    """None when a ZooKeeper of `target` accepts a session (with its credentials) within
    `timeout`, else why not. For start-up: a blocking call, quiet in the log."""
    quiet = logging.getLogger(f"{__name__}.check")
    quiet.setLevel(logging.CRITICAL + 1)
    quiet.propagate = False
    auth = [("digest", f"{target.credentials[0]}:{target.credentials[1]}")] if target.credentials else None
    client = KazooClient(hosts=target.hosts, timeout=max(timeout, 2.0), auth_data=auth, logger=quiet,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0))
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:
        return f"no ZooKeeper session within {timeout:.0f} s"
    except KazooException as exc:
        return f"{type(exc).__name__} {exc}".strip()
    try:
        client.exists(target.path)
    except KazooException as exc:
        return f"{type(exc).__name__} {exc}".strip()
    finally:
        client.stop()
        client.close()
    return None
