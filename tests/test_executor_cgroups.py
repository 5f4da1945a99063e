"""Per-task cgroups against the real kernel: limits, escapees, OOM, pids, re-adoption, strays.

The tests that need writable cgroups skip, saying why, where there are none (not root, no
controllers). They run on the host's own hierarchy (cgroup v2 in unified mode, else v1) and,
where the host also mounts a v2 tree beside its v1 controllers (``/sys/fs/cgroup/unified``),
the kill, removal and re-adoption tests run on that v2 tree too (it has no controllers, so
no limits there). Every process a test starts is killed by its pid afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor import (
    PROCESS_GROUP,
    TASK_FAILED,
    TASK_KILLED,
    ProcessHandle,
    ProcessRuntime,
    TaskLaunch,
    kill_process_group,
    process_alive,
    read_start_time,
)
from executor import cgroups as cgroups_module
from executor.cgroup_limits import CgroupOptions, LimitWrite, cpu_shares, cpu_weight, limit_writes, parse_keyed
from executor.cgroups import CGROUPS_V1, CGROUPS_V2, DEFAULT_ROOT, Cgroups, TaskCgroup, Unavailable, open_cgroups
from executor.docker_spec import ContainerUsage
from executor.states import TaskExit, with_memory_limit
from executor.testing import ExitRecorder

UNIFIED_BESIDE_V1 = DEFAULT_ROOT / "unified"
ESCAPE = "setsid sh -c 'echo $$ > escapee.pid; exec sleep 1000' & exec sleep 1000"
"""A task whose child leaves its session and process group, and writes its pid down."""


# -- pure: what is written ---------------------------------------------------------------

def test_v1_limits_are_memory_bytes_cpu_shares_and_pids() -> None:
    assert limit_writes(1, 32, 0.5, CgroupOptions()) == [
        LimitWrite("memory", "memory.limit_in_bytes", str(32 * 1024 * 1024)),
        LimitWrite("memory", "memory.memsw.limit_in_bytes", str(32 * 1024 * 1024), optional=True),
        LimitWrite("cpu", "cpu.shares", "512"),
        LimitWrite("pids", "pids.max", "4096"),
    ]


def test_a_hard_cpu_quota_only_on_request() -> None:
    writes = limit_writes(1, 0, 0.25, CgroupOptions(cpu_quota=True, pids_max=None))
    assert writes == [LimitWrite("cpu", "cpu.shares", "256"), LimitWrite("cpu", "cpu.cfs_period_us", "100000"),
                      LimitWrite("cpu", "cpu.cfs_quota_us", "25000")]
    assert [w.file for w in limit_writes(2, 0, 0.25, CgroupOptions(cpu_quota=True, pids_max=0))] == \
        ["cpu.weight", "cpu.max"]
    assert limit_writes(2, 0, 0.25, CgroupOptions(cpu_quota=True, pids_max=0))[1].value == "25000 100000"
    assert limit_writes(1, 0, 0.001, CgroupOptions(cpu_quota=True, pids_max=0))[-1].value == "1000"  # kernel min


def test_v2_limits_are_memory_max_without_swap_weight_and_pids() -> None:
    assert limit_writes(2, 64, 1, CgroupOptions(pids_max=100)) == [
        LimitWrite("memory", "memory.max", str(64 * 1024 * 1024)),
        LimitWrite("memory", "memory.swap.max", "0", optional=True),
        LimitWrite("memory", "memory.oom.group", "1", optional=True),
        LimitWrite("cpu", "cpu.weight", "39"),
        LimitWrite("pids", "pids.max", "100"),
    ]


@pytest.mark.parametrize(("cpus", "shares", "weight"), [
    (0.001, 2, 1), (0.1, 102, 4), (1, 1024, 39), (2, 2048, 79), (4, 4096, 157), (256, 262144, 10000)])
def test_cpu_shares_and_weight(cpus: float, shares: int, weight: int) -> None:
    assert cpu_shares(cpus) == shares
    assert cpu_weight(cpus) == weight


def test_no_mem_no_cpus_no_pids_writes_nothing() -> None:
    assert limit_writes(1, 0, 0, CgroupOptions(pids_max=0)) == []
    assert limit_writes(2, 0, 0, CgroupOptions(pids_max=None)) == []


def test_counter_files_parse() -> None:
    assert parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == \
        {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 2}
    assert parse_keyed("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n")["oom_kill"] == 1
    assert parse_keyed("garbage\nuser 12\n") == {"user": 12}


def test_an_oom_kill_under_a_limit_is_a_failure_naming_the_limit() -> None:
    crashed = TaskExit("t", TASK_FAILED, None, 9, "Command terminated with signal SIGKILL")
    finished = TaskExit("t", "TASK_FINISHED", 0, None, "Command exited with status 0")
    killed = TaskExit("t", TASK_KILLED, None, 15, "Command terminated with signal SIGTERM")
    assert with_memory_limit(crashed, oom_kills=1, mem_mb=32).message == "memory limit of 32 MB exceeded"
    assert with_memory_limit(finished, oom_kills=1, mem_mb=0.5) == TaskExit(
        "t", TASK_FAILED, 0, None, "memory limit of 0.5 MB exceeded")
    assert with_memory_limit(killed, oom_kills=1, mem_mb=32) is killed
    assert with_memory_limit(crashed, oom_kills=0, mem_mb=32) is crashed
    assert with_memory_limit(crashed, oom_kills=1, mem_mb=None) is crashed


# -- falling back ------------------------------------------------------------------------

def test_no_controllers_under_the_root_means_no_cgroups(tmp_path: Path) -> None:
    found = open_cgroups(tmp_path, "pacer/x", CgroupOptions())
    assert isinstance(found, Unavailable)
    assert "no cgroup v1 memory/cpu/pids/freezer controller" in found.reason


def test_an_unwritable_root_means_no_cgroups(tmp_path: Path) -> None:
    for controller in ("memory", "cpu", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
        (tmp_path / controller / "pacer").write_text("in the way")  # mkdir of the parent fails
    found = open_cgroups(tmp_path, "pacer/x", CgroupOptions())
    assert isinstance(found, Unavailable)
    assert found.reason.startswith(f"cannot create cgroups under {tmp_path}")


def test_a_plain_directory_is_not_taken_for_a_cgroup(tmp_path: Path) -> None:
    for controller in ("memory", "cpu", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    found = open_cgroups(tmp_path, "pacer/x", CgroupOptions())
    assert isinstance(found, Unavailable) and "is not a cgroup" in found.reason


def test_v2_without_the_controllers_means_no_cgroups(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset io hugetlb\n")
    found = open_cgroups(tmp_path, "pacer/x", CgroupOptions())
    assert isinstance(found, Unavailable) and "memory/cpu/pids" in found.reason


async def test_without_cgroups_tasks_are_process_groups(tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits)
    assert runtime.isolation == PROCESS_GROUP
    handle = await runtime.launch(TaskLaunch("plain", ["/bin/sh", "-c", "sleep 1000 & exec sleep 1000"], {},
                                             tmp_path / "plain", mem_mb=1, cpus=0.1))
    try:
        assert runtime.members("plain") == []
        usage = (await runtime.usages())["plain"]
        for _ in range(200):              # the shell forks its background sleep after exec returns
            if usage.processes == 2:
                break
            await asyncio.sleep(0.05)
            usage = (await runtime.usages())["plain"]
        assert usage.processes == 2 and not isinstance(usage, ContainerUsage)
        await runtime.kill("plain", grace_seconds=5)
        assert (await exits.wait("plain")).state == TASK_KILLED
        assert not process_alive(handle.pid, handle.start_time)
    finally:
        kill_process_group(handle.pid, handle.start_time)
        await runtime.close(kill=True)


# -- against the kernel ------------------------------------------------------------------

def _host_cgroups(options: CgroupOptions) -> Cgroups:
    found = open_cgroups(DEFAULT_ROOT, f"pacer/test-{uuid.uuid4().hex[:12]}", options)
    if isinstance(found, Unavailable):
        pytest.skip(f"no writable cgroups here: {found.reason}")
    return found


def _unified_beside_v1(options: CgroupOptions) -> Cgroups:
    if (DEFAULT_ROOT / "cgroup.controllers").exists() or not (UNIFIED_BESIDE_V1 / "cgroup.procs").exists():
        pytest.skip(f"no cgroup v2 tree beside v1 controllers at {UNIFIED_BESIDE_V1}")
    found = Cgroups.v2(UNIFIED_BESIDE_V1, f"pacer/test-{uuid.uuid4().hex[:12]}", options, controllers=())
    try:
        found.probe()
    except OSError as error:
        pytest.skip(f"the cgroup v2 tree at {UNIFIED_BESIDE_V1} is not writable: {error}")
    return found


class Cleanup:
    """Everything a test started, killed by pid afterwards, and its cgroups removed."""

    def __init__(self) -> None:
        self.hierarchies: list[Cgroups] = []
        self.handles: list[ProcessHandle] = []
        self.pids: list[tuple[int, int]] = []

    def remember(self, pid: int) -> None:
        start = read_start_time(pid)
        if start is not None:
            self.pids.append((pid, start))

    async def run(self) -> None:
        for pid, start in self.pids:
            if process_alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for handle in self.handles:
            kill_process_group(handle.pid, handle.start_time)
        for hierarchy in self.hierarchies:
            for task_id in hierarchy.task_ids():
                cgroup = hierarchy.find(task_id)
                if cgroup is not None:
                    await cgroup.destroy(5.0)
            hierarchy.remove_parent()


@pytest.fixture
async def cleanup() -> AsyncIterator[Cleanup]:
    done = Cleanup()
    yield done
    await done.run()


@pytest.fixture(params=["host", "v2-beside-v1"])
def hierarchy(request: pytest.FixtureRequest, cleanup: Cleanup) -> Cgroups:
    """The host's hierarchy and, where there is one, the v2 tree beside v1 controllers."""
    make = _host_cgroups if request.param == "host" else _unified_beside_v1
    found = make(CgroupOptions())
    cleanup.hierarchies.append(found)
    return found


