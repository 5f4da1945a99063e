"""One cycle of ``Autoscaler.run_once`` against an in-memory scheduler client (no HTTP).

* the decision log keeps the decisions and builds their JSON when read, the same JSON as before;
* a sink that keeps only some measurements (the embedded store of ``pacer serve``) is not
  handed decision points it would drop; any other sink gets every one;
* label policies are parsed again only when an app's labels change;
* the cycle decides exactly as ``decide_all`` over ``_inputs`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.decision import AppState, decide_all
from autoscaler.service import Autoscaler, _inputs
from metrics import EmbeddedStore, Point
from metrics.base import sink_keeps
from metrics.schema import AUTOSCALER_DECISION, NS_PER_S, decision_point
from metrics.usage import MEASUREMENT_OF_METRIC

NOW = 1_700_000_000.0


class Client:
    def __init__(self, apps: list[dict[str, Any]]) -> None:
        self.apps, self.scaled = apps, []

    async def list_apps(self, embed: str | None = "apps.tasks") -> list[dict[str, Any]]:
        return self.apps

    async def tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        return [{**task, "appId": app["id"]} for app in self.apps for task in app.get("tasks", [])
                if status is None or task.get("state") == "TASK_RUNNING"]

    async def deployments(self) -> list[dict[str, Any]]:
        return []

    async def scale_app(self, app_id: str, instances: int, *, force: bool = False) -> dict[str, Any]:
        self.scaled.append((app_id, instances))
        return {}


class RecordingSink:
    def __init__(self, measurements: frozenset[str] | None = None) -> None:
        if measurements is not None:
            self.measurements = measurements
        self.points: list[Point] = []

    def write(self, points) -> None:
        self.points.extend(points)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}


def _apps(n: int, target: str = "50") -> list[dict[str, Any]]:
    return [{"id": f"/a{a}", "instances": 2, "cpus": 0.5, "mem": 64,
             "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_TARGET": target, "AUTOSCALE_MAX": "8"},
             "tasks": [{"id": f"a{a}.t{t}", "state": "TASK_RUNNING"} for t in range(2)]} for a in range(n)]


def _store(n: int) -> EmbeddedStore:
    store = EmbeddedStore(retention=600, interval=1, measurements=frozenset(MEASUREMENT_OF_METRIC.values()))
    cores = [0.5 if a % 2 else 0.1 for a in range(n)]
    store.write([Point("cpu_usage_total", {"app_id": f"/a{a}", "task_id": f"a{a}.t{t}"},
                       {"value": int(s * cores[a] * NS_PER_S)}, int((NOW - 40 + s) * NS_PER_S))
                 for s in range(41) for a in range(n) for t in range(2)])
    return store


def _scaler(tmp_path: Path, apps, store, sink, **kw) -> Autoscaler:
    return Autoscaler(Client(apps), store, sink, tmp_path, interval=15, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


async def test_the_log_builds_the_same_json_when_read(tmp_path):
    hooked: list[dict[str, Any]] = []
    scaler = _scaler(tmp_path, _apps(4), _store(4), None, on_decision=hooked.append, max_decisions=6)
    first = await scaler.run_once()
    second = await scaler.run_once()
    made = first + second
    assert hooked == [d.to_json() for d in made]
    assert scaler.decisions() == [d.to_json() for d in made[-6:]]
    assert scaler.decisions("/a1") == [d.to_json() for d in made[-6:] if d.app_id == "/a1"]
    assert scaler.decisions(limit=2) == [d.to_json() for d in made[-2:]]
    assert any(d["action"] == "scale_up" and d["applied"] is True for d in scaler.decisions())


async def test_a_sink_that_drops_decision_points_is_not_handed_them(tmp_path):
    keeps_all, keeps_cpu = RecordingSink(), RecordingSink(frozenset({"cpu_usage_total"}))
    assert sink_keeps(keeps_all, AUTOSCALER_DECISION) and not sink_keeps(keeps_cpu, AUTOSCALER_DECISION)
    assert sink_keeps(RecordingSink(frozenset({AUTOSCALER_DECISION})), AUTOSCALER_DECISION)
    store = _store(3)
    made = await _scaler(tmp_path / "a", _apps(3), store, keeps_all).run_once()
    await _scaler(tmp_path / "b", _apps(3), store, keeps_cpu).run_once()
    assert keeps_cpu.points == []
    assert keeps_all.points == [decision_point(d.app_id, d.action, d.desired, d.current, d.observed, d.target,
                                               d.reason, int(d.time * NS_PER_S)) for d in made]
    before = len(store)
    await _scaler(tmp_path / "c", _apps(3), store, store).run_once()      # the store drops them itself
    assert len(store) == before


async def test_labels_are_parsed_again_only_when_they_change(tmp_path):
    apps = _apps(3)
    scaler = _scaler(tmp_path, apps, _store(3), None)
    await scaler.run_once()
    policies = dict(scaler.label_policies)
    await scaler.run_once()
    assert all(scaler.label_policies[a] is policies[a] for a in policies)
    apps[1]["labels"] = {**apps[1]["labels"], "AUTOSCALE_TARGET": "80"}
    apps[2]["labels"] = {**apps[2]["labels"], "AUTOSCALE_MAX": "lots"}
    del apps[0]
    await scaler.run_once()
    assert set(scaler.label_policies) == {"/a1"} and scaler.label_policies["/a1"].target == 80.0
    assert "AUTOSCALE_MAX" in scaler.label_errors["/a2"] and set(scaler._parsed_labels) == {"/a1", "/a2"}
    assert set(scaler._states) == {"/a1"}


async def test_a_cycle_decides_as_decide_all_over_the_inputs(tmp_path):
    apps, store = _apps(6), _store(6)
    states = {f"/a{a}": AppState(((NOW - 30, 2), (NOW - 15, 2 + a % 3))) for a in range(6)}
    scaler = _scaler(tmp_path, apps, store, None)
    scaler._states = dict(states)
    made = await scaler.run_once()
    usage = store.usage("cpu", NOW - 120, NOW)
    policies = scaler.label_policies
    expected = decide_all([(policies[a["id"]], _inputs(a["id"], a, policies[a["id"]], usage, None, None),
                            states[a["id"]]) for a in apps], NOW)
    assert [d.to_json() | {"applied": None} for d in made] == [d.to_json() | {"applied": None} for d, _ in expected]
    assert scaler._states == {d.app_id: s for d, s in expected}
    assert np.isfinite([d.observed for d in made]).all()
