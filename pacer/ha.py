"""`pacer serve --zk`: this instance's part in high availability.

Several `pacer serve` share one ZooKeeper path: the state lives there (`ZkStore`), and an
election (`ZkLeadership`) picks the one that schedules. Every instance serves the API (a
follower forwards to the leader, `scheduler.api.leadership`); only the leader loads the state,
subscribes to the Mesos master and runs the scheduling loop and the health checks. A follower
holds no framework connection.

What "the leader" may do is decided in three places, each for its own reason:

* the **API** treats this instance as the leader once it has taken over (state loaded, Mesos
  subscribed), and goes on answering reads from memory while ZooKeeper is away but the session
  may come back; writes then fail with 503 naming ZooKeeper (the store refuses them);
* **writes** carry the fence of the latest takeover: a deposed leader's late write fails
  whole (`FencedOut`) instead of overwriting its successor's state;
* **launches and kills** go out only while this instance is elected *and* heard from ZooKeeper
  within half the session timeout (`LeaderLease`). A leader frozen (SIGSTOP, a long pause)
  past its session thaws with a stale lease and does nothing, even before its ZooKeeper client
  has noticed that the session expired.

A leader that stops leading (its session expired, it abdicated, another instance leads) stops
the process (exit status 1), as Marathon does; `--on-session-loss rejoin` starts it again in
place (`REJOIN_EXIT`, re-executed by `pacer serve`), which rejoins the election with no stale
state in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from scheduler.engine.build import SharedState
from scheduler.engine.core import Scheduler
from scheduler.errors import InvalidOption, StoreUnavailable
from scheduler.state.store import Fence

from .startup import StartupError, Unreachable

if TYPE_CHECKING:   # kazoo and the ZooKeeper modules load with `--zk` only (~1.5 MB of an embedded serve)
    from kazoo.client import KazooClient

    from scheduler.ha.zk_url import ZkUrl

log = logging.getLogger(__name__)

SessionLoss = Literal["exit", "rejoin"]
REJOIN_EXIT = 75
"""`run_pacer`'s answer when the process must start again to rejoin (`--on-session-loss rejoin`)."""
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ZkOptions:
    url: str
    timeout: float = 10.0            # --zk-timeout: connecting, and each request
    session_timeout: float = 10.0    # --zk-session-timeout
    on_session_loss: SessionLoss = "exit"


class LeadershipLost(Exception):
    """This instance led and no longer does: it must stop acting on its state in memory."""


class Rejoin(LeadershipLost):
    """… and `--on-session-loss rejoin`: the process starts again (`REJOIN_EXIT`)."""


class LeaderLease:
    """Whether ZooKeeper answered this instance lately: a round trip every `seconds / 4`.

    The ZooKeeper client learns that its session expired only when it next hears from the
    server; a process that was frozen learns it after it already runs again. Its last answer,
    timed on the monotonic clock (which a frozen process does not stop), tells at once."""

    def __init__(self, client: KazooClient, path: str, seconds: float) -> None:
        self._client = client
        self._path = path
        self.seconds = seconds
        self._verified_at = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacer-lease", daemon=True)

    def start(self) -> None:
        self._renew()
        self._thread.start()

    def fresh(self) -> bool:
        return time.monotonic() - self._verified_at < self.seconds

    def _renew(self) -> None:
        asked = time.monotonic()
        from kazoo.client import KazooState

        try:
            if self._client.state == KazooState.CONNECTED:
                self._client.exists(self._path)
                self._verified_at = asked
        except Exception:        # no answer: the lease runs out on its own
            pass

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.seconds / 4)):
            self._renew()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _quietly_connect(url: ZkUrl, options: ZkOptions) -> KazooClient:
    """The first connection, without kazoo's line per attempt: a ZooKeeper that does not answer
    is one start-up error line (exit 1), not a screen of retries before it."""
    from scheduler.state.zk_store import connect

    kazoo_log = logging.getLogger("kazoo.client")
    level = kazoo_log.level
    kazoo_log.setLevel(logging.ERROR)
    try:
        return connect(url, timeout=options.timeout, session_timeout=options.session_timeout)
    finally:
        kazoo_log.setLevel(level)