@pytest.fixture
def host(cleanup: Cleanup) -> Cgroups:
    found = _host_cgroups(CgroupOptions(cpu_quota=True, pids_max=8))
    cleanup.hierarchies.append(found)
    return found


async def _launch(runtime: ProcessRuntime, cleanup: Cleanup, tmp_path: Path, task_id: str, argv: list[str],
                  mem_mb: float = 64, cpus: float = 0.5, grace: float = 5.0) -> ProcessHandle:
    handle = await runtime.launch(TaskLaunch(task_id, argv, {}, tmp_path / task_id, grace, mem_mb=mem_mb, cpus=cpus))
    cleanup.handles.append(handle)
    return handle


async def _escapee(runtime: ProcessRuntime, cleanup: Cleanup, tmp_path: Path, task_id: str) -> tuple[int, int]:
    """The escaped child's (pid, start time), once it is running outside the task's group."""
    pid_file = tmp_path / task_id / "escapee.pid"
    for _ in range(2000):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.005)
    pid = int(pid_file.read_text())
    cleanup.remember(pid)
    start = read_start_time(pid)
    assert start is not None and os.getsid(pid) == pid and os.getpgid(pid) == pid  # it left session and group
    assert pid in runtime.members(task_id)
    return pid, start


def _cgroup_dirs(hierarchy: Cgroups, task_id: str) -> list[Path]:
    return [mount / hierarchy.parent / task_id for mount in set(hierarchy.mounts.values())]


