"""Ring buffers, the embedded store, the usage arithmetic, the sample schema, options and flags."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import EmbeddedStore, MetricsConfigError, MetricsOptions, open_metrics
from metrics.cli import add_arguments, options_from_args
from metrics.ring import RingSlab
from metrics.schema import (
    CADVISOR_MEASUREMENTS,
    NS_PER_S,
    Point,
    TaskSample,
    cpu_utilization,
    decision_point,
    instances_point,
    task_points,
)
from metrics.usage import counter_rates, utilization_percent

S = NS_PER_S


class OneRing:
    """One row of a RingSlab, read the way a single ring buffer is."""

    def __init__(self, capacity: int) -> None:
        self.slab = RingSlab(capacity)
        self.row = self.slab.add_row()
        self.capacity = capacity

    def append(self, time_ns: int, value: float) -> None:
        self.slab.append(self.row, time_ns, value)

    def arrays(self):
        return self.slab.arrays(self.row)

    def window(self, start_ns: int, end_ns: int):
        return self.slab.window(self.row, start_ns, end_ns)

    def __len__(self) -> int:
        return self.slab.count(self.row)


def test_ring_keeps_the_newest_capacity_samples_in_order():
    ring = OneRing(4)
    for i in range(10):
        ring.append(i * S, float(i))
    times, values = ring.arrays()
    assert len(ring) == 4 and ring.slab.capacity == 4
    assert list(values) == [6, 7, 8, 9] and list(times) == [6 * S, 7 * S, 8 * S, 9 * S]
    assert list(ring.window(7 * S, 8 * S)[1]) == [7, 8]
    assert len(ring.window(20 * S, 30 * S)[0]) == 0


def test_ring_sorts_out_of_order_appends():
    ring = OneRing(5)
    for t in (3, 1, 2):
        ring.append(t * S, float(t))
    assert list(ring.arrays()[1]) == [1, 2, 3]
    assert list(ring.window(2 * S, 3 * S)[1]) == [2, 3]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 100), max_size=40), st.integers(0, 100), st.integers(0, 100))
def test_ring_window_matches_a_plain_filter(capacity, times, a, b):
    ring = OneRing(capacity)
    for i, t in enumerate(times):
        ring.append(t, float(i))
    kept = sorted(list(enumerate(times))[-capacity:], key=lambda p: p[1]) if times else []
    lo, hi = min(a, b), max(a, b)
    expected = [(t, float(i)) for i, t in kept if lo <= t <= hi]
    got_t, got_v = ring.window(lo, hi)
    assert list(zip(got_t.tolist(), got_v.tolist())) == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.lists(st.integers(0, 10**6), max_size=60))
def test_ring_is_bounded_and_holds_the_last_appends(capacity, times):
    ring = OneRing(capacity)
    for i, t in enumerate(sorted(times)):
        ring.append(t, float(i))
    assert len(ring) == min(capacity, len(times))
    _, values = ring.arrays()
    assert list(values) == [float(i) for i in range(len(times))][-capacity:] if times else list(values) == []


def _cpu(app, task, t, ns):
    return Point("cpu_usage_total", {"app_id": app, "task_id": task}, {"value": ns}, int(t * S))


def test_store_cpu_usage_is_a_rate_in_cores_per_task():
    store = EmbeddedStore(retention=60, interval=1)
    store.write([_cpu("/a", "t1", t, int(t * 0.5 * S)) for t in range(10)])
    store.write([_cpu("/a", "t2", t, int(t * 2 * S)) for t in range(10)])
    store.write([_cpu("/b", "t3", t, 0) for t in range(10)])
    usage = store.usage("cpu", 3, 9, ["/a"])
    assert set(usage) == {"/a"}
    assert np.allclose(usage["/a"]["t1"].values, 0.5) and np.allclose(usage["/a"]["t2"].values, 2.0)
    assert list(usage["/a"]["t1"].times) == [4, 5, 6, 7, 8, 9]   # rates stamped at the later sample
    assert set(store.usage("cpu", 0, 9)) == {"/a", "/b"}


def test_a_task_without_samples_in_the_window_is_empty_wherever_its_row_falls():
    # a task started a moment ago (an app scaling 2 -> 3) has a row but nothing in the window
    store = EmbeddedStore(retention=60, interval=1)
    store.write([_cpu("/a", "t1", t, int(t * 0.5 * S)) for t in range(10)])
    store.write([_cpu("/a", "old", t, int(t * S)) for t in range(2)])        # the last row: empty at 5..9
    usage = store.usage("cpu", 5, 9, ["/a"])
    assert np.allclose(usage["/a"]["t1"].values, 0.5) and len(usage["/a"]["t1"].values) == 4
    assert "old" not in usage["/a"] and set(usage["/a"]) == {"t1"}      # no samples: absent
    store.write([_cpu("/b", "t3", t, int(t * S)) for t in range(10)])         # an empty row between two
    both = store.usage("cpu", 5, 9, ["/a", "/b"])
    assert "old" not in both["/a"] and np.allclose(both["/b"]["t3"].values, 1.0)
    assert not dict(store.usage("cpu", 50, 60, ["/a"]).get("/a", {}))         # every row empty


def test_store_memory_and_string_fields():
    store = EmbeddedStore()
    store.write([Point("memory_working_set", {"app_id": "/a", "task_id": "t"}, {"value": 1024}, 5 * S),
                 Point("autoscaler_decision", {"app_id": "/a"}, {"value": "text"}, 5 * S)])
    assert store.dropped == 1
    assert list(store.usage("mem", 0, 10)["/a"]["t"].values) == [1024.0]


def test_store_bounds_series_length_count_and_age():
    store = EmbeddedStore(retention=10, interval=1, max_series=3)
    assert store.capacity == 11
    store.write([_cpu("/a", "t", t, t) for t in range(100)])
    key_times = store.series("cpu_usage_total", 0, 1000)[0][1]
    assert len(key_times) == 11
    for i in range(5):
        store.write([_cpu("/a", f"x{i}", 100, 1)])
    assert len(store) == 3 and store.evicted >= 3          # least recently written went first
    assert store.usage("cpu", 0, 1000).get("/a", {}).get("t") is None
    evicted = store.evicted
    store.write([_cpu("/z", "late", 10_000, 1)])            # everything else is now > retention old
    assert len(store) == 1 and store.evicted == evicted + 3   # pruned by the write itself
    assert store.prune() == 0


def test_counter_rates_skip_resets_and_zero_intervals():
    times = np.array([0, 1, 2, 2, 3, 4]) * S
    counter = np.array([0, 1e9, 2e9, 2e9, 0.5e9, 1.5e9])
    t, r = counter_rates(times, counter)
    assert list(t) == [1, 2, 4] and np.allclose(r, [1e9, 1e9, 1e9])
    assert len(counter_rates(np.array([1]), np.array([1]))[0]) == 0


def test_utilization_percent_of_the_allocation():
    store = EmbeddedStore()
    store.write([_cpu("/a", "t", t, int(t * 0.25 * S)) for t in range(3)])
    util = utilization_percent("cpu", store.usage("cpu", 0, 3)["/a"], cpus=0.5, mem_mb=64)
    assert np.allclose(util["t"].values, 50.0)
    store.write([Point("memory_working_set", {"app_id": "/a", "task_id": "t"}, {"value": 32 * 2**20}, S)])
    util = utilization_percent("mem", store.usage("mem", 0, 3)["/a"], cpus=0.5, mem_mb=64)
    assert np.allclose(util["t"].values, 50.0)
    assert utilization_percent("cpu", {}, cpus=0, mem_mb=0) == {}


def test_task_points_follow_the_cadvisor_schema():
    sample = TaskSample(app_id="/web", task_id="web.1", agent_id="agent-1", machine="host", time_ns=7,
                        cpu_user_ns=30, cpu_system_ns=12, memory_usage_bytes=4096, cpus=0.5, mem_mb=1,
                        cpu_utilization=42.0, rx_bytes=1, tx_bytes=2, fs_usage_bytes=3, fs_limit_bytes=4)
    points = {p.measurement: p for p in task_points(sample)}
    assert set(CADVISOR_MEASUREMENTS) <= set(points)
    assert points["cpu_usage_total"].fields == {"value": 42}
    assert points["cpu_usage_user"].value == 30 and points["cpu_usage_system"].value == 12
    assert points["memory_working_set"].value == 4096            # defaults to usage when not measured
    for p in points.values():
        assert p.tags["container_name"] == "web.1" and p.tags["machine"] == "host"
        assert p.tags["app_id"] == "/web" and p.tags["task_id"] == "web.1" and p.tags["agent_id"] == "agent-1"
        assert p.time_ns == 7
    for m in CADVISOR_MEASUREMENTS + ("memory_limit",):
        assert isinstance(points[m].value, int) and not isinstance(points[m].value, bool), m
    assert points["fs_usage"].tags["type"] == "usage" and points["fs_limit"].tags["type"] == "limit"
    assert points["memory_limit"].value == 2**20 and points["cpu_utilization"].value == 42.0
    assert points["memory_utilization"].value == pytest.approx(100 * 4096 / 2**20)


def test_unmeasured_counters_are_not_written_as_zero():
    sample = TaskSample(app_id="/a", task_id="t", agent_id="g", machine="m", time_ns=1, cpu_user_ns=1,
                        cpu_system_ns=1, memory_usage_bytes=1)
    names = {p.measurement for p in task_points(sample)}
    assert not names & {"rx_bytes", "tx_bytes", "fs_usage", "fs_limit", "cpu_utilization", "memory_limit"}


def test_cpu_utilization_and_other_points():
    assert cpu_utilization(0, 0, S // 2, S, 0.5) == pytest.approx(100.0)
    assert cpu_utilization(10, 5, 5, 6, 1) is None and cpu_utilization(0, 5, 5, 5, 1) is None
    assert instances_point("/a", 3, 2, 9).fields == {"value": 3, "running": 2}
    d = decision_point("/a", "scale_up", 4, 2, 91.5, 50.0, "busy", 9)
    assert d.tags == {"app_id": "/a", "action": "scale_up"}
    assert d.fields == {"value": 4, "current": 2, "reason": "busy", "observed": 91.5, "target": 50.0}


# -- options and flags -----------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_default_to_the_embedded_store():
    options = options_from_args(_args())
    assert options == MetricsOptions() and options.kind == "embedded" and options.interval == 10.0
    backend = open_metrics(options)
    assert backend.kind == "embedded" and backend.sink is backend.source


def test_flags_for_influxdb_v1_and_v2(monkeypatch):
    options = options_from_args(_args("--metrics-interval", "2.5", "--influxdb-url", "http://127.0.0.1:8086",
                                      "--influxdb-database", "m", "--influxdb-user", "u",
                                      "--influxdb-password", "p"))
    assert (options.kind, options.interval, options.database, options.influxdb_password) == ("influxdb-v1", 2.5, "m", "p")
    assert open_metrics(options).kind == "influxdb-v1"
    assert options_from_args(_args("--influxdb-url", "http://h:1")).database == "cadvisor"
    monkeypatch.setenv("PACER_INFLUXDB_TOKEN", "secret")
    options = options_from_args(_args("--influxdb-v2-url", "http://h:1", "--influxdb-org", "o",
                                      "--influxdb-bucket", "b"))
    assert options.kind == "influxdb-v2" and options.influxdb_v2_token == "secret"
    assert open_metrics(options).kind == "influxdb-v2"
    assert options_from_args(_args()).kind == "embedded"   # the env token alone selects nothing


@pytest.mark.parametrize("argv, flag", [
    (["--influxdb-url", "http://a:1", "--influxdb-v2-url", "http://b:2"], "--influxdb-v2-url"),
    (["--influxdb-v2-url", "http://b:2", "--influxdb-org", "o"], "--influxdb-token"),
    (["--influxdb-database", "x"], "--influxdb-url"),
    (["--influxdb-url", "127.0.0.1:8086"], "--influxdb-url"),
    (["--influxdb-bucket", "b"], "--influxdb-v2-url"),
])
def test_contradictory_flags_name_the_flag(argv, flag):
    with pytest.raises(MetricsConfigError, match=flag):
        options_from_args(_args(*argv))


def test_bad_interval_is_a_usage_error():
    with pytest.raises(SystemExit):
        _args("--metrics-interval", "0")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["cpu", "mem"]),
       st.lists(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10**12)), max_size=8), max_size=6))
def test_batched_usage_equals_row_by_row(metric, tasks):
    from metrics.usage import build_usage, metric_series
    rows = [("/a" if i % 2 else "/b", f"t{i}", np.array([t for t, _ in pts], dtype=np.int64) * S,
             np.array([v for _, v in pts], dtype=float)) for i, pts in enumerate(tasks)]
    batched = build_usage(metric, rows)
    for app_id, task_id, times, values in rows:
        order = np.argsort(times, kind="stable")
        expected = metric_series(metric, times[order], values[order])
        got = batched.get(app_id, {}).get(task_id)
        if not len(expected):
            assert got is None
        else:
            assert np.array_equal(got.times, expected.times) and np.allclose(got.values, expected.values)


def test_store_can_keep_only_the_measurements_it_is_asked_for():
    store = EmbeddedStore(retention=60, interval=1, measurements=frozenset({"cpu_usage_total"}))
    store.write([_cpu("/a", "t1", 1, 10**9),
                 Point("memory_usage", {"app_id": "/a", "task_id": "t1"}, {"value": 5}, int(1 * S))])
    assert len(store) == 1
    assert store.series("memory_usage", 0, 10) == []


def test_a_tasks_series_share_one_tags_tuple_and_stay_apart_from_other_tasks():
    """The sampler gives all points of one task the same tags mapping; the store keeps one
    sorted tuple of them for all that task's series, and a different mapping is never mixed up."""
    store = EmbeddedStore(retention=60, interval=1)
    first = task_points(TaskSample(app_id="/a", task_id="t1", agent_id="ag", machine="m", time_ns=S,
                                   cpu_user_ns=1, cpu_system_ns=1, memory_usage_bytes=5))
    second = task_points(TaskSample(app_id="/a", task_id="t2", agent_id="ag", machine="m", time_ns=S,
                                    cpu_user_ns=2, cpu_system_ns=2, memory_usage_bytes=6))
    store.write(first + second)
    series = {(key.measurement, key.tag("task_id")): key for key, _, _ in
              store.series("cpu_usage_total", 0, 2) + store.series("memory_usage", 0, 2)}
    assert series["cpu_usage_total", "t1"].tags is series["memory_usage", "t1"].tags
    assert series["cpu_usage_total", "t2"].tags == tuple(sorted(second[0].tags.items()))
    assert [v.tolist() for _, _, v in store.series("memory_usage", 0, 2, {"task_id": "t2"})] == [[6.0]]
