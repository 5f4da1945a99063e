"""The event stream consumer: Marathon's SSE frames, against small real aiohttp SSE servers.

Covers the ways marathon-lb's stream went stale: a missing stream (404/405/406) falls back
to polling, a dropped stream reconnects with backoff, a silent (stalled) stream is noticed by
its read timeout and reopened; every (re)connection asks for a full refresh. Timing is checked
through the watcher's own state (counters, the backoff delays it chose), never by the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from haproxy_bridge.sse import SseParser
from haproxy_bridge.watch import RELEVANT_EVENTS, Watcher

from .haproxy_support import free_port


def test_parser_handles_split_frames_comments_and_line_endings() -> None:
    p = SseParser()
    data = json.dumps({"eventType": "status_update_event", "taskId": "t.1", "note": "caf\u00e9"}).encode()
    stream = b": connected\n\nevent: status_update_event\ndata: " + data + b"\n\n" + \
        b"event:api_post_event\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n" + b"data: plain\r\r: heartbeat\n\n" + \
        b"event: ignored_without_data\n\n"
    events = []
    for i in range(len(stream)):            # one byte at a time, splitting UTF-8 too
        events += p.feed(stream[i:i + 1])
    assert [(e.event, e.json() if e.event != "message" else e.data) for e in events] == [
        ("status_update_event", {"eventType": "status_update_event", "taskId": "t.1", "note": "caf\u00e9"}),
        ("api_post_event", {"a": 1}),
        ("message", "plain")]
    assert p.comments == 2


@contextlib.asynccontextmanager
async def sse_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v2/events", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    def __call__(self, reason: str, full: bool) -> None:
        self.calls.append((reason, full))
        self.changed.set()

    def reasons(self) -> list[str]:
        return [r for r, _ in self.calls]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """A bounded wait for a condition no callback announces (a loop's round counter)."""
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def watching(url: str, rec: Recorder, **kw: Any) -> AsyncIterator[Watcher]:
    opts = dict(poll_seconds=0.1, resync_seconds=60.0, idle_seconds=5.0, max_backoff=0.4)
    opts.update(kw)
    w = Watcher(url, rec, **opts)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_events_trigger_refreshes_and_heartbeats_keep_it_alive() -> None:
    seen: dict[str, Any] = {}
    send: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen["accept"] = request.headers.get("Accept")
        seen["types"] = request.query.getall("event_type")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": connected\n\n")
        while True:
            await resp.write(await send.get())

    rec = Recorder()
    async with sse_server(handler) as url, watching(url, rec) as w:
        await rec.until(lambda: "event stream connected" in rec.reasons())
        assert seen["accept"] == "text/event-stream" and set(seen["types"]) == set(RELEVANT_EVENTS)
        for frame in (b"event: event_stream_attached\ndata: {}\n\n",            # not relevant
                      b": heartbeat\n\n",
                      b"event: status_update_event\ndata: {\"taskStatus\": \"TASK_KILLED\"}\n\n"):
            send.put_nowait(frame)
        await rec.until(lambda: "status_update_event" in rec.reasons())
        assert "event_stream_attached" not in rec.reasons()
        assert w.state.mode == "sse" and w.state.connected and w.state.heartbeats >= 2
        rounds = w.poll_stats.rounds
        await eventually(lambda: w.poll_stats.rounds >= rounds + 3)
        assert w.state.polls == 0 and "poll" not in rec.reasons(), "no polling while the stream is up"


@pytest.mark.parametrize("status", [404, 405, 406])
async def test_missing_stream_falls_back_to_polling_with_backoff(status: int) -> None:
    attempts = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        attempts += 1
        return web.Response(status=status, text="no event stream here")

    rec = Recorder()
    async with sse_server(handler) as url, watching(url, rec, max_backoff=0.4) as w:
        await rec.until(lambda: rec.reasons().count("poll") >= 5 and w.state.reconnects >= 4, timeout=10)
        assert w.state.mode == "polling" and not w.state.connected
        assert str(status) in (w.state.last_error or "")
        assert attempts >= 4
        first, *later = w.state.retry_delays
    # the first retry comes soon (0.25 s ± 20 % jitter), the next ones double up to the cap (0.4 s)
    assert 0.25 * 0.8 <= first <= 0.25 * 1.2 and later, (first, later)
    assert all(0.4 * 0.8 <= d <= 0.4 * 1.2 for d in later), (first, later)


async def test_dropped_stream_reconnects_and_resyncs() -> None:
    connections = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal connections
        connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: deployment_success\ndata: {}\n\n")
        if connections == 1:
            return resp              # the server ends the stream
        await asyncio.sleep(30)
        return resp

    rec = Recorder()
    async with sse_server(handler) as url, watching(url, rec) as w:
        await rec.until(lambda: rec.reasons().count("event stream connected") >= 2, timeout=5)
        assert "event stream lost" in rec.reasons()
        assert w.state.reconnects >= 1 and w.state.mode == "sse"


async def test_stalled_stream_is_noticed_and_reopened() -> None:
    connections = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal connections
        connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": connected\n\n")
        await asyncio.sleep(30)      # then silence: no heartbeat, no close
        return resp

    rec = Recorder()
    async with sse_server(handler) as url, watching(url, rec, idle_seconds=0.4) as w:
        await rec.until(lambda: connections >= 2, timeout=5)
        assert "stalled" in (w.state.last_error or "")
        assert "event stream lost" in rec.reasons()


async def test_unreachable_master_polls_and_periodic_resync_is_full() -> None:
    rec = Recorder()
    async with watching(f"http://127.0.0.1:{free_port()}", rec, resync_seconds=0.3) as w:
        await rec.until(lambda: ("periodic resync", True) in rec.calls and "poll" in rec.reasons())
        assert w.state.mode == "polling" and w.state.resyncs >= 1
