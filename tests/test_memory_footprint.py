"""The memory reductions of issue 19 keep what is computed: filtered points are the same points,
a task cgroup's directories the same paths, an app record's JSON the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from executor.cgroups import TaskCgroup
from metrics.schema import CPU_USAGE_TOTAL, INSTANCES, MEMORY_WORKING_SET, TaskSample, task_points
from pacer.heap import tune_malloc, trim_heap
from scheduler.engine.sampling import points_of
from scheduler.state.apps import AppRecord


def _sample(**extra: object) -> TaskSample:
    return TaskSample(app_id="/a", task_id="a.instance-1._app.1", agent_id="agent-1", machine="host",
                      time_ns=1_700_000_000 * 10**9, cpu_user_ns=5, cpu_system_ns=7, memory_usage_bytes=1 << 20,
                      memory_working_set_bytes=1 << 19, rx_bytes=1, tx_bytes=2, fs_usage_bytes=3, fs_limit_bytes=4,
                      cpus=0.5, mem_mb=64.0, cpu_utilization=12.5, **extra)  # type: ignore[arg-type]


def test_task_points_only_builds_the_wanted_measurements_in_order() -> None:
    every = task_points(_sample())
    for only in (frozenset({CPU_USAGE_TOTAL, MEMORY_WORKING_SET}), frozenset(), frozenset({"fs_limit", "cpu_limit"})):
        assert task_points(_sample(), only) == [p for p in every if p.measurement in only]
    assert task_points(_sample(), None) == every


def test_points_of_skips_what_the_sink_does_not_keep() -> None:
    inst = SimpleNamespace(state="TASK_RUNNING", app_id="/a", instance_id="t1", agent_id="agent-1",
                           resources={"cpus": 0.5, "mem": 64.0})
    usage = SimpleNamespace(cpu_ns=10, cpu_user_ns=4, cpu_system_ns=6, rss_bytes=1 << 20,
                            memory_usage_bytes=1 << 20, memory_working_set_bytes=1 << 19)
    record = SimpleNamespace(definition=SimpleNamespace(cpus=0.5, mem=64.0, instances=1))
    every = points_of([inst], [("/a", record)], {"t1": usage}, 10**18, "host", {})  # type: ignore[dict-item]
    only = frozenset({CPU_USAGE_TOTAL, MEMORY_WORKING_SET})
    kept = points_of([inst], [("/a", record)], {"t1": usage}, 10**18, "host", {}, only)  # type: ignore[dict-item]
    assert kept == [p for p in every if p.measurement in only]
    assert any(p.measurement == INSTANCES for p in every)


def test_task_cgroup_dirs_are_derived_from_the_shared_parents() -> None:
    parents = {"memory": "/sys/fs/cgroup/memory/pacer/h", "cpu": "/sys/fs/cgroup/cpu,cpuacct/pacer/h",
               "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pacer/h"}
    cgroup = TaskCgroup("t1", 1, parents, None)
    assert cgroup.dirs == {c: Path(p) / "t1" for c, p in parents.items()}
    assert cgroup.paths() == [Path("/sys/fs/cgroup/memory/pacer/h/t1"), Path("/sys/fs/cgroup/cpu,cpuacct/pacer/h/t1")]
    assert cgroup.file("cpu", "cpu.shares") == Path("/sys/fs/cgroup/cpu,cpuacct/pacer/h/t1/cpu.shares")
    assert cgroup.file("pids", "pids.max") is None


def test_app_record_keeps_its_json_as_the_bytes_the_api_serves() -> None:
    record = AppRecord.from_json({"id": "/a", "cmd": "sleep 1", "instances": 2, "labels": {"é": "ü"},
                                  "version": "2026-01-01T00:00:00.000Z",
                                  "versionInfo": {"lastScalingAt": "2026-01-01T00:00:00.000Z",
                                                  "lastConfigChangeAt": "2025-12-31T00:00:00.000Z"}})
    assert record.encoded == json.dumps(record.definition.to_json(), separators=(",", ":")).encode()
    assert record.json == record.definition.to_json() and record.json is not record.json
    assert (record.version, record.config_version) == ("2026-01-01T00:00:00.000Z", "2025-12-31T00:00:00.000Z")


def test_heap_tuning_and_trim_run_here() -> None:
    assert set(tune_malloc()) <= {"MALLOC_ARENA_MAX"}
    assert trim_heap() in (True, False)
