"""Keeping a framework subscribed to the master, and sending calls on the live subscription.

The subscription loop SUBSCRIBEs (with the framework id once there is one, so the master
treats it as the same framework and keeps its tasks), reads events, and starts over with a
capped exponential backoff whenever the stream ends: closed by the master (a failover), cut by
the network, an ERROR event, or no HEARTBEAT for `heartbeat_misses` intervals (a silent half-open
connection looks exactly like a quiet cluster otherwise).

Calls go out one at a time, in order, on the subscription they were made for: a call made for
an earlier subscription fails with `NotSubscribed` instead of reaching the master with the new
stream id (its offers, say, died with the old stream). Order matters between most calls (a
DECLINE before the REVIVE that clears its filter, a SUPPRESS after it), and those go out one at
a time, in order. Two kinds need no order among themselves, and come by the thousand on a large
cluster: ACKNOWLEDGE (it only lets the agent send a task's next update) and ACCEPT (each takes
offers no other call names; the backend holds back a KILL of a task until its ACCEPT was
answered). Those go out on `parallel_lanes` calls at once, ACCEPTs first: a waiting ACCEPT starts
tasks, a waiting ACKNOWLEDGE only delays a report.

With a `MasterSource` (`--master zk://…`: `mesos_discovery.ZkMasterWatch`) the master of every
(re)subscription is the one the source names at that moment, not a fixed list: after a failover
the old master may be gone for good, and only ZooKeeper knows the new one. When the source says
the leader changed while a subscription is live on another master, that subscription is ended
and made again with the new leader; while none is live, the wait before the next try is cut short.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.backends.mesos_client import EventStream, Json, MesosClient
from scheduler.backends.mesos_errors import (
    HeartbeatsMissed,
    MasterUnreachable,
    MesosError,
    NotSubscribed,
    SubscriptionLost,
    SubscriptionRefused,
)

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 15.0      # Mesos's default when SUBSCRIBED does not say
UNORDERED = {"ACCEPT": 0, "ACKNOWLEDGE": 1}   # calls sent side by side, by priority (lower first)
SUBSCRIBED_TIMEOUT_SECONDS = 30.0


class MasterSource(Protocol):
    """Who leads now (a master base URL, None when no master is registered); tells of changes."""

    describe: str

    def start(self) -> None: ...
    async def leader(self) -> str | None: ...
    def on_change(self, callback: Callable[[str | None], None]) -> None: ...
    async def close(self) -> None: ...


class EventHandler(Protocol):
    def on_subscribed(self, framework_id: str, master: str) -> None: ...
    def on_event(self, event: Json) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...
    def on_refused(self, message: str) -> None: ...


@dataclass(frozen=True)
class LazyCall:
    """A call whose body is built when it is sent (`build`), for calls too large to hold by the
    thousand while they wait (an ACCEPT carries its TaskInfos)."""

    type: str
    build: Callable[[], Json]


Call = Json | LazyCall
Queued = tuple[Call, int, "asyncio.Future[None]"]


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    cap: float = 10.0


NOT_LEADING_PAUSE_SECONDS = 0.5


class FrameworkConnection:
    def __init__(self, client: MesosClient, subscribe_call: Callable[[str | None], Json], handler: EventHandler,
                 *, framework_id: str | None = None, heartbeat_misses: int = 5,
                 backoff: Backoff = Backoff(), parallel_lanes: int = 32,
                 discovery: MasterSource | None = None, may_subscribe: Callable[[], bool] = lambda: True) -> None:
        self.client = client
        self._may_subscribe = may_subscribe   # False while another scheduler may lead (`--zk`)
        self._discovery = discovery
        self._wake = asyncio.Event()         # set when the source names a new leader while we wait
        self.framework_id = framework_id
        self._subscribe_call = subscribe_call
        self._handler = handler
        self._misses = heartbeat_misses
        self._backoff = backoff
        self.generation = 0            # counts subscriptions; calls name the one they are for
        self._stream_id: str | None = None
        self._calls: asyncio.Queue[Queued] = asyncio.Queue()
        self._unordered: asyncio.PriorityQueue[tuple[int, int, Queued]] = asyncio.PriorityQueue()
        self._queued = itertools.count()
        self._lanes = max(1, parallel_lanes)
        self._tasks: list[asyncio.Task[Any]] = []
        self._stream: EventStream | None = None
        self._closed = False

    @property
    def live(self) -> bool:
        return self._stream_id is not None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._discovery is not None:
            self._discovery.on_change(self._leader_changed)
            self._discovery.start()
        self._tasks = [loop.create_task(self._subscribe_forever(), name="mesos-subscription"),
                       loop.create_task(self._send_forever(self._next_ordered), name="mesos-calls")]
        self._tasks += [loop.create_task(self._send_forever(self._next_unordered), name=f"mesos-calls-{i}")
                        for i in range(self._lanes)]

    async def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._stream.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._discovery is not None:
            await self._discovery.close()
        await self.client.close()

    def _leader_changed(self, leader: str | None) -> None:
        """The source read the leader again (its watch fired): leave a master that no longer leads."""
        stream = self._stream
        if stream is None:
            self._wake.set()                 # waiting to try again: try now
        elif leader is not None and leader.rstrip("/") != stream.master:
            log.warning("the leading Mesos master is now %s (was %s): subscribing to it", leader, stream.master)
            self._wake.set()                 # … and at once, without the backoff
            stream.close()

    async def _subscribe_to_leader(self) -> EventStream:
        """SUBSCRIBE to the leader: the source's, or the first of the fixed list that answers."""
        if self._discovery is not None:
            leader = await self._discovery.leader()
            if leader is None:
                raise MasterUnreachable(f"no Mesos master is registered in {self._discovery.describe}")
            self.client.use_masters([leader])
        return await self.client.subscribe(self._subscribe_call(self.framework_id))

    async def _pause(self, seconds: float) -> None:
        """Wait before the next SUBSCRIBE; a new leader named since the last try began ends the wait."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    # -- calls ------------------------------------------------------------------------------
    def call(self, call: Call, generation: int | None = None) -> asyncio.Future[None]:
        """Queue a call for the subscription `generation` (default: the live one)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        kind = call.type if isinstance(call, LazyCall) else str(call.get("type"))
        if not self.live:
            future.set_exception(NotSubscribed(f"{kind}: not subscribed to a master"))
        else:
            item: Queued = (call, self.generation if generation is None else generation, future)
            priority = UNORDERED.get(kind)
            if priority is None:
                self._calls.put_nowait(item)
            else:
                self._unordered.put_nowait((priority, next(self._queued), item))
        return future

    async def _next_ordered(self) -> Queued:
        return await self._calls.get()

    async def _next_unordered(self) -> Queued:
        return (await self._unordered.get())[2]

    def send(self, call: Call) -> None:
        """Fire and forget: failures are logged (the next subscription repeats what matters)."""
        future = self.call(call)
        future.add_done_callback(_log_failure)

    async def _send_forever(self, take: Callable[[], Awaitable[Queued]]) -> None:
        while True:
            queued, generation, future = await take()
            if future.done():
                continue
            kind = queued.type if isinstance(queued, LazyCall) else queued.get("type")
            if generation != self.generation or self._stream_id is None:
                future.set_exception(NotSubscribed(f"{kind}: its subscription has ended"))
                continue
            assert self.framework_id is not None
            body = queued.build() if isinstance(queued, LazyCall) else queued
            call = {"framework_id": {"value": self.framework_id}, **body}
            try:
                await self.client.call(call, self._stream_id)
            except MesosError as exc:
                if not future.done():
                    future.set_exception(exc)
            except asyncio.CancelledError:
                future.cancel()
                raise
            else:
                if not future.done():
                    future.set_result(None)

    # -- the subscription ---------------------------------------------------------------------
    async def _subscribe_forever(self) -> None:
        delay = self._backoff.first
        while not self._closed:
            reason = ""
            self._wake.clear()
            if not self._may_subscribe():
                # a leader whose leadership is in doubt holds no framework connection: a SUBSCRIBE
                # with the framework id would take the framework over from the real leader
                await self._pause(NOT_LEADING_PAUSE_SECONDS)
                continue
            try:
                async with asyncio.timeout(SUBSCRIBED_TIMEOUT_SECONDS):   # a master that accepts and says nothing
                    stream = self._stream = await self._subscribe_to_leader()
                try:
                    await self._follow(stream)
                finally:
                    self._stream = None
                    stream.close()
            except SubscriptionRefused as exc:
                reason = str(exc)
                self._handler.on_refused(reason)
            except MesosError as exc:
                reason = str(exc)
            except TimeoutError:
                reason = f"no answer to SUBSCRIBE within {SUBSCRIBED_TIMEOUT_SECONDS:.0f} s"
            except Exception as exc:    # a malformed event, say: never give up the subscription for good
                log.exception("the Mesos subscription failed")
                reason = f"{type(exc).__name__}: {exc}"
            if self._stream_id is not None:
                self._stream_id = None
                delay = self._backoff.first
                log.warning("Mesos subscription lost: %s; subscribing again", reason)
                self._handler.on_disconnected(reason)
            else:
                log.warning("cannot subscribe to the Mesos master: %s; retrying in %.1f s", reason, delay)
            await self._pause(delay)
            delay = min(self._backoff.cap, delay * 2)

    async def _follow(self, stream: EventStream) -> None:
        first = await _next(stream, SUBSCRIBED_TIMEOUT_SECONDS, SubscriptionLost("no SUBSCRIBED event arrived"))
        if first.get("type") == "ERROR":
            raise SubscriptionRefused(first.get("error", {}).get("message", "ERROR event"))
        if first.get("type") != "SUBSCRIBED":
            raise SubscriptionLost(f"expected SUBSCRIBED, got {first.get('type')}")
        subscribed = first["subscribed"]
        interval = float(subscribed.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT_SECONDS)
        self.framework_id = subscribed["framework_id"]["value"]
        self.generation += 1
        self._stream_id = stream.stream_id
        log.info("subscribed to Mesos master %s as framework %s", stream.master, self.framework_id)
        self._handler.on_subscribed(self.framework_id, stream.master)
        loop = asyncio.get_running_loop()
        allowed = self._misses * interval
        deadline = loop.time() + allowed
        while True:
            silence = HeartbeatsMissed(f"no HEARTBEAT for {allowed:.1f} s ({self._misses} intervals)")
            event = await _next(stream, deadline - loop.time(), silence)
            kind = event.get("type")
            if kind == "HEARTBEAT":
                deadline = loop.time() + allowed
            elif kind == "ERROR":
                raise SubscriptionRefused(event.get("error", {}).get("message", "ERROR event"))
            else:
                try:
                    self._handler.on_event(event)
                except Exception:   # one bad event must not cost the subscription
                    log.exception("handling a %s event failed", kind)


async def _next(stream: EventStream, timeout: float, on_timeout: MesosError) -> Json:
    """The next event, or `on_timeout` raised. `asyncio.timeout`, not `wait_for`: on Python 3.11
    `wait_for` can swallow a cancellation that races the awaited read, and `close` would hang."""
    if timeout <= 0:
        raise on_timeout
    if stream.buffered:                 # decoded already: no wait, no timer
        return await stream.next_event()
    try:
        async with asyncio.timeout(timeout):
            return await stream.next_event()
    except TimeoutError:
        raise on_timeout from None


def _log_failure(future: asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if isinstance(exc, NotSubscribed):
        log.debug("%s", exc)
    elif exc is not None:
        log.warning("Mesos call failed: %s", exc)
