"""The scheduler dashboard: its PromQL names only metrics a real `GET /metrics` exposes, and every
metric Pacer exposes is graphed somewhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metrics.dashboards import SCHEDULER_QUERIES, SCHEDULER_ROW, scheduler_dashboard, write_dashboards

from .support import InProcessApi, http, kill_task_processes

METRIC_NAME = re.compile(r"\b(?:pacer|process)_[a-z_]+")


def queried_names() -> set[str]:
    return {name for queries in SCHEDULER_QUERIES.values() for _, expr in queries
            for name in METRIC_NAME.findall(expr)}


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[set[str], set[str]]]:
    """(sample names, family names) of a real scheduler's scrape, after one API request."""
    home = tmp_path / "home"
    server = InProcessApi(home).start()
    try:
        assert http("GET", server.url, "/v2/apps")[0] == 200
        status, body, _ = http("GET", server.url, "/metrics")
        assert status == 200
        families = list(text_string_to_metric_families(body))
        yield {s.name for f in families for s in f.samples}, {f.name for f in families}
    finally:
        server.stop()
        kill_task_processes(home)


def test_every_queried_metric_is_exposed(scraped: tuple[set[str], set[str]]) -> None:
    samples, _ = scraped
    missing = queried_names() - samples
    assert missing == set(), f"the dashboard queries metrics /metrics does not expose: {sorted(missing)}"


def test_every_pacer_metric_is_graphed(scraped: tuple[set[str], set[str]]) -> None:
    _, families = scraped
    queried = " ".join(queried_names())
    # `_created` (a counter's start time) comes as a family of its own in the text format
    ungraphed = {name for name in families
                 if name.startswith("pacer_") and not name.endswith("_created") and name not in queried}
    assert ungraphed == set()


def test_scheduler_dashboard_layout_and_datasource(tmp_path: Path) -> None:
    write_dashboards(tmp_path, prometheus="Prom")
    dash = json.loads((tmp_path / "dashboards/pacer-scheduler.json").read_text())
    assert dash == json.loads(json.dumps(scheduler_dashboard("Prom")))
    variable = dash["templating"]["list"][0]
    assert (variable["name"], variable["type"], variable["query"]) == ("prometheus", "datasource", "prometheus")
    assert variable["current"]["value"] == "Prom"
    row, *panels = dash["panels"]
    assert row["type"] == "row" and row["title"] == SCHEDULER_ROW and row["gridPos"]["y"] == 0
    assert [p["title"] for p in panels] == list(SCHEDULER_QUERIES)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine and g["x"] + g["w"] <= 24, panel["title"]
        cells |= mine
    for panel in panels:
        assert panel["datasource"]["uid"] == "${prometheus}"
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${prometheus}" and METRIC_NAME.search(expr), expr
            assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), expr
            assert "$__rate_interval" in expr or "rate(" not in expr, expr
    latency = next(p for p in panels if p["title"] == "API latency p99 by route")
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    assert "route" in latency["targets"][0]["expr"] and "_bucket" in latency["targets"][0]["expr"]
