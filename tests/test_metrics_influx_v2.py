"""The v2 sink and source (influxdb-client) against a stand-in of the v2 HTTP API on 127.0.0.1.

No InfluxDB 2.x is installable here, so a small aiohttp server plays its two endpoints:
`POST /api/v2/write` (checks org, bucket, precision and the token) and `POST /api/v2/query`
(answers annotated CSV, as InfluxDB 2.x does for Flux).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from metrics import MetricsOptions, MetricsQueryError, Point, open_metrics
from metrics.influx_v2 import InfluxV2Sink, InfluxV2Source, flux_string, usage_flux
from metrics.lineprotocol import parse_line

from .support import free_port

T0 = 1_700_000_000


def annotated_csv(rows: list[tuple[int, float, str, str]]) -> str:
    lines = ["#datatype,string,long,dateTime:RFC3339,double,string,string",
             "#group,false,false,false,false,true,true",
             "#default,_result,,,,,",
             ",result,table,_time,_value,app_id,task_id"]
    tables: dict[tuple[str, str], int] = {}
    for t, value, app, task in rows:
        table = tables.setdefault((app, task), len(tables))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
        lines.append(f",,{table},{stamp},{value},{app},{task}")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture
async def fake_v2() -> AsyncIterator[dict]:
    state: dict = {"lines": [], "queries": [], "fail_writes": 0, "query_status": 200}

    async def write(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Token s3cret":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"}, status=401)
        assert request.query["org"] == "acme" and request.query["bucket"] == "pacer"
        assert request.query["precision"] == "ns"
        if state["fail_writes"]:
            state["fail_writes"] -= 1
            return web.json_response({"code": "internal error", "message": "boom"}, status=503)
        state["lines"].extend((await request.text()).splitlines())
        return web.Response(status=204)

    async def query(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        state["queries"].append(body["query"])
        if state["query_status"] != 200:
            return web.json_response({"code": "invalid", "message": "bad flux"}, status=state["query_status"])
        return web.Response(text=annotated_csv(state["rows"]), content_type="text/csv")

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    app.router.add_post("/api/v2/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state["url"] = f"http://127.0.0.1:{port}"
    state["rows"] = [(T0 + i, i * 0.5e9, "/a", "t1") for i in range(4)] + \
                    [(T0 + i, i * 2e9, "/a", "t2") for i in range(4)]
    yield state
    await runner.cleanup()


async def test_v2_sink_writes_line_protocol_with_token_org_bucket(fake_v2):
    fake_v2["fail_writes"] = 1
    sink = InfluxV2Sink(fake_v2["url"], "s3cret", "acme", "pacer", flush_interval=0.02, max_backoff=0.05)
    sink.write([Point("cpu_usage_total", {"app_id": "/a b", "task_id": "t"}, {"value": i}, T0 + i) for i in range(3)])
    deadline = time.monotonic() + 5
    while sink.stats()["written"] < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sink.close()
    assert sink.stats()["written"] == 3 and sink.stats()["errors"] == 1
    assert [parse_line(line).tags["app_id"] for line in fake_v2["lines"]] == ["/a b"] * 3


async def test_v2_sink_bad_token_is_rejected_not_retried(fake_v2):
    sink = InfluxV2Sink(fake_v2["url"], "wrong", "acme", "pacer")
    sink.write([Point("m", {}, {"value": 1}, 1)])
    await sink.flush()
    stats = sink.stats()
    await sink.close()
    assert stats["rejected"] == 1 and stats["buffered"] == 0 and "401" in stats["last_error"]


async def test_v2_source_reads_per_task_usage_with_flux(fake_v2):
    backend = open_metrics(MetricsOptions(influxdb_v2_url=fake_v2["url"], influxdb_v2_token="s3cret",
                                          influxdb_v2_org="acme", influxdb_v2_bucket="pacer"))
    try:
        usage = await backend.source.task_usage("cpu", T0 - 10, T0 + 10, ["/a"])
        assert set(usage["/a"]) == {"t1", "t2"}
        assert np.allclose(usage["/a"]["t1"].values, 0.5) and np.allclose(usage["/a"]["t2"].values, 2.0)
        assert list(usage["/a"]["t1"].times) == [T0 + 1, T0 + 2, T0 + 3]
        flux = fake_v2["queries"][0]
        assert 'from(bucket: "pacer")' in flux and 'r._measurement == "cpu_usage_total"' in flux
        assert 'contains(value: r.app_id, set: ["/a"])' in flux
        fake_v2["query_status"] = 400
        with pytest.raises(MetricsQueryError, match="bad flux"):
            await backend.source.task_usage("mem", T0 - 10, T0 + 10, ["/a"])
    finally:
        await backend.close()


async def test_v2_source_unreachable():
    source = InfluxV2Source(f"http://127.0.0.1:{free_port()}", "t", "o", "b", timeout=1)
    try:
        with pytest.raises(MetricsQueryError):
            await source.task_usage("cpu", 0, 1, ["/a"])
    finally:
        await source.close()


def test_flux_text_is_quoted():
    assert flux_string('a"b\\c${x}') == '"a\\"b\\\\c\\${x}"'
    flux = usage_flux("b", "mem", 1.0, 2.0, None)
    assert "time(v: 1000000000)" in flux and "time(v: 2000000001)" in flux and "contains" not in flux
    assert 'r._measurement == "memory_working_set"' in flux


def test_flux_csv_parsing():
    from metrics.influx_v2 import parse_flux_csv, rfc3339_ns
    text = ("#datatype,string,long,dateTime:RFC3339Nano,double,string\r\n"
            ",result,table,_time,_value,task_id\r\n"
            ",_result,0,2023-11-14T22:13:20.5Z,1.5,a\r\n"
            "\r\n"
            ",result,table,_time,_value,task_id,app_id\r\n"
            ",_result,1,2023-11-14T22:13:21.000000001Z,2,b,/x\r\n\r\n")
    rows = parse_flux_csv(text)
    assert [(r["task_id"], r["_value"]) for r in rows] == [("a", "1.5"), ("b", "2")] and rows[1]["app_id"] == "/x"
    assert rfc3339_ns("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000_000
    assert rfc3339_ns("2023-11-14T22:13:21.000000001Z") == 1_700_000_001_000_000_001
    assert rfc3339_ns("2023-11-14T22:13:20Z") == 1_700_000_000 * 10**9
    with pytest.raises(ValueError, match="boom"):
        parse_flux_csv(",error,reference\r\n,boom,\r\n")
