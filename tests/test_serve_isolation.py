"""Task isolation end to end: a real `pacer serve`, real task processes, real cgroups.

Escapees (`setsid`) die with their task, a task above its `mem` is a TASK_FAILED naming the
limit, `--cpu-quota`/`--pids-limit` reach the kernel, a restarted serve re-adopts tasks with
their cgroups and removes the cgroups of tasks it does not adopt. Skipped, saying why, where
cgroups are not writable; the fallback to process groups is checked in-process. Every
process started is killed by its pid afterwards, and the home's cgroups removed.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor import CgroupOptions, Unavailable
from executor.cgroups import DEFAULT_ROOT
from executor.procfs import read_stat
from scheduler.backends.local import (LocalBackend, build_agents, open_task_cgroups, remove_task_cgroups,
                                      task_cgroup_parent)

from .support import task_pids, wait_until

ESCAPING = "setsid sleep 1000 & exec sleep 1000"
RESOURCES = ("--agent-resources", "cpus=16,mem=16384,disk=10000")


@pytest.fixture
def cgroup_home(pacer_home: Path) -> Iterator[Path]:
    """The test's home, with writable cgroups; its cgroups are removed after the servers stop.

    Request it before `pacer_factory` so that its teardown runs after theirs.
    """
    found = open_task_cgroups(DEFAULT_ROOT, pacer_home.resolve(), CgroupOptions())
    if isinstance(found, Unavailable):
        pytest.skip(f"no writable cgroups here: {found.reason}")
    yield pacer_home
    for pid in task_pids(pacer_home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    remove_task_cgroups(pacer_home.resolve())


def task_dirs(home: Path) -> dict[str, list[Path]]:
    """Task id -> its cgroup directories, across every mounted hierarchy."""
    parent = task_cgroup_parent(home)
    roots = [DEFAULT_ROOT] if (DEFAULT_ROOT / "cgroup.controllers").exists() else \
        [DEFAULT_ROOT / c for c in ("memory", "cpu", "cpuacct", "pids", "freezer")]
    found: dict[str, list[Path]] = {}
    for root in roots:
        if (root / parent).is_dir():
            for entry in (root / parent).iterdir():
                if entry.is_dir():
                    found.setdefault(entry.name, []).append(entry)
    return found


def processes_of(home: Path, task_id: str) -> list[int]:
    return [pid for pid, owner in task_pids(home).items() if owner == task_id]


def leader_and_escapee(home: Path, task_id: str) -> tuple[int, int]:
    """The task's process and the child that left its session (whose parent it is)."""
    first, second = processes_of(home, task_id)
    stat = read_stat(second)
    leader, escapee = (first, second) if stat is not None and stat.ppid == first else (second, first)
    assert os.getsid(escapee) == escapee and os.getpgid(escapee) != os.getpgid(leader)  # it escaped
    return leader, escapee


def post_escaping(server, app_id: str, instances: int) -> list[dict]:
    app = {"id": app_id, "cmd": ESCAPING, "instances": instances, "cpus": 0.05, "mem": 16,
           "taskKillGracePeriodSeconds": 1}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    tasks = wait_until(lambda: len(server.running(app_id)) == instances and server.running(app_id),
                       what=f"{instances} running tasks of {app_id}")
    wait_until(lambda: all(len(processes_of(server.home, t["id"])) == 2 for t in tasks),
               what="each task and its escapee")
    for task in tasks:
        leader_and_escapee(server.home, task["id"])
    return tasks


def test_escapees_die_with_a_killed_task_and_with_their_deleted_app(cgroup_home: Path, pacer_factory) -> None:
    server = pacer_factory(*RESOURCES)
    agents = server.get("/v2/agents")[1]["agents"]
    assert {a["isolation"] for a in agents} <= {"cgroups-v1", "cgroups-v2"}
    tasks = post_escaping(server, "/escapes", 2)
    assert set(task_dirs(cgroup_home)) == {t["id"] for t in tasks}

    victim = tasks[0]["id"]
    assert server.request("DELETE", f"/v2/apps/escapes/tasks/{victim}")[0] == 200
    wait_until(lambda: not processes_of(cgroup_home, victim), timeout=15, what="the killed task's escapee to die")
    wait_until(lambda: victim not in task_dirs(cgroup_home), timeout=15, what="its cgroup to be removed")

    assert server.request("DELETE", "/v2/apps/escapes")[0] == 200
    wait_until(lambda: not task_pids(cgroup_home), timeout=20, what="every process, escapees included, to stop")
    wait_until(lambda: not task_dirs(cgroup_home), timeout=15, what="every task cgroup to be removed")


