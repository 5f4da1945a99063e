"""Grafana dashboards for Pacer's metrics, and provisioning files for an InfluxDB datasource.

Plain JSON builders (pure functions returning dicts); ``write_dashboards`` is the only part
that touches the disk. Why not a dashboards-as-code library: grafana-foundation-sdk (the
maintained one) has no InfluxDB/InfluxQL query type, and grafanalib has had no release
since its maintainer closed; a dozen small builders here are clearer than either.

Every query is InfluxQL against the schema in ``metrics.schema`` (cAdvisor's measurements
plus Pacer's), uses Grafana's ``$timeFilter`` and ``$__interval`` macros and the templated
``$app_id`` variable (multi-value, so Grafana regex-escapes the ``/`` of app ids).
``interpolate`` performs the same substitution so tests can run the queries on a real server.

Files written by ``write_dashboards(out_dir)``::

    out_dir/dashboards/pacer-app.json          per app: CPU % of allocation, cores, memory vs
                                               limit, instances, autoscaler observed vs target,
                                               decisions as annotations
    out_dir/dashboards/pacer-fleet.json        fleet overview: cores, memory, instances by app,
                                               running tasks, recent scaling actions
    out_dir/dashboards/pacer-scheduler.json    the scheduler itself, from a Prometheus that scrapes
                                               `pacer serve`'s ``GET /metrics`` (PromQL, not InfluxQL):
                                               API latency per route, passes, queue, launches/kills,
                                               store writes, health checks, event streams
    out_dir/provisioning/datasources/pacer-influxdb.yaml
    out_dir/provisioning/dashboards/pacer.yaml (file provider pointing at out_dir/dashboards)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .options import DEFAULT_DATABASE
from .schema import (
    AUTOSCALER_DECISION,
    CPU_USAGE_TOTAL,
    CPU_UTILIZATION,
    INSTANCES,
    MEMORY_LIMIT,
    MEMORY_WORKING_SET,
    TAG_ACTION,
    TAG_APP_ID,
    TAG_TASK_ID,
)

SCHEMA_VERSION = 39
DS = {"type": "influxdb", "uid": "${datasource}"}
APP = f'"{TAG_APP_ID}" =~ /^$app_id$/'
PER_TASK = f'GROUP BY time($__interval), "{TAG_TASK_ID}" fill(none)'


# -- queries (the contract with the schema; tests run every one of them) ------------------
APP_QUERIES: dict[str, list[str]] = {
    "CPU % of allocation": [
        f'SELECT mean("value") FROM "{CPU_UTILIZATION}" WHERE {APP} AND $timeFilter {PER_TASK}',
    ],
    "CPU cores used": [
        f'SELECT non_negative_derivative(mean("value"), 1s) / 1000000000 FROM "{CPU_USAGE_TOTAL}" '
        f'WHERE {APP} AND $timeFilter {PER_TASK}',
    ],
    "Memory vs limit": [
        f'SELECT mean("value") FROM "{MEMORY_WORKING_SET}" WHERE {APP} AND $timeFilter {PER_TASK}',
        f'SELECT max("value") AS "limit" FROM "{MEMORY_LIMIT}" WHERE {APP} AND $timeFilter '
        f'GROUP BY time($__interval) fill(none)',
    ],
    "Instances": [
        f'SELECT last("value") AS "configured", last("running") AS "running" FROM "{INSTANCES}" '
        f'WHERE {APP} AND $timeFilter GROUP BY time($__interval) fill(none)',
    ],
    "Autoscaler: observed vs target": [
        f'SELECT mean("observed") AS "observed", mean("target") AS "target" FROM "{AUTOSCALER_DECISION}" '
        f'WHERE {APP} AND $timeFilter GROUP BY time($__interval) fill(none)',
    ],
    "Autoscaler: desired vs current instances": [
        f'SELECT last("value") AS "desired", last("current") AS "current" FROM "{AUTOSCALER_DECISION}" '
        f'WHERE {APP} AND $timeFilter GROUP BY time($__interval) fill(none)',
    ],
}

ANNOTATION_QUERY = (f'SELECT "reason", "{TAG_ACTION}", "value" FROM "{AUTOSCALER_DECISION}" '
                    f"WHERE {APP} AND \"{TAG_ACTION}\" != 'none' AND $timeFilter")

FLEET_QUERIES: dict[str, list[str]] = {
    "CPU cores by app": [
        'SELECT sum("cores") FROM (SELECT non_negative_derivative(mean("value"), 1s) / 1000000000 AS "cores" '
        f'FROM "{CPU_USAGE_TOTAL}" WHERE $timeFilter GROUP BY time($__interval), "{TAG_APP_ID}", "{TAG_TASK_ID}") '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_APP_ID}" fill(none)',
    ],
    "Memory by app": [
        'SELECT sum("bytes") FROM (SELECT mean("value") AS "bytes" '
        f'FROM "{MEMORY_WORKING_SET}" WHERE $timeFilter GROUP BY time($__interval), "{TAG_APP_ID}", "{TAG_TASK_ID}") '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_APP_ID}" fill(none)',
    ],
    "Instances by app": [
        f'SELECT last("value") FROM "{INSTANCES}" WHERE $timeFilter '
        f'GROUP BY time($__interval), "{TAG_APP_ID}" fill(none)',
    ],
    "Running tasks": [
        'SELECT sum("running") FROM (SELECT last("running") AS "running" '
        f'FROM "{INSTANCES}" WHERE $timeFilter GROUP BY time($__interval), "{TAG_APP_ID}") '
        'WHERE $timeFilter GROUP BY time($__interval) fill(none)',
    ],
    "Recent scaling actions": [
        f'SELECT "value" AS "desired", "current", "reason" FROM "{AUTOSCALER_DECISION}" '
        f"WHERE \"{TAG_ACTION}\" != 'none' AND $timeFilter GROUP BY \"{TAG_APP_ID}\", \"{TAG_ACTION}\"",
    ],
}

APP_VARIABLE_QUERY = f'SHOW TAG VALUES FROM "{INSTANCES}" WITH KEY = "{TAG_APP_ID}"'

_UNITS = {"CPU % of allocation": "percent", "CPU cores used": "short", "Memory vs limit": "bytes",
          "Instances": "short", "Autoscaler: observed vs target": "percent",
          "Autoscaler: desired vs current instances": "short", "CPU cores by app": "short",
          "Memory by app": "bytes", "Instances by app": "short", "Running tasks": "short"}


# -- the scheduler's own metrics (Prometheus; names as `scheduler.telemetry` exposes them) ------
PROM_DS = {"type": "prometheus", "uid": "${prometheus}"}
RATE = "[$__rate_interval]"
_PACER_TARGETS = "and on (job, instance) pacer_apps"
"""Narrows the process_* series (every exporter has them) to the processes that are Pacer."""

SCHEDULER_QUERIES: dict[str, list[tuple[str, str]]] = {
    "API requests per second by route": [
        ("{{method}} {{route}}",
         f"sum by (method, route) (rate(pacer_api_request_duration_seconds_count{RATE}))"),
    ],
    "API latency p99 by route": [
        ("{{route}}", "histogram_quantile(0.99, sum by (le, route) "
                      f"(rate(pacer_api_request_duration_seconds_bucket{RATE})))"),
    ],
    "API errors per second (5xx)": [
        ("{{route}} {{status}}",
         f'sum by (route, status) (rate(pacer_api_request_duration_seconds_count{{status=~"5.."}}{RATE}))'),
    ],
    "Scheduling pass duration": [
        ("p50", f"histogram_quantile(0.5, sum by (le) (rate(pacer_scheduling_pass_duration_seconds_bucket{RATE})))"),
        ("p99", f"histogram_quantile(0.99, sum by (le) (rate(pacer_scheduling_pass_duration_seconds_bucket{RATE})))"),
    ],
    "Launch queue": [
        ("apps waiting", "sum(pacer_queue_apps)"),
        ("instances waiting", "sum(pacer_queue_instances)"),
    ],
    "Launches and kills per second": [
        ("launches", f"sum(rate(pacer_launches_total{RATE}))"),
        ("launch failures", f"sum(rate(pacer_launch_failures_total{RATE}))"),
        ("kills", f"sum(rate(pacer_kills_total{RATE}))"),
    ],
    "Store write latency": [
        ("p50", f"histogram_quantile(0.5, sum by (le) (rate(pacer_store_write_duration_seconds_bucket{RATE})))"),
        ("p99", f"histogram_quantile(0.99, sum by (le) (rate(pacer_store_write_duration_seconds_bucket{RATE})))"),
    ],
    "Garbage collection pause p99 by generation": [
        ("generation {{generation}}", "histogram_quantile(0.99, sum by (le, generation) "
                                      f"(rate(pacer_gc_pause_seconds_bucket{RATE})))"),
    ],
    "Health checks per second": [
        ("{{result}}", f"sum by (result) (rate(pacer_health_checks_total{RATE}))"),
    ],
    "Apps, instances and deployments": [
        ("apps", "max(pacer_apps)"),
        ("{{state}}", "max by (state) (pacer_instances)"),
        ("deployments", "max(pacer_deployments)"),
    ],
    "Leader (1 on the instance that leads)": [
        ("{{instance}}", "pacer_leader"),
    ],
    "Event-stream subscribers": [
        ("{{instance}}", "pacer_event_subscribers"),
        ("dropped per second", f"sum(rate(pacer_event_subscribers_dropped_total{RATE}))"),
        ("events published per second", f"sum(rate(pacer_events_published_total{RATE}))"),
    ],
    "Scheduler CPU": [
        ("{{instance}}", f"rate(process_cpu_seconds_total{RATE}) {_PACER_TARGETS}"),
    ],
    "Scheduler memory": [
        ("{{instance}}", f"process_resident_memory_bytes {_PACER_TARGETS}"),
    ],
}

_SCHEDULER_UNITS = {"API latency p99 by route": "s", "Scheduling pass duration": "s", "Store write latency": "s",
                    "Garbage collection pause p99 by generation": "s",
                    "API requests per second by route": "reqps", "API errors per second (5xx)": "reqps",
                    "Launches and kills per second": "ops", "Health checks per second": "ops",
                    "Scheduler CPU": "percentunit", "Scheduler memory": "bytes"}
SCHEDULER_ROW = "Scheduler (Prometheus: GET /metrics of pacer serve)"


def grafana_regex_escape(value: str) -> str:
    """What Grafana does to a multi-value variable's value inside an InfluxQL regex."""
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", value)