class HaNode:
    """The ZooKeeper client, store, election and lease of one `pacer serve --zk`."""

    def __init__(self, options: ZkOptions, address: str, loop: asyncio.AbstractEventLoop) -> None:
        from scheduler.ha.election import ZkLeadership
        from scheduler.ha.zk_url import parse_zk_url
        from scheduler.state.zk_store import ZkStore

        try:
            url = parse_zk_url(options.url)
        except InvalidOption as exc:
            raise StartupError(str(exc)) from None
        try:
            self._client = _quietly_connect(url, options)
        except StoreUnavailable as exc:
            raise Unreachable(f"{exc}; start ZooKeeper, or point --zk at one that runs") from None
        self.options = options
        self.address = address
        self.store = ZkStore(self._client, url.path, location=url.redacted(), timeout=options.timeout)
        self._session_lost = asyncio.Event()
        self.election = ZkLeadership(self._client, url.path, address, on_session_loss=options.on_session_loss,
                                     on_exit=lambda: loop.call_soon_threadsafe(self._session_lost.set))
        self.lease = LeaderLease(self._client, url.path, options.session_timeout / 2)
        self._fence: Fence | None = None
        self.serving = False          # this instance took over: its state is loaded, Mesos subscribed
        self.api = ApiLeadership(self)

    def start(self) -> None:
        self.lease.start()
        self.election.start()

    def shared_state(self) -> SharedState:
        return SharedState(store=self.store, fence=self.fence, may_act=self.may_act)

    def fence(self) -> Fence | None:
        """The fence of this instance's latest takeover (kept while ZooKeeper is away: if the
        session survives, the writes go through; if another took over, they are refused)."""
        current = self.election.fence()
        if current is not None:
            self._fence = current
        return self._fence

    def may_act(self) -> bool:
        return self.election.is_leader() and self.lease.fresh()

    def suspended(self) -> bool:
        """ZooKeeper is away, but the session may still come back."""
        from kazoo.client import KazooState

        return self._client.state == KazooState.SUSPENDED

    async def elected(self) -> None:
        while not self.election.is_leader():
            if self._session_lost.is_set():
                raise LeadershipLost("the ZooKeeper session expired before this instance was elected")
            await asyncio.sleep(POLL_SECONDS)

    async def deposed(self) -> str:
        """Wait until this leader is no more: why."""
        from kazoo.client import KazooState

        while True:
            if self._session_lost.is_set():
                return "the ZooKeeper session expired"
            if not self.election.is_leader() and self._client.state == KazooState.CONNECTED:
                leader = self.election.leader_address()
                if leader is not None and leader != self.address:
                    return f"{leader} leads now"
            await asyncio.sleep(POLL_SECONDS)

    def close(self) -> None:
        """Leave the election (another instance leads at once), then ZooKeeper."""
        self.serving = False
        self.election.close()
        self.lease.stop()
        self.store.close()
        try:
            self._client.stop()
            self._client.close()
        except Exception as exc:      # closing a client whose server is gone
            log.debug("closing the ZooKeeper client: %s", exc)


class ApiLeadership:
    """The election as the API sees it: this instance leads once it took over, and goes on
    answering (reads from memory, writes refused by the store) while ZooKeeper is away."""

    def __init__(self, node: HaNode) -> None:
        self._node = node

    @property
    def address(self) -> str:
        return self._node.address

    def is_leader(self) -> bool:
        node = self._node
        return node.serving and (node.election.is_leader() or node.suspended())

    def leader_address(self) -> str | None:
        return self.address if self.is_leader() else self._node.election.leader_address()

    async def abdicate(self) -> None:
        await self._node.election.abdicate()

    def on_change(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        self._node.election.on_change(callback)


async def lead(node: HaNode, scheduler: Scheduler,
               services: Callable[[], dict[str, Coroutine[Any, Any, None]]]) -> None:
    """Wait to be elected, take over, run the leader's services until this instance is deposed.

    Raises LeadershipLost then (the process stops), or Rejoin (it starts again to rejoin)."""
    try:
        await _lead(node, scheduler, services)
    except LeadershipLost as exc:
        if node.options.on_session_loss == "rejoin":
            raise Rejoin(f"{exc}; starting again to rejoin the election (--on-session-loss rejoin)") from None
        raise LeadershipLost(f"{exc}; stopping (--on-session-loss exit)") from None


async def _lead(node: HaNode, scheduler: Scheduler,
                services: Callable[[], dict[str, Coroutine[Any, Any, None]]]) -> None:
    await node.elected()
    began = time.monotonic()
    log.info("elected leader as %s: taking over", node.address)
    await scheduler.start()
    node.serving = True
    log.info("took over in %.2f s: %d apps, %d tasks", time.monotonic() - began, len(scheduler.state.apps),
             len(scheduler.state.instances))
    tasks = [asyncio.create_task(coro, name=name) for name, coro in services().items()]
    deposed = asyncio.create_task(node.deposed(), name="leadership")
    try:
        done, _ = await asyncio.wait([deposed, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if deposed in done:
            node.serving = False
            raise LeadershipLost(f"no longer the leader: {deposed.result()}")
        failed = next(iter(done))
        failed.result()                 # a leader's service that fails stops the process
        raise LeadershipLost(f"the leader's service {failed.get_name()} ended")
    finally:
        deposed.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(deposed, *tasks, return_exceptions=True)
