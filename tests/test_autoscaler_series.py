"""`GET /v2/autoscaler/series`: an app's CPU, memory and instance count over time, for charts.

The shaping is pure (`autoscaler.series`): buckets, the mean over tasks of each task's mean in
% of its allocation, instance counts from the decisions; unit and property tests. Then one
autoscaled app under a real `pacer serve` with the embedded store: points appear with the
policy its labels give, and the 400s and 404 over HTTP.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.api import series_query
from autoscaler.series import MAX_POINTS, MAX_SECONDS, bucket_means, instance_counts, series_step, shape_series
from metrics.schema import BYTES_PER_MB
from metrics.usage import Series
from scheduler.auth.routes import requirement

from .support import wait_until

MB = BYTES_PER_MB


def series(*pairs: tuple[float, float]) -> Series:
    return Series(np.array([t for t, _ in pairs], dtype=float), np.array([v for _, v in pairs], dtype=float))


def decision(time: float, current: int, desired: int, applied: bool | None = None) -> dict[str, object]:
    out: dict[str, object] = {"time": time, "current": current, "desired": desired, "action": "none"}
    if applied is not None:
        out.update(action="scale_up" if desired > current else "scale_down", applied=applied)
    return out


# -- pure shaping ---------------------------------------------------------------------------

def test_cpu_is_the_mean_over_tasks_of_each_tasks_mean_in_percent_of_its_cpus() -> None:
    cpu = {"a": series((1, 0.1), (2, 0.3)), "b": series((1.5, 0.3))}    # task means 0.2 and 0.3 cores
    points = shape_series(cpu, {}, cpus=0.5, mem_mb=64, decisions=[], current=2, start=0, end=10, step=5)
    assert points == [{"time": 5.0, "cpu": 50.0, "memory": None, "instances": 2}]


def test_memory_is_in_percent_of_the_apps_mem() -> None:
    mem = {"a": series((1, 16 * MB), (7, 32 * MB))}
    points = shape_series({}, mem, cpus=1, mem_mb=64, decisions=[], current=1, start=0, end=10, step=5)
    assert [(p["time"], p["memory"]) for p in points] == [(5.0, 25.0), (10.0, 50.0)]


def test_buckets_without_samples_are_left_out_unless_a_decision_falls_in_them() -> None:
    cpu = {"a": series((1, 0.5))}
    points = shape_series(cpu, {}, cpus=1, mem_mb=0, decisions=[decision(17, 1, 1)], current=1,
                          start=0, end=30, step=5)
    assert [(p["time"], p["cpu"]) for p in points] == [(5.0, 50.0), (20.0, None)]


def test_no_allocation_gives_no_values() -> None:
    points = shape_series({"a": series((1, 1.0))}, {"a": series((1, MB))}, cpus=0, mem_mb=0, decisions=[],
                          current=1, start=0, end=10, step=10)
    assert points == []


def test_instances_follow_the_decisions_a_failed_scale_changes_nothing() -> None:
    decisions = [decision(10, 2, 4, applied=True), decision(20, 4, 4), decision(30, 4, 6, applied=False),
                 decision(40, 4, 3, applied=True)]
    times = np.array([5, 10, 15, 25, 35, 45], dtype=float)
    assert instance_counts(times, decisions, current=9).tolist() == [2, 4, 4, 4, 4, 3]
    assert instance_counts(times, [], current=9).tolist() == [9] * 6
    assert instance_counts(times, list(reversed(decisions)), current=9).tolist() == [2, 4, 4, 4, 4, 3]


def test_samples_outside_the_range_are_ignored_and_the_end_is_in_the_last_bucket() -> None:
    means = bucket_means({"a": series((-1, 9.0), (0, 1.0), (10, 3.0), (11, 9.0))}, 1.0, start=0, step=5, buckets=2)
    assert means.tolist() == [1.0, 3.0]


def test_series_step_keeps_the_point_count_bounded() -> None:
    assert series_step(60) == 1.0
    assert series_step(3600) == 12.0
    assert math.ceil(MAX_SECONDS / series_step(MAX_SECONDS)) == MAX_POINTS


samples = st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 4)), max_size=40)


@given(st.dictionaries(st.sampled_from("abcd"), samples, max_size=4), st.integers(1, MAX_SECONDS),
       st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 9), st.integers(0, 9), st.booleans()), max_size=5))
def test_points_are_ordered_inside_the_range_and_bounded(tasks, seconds, raw_decisions) -> None:
    start, end = 0.0, float(min(seconds, 1000))
    cpu = {t: series(*sorted(s)) for t, s in tasks.items()}
    decisions = [decision(t, c, d, applied=a) for t, c, d, a in raw_decisions]
    points = shape_series(cpu, cpu, cpus=2, mem_mb=1, decisions=decisions, current=3, start=start, end=end,
                          step=series_step(end))
    times = [p["time"] for p in points]
    assert times == sorted(set(times)) and all(start < t <= end for t in times)
    assert len(points) <= MAX_POINTS
    for p in points:
        assert p["cpu"] is None or 0 <= p["cpu"] <= 200.0 + 1e-9     # at most 4 cores of 2
        assert p["instances"] in {3, *(c for _, c, _, _ in raw_decisions), *(d for _, _, d, _ in raw_decisions)}


@pytest.mark.parametrize("query, message", [
    ({}, "appId is required"), ({"appId": "/"}, "appId is required"),
    ({"appId": "/a b"}, "is not an app id"), ({"appId": "/x", "seconds": "0"}, "seconds must be"),
    ({"appId": "/x", "seconds": "abc"}, "seconds must be"),
    ({"appId": "/x", "seconds": str(MAX_SECONDS + 1)}, "seconds must be")])
def test_bad_queries_are_refused_naming_the_parameter(query: dict[str, str], message: str) -> None:
    refused = series_query(query)
    assert isinstance(refused, str) and message in refused


def test_good_queries() -> None:
    assert series_query({"appId": "shop/web/"}) == ("/shop/web", 3600)
    assert series_query({"appId": "/x", "seconds": "600"}) == ("/x", 600)


def test_a_series_needs_viewer_on_the_app() -> None:
    needed = requirement("GET", "/v2/autoscaler/series", query={"appId": "/team-a/web"})
    assert (needed.kind, needed.role, needed.paths) == ("role", "viewer", ("/team-a/web",))
    assert requirement("GET", "/v2/autoscaler/series", query={}).kind != "role"      # the handler's 400


# -- against pacer serve --------------------------------------------------------------------

def test_series_of_an_autoscaled_app_under_pacer_serve(pacer_factory) -> None:
    server = pacer_factory("--agent-resources", "cpus=4,mem=4096,disk=1000",
                           "--metrics-interval", "1", "--autoscale-interval", "1")
    app = {"id": "/charted", "instances": 1, "cpus": 0.1, "mem": 32, "cmd": "exec sleep 1000",
           "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_METRIC": "cpu", "AUTOSCALE_TARGET": "50",
                      "AUTOSCALE_MIN": "1", "AUTOSCALE_MAX": "2", "AUTOSCALE_WINDOW": "5"}}
    assert server.request("POST", "/v2/apps", app)[0] == 201

    def charted() -> dict | None:
        status, body, _ = server.get("/v2/autoscaler/series?appId=/charted&seconds=600")
        assert status == 200, body
        ready = [p for p in body["points"] if p["cpu"] is not None and p["memory"] is not None]
        return body if len(ready) >= 2 else None

    body = wait_until(charted, timeout=60, what="cpu and memory points of /charted")
    assert body["appId"] == "/charted"
    policy = body["policy"]
    assert policy["appId"] == "/charted" and policy["source"] == "labels" and policy["metric"] == "cpu"
    assert policy["target"] == 50 and policy["max"] == 2
    points = [p for p in body["points"] if p["cpu"] is not None]
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    for p in points:
        assert p["instances"] == 1
        assert 0 <= p["cpu"] < 100                       # a sleeping task uses next to none of its 0.1 cpus
        assert 0 < p["memory"] < 100                     # some of its 32 MB
    decisions = server.get("/v2/autoscaler/decisions?appId=/charted")[1]["decisions"]
    assert decisions and all(d["current"] == 1 for d in decisions)

    status, body, _ = server.get("/v2/autoscaler/series?appId=/nothing-here")
    assert status == 404 and "/nothing-here" in body["message"]
    status, body, _ = server.get("/v2/autoscaler/series")
    assert status == 400 and "appId" in body["message"]
    status, body, _ = server.get("/v2/autoscaler/series?appId=/charted&seconds=-5")
    assert status == 400 and "seconds" in body["message"]
    status, body, _ = server.get("/v2/autoscaler/series?appId=/charted&seconds=60")
    assert status == 200 and body["points"] and body["policy"]["appId"] == "/charted"