def interpolate(query: str, variables: Mapping[str, str], *, interval: str = "10s",
                time_filter: str = "time > now() - 1h") -> str:
    """Substitute Grafana's macros and (single-valued, regex-escaped) template variables."""
    out = query.replace("$timeFilter", time_filter).replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        out = out.replace(f"${name}", grafana_regex_escape(variables[name]))
    return out


# -- builders ----------------------------------------------------------------------------------
def _target(query: str, ref: str) -> dict[str, Any]:
    alias = "$tag_task_id" if f'"{TAG_TASK_ID}"' in query.split("GROUP BY")[-1] else (
        "$tag_app_id" if f'"{TAG_APP_ID}"' in query.split("GROUP BY")[-1] else "")
    return {"refId": ref, "datasource": DS, "rawQuery": True, "resultFormat": "time_series",
            "query": query, "alias": alias}


def _panel(panel_id: int, title: str, queries: list[str], x: int, y: int, *, kind: str = "timeseries",
           width: int = 12, height: int = 8) -> dict[str, Any]:
    targets = [_target(q, chr(ord("A") + i)) for i, q in enumerate(queries)]
    panel: dict[str, Any] = {
        "id": panel_id, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": width, "h": height},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": _UNITS.get(title, "short")}, "overrides": []},
        "options": {},
    }
    if kind == "table":
        for target in targets:
            target["resultFormat"] = "table"
    if kind == "timeseries":
        panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                            "tooltip": {"mode": "multi"}}
    return panel