def test_a_task_above_its_mem_fails_naming_the_limit(cgroup_home: Path, pacer_factory) -> None:
    server = pacer_factory(*RESOURCES)
    app = {"id": "/hungry", "instances": 1, "cpus": 0.1, "mem": 32, "backoffSeconds": 60,
           "cmd": 'exec python3 -c "b = bytearray(200*1024*1024); import time; time.sleep(30)"'}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    failure = wait_until(lambda: server.get("/v2/apps/hungry")[1]["app"].get("lastTaskFailure"), timeout=30,
                         what="the task to fail")
    assert failure["state"] == "TASK_FAILED"
    assert failure["message"] == "memory limit of 32 MB exceeded"
    wait_until(lambda: not task_dirs(cgroup_home), timeout=15, what="the failed task's cgroup to be removed")
    assert server.request("DELETE", "/v2/apps/hungry")[0] == 200


def test_cpu_quota_and_pids_limit_flags_reach_the_kernel(cgroup_home: Path, pacer_factory) -> None:
    server = pacer_factory(*RESOURCES, "--cpu-quota", "--pids-limit", "64")
    app = {"id": "/capped", "cmd": "exec sleep 1000", "instances": 1, "cpus": 0.25, "mem": 16}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    [task] = wait_until(lambda: server.running("/capped"), what="the task to run")
    files = {d.parents[2].name: d for d in task_dirs(cgroup_home)[task["id"]]}  # controller -> directory
    if (DEFAULT_ROOT / "cgroup.controllers").exists():
        [directory] = task_dirs(cgroup_home)[task["id"]]
        assert (directory / "cpu.max").read_text().split() == ["25000", "100000"]
        assert (directory / "pids.max").read_text().strip() == "64"
        assert (directory / "memory.max").read_text().strip() == str(16 * 1024 * 1024)
    else:
        assert (files["cpu"] / "cpu.shares").read_text().strip() == "256"
        assert (files["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (files["pids"] / "pids.max").read_text().strip() == "64"
        assert (files["memory"] / "memory.limit_in_bytes").read_text().strip() == str(16 * 1024 * 1024)
    assert server.request("DELETE", "/v2/apps/capped")[0] == 200
    wait_until(lambda: not task_dirs(cgroup_home), timeout=15, what="the cgroup to be removed")


def test_a_restarted_serve_readopts_tasks_and_still_kills_their_escapees(cgroup_home: Path, pacer_factory) -> None:
    first = pacer_factory(*RESOURCES)
    tasks = post_escaping(first, "/durable", 2)
    before = task_pids(cgroup_home)
    first.stop(signal.SIGKILL)
    assert task_pids(cgroup_home) == before  # tasks and escapees outlive the scheduler

    second = pacer_factory(*RESOURCES)
    wait_until(lambda: {t["id"] for t in second.running("/durable")} == {t["id"] for t in tasks},
               what="the same tasks re-adopted")
    assert task_pids(cgroup_home) == before  # a live task's escapee is not a stray
    assert second.request("DELETE", "/v2/apps/durable")[0] == 200
    wait_until(lambda: not task_pids(cgroup_home), timeout=20, what="tasks and escapees to stop")
    wait_until(lambda: not task_dirs(cgroup_home), timeout=15, what="their cgroups to be removed")


def test_a_restarted_serve_removes_the_cgroups_of_tasks_that_died_meanwhile(cgroup_home: Path,
                                                                            pacer_factory) -> None:
    first = pacer_factory(*RESOURCES)
    [task] = post_escaping(first, "/orphaned", 1)
    first.stop(signal.SIGKILL)
    leader, escapee = leader_and_escapee(cgroup_home, task["id"])
    os.kill(leader, signal.SIGKILL)  # the task dies while no scheduler watches; its escapee lives on
    wait_until(lambda: processes_of(cgroup_home, task["id"]) == [escapee], what="only the escapee left")

    second = pacer_factory(*RESOURCES)
    wait_until(lambda: not processes_of(cgroup_home, task["id"]), timeout=15, what="the stray escapee killed")
    wait_until(lambda: task["id"] not in task_dirs(cgroup_home), timeout=15, what="the stray cgroup removed")
    assert second.request("DELETE", "/v2/apps/orphaned")[0] == 200


def test_without_cgroups_the_backend_says_so_once_and_uses_process_groups(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agents = build_agents(2, {"cpus": 2, "mem": 1024, "disk": 100}, {})
    with caplog.at_level(logging.WARNING, logger="scheduler.backends.local"):
        backend = LocalBackend(agents, tmp_path / "home", lambda update: None, docker_host=None,
                               cgroup_root=tmp_path / "no-cgroups-here")
    assert backend.isolation == "process-group" == backend.runtime.isolation
    assert [a["isolation"] for a in backend.describe()] == ["process-group"] * 2
    [warning] = [r for r in caplog.records if "process groups only" in r.getMessage()]
    assert "app mem and cpus are not enforced" in warning.getMessage()
    assert str(tmp_path / "no-cgroups-here") in warning.getMessage()


def test_info_names_the_task_isolation(pacer) -> None:
    features = pacer.get("/v2/info")[1]["marathon_config"]["features"]
    assert any(f in features for f in ("task_isolation:cgroups-v1", "task_isolation:cgroups-v2",
                                       "task_isolation:process-group")), features
