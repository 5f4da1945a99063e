"""/v2/events over real HTTP: Marathon frames, filters, slow clients dropped, heartbeats."""

from __future__ import annotations

import asyncio
import base64
import json
import random

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


# --- heartbeats: a quiet stream stays open and loses nothing ------------------------------------

HEARTBEAT = 0.2


class StreamReader:
    """Reads one /v2/events response in the background: events in order, heartbeats counted."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.events: list[tuple[str | None, dict]] = []
        self.heartbeats = 0
        self.ended = False
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        event_type = None
        async for raw in self.resp.content:
            line = raw.decode().rstrip("\n")
            if line == ": heartbeat":
                self.heartbeats += 1
            elif line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: "):
                self.events.append((event_type, json.loads(line[6:])))
        self.ended = True

    async def until(self, predicate, timeout: float, what: str) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                assert not self.ended, f"the stream ended while waiting for {what}"
                await asyncio.sleep(0.01)


@pytest.fixture
async def quick_heartbeat_api(tmp_path):
    """The real API and scheduler on 127.0.0.1 (port 0), heartbeats every HEARTBEAT seconds."""
    from aiohttp import web

    from scheduler.api import build_api
    from scheduler.engine.build import ServeOptions, make_scheduler

    sched = make_scheduler(ServeOptions(home=tmp_path / "home", resources={"cpus": 0, "mem": 0, "disk": 0}))
    await sched.start()
    runner = web.AppRunner(build_api(sched, "127.0.0.1:0", heartbeat_seconds=HEARTBEAT))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield sched, f"http://{host}:{port}"
    finally:
        sched.events.close()
        await runner.cleanup()
        await sched.close()


async def open_stream(session: aiohttp.ClientSession, url: str, query: str = "?event_type=probe") -> StreamReader:
    resp = await session.get(f"{url}/v2/events{query}", headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    return StreamReader(resp)


def test_heartbeat_interval_defaults_to_ten_seconds():
    from scheduler.api import build_api
    from scheduler.api.events import HEARTBEAT_KEY

    assert build_api(object(), "127.0.0.1:1")[HEARTBEAT_KEY] == 10.0   # type: ignore[arg-type]


async def test_idle_stream_stays_open_with_heartbeats_and_then_delivers(quick_heartbeat_api):
    sched, url = quick_heartbeat_api
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, url)
        started = asyncio.get_running_loop().time()
        await stream.until(lambda: stream.heartbeats >= 6, timeout=5, what="six heartbeats")
        assert asyncio.get_running_loop().time() - started >= 5 * HEARTBEAT * 0.9
        assert stream.events == [] and not stream.ended

        sched.events.publish("probe", n=1)
        await stream.until(lambda: stream.events, timeout=2, what="the event published after the quiet period")
        assert [(kind, body["n"]) for kind, body in stream.events] == [("probe", 1)]
        await stream.until(lambda: stream.heartbeats >= 8, timeout=2, what="heartbeats after the event")
        stream.task.cancel()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_events_published_around_heartbeats_all_arrive_in_order(quick_heartbeat_api, seed):
    sched, url = quick_heartbeat_api
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, url)
        await stream.until(lambda: stream.heartbeats >= 1, timeout=2, what="the first heartbeat")
        count = 0
        for spell in range(12):                # quiet spells of up to 1.5 heartbeats, then a burst;
            longest = 1.5 * HEARTBEAT          # every fourth spell outlasts a heartbeat for sure
            await asyncio.sleep(rng.uniform(1.2 * HEARTBEAT if spell % 4 == 3 else 0, longest))
            for _ in range(rng.randint(1, 3)):
                sched.events.publish("probe", n=count)
                count += 1
        await stream.until(lambda: len(stream.events) >= count, timeout=5, what=f"all {count} events")
        assert [body["n"] for _, body in stream.events] == list(range(count))
        assert stream.heartbeats >= 3 and not stream.ended
        stream.task.cancel()


# --- heartbeats of a caller who may see only some events ----------------------------------------

class _Sink:
    """What `_relay` writes to, in place of a response: heartbeats counted, frames kept."""

    def __init__(self) -> None:
        self.heartbeats = 0
        self.frames: list[bytes] = []

    async def write(self, data: bytes) -> None:
        if data == b": heartbeat\n\n":
            self.heartbeats += 1
        else:
            self.frames.append(data)


class _Hidden:
    def sse_frame(self) -> bytes:
        return b"data: hidden\n\n"


class _Busy:
    """A subscription that never runs dry: a new (hidden) event every quarter heartbeat."""

    async def get(self) -> _Hidden:
        await asyncio.sleep(HEARTBEAT / 4)
        return _Hidden()


async def test_hidden_events_do_not_hold_back_heartbeats():
    from scheduler.api.events import _relay

    sink = _Sink()
    relay = asyncio.ensure_future(_relay(sink, _Busy(), HEARTBEAT, visible=lambda event: False))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(30):
            while sink.heartbeats < 3:
                assert not relay.done(), relay
                await asyncio.sleep(0.01)
        assert sink.frames == []
    finally:
        relay.cancel()


@pytest.fixture
async def team_api(tmp_path):
    """The real API with authentication: ``viewer`` sees /team-a only, ``admin`` everything."""
    from aiohttp import web

    from scheduler.api import build_api
    from scheduler.auth.middleware import AuthState, Authenticator
    from scheduler.auth.passwords import hash_password
    from scheduler.auth.policy import AuthConfig, Grant, User
    from scheduler.engine.build import ServeOptions, make_scheduler

    users = {"viewer": User("viewer", hash_password("v", n=2, r=1, p=1), grants=(Grant("viewer", "/team-a/**"),))}
    sched = make_scheduler(ServeOptions(home=tmp_path / "home", resources={"cpus": 0, "mem": 0, "disk": 0}))
    await sched.start()
    auth = AuthState(Authenticator(AuthConfig(users)))
    runner = web.AppRunner(build_api(sched, "127.0.0.1:0", heartbeat_seconds=HEARTBEAT, auth=auth))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield sched, f"http://{host}:{port}"
    finally:
        sched.events.close()
        await runner.cleanup()
        await sched.close()


async def test_a_viewer_gets_heartbeats_while_only_hidden_events_flow(team_api):
    sched, url = team_api
    credentials = base64.b64encode(b"viewer:v").decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {credentials}"}) as session:
        stream = await open_stream(session, url, "?event_type=api_post_event")
        hidden = 0

        async def publish_hidden() -> None:
            nonlocal hidden
            while True:
                sched.events.publish("api_post_event", appDefinition={"id": "/team-b/web"}, n=hidden)
                hidden += 1
                await asyncio.sleep(HEARTBEAT / 4)
        publisher = asyncio.ensure_future(publish_hidden())
        try:
            await stream.until(lambda: stream.heartbeats >= 3, timeout=30, what="three heartbeats")
        finally:
            publisher.cancel()
        assert hidden >= 4 and stream.events == []
        sched.events.publish("api_post_event", appDefinition={"id": "/team-a/web"}, n=-1)
        await stream.until(lambda: stream.events, timeout=10, what="the viewer's own event")
        assert [body["appDefinition"]["id"] for _, body in stream.events] == ["/team-a/web"]
        stream.task.cancel()