async def test_a_setsid_escapee_dies_with_its_killed_task(hierarchy: Cgroups, cleanup: Cleanup,
                                                          tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=hierarchy)
    assert runtime.isolation in (CGROUPS_V1, CGROUPS_V2)
    handle = await _launch(runtime, cleanup, tmp_path, "escaping", ["/bin/sh", "-c", ESCAPE])
    escapee = await _escapee(runtime, cleanup, tmp_path, "escaping")
    assert all(d.is_dir() for d in _cgroup_dirs(hierarchy, "escaping"))
    await runtime.kill("escaping", grace_seconds=0.2)
    assert (await exits.wait("escaping")).state == TASK_KILLED
    assert not process_alive(*escapee)
    assert not process_alive(handle.pid, handle.start_time)
    assert not any(d.exists() for d in _cgroup_dirs(hierarchy, "escaping"))
    await runtime.close()
    assert not any((mount / hierarchy.parent).exists() for mount in hierarchy.mounts.values())


async def test_an_escapee_dies_when_its_task_exits_by_itself(hierarchy: Cgroups, cleanup: Cleanup,
                                                             tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=hierarchy)
    gate = tmp_path / "go"
    await _launch(runtime, cleanup, tmp_path, "quitter",
                  ["/bin/sh", "-c", f"setsid sh -c 'echo $$ > escapee.pid; exec sleep 1000' & "
                                    f"while [ ! -e {gate} ]; do sleep 0.01; done; exit 3"])
    escapee = await _escapee(runtime, cleanup, tmp_path, "quitter")
    gate.touch()
    report = await exits.wait("quitter")
    assert (report.state, report.exit_code) == (TASK_FAILED, 3)
    assert not process_alive(*escapee)
    assert not any(d.exists() for d in _cgroup_dirs(hierarchy, "quitter"))
    await runtime.close()


