"""GET /v2/events: Server-Sent Events in Marathon's frame format, with heartbeats.

A heartbeat comment every few seconds lets clients (and the HAProxy bridge) notice a dead
connection quickly instead of trusting a silently stalled stream.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from scheduler.api.params import scheduler_of

HEARTBEAT_SECONDS = 10.0


async def event_stream(request: web.Request) -> web.StreamResponse:
    if "text/event-stream" not in request.headers.get("Accept", ""):
        raise web.HTTPNotAcceptable(reason="/v2/events is an event stream: send 'Accept: text/event-stream'")
    sched = scheduler_of(request)
    types = [t for value in request.query.getall("event_type", []) for t in value.split(",") if t]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    sub = sched.events.subscribe(types or None, request.remote or "unknown")
    events = sub.events()
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                event = await asyncio.wait_for(anext(events), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            except StopAsyncIteration:
                break
            await response.write(event.sse_frame())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sched.events.unsubscribe(sub)
        with contextlib.suppress(Exception):
            await events.aclose()
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/events", event_stream)