def _grid(titles: dict[str, list[str]], kinds: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    panels = []
    for i, (title, queries) in enumerate(titles.items()):
        kind = (kinds or {}).get(title, "timeseries")
        width = 24 if kind == "table" else 12
        panels.append(_panel(i + 1, title, queries, x=(i % 2) * 12 if width == 12 else 0, y=(i // 2) * 8,
                             kind=kind, width=width))
    return panels


def _datasource_variable(datasource: str, *, name: str = "datasource", kind: str = "influxdb") -> dict[str, Any]:
    return {"name": name, "label": "Datasource", "type": "datasource", "query": kind,
            "current": {"text": datasource, "value": datasource}, "hide": 0, "refresh": 1,
            "regex": "", "options": []}


def _prometheus_panel(panel_id: int, title: str, queries: list[tuple[str, str]], x: int, y: int) -> dict[str, Any]:
    targets = [{"refId": chr(ord("A") + i), "datasource": PROM_DS, "expr": expr, "legendFormat": legend,
                "range": True, "editorMode": "code"} for i, (legend, expr) in enumerate(queries)]
    return {"id": panel_id, "type": "timeseries", "title": title, "datasource": PROM_DS,
            "gridPos": {"x": x, "y": y, "w": 12, "h": 8}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": _SCHEDULER_UNITS.get(title, "short")}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}}


def scheduler_row(first_id: int = 1, top: int = 0) -> list[dict[str, Any]]:
    """A row of panels on the scheduler's own metrics, starting at panel id `first_id`, grid row `top`.

    Its queries use the `$prometheus` datasource variable, so the row fits any dashboard that
    declares one (`scheduler_dashboard` does)."""
    row = {"id": first_id, "type": "row", "title": SCHEDULER_ROW, "collapsed": False, "panels": [],
           "gridPos": {"x": 0, "y": top, "w": 24, "h": 1}}
    panels = [_prometheus_panel(first_id + 1 + i, title, queries, x=(i % 2) * 12, y=top + 1 + (i // 2) * 8)
              for i, (title, queries) in enumerate(SCHEDULER_QUERIES.items())]
    return [row, *panels]


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]],
               annotations: list[dict[str, Any]], *,
               tags: tuple[str, ...] = ("pacer", "cadvisor", "influxdb")) -> dict[str, Any]:
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
               "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
               "type": "dashboard"}
    return {
        "uid": uid, "title": title, "tags": list(tags), "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables},
        "panels": panels,
    }


def app_dashboard(datasource: str = "InfluxDB") -> dict[str, Any]:
    app_var = {"name": "app_id", "label": "App", "type": "query", "datasource": DS,
               "query": APP_VARIABLE_QUERY, "definition": APP_VARIABLE_QUERY, "refresh": 2, "sort": 1,
               "multi": True, "includeAll": True, "allValue": ".*", "hide": 0, "regex": "",
               "current": {}, "options": []}
    decisions = {"name": "Autoscaler decisions", "datasource": DS, "enable": True, "hide": False,
                 "iconColor": "orange", "query": ANNOTATION_QUERY, "textColumn": "reason",
                 "tagsColumn": TAG_ACTION, "titleColumn": ""}
    return _dashboard("pacer-app", "Pacer / App", _grid(APP_QUERIES),
                      [_datasource_variable(datasource), app_var], [decisions])


def fleet_dashboard(datasource: str = "InfluxDB") -> dict[str, Any]:
    return _dashboard("pacer-fleet", "Pacer / Fleet overview",
                      _grid(FLEET_QUERIES, {"Recent scaling actions": "table"}),
                      [_datasource_variable(datasource)], [])


def scheduler_dashboard(prometheus: str = "Prometheus") -> dict[str, Any]:
    """Pacer's own metrics, for a Prometheus scraping `pacer serve` at `GET /metrics`."""
    return _dashboard("pacer-scheduler", "Pacer / Scheduler", scheduler_row(),
                      [_datasource_variable(prometheus, name="prometheus", kind="prometheus")], [],
                      tags=("pacer", "prometheus"))


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value)   # a JSON string or number is a valid YAML flow scalar


