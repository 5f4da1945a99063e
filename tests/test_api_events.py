"""/v2/events over real HTTP: Marathon frames, filters, and slow clients dropped."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from scheduler.engine.events import EventBus

from .support import http


async def read_events(url: str, query: str, count: int, trigger) -> list[tuple[str, dict]]:
    got: list[tuple[str, dict]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/v2/events{query}", headers={"Accept": "text/event-stream"}) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            await asyncio.to_thread(trigger)
            event_type = None
            async with asyncio.timeout(10):
                async for raw in resp.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event_type = line[7:]
                    elif line.startswith("data: "):
                        got.append((event_type, json.loads(line[6:])))
                        if len(got) >= count:
                            return got
    return got


async def test_api_post_event_is_streamed_with_filter(api):
    def create() -> None:
        assert http("POST", api.url, "/v2/apps", {"id": "/evented", "cmd": "true", "instances": 0})[0] == 201

    events = await read_events(api.url, "?event_type=api_post_event", 1, create)
    (event_type, body), = events
    assert event_type == "api_post_event" == body["eventType"]
    assert body["appDefinition"]["id"] == "/evented" and body["uri"] == "/v2/apps" and body["timestamp"]


async def test_unfiltered_stream_starts_with_attached_event(api):
    events = await read_events(api.url, "", 1, lambda: None)
    assert events[0][0] == "event_stream_attached"


def test_stream_requires_event_stream_accept_header(api):
    status, body, _ = http("GET", api.url, "/v2/events")
    assert status == 406 and "text/event-stream" in body["message"]


async def test_slow_subscriber_is_dropped_and_publisher_never_waits():
    bus = EventBus(queue_size=5)
    slow = bus.subscribe(None, "slow")
    fast = bus.subscribe(["status_update_event"], "fast")
    for i in range(20):
        bus.publish("status_update_event", n=i)
        if not fast.queue.empty():
            fast.queue.get_nowait()
    assert slow.dropped and not fast.dropped
    assert bus.slow_clients_dropped == 1
    received = [e async for e in slow.events()]
    assert received == []          # its stream ended; it must reconnect and re-sync
