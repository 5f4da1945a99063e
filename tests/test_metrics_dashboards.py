"""Grafana dashboards: valid JSON with the expected panels, and every query returns data on a
real `influxd` fed by the TaskSampler from a real scheduler running a real task."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from metrics import decision_point
from metrics.dashboards import (
    ANNOTATION_QUERY,
    APP_QUERIES,
    APP_VARIABLE_QUERY,
    FLEET_QUERIES,
    grafana_regex_escape,
    interpolate,
    write_dashboards,
)
from metrics.influx_v1 import InfluxV1Sink
from metrics.schema import NS_PER_S
from scheduler.engine.sampling import TaskSampler

from .influx_support import InfluxServer, influxd_available
from .support import kill_task_processes


def test_write_dashboards_files_and_structure(tmp_path: Path):
    paths = write_dashboards(tmp_path / "out", datasource="Metrics", influxdb_url="http://10.0.0.1:8086",
                             database="pacer")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in paths)
    assert names == ["dashboards/pacer-app.json", "dashboards/pacer-fleet.json", "dashboards/pacer-scheduler.json",
                     "provisioning/dashboards/pacer.yaml", "provisioning/datasources/pacer-influxdb.yaml"]
    app = json.loads((tmp_path / "out/dashboards/pacer-app.json").read_text())
    fleet = json.loads((tmp_path / "out/dashboards/pacer-fleet.json").read_text())
    assert [p["title"] for p in app["panels"]] == list(APP_QUERIES)
    assert [p["title"] for p in fleet["panels"]] == list(FLEET_QUERIES)
    assert {"CPU % of allocation", "Memory vs limit", "Instances"} <= set(APP_QUERIES)
    for dash in (app, fleet):
        assert dash["uid"] and dash["schemaVersion"] >= 36
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        cells = set()
        for panel in dash["panels"]:
            g = panel["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{panel['title']} overlaps another panel"
            cells |= mine
            assert g["x"] + g["w"] <= 24
            for target in panel["targets"]:
                assert target["rawQuery"] and target["query"].startswith("SELECT")
                assert "$timeFilter" in target["query"] and target["datasource"]["uid"] == "${datasource}"
        ds_var = dash["templating"]["list"][0]
        assert ds_var["type"] == "datasource" and ds_var["current"]["value"] == "Metrics"
    app_var = app["templating"]["list"][1]
    assert app_var["name"] == "app_id" and app_var["multi"] and app_var["query"] == APP_VARIABLE_QUERY
    for panel in app["panels"]:
        assert all("$app_id" in t["query"] for t in panel["targets"])
    cpu = next(p for p in app["panels"] if p["title"] == "CPU % of allocation")
    assert cpu["fieldConfig"]["defaults"]["unit"] == "percent"
    memory = next(p for p in app["panels"] if p["title"] == "Memory vs limit")
    assert {"memory_working_set", "memory_limit"} == {t["query"].split('FROM "')[1].split('"')[0]
                                                       for t in memory["targets"]}
    annotation = app["annotations"]["list"][1]
    assert annotation["query"] == ANNOTATION_QUERY and "autoscaler_decision" in annotation["query"]
    ds_yaml = (tmp_path / "out/provisioning/datasources/pacer-influxdb.yaml").read_text()
    assert 'name: "Metrics"' in ds_yaml and 'url: "http://10.0.0.1:8086"' in ds_yaml and 'dbName: "pacer"' in ds_yaml
    prov = (tmp_path / "out/provisioning/dashboards/pacer.yaml").read_text()
    assert f'path: "{(tmp_path / "out/dashboards").resolve()}"' in prov


def test_interpolation_escapes_app_ids_like_grafana():
    assert grafana_regex_escape("/shop/web.v2") == "\\/shop\\/web\\.v2"
    q = interpolate('SELECT 1 FROM x WHERE "app_id" =~ /^$app_id$/ AND $timeFilter GROUP BY time($__interval)',
                    {"app_id": "/a"}, interval="5s", time_filter="time > now() - 5m")
    assert q == 'SELECT 1 FROM x WHERE "app_id" =~ /^\\/a$/ AND time > now() - 5m GROUP BY time(5s)'


@contextlib.asynccontextmanager
async def running_scheduler(home: Path) -> AsyncIterator[object]:
    from scheduler.engine.build import ServeOptions, make_scheduler
    sched = make_scheduler(ServeOptions(home=home, resources={"cpus": 4, "mem": 4096, "disk": 1000}))
    await sched.start()
    loop_task = asyncio.create_task(sched.run())
    try:
        yield sched
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await sched.close()
        sched.store.close()
        kill_task_processes(home)


async def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) not installed")
async def test_every_panel_query_returns_data_for_a_running_app(tmp_path: Path):
    influx = InfluxServer(tmp_path / "influxd").start()
    home = tmp_path / "home"
    home.mkdir()
    sink = InfluxV1Sink(influx.url, "cadvisor", flush_interval=0.1)
    try:
        async with running_scheduler(home) as sched:
            sched.writes.create_app({"id": "/shop/web", "cmd": "while :; do :; done", "cpus": 0.5, "mem": 64,
                              "instances": 1})
            inst = await wait_for(lambda: next((i for i in sched.state.instances.values()
                                                if i.state == "TASK_RUNNING" and i.pid), None))
            sampler = TaskSampler(sched.state, sink, interval=0.25, usages=sched.backend.usages)
            task = asyncio.create_task(sampler.run())
            await asyncio.sleep(2.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert sampler.errors == 0 and sampler.passes >= 6
        now_ns = time.time_ns()
        sink.write([decision_point("/shop/web", "scale_up", 2, 1, 190.0, 50.0, "busy", now_ns - 2 * NS_PER_S),
                    decision_point("/shop/web", "none", 2, 2, 95.0, 50.0, "within tolerance", now_ns - NS_PER_S)])
        await sink.flush()
        assert sink.stats()["dropped"] == 0 and sink.stats()["rejected"] == 0

        # the samples of the running task, in the cAdvisor schema
        series = influx.series('SELECT "value" FROM "cpu_usage_total" GROUP BY *', "cadvisor")
        assert [s["tags"]["task_id"] for s in series] == [inst.instance_id]
        assert series[0]["tags"]["container_name"] == inst.instance_id and series[0]["tags"]["app_id"] == "/shop/web"
        values = [v for _, v in series[0]["values"]]
        assert values == sorted(values) and values[-1] > values[0]
        util = influx.series('SELECT mean("value") FROM "cpu_utilization"', "cadvisor")
        assert util[0]["values"][0][1] > 30          # a busy loop on 0.5 cpus

        variables = {"app_id": "/shop/web"}
        queries = [q for qs in APP_QUERIES.values() for q in qs] + [ANNOTATION_QUERY] + \
                  [q for qs in FLEET_QUERIES.values() for q in qs]
        for query in queries:
            q = interpolate(query, variables, interval="1s", time_filter="time > now() - 5m")
            assert influx.series(q, "cadvisor"), f"no data for: {q}"
        tag_values = influx.series(APP_VARIABLE_QUERY, "cadvisor")
        assert ["app_id", "/shop/web"] in tag_values[0]["values"]
    finally:
        await sink.close()
        influx.stop()
