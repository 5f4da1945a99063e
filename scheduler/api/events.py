"""GET /v2/events: Server-Sent Events in Marathon's frame format, with heartbeats.

A heartbeat comment every few seconds lets clients (and the HAProxy bridge) notice a dead
connection quickly instead of trusting a silently stalled stream. The interval is an option
of ``build_api`` (kept in the aiohttp app under :data:`HEARTBEAT_KEY`), so tests can use a
short one.

A quiet period must neither end the stream nor lose an event: the relay keeps one read of
the subscription's queue pending across heartbeats and never cancels it while the stream
lives (cancelling an async generator's ``anext`` on a timeout closes the generator, which
ended the stream right after its first heartbeat).

With authentication on, a caller sees only the events about apps it may view
(`scheduler.auth.visibility` says which); events about no app go to every caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from scheduler.api.params import scheduler_of
from scheduler.auth.middleware import event_filter

HEARTBEAT_SECONDS = 10.0
HEARTBEAT_KEY = web.AppKey("heartbeat_seconds", float)
_HEARTBEAT = b": heartbeat\n\n"


class _Frame(Protocol):
    """What the relay needs of an event: its SSE frame, serialised once by the bus."""

    def sse_frame(self) -> bytes: ...


class _FrameQueue(Protocol):
    """A subscription's queue as the relay reads it; ``None`` is the bus ending the stream."""

    async def get(self) -> _Frame | None: ...


async def _relay(response: web.StreamResponse, queue: _FrameQueue, heartbeat_seconds: float,
                 visible: Callable[[Any], bool] | None = None) -> None:
    """Write each event of ``queue`` to ``response`` until the bus ends the stream (``None``),
    and a heartbeat whenever ``heartbeat_seconds`` pass without one.

    The pending ``queue.get()`` outlives the heartbeats: it is only cancelled when the stream
    is over, so an event arriving just as a heartbeat is due is still delivered, in order.
    Events ``visible`` refuses are skipped without counting as traffic: the heartbeat is due
    ``heartbeat_seconds`` after the last write, however many hidden events came in between
    (a caller seeing none of a busy scheduler's events must still get its heartbeats).
    """
    loop = asyncio.get_running_loop()
    due = loop.time() + heartbeat_seconds      # the next heartbeat, unless something is written first
    pending: asyncio.Future[_Frame | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, due - loop.time()))
            if not done:
                await response.write(_HEARTBEAT)
                due = loop.time() + heartbeat_seconds
                continue
            event = pending.result()
            pending = None
            if event is None:
                return
            if visible is None or visible(event):
                await response.write(event.sse_frame())
                due = loop.time() + heartbeat_seconds
            # a skipped event writes nothing, so it leaves the heartbeat due when it was
    finally:
        if pending is not None:
            pending.cancel()


async def event_stream(request: web.Request) -> web.StreamResponse:
    if "text/event-stream" not in request.headers.get("Accept", ""):
        raise web.HTTPNotAcceptable(reason="/v2/events is an event stream: send 'Accept: text/event-stream'")
    sched = scheduler_of(request)
    types = [t for value in request.query.getall("event_type", []) for t in value.split(",") if t]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    sub = sched.events.subscribe(types or None, request.remote or "unknown")
    try:
        await response.write(b": connected\n\n")
        await _relay(response, sub.queue, request.app.get(HEARTBEAT_KEY, HEARTBEAT_SECONDS), event_filter(request))
    except ConnectionResetError:   # the client went away
        pass
    # A cancellation (the server stopping) is not swallowed: a handler that returned instead
    # would have its response finished, which waits for a client that may never read again.
    finally:
        sched.events.unsubscribe(sub)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/events", event_stream)