def datasource_provisioning(datasource: str = "InfluxDB", *, url: str = "http://127.0.0.1:8086",
                            database: str = DEFAULT_DATABASE, user: str | None = None) -> str:
    lines = [
        "apiVersion: 1",
        "datasources:",
        f"  - name: {_yaml_scalar(datasource)}",
        "    type: influxdb",
        "    access: proxy",
        f"    url: {_yaml_scalar(url)}",
    ]
    if user:
        lines.append(f"    user: {_yaml_scalar(user)}")
    lines += [
        "    jsonData:",
        f"      dbName: {_yaml_scalar(database)}",
        "      httpMode: GET",
        "    editable: true",
    ]
    if user:
        lines += ["    secureJsonData:", "      password: \"$PACER_INFLUXDB_PASSWORD\""]
    return "\n".join(lines) + "\n"


def dashboard_provisioning(dashboards_dir: Path) -> str:
    return "\n".join([
        "apiVersion: 1",
        "providers:",
        "  - name: \"pacer\"",
        "    folder: \"Pacer\"",
        "    type: file",
        "    disableDeletion: false",
        "    allowUiUpdates: true",
        "    options:",
        f"      path: {_yaml_scalar(str(dashboards_dir))}",
    ]) + "\n"


def write_dashboards(out_dir: Path, datasource: str = "InfluxDB", *, influxdb_url: str = "http://127.0.0.1:8086",
                     database: str = DEFAULT_DATABASE, user: str | None = None,
                     prometheus: str = "Prometheus") -> list[Path]:
    """Write the dashboards and provisioning files under out_dir; returns the paths written.

    `prometheus` is the default choice of the scheduler dashboard's datasource variable: a
    Prometheus datasource the operator already has (no provisioning file is written for it)."""
    out_dir = Path(out_dir).resolve()
    dash_dir = out_dir / "dashboards"
    ds_dir = out_dir / "provisioning" / "datasources"
    prov_dir = out_dir / "provisioning" / "dashboards"
    for d in (dash_dir, ds_dir, prov_dir):
        d.mkdir(parents=True, exist_ok=True)
    files = {
        dash_dir / "pacer-app.json": json.dumps(app_dashboard(datasource), indent=2) + "\n",
        dash_dir / "pacer-fleet.json": json.dumps(fleet_dashboard(datasource), indent=2) + "\n",
        dash_dir / "pacer-scheduler.json": json.dumps(scheduler_dashboard(prometheus), indent=2) + "\n",
        ds_dir / "pacer-influxdb.yaml": datasource_provisioning(datasource, url=influxdb_url,
                                                                database=database, user=user),
        prov_dir / "pacer.yaml": dashboard_provisioning(dash_dir),
    }
    for path, text in files.items():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return list(files)
