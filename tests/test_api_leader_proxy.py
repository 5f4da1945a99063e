"""HA's API over real sockets: followers forward to the leader, every response names it.

Three real API servers (each with its own real scheduler) on 127.0.0.1 run on one event loop
thread; which of them leads is set by the test through `ControlledLeadership`, a `Leadership`
double (the election itself is tested against ZooKeeper elsewhere). Requests go over HTTP
from the test thread, as a client's would.
"""

from __future__ import annotations

import asyncio
import http.client as httplib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import EventRecorder, free_port, http, wait_until

HEARTBEAT = 0.2
"""The leader's /v2/events heartbeat: a relay notices a gone client at the next chunk."""


class ControlledLeadership:
    """A `Leadership` whose view of the election the test sets (`leader`; `elected` overrides
    `is_leader()` to stage a transition where the two disagree); counts abdications."""

    def __init__(self, address: str) -> None:
        self._address = address
        self.leader: str | None = None
        self.elected: bool | None = None
        self.abdications = 0
        self.callbacks: list[Callable[[bool], Awaitable[None]]] = []

    @property
    def address(self) -> str:
        return self._address

    def is_leader(self) -> bool:
        return self.leader == self._address if self.elected is None else self.elected

    def leader_address(self) -> str | None:
        return self.leader

    async def abdicate(self) -> None:
        self.abdications += 1
        self.leader = None

    def on_change(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        self.callbacks.append(callback)


class Node:
    """One instance: a real scheduler and the real /v2 application on a loopback port. Every
    request that reaches its handlers (not the ones it forwards) is recorded with its headers."""

    def __init__(self, home: Path, loop: asyncio.AbstractEventLoop, *, proxy_read_seconds: float = 30.0) -> None:
        self.home = home
        self.loop = loop
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.leadership = ControlledLeadership(self.address)
        self.handled: list[tuple[str, str, dict[str, list[str]]]] = []
        self.proxy_read_seconds = proxy_read_seconds

    def call(self, coro: Awaitable[Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)   # type: ignore[arg-type]

    async def start(self) -> None:
        from aiohttp import web

        from scheduler.api import build_api
        from scheduler.engine.build import ServeOptions, make_scheduler

        self.scheduler = make_scheduler(ServeOptions(home=self.home, resources={"cpus": 0, "mem": 0, "disk": 0}))
        await self.scheduler.start()
        app = build_api(self.scheduler, leadership=self.leadership, heartbeat_seconds=HEARTBEAT,
                        proxy_read_seconds=self.proxy_read_seconds)

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            headers: dict[str, list[str]] = {}
            for name, value in request.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            self.handled.append((request.method, request.path_qs, headers))
            return await handler(request)

        app.middlewares.append(record)       # innermost: sees only what this node answers itself
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.scheduler.events.close()
        await self.runner.cleanup()
        await self.scheduler.close()

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return http(method, self.url, path, body, **kw)

    def handled_paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _ in self.handled]


class Cluster:
    """Three nodes on one event loop thread; `elect(node)` makes every node see it as leader."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nodes: list[Node] = []
        for name in ("a", "b", "c"):
            (root / name).mkdir()
            self.nodes.append(Node(root / name, self.loop))
        self.started: list[Node] = []

    def start(self) -> "Cluster":
        for node in self.nodes:
            node.call(node.start())
            self.started.append(node)
        return self

    def elect(self, leader: Node | None) -> None:
        for node in self.nodes:
            node.leadership.leader = leader.address if leader is not None else None

    def stop(self) -> None:
        for node in self.started:
            node.call(node.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start()
        c.elect(c.nodes[0])
        yield c
    finally:
        c.stop()


def _all_values(node: Node, path: str, header: str) -> list[str]:
    """Every value of a repeated response header (the `http` helper keeps the last only)."""
    conn = httplib.HTTPConnection("127.0.0.1", node.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return [value for name, value in response.getheaders() if name.lower() == header.lower()]
    finally:
        conn.close()


def _app(app_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", "instances": 0, "cpus": 0.01, "mem": 8, **extra}


def test_a_follower_creates_the_app_on_the_leader_and_every_instance_agrees(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    status, created, headers = b.request("POST", "/v2/apps", _app("/web"))
    assert status == 201, created
    assert created["id"] == "/web" and headers["marathon-deployment-id"] == created["deployments"][0]["id"]
    assert headers["x-marathon-leader"] == a.url
    assert headers["x-marathon-via"] == f"1.1 {b.address}"
    assert list(a.scheduler.view.apps) == ["/web"]
    assert not b.scheduler.view.apps and not c.scheduler.view.apps        # only the leader holds state

    from_leader = a.request("GET", "/v2/apps/web")
    for node in (b, c):
        status, body, headers = node.request("GET", "/v2/apps/web")
        assert (status, body) == from_leader[:2]
        assert headers["x-marathon-leader"] == a.url and headers["x-marathon-via"] == f"1.1 {node.address}"
    # the query string travels: a filtered list through a follower is the leader's
    assert c.request("GET", "/v2/apps?id=/nope")[1] == {"apps": []}
    assert [x["id"] for x in c.request("GET", "/v2/apps?id=/web")[1]["apps"]] == ["/web"]

    # and PUT / DELETE through a follower change the leader's state
    status, body, _ = c.request("PUT", "/v2/apps/web?force=true", {"instances": 0, "env": {"X": "1"}})
    assert status == 200, body
    assert a.request("GET", "/v2/apps/web")[1]["app"]["env"] == {"X": "1"}
    assert b.request("DELETE", "/v2/apps/web")[0] == 200
    assert a.request("GET", "/v2/apps/web")[0] == 404


def test_the_leader_sees_the_request_as_sent_plus_via_and_forwarded_for(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    status, _, _ = b.request("POST", "/v2/apps?force=true", _app("/seen"),
                             headers={"X-Custom": "kept", "X-Forwarded-For": "10.9.8.7"})
    assert status == 201
    method, path, headers = next(h for h in a.handled if h[0] == "POST")
    assert (method, path) == ("POST", "/v2/apps?force=true")
    assert headers["x-marathon-via"] == [f"1.1 {b.address}"]
    assert headers["x-forwarded-for"] == ["10.9.8.7,127.0.0.1"]
    assert headers["x-custom"] == ["kept"] and headers["content-type"] == ["application/json"]
    assert "POST /v2/apps?force=true" not in b.handled_paths()           # forwarded, not answered


def test_errors_keep_their_status_and_body_through_the_proxy(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    assert a.request("POST", "/v2/apps", _app("/dup"))[0] == 201
    for path, method, body in [("/v2/apps/missing", "GET", None),          # 404
                               ("/v2/apps", "POST", {"id": "/Bad Id", "cmd": "x"}),   # 422
                               ("/v2/apps", "POST", _app("/dup")),          # 409
                               ("/v2/nowhere", "GET", None),               # unknown URI: the leader's 404
                               ("/v2/apps", "PATCH", {"x": 1})]:           # 405
        direct = a.request(method, path, body)
        proxied = b.request(method, path, body)
        assert direct[0] >= 400 and (proxied[0], proxied[1]) == (direct[0], direct[1]), (path, direct, proxied)
        assert proxied[2]["x-marathon-leader"] == a.url
        assert proxied[2]["content-type"].startswith("application/json")
    assert b.request("POST", "/v2/apps", raw=b"{not json")[0] == 400


def test_head_and_bodyless_answers_cross_the_proxy(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    direct, proxied = a.request("HEAD", "/v2/apps"), b.request("HEAD", "/v2/apps")
    assert direct[0] == proxied[0] == 200 and proxied[1] is None
    assert a.request("POST", "/v2/apps", _app("/queued", instances=1))[0] == 201
    direct, proxied = a.request("DELETE", "/v2/queue/queued/delay"), b.request("DELETE", "/v2/queue/queued/delay")
    assert direct[:2] == proxied[:2], (direct, proxied)


def test_every_response_names_the_leader(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    for node in (a, b):
        for path in ("/ping", "/v2/info", "/v2/leader", "/metrics", "/v2/apps", "/v2/apps/missing"):
            status, _, headers = node.request("GET", path)
            assert headers.get("x-marathon-leader") == a.url, (node.address, path, status)
    # what a follower answers itself carries no Via: it went nowhere
    assert "x-marathon-via" not in b.request("GET", "/ping")[2]


def test_leader_and_info_answer_locally_with_this_instances_view(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    assert b.request("GET", "/v2/leader")[:2] == (200, {"leader": a.address})
    info = b.request("GET", "/v2/info")[1]
    assert info["elected"] is False and info["leader"] == a.address
    assert info["http_config"]["http_port"] == b.port
    info = a.request("GET", "/v2/info")[1]
    assert info["elected"] is True and info["leader"] == a.address
    assert {"GET /v2/leader", "GET /v2/info"} <= set(b.handled_paths())
    assert "GET /v2/leader" not in a.handled_paths()


def test_delete_leader_through_a_follower_makes_the_leader_abdicate(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    status, body, headers = b.request("DELETE", "/v2/leader")
    assert (status, body) == (200, {"message": "Leadership abdicated"})
    assert headers["x-marathon-via"] == f"1.1 {b.address}"
    wait_until(lambda: a.leadership.abdications == 1, timeout=10, what="the leader to abdicate")
    assert b.leadership.abdications == 0 and c.leadership.abdications == 0
    # a's view now: nobody leads; asked directly it answers 404 like Marathon's standby
    assert a.request("GET", "/v2/leader")[:2] == (404, {"message": "There is no leader"})


def test_delete_leader_refuses_backup_and_restore_it_cannot_honour(cluster: Cluster) -> None:
    a, _, _ = cluster.nodes
    status, body, _ = a.request("DELETE", "/v2/leader?backup=file:///tmp/x")
    assert status == 400 and "backup" in body["message"]
    assert a.leadership.abdications == 0


def test_without_a_leader_followers_refuse_but_describe_themselves(cluster: Cluster) -> None:
    _, b, _ = cluster.nodes
    cluster.elect(None)
    status, body, headers = b.request("POST", "/v2/apps", _app("/none"))
    assert (status, body) == (503, {"message": "Could not determine the current leader"})
    assert "x-marathon-leader" not in headers
    assert b.request("GET", "/v2/apps")[0] == 503
    assert b.request("DELETE", "/v2/leader")[0] == 503
    assert b.request("GET", "/v2/leader")[:2] == (404, {"message": "There is no leader"})
    assert b.request("GET", "/ping")[:2] == (200, "pong")
    info = b.request("GET", "/v2/info")[1]
    assert info["elected"] is False and info["leader"] is None
    # an election still naming this very follower (not yet elected) is no leader to proxy to either
    b.leadership.leader, b.leadership.elected = b.address, False
    assert b.request("GET", "/v2/apps")[:2] == (503, {"message": "Could not determine the current leader"})


def test_a_proxy_loop_is_refused_not_followed(cluster: Cluster) -> None:
    _, b, c = cluster.nodes
    b.leadership.leader, c.leadership.leader = c.address, b.address    # each thinks the other leads
    status, body, headers = b.request("GET", "/v2/apps")
    assert (status, body) == (502, {"message": "Detected proxying loop."})
    assert _all_values(b, "/v2/apps", "X-Marathon-Via") == [f"1.1 {c.address}", f"1.1 {b.address}"]
    # a request that says it already came through this instance is refused at once
    a = cluster.nodes[0]
    cluster.elect(a)
    status, body, _ = b.request("GET", "/v2/apps", headers={"X-Marathon-Via": f"1.1 {b.address}"})
    assert (status, body) == (502, {"message": "Detected proxying loop."})
    assert not [h for h in a.handled if h[1] == "/v2/apps"]


def test_an_unreachable_leader_is_a_502_naming_the_refusal(cluster: Cluster) -> None:
    _, b, _ = cluster.nodes
    gone = f"127.0.0.1:{free_port()}"
    b.leadership.leader = gone
    status, body, headers = b.request("GET", "/v2/apps")
    assert (status, body) == (502, {"message": "Connection to leader refused."})
    assert headers["x-marathon-leader"] == f"http://{gone}"


def test_a_leader_that_never_answers_is_a_504(tmp_path: Path) -> None:
    """A listener that accepts and stays silent stands for a hung leader."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    node = Node(tmp_path, loop, proxy_read_seconds=0.5)
    try:
        node.call(node.start())
        node.leadership.leader = f"127.0.0.1:{silent.getsockname()[1]}"
        status, body, _ = node.request("GET", "/v2/apps")
        assert (status, body) == (504, {"message": "Connection to leader timed out."})
    finally:
        if hasattr(node, "runner"):
            node.call(node.stop())
        silent.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_events_through_a_follower_stream_the_leaders_events(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    recorder = EventRecorder(b.url, "api_post_event")
    try:
        assert recorder.response.getheader("X-Marathon-Leader") == a.url
        assert recorder.response.getheader("Content-Type").startswith("text/event-stream")
        wait_until(lambda: a.scheduler.events.subscriber_count == 1, timeout=10, what="the leader's subscriber")
        assert b.scheduler.events.subscriber_count == 0
        assert b.request("POST", "/v2/apps", _app("/streamed"))[0] == 201
        posted = wait_until(lambda: recorder.of_type("api_post_event"), timeout=10, what="api_post_event")
        assert posted[0]["appDefinition"]["id"] == "/streamed"
    finally:
        recorder.close()
    # the client went away: the follower closes its upstream, the leader's subscription ends
    wait_until(lambda: a.scheduler.events.subscriber_count == 0, timeout=10,
               what="the leader's subscription to end after the client left")


def test_stopping_a_follower_ends_the_streams_it_relays(cluster: Cluster) -> None:
    a, b, _ = cluster.nodes
    recorder = EventRecorder(b.url)
    try:
        wait_until(lambda: a.scheduler.events.subscriber_count == 1, timeout=10, what="the leader's subscriber")
        started = time.monotonic()
        b.call(b.stop())
        cluster.started.remove(b)
        assert time.monotonic() - started < 10, "the follower's stop waited for the open stream"
        recorder.thread.join(10)
        assert not recorder.thread.is_alive(), "the client's stream did not end"
    finally:
        recorder.close()
    wait_until(lambda: a.scheduler.events.subscriber_count == 0, timeout=10, what="the leader's subscription to end")


def test_pacer_serve_advertises_its_hostname(pacer_factory: Callable[..., Any]) -> None:
    """`pacer serve --hostname`: the address others reach it at, in /v2/leader and the header;
    alone it leads, so nothing is proxied."""
    server = pacer_factory("--hostname", "pacer-a.test", "--agent-resources", "cpus=1,mem=256,disk=100")
    status, body, headers = server.get("/v2/leader")
    assert (status, body) == (200, {"leader": f"pacer-a.test:{server.port}"})
    assert headers["x-marathon-leader"] == f"http://pacer-a.test:{server.port}"
    info = server.get("/v2/info")[1]
    assert info["elected"] is True and info["leader"] == f"pacer-a.test:{server.port}"
    status, _, headers = server.request("POST", "/v2/apps", _app("/alone"))
    assert status == 201 and "x-marathon-via" not in headers
    # without an election there is nobody to hand over to: abdication is not offered
    assert server.request("DELETE", "/v2/leader")[0] == 405


def test_a_follower_serves_its_own_metrics(cluster: Cluster) -> None:
    """`/metrics` describes the instance asked: a follower counts the requests it forwarded, and
    its scrape never reaches the leader."""
    from prometheus_client.parser import text_string_to_metric_families

    a, b, _ = cluster.nodes
    assert b.request("POST", "/v2/apps", _app("/counted"))[0] == 201
    a.handled.clear()
    status, body, headers = b.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert a.handled_paths() == [] and "x-marathon-via" not in headers
    posts = [s.value for family in text_string_to_metric_families(body) for s in family.samples
             if s.name == "pacer_api_request_duration_seconds_count"
             and s.labels == {"method": "POST", "route": "/v2/apps", "status": "201"}]
    assert posts == [1.0]