async def test_a_new_runtime_adopts_the_task_and_its_cgroup(hierarchy: Cgroups, cleanup: Cleanup,
                                                            tmp_path: Path) -> None:
    first = ProcessRuntime(ExitRecorder(), cgroups=hierarchy)
    handle = await _launch(first, cleanup, tmp_path, "kept", ["/bin/sh", "-c", ESCAPE])
    escapee = await _escapee(first, cleanup, tmp_path, "kept")
    await first.close(kill=False)
    assert process_alive(*escapee) and all(d.is_dir() for d in _cgroup_dirs(hierarchy, "kept"))

    exits = ExitRecorder()
    second = ProcessRuntime(exits, cgroups=hierarchy)
    assert second.adopt(handle)
    assert escapee[0] in second.members("kept")
    assert await second.remove_strays() == {}  # an adopted task's cgroup is no stray
    await second.kill("kept", grace_seconds=0.2)
    assert (await exits.wait("kept")).state == TASK_KILLED
    assert not process_alive(*escapee)
    assert not any(d.exists() for d in _cgroup_dirs(hierarchy, "kept"))
    await second.close()


async def test_cgroups_of_tasks_not_adopted_are_strays(hierarchy: Cgroups, cleanup: Cleanup,
                                                       tmp_path: Path) -> None:
    first = ProcessRuntime(ExitRecorder(), cgroups=hierarchy)
    handle = await _launch(first, cleanup, tmp_path, "forgotten", ["/bin/sh", "-c", ESCAPE])
    escapee = await _escapee(first, cleanup, tmp_path, "forgotten")
    await first.close(kill=False)
    os.kill(handle.pid, signal.SIGKILL)  # the task died while no scheduler watched; its escapee lives on
    stray = hierarchy.find("forgotten")
    assert stray is not None
    for _ in range(2000):
        if stray.pids() == [escapee[0]]:
            break
        await asyncio.sleep(0.005)

    second = ProcessRuntime(ExitRecorder(), cgroups=hierarchy)
    assert not second.adopt(ProcessHandle("forgotten", handle.pid, handle.start_time + 1))
    assert await second.remove_strays() == {"forgotten": 1}
    assert not process_alive(*escapee)
    assert not any(d.exists() for d in _cgroup_dirs(hierarchy, "forgotten"))
    assert hierarchy.task_ids() == []
    await second.close()


async def test_v2_kill_freezes_where_the_kernel_has_no_cgroup_kill(cleanup: Cleanup, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    found = _unified_beside_v1(CgroupOptions()) if not (DEFAULT_ROOT / "cgroup.controllers").exists() \
        else _host_cgroups(CgroupOptions())
    cleanup.hierarchies.append(found)
    monkeypatch.setattr(cgroups_module, "V2_KILL_FILE", "no-such-file")
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=found)
    await _launch(runtime, cleanup, tmp_path, "frozen", ["/bin/sh", "-c", ESCAPE])
    escapee = await _escapee(runtime, cleanup, tmp_path, "frozen")
    await runtime.kill("frozen", grace_seconds=0)
    assert (await exits.wait("frozen")).state == TASK_KILLED
    assert not process_alive(*escapee)
    assert not any(d.exists() for d in _cgroup_dirs(found, "frozen"))
    await runtime.close()


