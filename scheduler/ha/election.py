"""`ZkLeadership`: the leader election in ZooKeeper, with a fencing token for the store.

Each `pacer serve` is a contender: an ephemeral sequential node `<root>/leader/member-NNNNNNNNNN`
whose data is its `host:port`. The lowest sequence leads (`elect`, pure); every contender watches
the directory, so `leader_address()` is the data of the lowest node everywhere, which is what
Marathon's `/v2/leader` shows.

Fencing: on taking over, the new leader bumps `<root>/leader-fence` in one transaction with a
check that its own member node still exists, and keeps the version it got as its token,
`fence()` → `Fence("leader-fence", "<version>")`. `ZkStore` checks that version in every
transaction, so a deposed leader's late write fails with `FencedOut` (whatever it still
believes) instead of corrupting state.

Stopping at once: a kazoo listener (on kazoo's thread) sets `is_leader()` false as soon as the
connection is SUSPENDED or LOST; nothing waits for the session to expire. A suspended
connection that comes back with its session intact leads again under a new token. On LOST (the
session expired, the member node is gone), `on_session_loss="exit"` (Marathon's behaviour, the
default) calls `on_exit` once and stops contending; `"rejoin"` enters the election again with a
new node once the client has a new session.

ZooKeeper requests never run on kazoo's threads: events go to one worker thread that
reconciles (creates the node, lists, elects, bumps the fence) and retries every second after a
failure. `on_change` callbacks are coroutines scheduled on their asyncio loop with
`call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from scheduler.state.store import Fence

log = logging.getLogger(__name__)

ELECTION_DIR = "leader"
FENCE_NODE = "leader-fence"
MEMBER_PREFIX = "member-"
SessionLossPolicy = Literal["exit", "rejoin"]
_RETRY_SECONDS = 1.0


def member_sequence(name: str) -> int | None:
    """The sequence number of a contender node name, None for a name that is not one."""
    if not name.startswith(MEMBER_PREFIX):
        return None
    digits = name[len(MEMBER_PREFIX):]
    return int(digits) if digits.isdigit() else None


def elect(children: Iterable[str]) -> str | None:
    """The leading contender: the lowest sequence number (None when there is no contender)."""
    members = [(seq, name) for name in children if (seq := member_sequence(name)) is not None]
    return min(members)[1] if members else None


Callback = Callable[[bool], Awaitable[None]]


class ZkLeadership:
    """`scheduler.ha.Leadership` through ZooKeeper, on a client the caller owns (shared with ZkStore)."""

    def __init__(self, client: KazooClient, root: str, address: str, *,
                 on_session_loss: SessionLossPolicy = "exit", on_exit: Callable[[], None] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        if on_session_loss not in ("exit", "rejoin"):
            raise ValueError(f"--on-session-loss must be exit or rejoin, not {on_session_loss!r}")
        self._client = client
        self._root = root.rstrip("/")
        self._dir = f"{self._root}/{ELECTION_DIR}"
        self._fence_path = f"{self._root}/{FENCE_NODE}"
        self._address = address
        self._policy = on_session_loss
        self._on_exit = on_exit
        self._loop = loop
        self._callbacks: list[tuple[Callback, asyncio.AbstractEventLoop]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: queue.Queue[tuple[str, concurrent.futures.Future[None] | None]] = queue.Queue()
        self._lock = threading.Lock()
        self._leading = False
        self._fence: Fence | None = None
        self._node: str | None = None
        self._leader: str | None = None
        self._contending = True
        self._retry = False
        self._worker: threading.Thread | None = None

    # -- the Leadership protocol ------------------------------------------------------------
    @property
    def address(self) -> str:
        return self._address

    def is_leader(self) -> bool:
        return self._leading and self._client.state == KazooState.CONNECTED

    def leader_address(self) -> str | None:
        if self._client.state != KazooState.CONNECTED:
            return None
        return self._address if self.is_leader() else self._leader

    def fence(self) -> Fence | None:
        """The token `ZkStore` checks on every commit; None while not leading."""
        return self._fence if self.is_leader() else None

    async def abdicate(self) -> None:
        self._set_leading(False)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._events.put(("abdicate", done))
        await asyncio.wrap_future(done)

    def on_change(self, callback: Callback) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                raise RuntimeError("ZkLeadership.on_change needs a running asyncio loop or loop= at construction")
            loop = self._loop
        self._callbacks.append((callback, loop))

    # -- life -------------------------------------------------------------------------------
    def start(self) -> None:
        """Enter the election (the first reconcile runs on the worker thread)."""
        self._client.ensure_path(self._dir)
        self._client.ensure_path(self._fence_path)
        self._client.add_listener(self._on_state)
        self._worker = threading.Thread(target=self._run, name="pacer-election", daemon=True)
        self._worker.start()
        self._events.put(("reconcile", None))

    def close(self) -> None:
        """Leave the election: the member node is deleted, so another instance leads at once."""
        self._contending = False
        self._set_leading(False)
        self._client.remove_listener(self._on_state)
        if self._worker is not None:
            self._events.put(("stop", None))
            self._worker.join(timeout=10)
        node, self._node = self._node, None
        if node is not None and self._client.state == KazooState.CONNECTED:
            try:
                self._client.delete(node)
            except (KazooException, KazooTimeoutError):
                pass

    # -- kazoo's thread: no requests here ---------------------------------------------------
    def _on_state(self, state: str) -> None:
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._set_leading(False)
        self._events.put(("lost" if state == KazooState.LOST else "reconcile", None))

    def _on_children(self, _event: Any) -> None:
        self._events.put(("reconcile", None))

    # -- the worker -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                kind, done = self._events.get(timeout=_RETRY_SECONDS if self._retry else None)
            except queue.Empty:
                kind, done = "reconcile", None
            if kind == "stop":
                return
            try:
                if kind == "lost":
                    self._session_lost()
                elif kind == "abdicate":
                    self._abdicate()
                if self._contending:
                    self._reconcile()
                self._retry = False
            except (KazooException, KazooTimeoutError) as exc:
                log.info("election: %s (%s); retrying", type(exc).__name__, exc)
                self._retry = True
            except Exception:                  # a bug must not silently end the election
                log.exception("election: unexpected failure; retrying")
                self._retry = True
            finally:
                if done is not None:
                    done.set_result(None)

    def _session_lost(self) -> None:
        self._node = None
        if self._policy == "exit" and self._contending:
            self._contending = False
            log.error("ZooKeeper session lost: leaving (--on-session-loss exit)")
            if self._on_exit is not None:
                self._on_exit()
        else:
            log.warning("ZooKeeper session lost: re-entering the election once reconnected")

    def _abdicate(self) -> None:
        node, self._node = self._node, None
        if node is not None:
            try:
                self._client.delete(node)
            except NoNodeError:
                pass

    def _reconcile(self) -> None:
        if self._client.state != KazooState.CONNECTED:
            self._set_leading(False)
            return
        if self._node is None:
            self._node = self._client.create(f"{self._dir}/{MEMBER_PREFIX}", self._address.encode(),
                                             ephemeral=True, sequence=True, makepath=True)
        children = self._client.get_children(self._dir, watch=self._on_children)
        mine = self._node.rsplit("/", 1)[-1]
        if mine not in children:            # our node went with an old session: enter again
            self._set_leading(False)
            self._node = None
            self._events.put(("reconcile", None))
            return
        leader = elect(children)
        assert leader is not None
        try:
            self._leader = self._client.get(f"{self._dir}/{leader}")[0].decode()
        except NoNodeError:
            self._events.put(("reconcile", None))
            return
        if leader != mine:
            self._set_leading(False)
        elif not self._leading:
            self._take_over()

    def _take_over(self) -> None:
        assert self._node is not None
        t = self._client.transaction()
        t.check(self._node, 0)
        t.set_data(self._fence_path, self._address.encode())
        results = t.commit()
        if any(isinstance(r, Exception) for r in results):
            self._events.put(("reconcile", None))
            return
        self._fence = Fence(FENCE_NODE, str(results[1].version))
        log.info("elected leader as %s (fence version %s)", self._address, results[1].version)
        self._set_leading(True)

    # -- telling the rest of Pacer ----------------------------------------------------------
    def _set_leading(self, leading: bool) -> None:
        with self._lock:
            if self._leading == leading:
                return
            self._leading = leading
            if not leading:
                self._fence = None
            callbacks = list(self._callbacks)
        for callback, loop in callbacks:
            try:
                loop.call_soon_threadsafe(self._spawn, callback, leading)
            except RuntimeError:               # the loop is closed: nobody left to tell
                pass

    def _spawn(self, callback: Callback, leading: bool) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(callback(leading))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("leadership callback failed", exc_info=task.exception())
