"""The InfluxDB v1 sink and source against a real, private `influxd`, and their faults."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from metrics import MetricsQueryError, MetricsOptions, Point, TaskSample, open_metrics, task_points
from metrics.influx_v1 import InfluxV1Sink, InfluxV1Source, usage_query
from metrics.schema import CADVISOR_MEASUREMENTS, NS_PER_S

from .influx_support import InfluxServer, influxd_available
from .support import free_port

pytestmark = pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) not installed")


@pytest.fixture(scope="module")
def influx(tmp_path_factory) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


def sample(app: str, task: str, t: float, cpu_s: float, mem: int = 50 * 2**20) -> TaskSample:
    return TaskSample(app_id=app, task_id=task, agent_id="agent-1", machine="host-a", time_ns=int(t * NS_PER_S),
                      cpu_user_ns=int(cpu_s * 0.75 * NS_PER_S), cpu_system_ns=int(cpu_s * 0.25 * NS_PER_S),
                      memory_usage_bytes=mem, cpus=0.5, mem_mb=128, rx_bytes=10, tx_bytes=20,
                      fs_usage_bytes=1000, fs_limit_bytes=2000)


async def test_samples_arrive_in_the_cadvisor_schema(influx):
    sink = InfluxV1Sink(influx.url, "schema", flush_interval=0.05)
    now = time.time()
    for i in range(5):
        sink.write(task_points(sample("/shop/web", "shop_web.instance-1._app.1", now - 5 + i, cpu_s=i * 0.4)))
    await sink.flush()
    await sink.close()
    assert sink.stats()["written"] > 0 and sink.stats()["dropped"] == 0
    names = {row[0] for s in influx.series("SHOW MEASUREMENTS", "schema") for row in s["values"]}
    assert set(CADVISOR_MEASUREMENTS) <= names
    types = {s["name"]: dict(s["values"]) for s in influx.series("SHOW FIELD KEYS", "schema")}
    for m in CADVISOR_MEASUREMENTS:
        assert types[m] == {"value": "integer"}, m          # cAdvisor writes int64 values
    series = influx.series('SELECT "value" FROM "cpu_usage_total" GROUP BY *', "schema")
    assert len(series) == 1
    assert series[0]["tags"] == {"app_id": "/shop/web", "task_id": "shop_web.instance-1._app.1",
                                 "agent_id": "agent-1", "container_name": "shop_web.instance-1._app.1",
                                 "machine": "host-a"}
    assert [v for _, v in series[0]["values"]] == [int(i * 0.4 * NS_PER_S) for i in range(5)]
    # a cAdvisor-style query grouping by container works unchanged
    rates = influx.series('SELECT non_negative_derivative(mean("value"), 1s) FROM "cpu_usage_total" '
                          'WHERE time > now() - 1m GROUP BY time(1s), "container_name" fill(none)', "schema")
    assert rates and all(abs(v - 0.4e9) < 1e7 for _, v in rates[0]["values"])
    fs = influx.series('SELECT "value" FROM "fs_limit" GROUP BY "type", "device"', "schema")
    assert fs[0]["tags"] == {"type": "limit", "device": "sandbox"}


async def test_awkward_tag_values_survive_the_round_trip(influx):
    sink = InfluxV1Sink(influx.url, "awkward")
    apps = ["/with space/app", "/comma,app", "/eq=app", '/quote"app', "/ünï/cødé"]
    for i, app in enumerate(apps):
        sink.write([Point("memory_usage", {"app_id": app, "task_id": f"t {i}"}, {"value": i}, (i + 1) * NS_PER_S)])
    await sink.close()
    got = {s["tags"]["app_id"]: s["tags"]["task_id"]
           for s in influx.series('SELECT "value" FROM "memory_usage" GROUP BY "app_id", "task_id"', "awkward")}
    assert got == {app: f"t {i}" for i, app in enumerate(apps)}


async def test_source_reads_per_task_usage_for_the_autoscaler(influx):
    sink = InfluxV1Sink(influx.url, "usage")
    now = time.time()
    for i in range(6):
        t = now - 30 + i * 5
        sink.write(task_points(sample("/a.b/c+d", "t1", t, cpu_s=i * 5 * 0.25, mem=10 * 2**20)))
        sink.write(task_points(sample("/a.b/c+d", "t2", t, cpu_s=i * 5 * 1.0, mem=20 * 2**20)))
        sink.write(task_points(sample("/other", "t3", t, cpu_s=i)))
        sink.write(task_points(sample("/a/b/cxd", "t4", t, cpu_s=i)))   # must not match the regex of /a.b/c+d
    await sink.close()
    source = InfluxV1Source(influx.url, "usage")
    try:
        usage = await source.task_usage("cpu", now - 60, now + 1, ["/a.b/c+d"])
        assert set(usage) == {"/a.b/c+d"} and set(usage["/a.b/c+d"]) == {"t1", "t2"}
        assert np.allclose(usage["/a.b/c+d"]["t1"].values, 0.25) and np.allclose(usage["/a.b/c+d"]["t2"].values, 1.0)
        assert len(usage["/a.b/c+d"]["t1"]) == 5
        mem = await source.task_usage("mem", now - 60, now + 1, ["/a.b/c+d", "/other"])
        assert set(mem) == {"/a.b/c+d", "/other"} and mem["/a.b/c+d"]["t2"].values[0] == 20 * 2**20
        assert set(await source.task_usage("cpu", now - 60, now + 1)) == {"/a.b/c+d", "/other", "/a/b/cxd"}
        assert await source.task_usage("cpu", now - 60, now + 1, []) == {}
        assert await source.task_usage("cpu", now + 100, now + 200, ["/other"]) == {}
    finally:
        await source.close()


async def test_source_errors_become_metrics_query_errors(influx):
    for source in (InfluxV1Source(f"http://127.0.0.1:{free_port()}", "x", timeout=2),   # nothing listens
                   InfluxV1Source(influx.url, "no_such_db")):
        try:
            with pytest.raises(MetricsQueryError):
                await source.task_usage("cpu", 0, time.time())
        finally:
            await source.close()


async def test_source_garbage_replies_become_metrics_query_errors():
    replies = iter([web.Response(text="<html>proxy error</html>", status=502),
                    web.Response(text="not json", status=200),
                    web.json_response({"results": "nope"}),
                    web.json_response({"results": [{"series": [{"columns": ["a"], "values": [[1]]}]}]}),
                    web.json_response({"results": [{"error": "boom"}]})])

    async def query(request: web.Request) -> web.Response:
        return next(replies)

    app = web.Application()
    app.router.add_get("/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    source = InfluxV1Source(f"http://127.0.0.1:{port}", "db")
    try:
        for _ in range(5):
            with pytest.raises(MetricsQueryError):
                await source.task_usage("cpu", 0, 1)
    finally:
        await source.close()
        await runner.cleanup()


def test_usage_query_is_influxql():
    q = usage_query("cpu", 1.5, 2.0, ["/x/y"])
    assert q == ('SELECT "value" FROM "cpu_usage_total" WHERE time >= 1500000000 AND time <= 2000000000 '
                 'AND "app_id" =~ /^(?:\\/x\\/y)$/ GROUP BY "app_id", "task_id"')


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for `condition`; the deadline is a safety net against a hang, not the assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


class HeldWrites:
    """An InfluxDB stand-in that holds every ``/write`` until released (``/query`` answers at once).

    It runs in its own thread, not on the test's loop: a sink whose ``write`` waited on the
    network would then get its answer after ``SAFETY`` seconds (and every later one at once)
    and be caught by ``answered``, where a server on the blocked loop would only deadlock.
    """

    SAFETY = 20.0

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.answered = 0
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/write"):
                    held.arrived.set()
                    if not held.release.wait(held.SAFETY):
                        held.release.set()      # answer the rest at once: fail, do not hang
                    held.answered += 1
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"results": [{}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


async def test_unreachable_influxdb_buffers_up_to_a_bound_then_drops():
    sink = InfluxV1Sink(f"http://127.0.0.1:{free_port()}", "db", timeout=1, max_buffer=500,
                        batch_size=100, flush_interval=0.05, max_backoff=0.2)
    points = task_points(sample("/a", "t", time.time(), 1.0))
    for _ in range(200):
        sink.write(points)                      # 200 × 11 points
    assert sink.buffered == 500
    assert sink.dropped == 200 * len(points) - 500
    await eventually(lambda: sink.stats()["errors"] >= 2)   # the flusher fails, backs off, retries
    stats = sink.stats()
    assert stats["buffered"] == 500 and stats["written"] == 0 and stats["dropped"] == 200 * len(points) - 500
    assert "unreachable" in stats["last_error"]
    await sink.close(timeout=0.5)
    assert sink.stats()["dropped"] == 200 * len(points)


async def test_writes_never_wait_on_a_batch_the_server_holds():
    server = HeldWrites()
    sink = InfluxV1Sink(server.url, "db", timeout=120, max_buffer=500, batch_size=100, flush_interval=0.05)
    points = task_points(sample("/a", "t", time.time(), 1.0))
    try:
        sink.write(points * 10)                 # over 100 lines: a full batch wakes the flusher
        left = 10 * len(points) - 100           # what stays buffered while that batch is in flight
        assert await asyncio.to_thread(server.arrived.wait, 30), "the flusher never sent the batch"
        for _ in range(200):
            sink.write(points)
        # all 200 writes returned while the server still held the first batch: none waited on it
        assert server.answered == 0
        assert sink.buffered == 500 and sink.written == 0
        assert sink.dropped == left + 200 * len(points) - 500
        server.release.set()
        await eventually(lambda: sink.written == 100 + 500)
        assert sink.buffered == 0 and sink.dropped == left + 200 * len(points) - 500
    finally:
        server.release.set()
        await sink.close(timeout=5)
        server.stop()


async def test_a_failing_then_recovering_server_gets_the_buffered_batches():
    seen: list[str] = []
    statuses = iter([500, 503])

    async def write(request: web.Request) -> web.Response:
        status = next(statuses, 204)
        if status == 204:
            seen.extend((await request.text()).splitlines())
        return web.Response(status=status, text="{}")

    async def query(request: web.Request) -> web.Response:
        return web.json_response({"results": [{}]})

    app = web.Application()
    app.router.add_post("/write", write)
    app.router.add_post("/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sink = InfluxV1Sink(f"http://127.0.0.1:{port}", "db", flush_interval=0.02, max_backoff=0.05)
    try:
        sink.write([Point("m", {}, {"value": i}, i) for i in range(10)])
        deadline = time.monotonic() + 5
        while sink.stats()["written"] < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert sink.stats()["written"] == 10 and sink.stats()["errors"] == 2
        assert seen == [f"m value={i}i {i}" for i in range(10)]
    finally:
        await sink.close()
        await runner.cleanup()


async def test_points_the_server_refuses_are_counted_not_retried(influx):
    sink = InfluxV1Sink(influx.url, "refused", flush_interval=0.02)
    sink.write([Point("memory_usage", {"task_id": "t"}, {"value": 1}, NS_PER_S)])
    await sink.flush()
    sink.write([Point("memory_usage", {"task_id": "t"}, {"value": 1.5}, 2 * NS_PER_S)])   # float into an int field
    await sink.flush()
    stats = sink.stats()
    await sink.close()
    assert stats["written"] == 1 and stats["rejected"] == 1 and stats["buffered"] == 0
    assert "field type conflict" in stats["last_error"]


async def test_open_metrics_wires_a_v1_backend(influx):
    backend = open_metrics(MetricsOptions(influxdb_url=influx.url, influxdb_database="wired"))
    now = time.time()
    backend.sink.write(task_points(sample("/w", "t", now - 2, 0)) + task_points(sample("/w", "t", now - 1, 0.5)))
    await backend.sink.flush()
    usage = await backend.source.task_usage("cpu", now - 10, now, ["/w"])
    await backend.close()
    assert np.allclose(usage["/w"]["t"].values, 0.5)


def test_influx_support_stops_its_server(tmp_path: Path):
    server = InfluxServer(tmp_path / "x").start()
    pid = server.proc.pid
    server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        import os
        os.kill(pid, 0)