async def test_limits_are_written_as_asked(host: Cgroups, cleanup: Cleanup, tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder(), cgroups=host)
    await _launch(runtime, cleanup, tmp_path, "limited", ["sleep", "1000"], mem_mb=48, cpus=0.25)
    cgroup = host.find("limited")
    assert cgroup is not None and cgroup.mem_mb == 48

    def read(controller: str, name: str) -> str:
        path = cgroup.file(controller, name)
        assert path is not None
        return path.read_text().strip()

    if host.version == 1:
        assert read("memory", "memory.limit_in_bytes") == str(48 * 1024 * 1024)
        assert read("cpu", "cpu.shares") == "256"
        assert (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")) == ("25000", "100000")
    else:
        assert read("memory", "memory.max") == str(48 * 1024 * 1024)
        assert read("cpu", "cpu.weight") == str(cpu_weight(0.25))
        assert read("cpu", "cpu.max") == "25000 100000"
    assert read("pids", "pids.max") == "8"
    await runtime.close(kill=True)


async def test_without_the_opt_in_there_is_no_cpu_quota(cleanup: Cleanup, tmp_path: Path) -> None:
    shares_only = _host_cgroups(CgroupOptions())
    cleanup.hierarchies.append(shares_only)
    runtime = ProcessRuntime(ExitRecorder(), cgroups=shares_only)
    await _launch(runtime, cleanup, tmp_path, "shared", ["sleep", "1000"], cpus=2)
    cgroup = shares_only.find("shared")
    assert cgroup is not None
    if shares_only.version == 1:
        assert (cgroup.dirs["cpu"] / "cpu.shares").read_text().strip() == "2048"
        assert (cgroup.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "-1"
    else:
        assert (cgroup.dirs["cpu"] / "cpu.weight").read_text().strip() == "79"
        assert (cgroup.dirs["cpu"] / "cpu.max").read_text().split()[0] == "max"
    assert (cgroup.dirs["pids"] / "pids.max").read_text().strip() == "4096"
    await runtime.close(kill=True)


async def test_allocating_above_mem_is_a_failure_naming_the_limit(host: Cgroups, cleanup: Cleanup,
                                                                  tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=host)
    await _launch(runtime, cleanup, tmp_path, "hungry",
                  ["python3", "-c", "b = bytearray(200*1024*1024); import time; time.sleep(30)"], mem_mb=32)
    report = await exits.wait("hungry")
    assert (report.state, report.message) == (TASK_FAILED, "memory limit of 32 MB exceeded")
    assert report.signal == signal.SIGKILL
    assert host.find("hungry") is None
    await runtime.close()


async def test_the_pids_limit_stops_a_fork_bomb(host: Cgroups, cleanup: Cleanup, tmp_path: Path) -> None:
    bomb = ("import os, time\nforked = 0\nfor _ in range(40):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
            "    forked += 1\nprint(forked, flush=True)\ntime.sleep(60)\n")
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=host)
    await _launch(runtime, cleanup, tmp_path, "bomb", ["python3", "-c", bomb])
    out = tmp_path / "bomb" / "stdout"
    for _ in range(2000):
        if out.read_text().strip():
            break
        await asyncio.sleep(0.01)
    for pid in runtime.members("bomb"):
        cleanup.remember(pid)
    assert out.read_text().strip() == "7"  # 8 processes in all: the task and 7 children
    assert len(runtime.members("bomb")) == 8
    await runtime.kill("bomb", grace_seconds=0)
    assert (await exits.wait("bomb")).state == TASK_KILLED
    assert host.find("bomb") is None
    await runtime.close()


async def test_usage_comes_from_the_cgroup_counters(host: Cgroups, cleanup: Cleanup, tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder(), cgroups=host)
    await _launch(runtime, cleanup, tmp_path, "busy",
                  ["/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; " + ESCAPE], mem_mb=32)
    await _escapee(runtime, cleanup, tmp_path, "busy")
    usage = (await runtime.usages())["busy"]
    assert isinstance(usage, ContainerUsage)
    assert usage.processes == 2  # the escapee is counted: it is in the cgroup
    assert usage.memory_limit_bytes == 32 * 1024 * 1024
    assert 0 < usage.memory_working_set_bytes <= usage.memory_usage_bytes
    assert 0 < usage.rss_bytes <= usage.memory_usage_bytes  # memory.stat's rss, read by name
    assert usage.cpu_ns > 0
    await runtime.close(kill=True)


async def test_a_failed_launch_leaves_no_cgroup(hierarchy: Cgroups, cleanup: Cleanup, tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder(), cgroups=hierarchy)
    with pytest.raises(Exception, match="no-such-program"):
        await _launch(runtime, cleanup, tmp_path, "missing", ["/nonexistent/no-such-program"])
    assert hierarchy.task_ids() == []
    await runtime.close()


def test_task_ids_that_cannot_name_a_directory_are_refused(tmp_path: Path) -> None:
    from executor import InvalidTaskSpec

    cgroups = Cgroups(1, {"memory": tmp_path}, "pacer/x", CgroupOptions())
    for bad in ("", "..", "a/b", "cgroup.procs"):
        with pytest.raises(InvalidTaskSpec):
            cgroups.create(bad, 0, 0)
    assert isinstance(cgroups.find("absent"), type(None))
    assert TaskCgroup("t", 1, {}, None).usage() is None
