"""Tasks born inside their v1 cgroups from a spawner thread (``executor.cgroup_spawn``).

The path arithmetic that finds a thread's home is pure and tested anywhere; the rest runs
against the host's v1 hierarchy and skips, saying why, where there is none writable (not root,
a unified v2 host). Every process a test starts is killed by its pid afterwards.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from executor import ProcessRuntime, TaskLaunch, kill_process_group, process_alive
from executor.cgroup_limits import CgroupOptions
from executor.cgroup_spawn import Spawner, home_dirs, usable_with
from executor.cgroups import DEFAULT_ROOT, Cgroups, Unavailable, open_cgroups
from executor.testing import ExitRecorder

# -- pure: where a thread goes home to -------------------------------------------------------

MOUNTINFO_HOST = """\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
CGROUP_HOST = "4:memory:/process_api/c7b\n1:cpu:/\n0::/\n"


def test_home_is_the_mount_plus_our_path_when_the_whole_hierarchy_is_mounted() -> None:
    mounts = {"memory": Path("/sys/fs/cgroup/memory"), "cpu": Path("/sys/fs/cgroup/cpu")}
    assert home_dirs(mounts, CGROUP_HOST, MOUNTINFO_HOST) == {
        Path("/sys/fs/cgroup/memory"): Path("/sys/fs/cgroup/memory/process_api/c7b"),
        Path("/sys/fs/cgroup/cpu"): Path("/sys/fs/cgroup/cpu"),
    }


def test_home_under_a_bind_mounted_sub_tree_is_relative_to_what_is_mounted() -> None:
    # a container without a cgroup namespace: its own cgroup is mounted as the hierarchy's root
    mountinfo = r"35 31 0:32 /docker/a\040b /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory" + "\n"
    cgroup = "4:memory:/docker/a b/inner\n"
    assert home_dirs({"memory": Path("/sys/fs/cgroup/memory")}, cgroup, mountinfo) == {
        Path("/sys/fs/cgroup/memory"): Path("/sys/fs/cgroup/memory/inner")}


def test_no_home_outside_the_mounted_sub_tree_or_without_the_controller() -> None:
    mountinfo = "35 31 0:32 /docker/a /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert home_dirs({"memory": Path("/sys/fs/cgroup/memory")}, "4:memory:/docker/ab\n", mountinfo) is None
    assert home_dirs({"memory": Path("/sys/fs/cgroup/memory")}, "1:cpu:/\n", mountinfo) is None
    assert home_dirs({"pids": Path("/sys/fs/cgroup/pids")}, "8:pids:/\n", mountinfo) is None


def test_a_pids_limit_of_one_leaves_no_room_for_the_spawning_thread() -> None:
    assert usable_with(None) and usable_with(0) and usable_with(2) and usable_with(4096)
    assert not usable_with(1)


# -- against the kernel --------------------------------------------------------------------------

@pytest.fixture
async def v1() -> AsyncIterator[Cgroups]:
    """The host's v1 hierarchy, with a spawner possible; its task cgroups removed afterwards."""
    found = open_cgroups(DEFAULT_ROOT, f"pacer/test-{uuid.uuid4().hex[:12]}", CgroupOptions())
    if isinstance(found, Unavailable):
        pytest.skip(f"no writable cgroups here: {found.reason}")
    if found.version != 1:
        pytest.skip("threads can join a cgroup on their own only on cgroup v1")
    if Spawner.open(found.mounts) is None:
        pytest.skip("this process's own v1 cgroups cannot be found for certain")
    yield found
    for task_id in found.task_ids():
        cgroup = found.find(task_id)
        if cgroup is not None:
            await cgroup.destroy(5.0)
    found.remove_parent()


def _cgroup_lines(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller -> path."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            found[controller] = path
    return found


def _own_threads_cgroups() -> dict[int, Mapping[str, str]]:
    """The cgroups of each thread of this process that is still alive when read: a worker
    thread may end between the listing and the read (a thread that is gone stays nowhere)."""
    found: dict[int, Mapping[str, str]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            text = Path(f"/proc/self/task/{tid}/cgroup").read_text()
        except FileNotFoundError:
            continue
        found[int(tid)] = _cgroup_lines(text)
    return found


async def test_a_task_is_in_its_cgroups_from_its_start_and_no_thread_of_ours_stays_there(
        v1: Cgroups, tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=v1)
    before = _cgroup_lines(Path("/proc/self/cgroup").read_text())
    # the task's very first act: read its own cgroups (exec'd directly, no shell in between)
    handle = await runtime.launch(TaskLaunch("first", ["cat", "/proc/self/cgroup"], {}, tmp_path / "first"))
    await exits.wait("first")
    await runtime.close()
    seen = _cgroup_lines((tmp_path / "first" / "stdout").read_text())
    for controller in v1.mounts:
        assert seen[controller] == f"/{v1.parent}/first", controller
    assert all(cgroups == before for cgroups in _own_threads_cgroups().values())  # every thread went home
    assert not process_alive(handle.pid, handle.start_time)


async def test_the_task_cgroup_holds_only_the_task_while_it_runs(v1: Cgroups, tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder(), cgroups=v1)
    handles = await asyncio.gather(*(
        runtime.launch(TaskLaunch(f"t{i}", ["sleep", "1000"], {}, tmp_path / f"t{i}", mem_mb=16, cpus=0.1))
        for i in range(8)))
    try:
        for handle in handles:
            for directory in {mount / v1.parent / handle.task_id for mount in v1.mounts.values()}:
                assert (directory / "cgroup.procs").read_text().split() == [str(handle.pid)]
                assert (directory / "tasks").read_text().split() == [str(handle.pid)]
    finally:
        for handle in handles:
            kill_process_group(handle.pid, handle.start_time)
        await runtime.close(kill=True)
    assert v1.task_ids() == []


async def test_a_task_under_a_pids_limit_of_one_still_runs_in_its_cgroup(v1: Cgroups, tmp_path: Path) -> None:
    limited = Cgroups(1, v1.mounts, v1.parent, CgroupOptions(pids_max=1))
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=limited)
    await runtime.launch(TaskLaunch("single", ["cat", "/proc/self/cgroup"], {}, tmp_path / "single"))
    report = await exits.wait("single")
    await runtime.close()
    assert report.exit_code == 0, report
    seen = _cgroup_lines((tmp_path / "single" / "stdout").read_text())
    assert seen["pids"] == f"/{v1.parent}/single"


async def test_a_launch_cancelled_while_it_spawns_leaves_no_process_and_no_cgroup(
        v1: Cgroups, tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder(), cgroups=v1)
    marker = f"{uuid.uuid4().int % 10**6}.5"
    launch = asyncio.get_running_loop().create_task(
        runtime.launch(TaskLaunch("cancelled", ["sleep", marker], {}, tmp_path / "cancelled")))
    await asyncio.sleep(0)  # it is on its way to the spawner thread
    launch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await launch
    assert not runtime.is_running("cancelled")
    assert not _processes_running(["sleep", marker])
    assert v1.task_ids() == []
    await runtime.close()


async def test_a_launch_the_runtime_closed_under_fails_and_leaves_nothing(v1: Cgroups, tmp_path: Path) -> None:
    from executor import RuntimeClosed

    runtime = ProcessRuntime(ExitRecorder(), cgroups=v1)
    marker = f"{uuid.uuid4().int % 10**6}.25"
    launch = asyncio.get_running_loop().create_task(
        runtime.launch(TaskLaunch("late", ["sleep", marker], {}, tmp_path / "late")))
    await asyncio.sleep(0)  # on a spawner thread now
    await runtime.close()
    with pytest.raises(RuntimeClosed):
        await launch
    assert not _processes_running(["sleep", marker])
    assert v1.task_ids() == []


async def test_a_kill_while_the_launch_spawns_ends_the_task_the_launch_starts(v1: Cgroups, tmp_path: Path) -> None:
    from executor import TaskAlreadyRunning

    exits = ExitRecorder()
    runtime = ProcessRuntime(exits, cgroups=v1)
    spec = TaskLaunch("early", ["sleep", "1000"], {}, tmp_path / "early")
    launch = asyncio.get_running_loop().create_task(runtime.launch(spec))
    await asyncio.sleep(0)  # on a spawner thread now: the task is not watched yet
    with pytest.raises(TaskAlreadyRunning):
        await runtime.launch(spec)  # the same task twice, even before the first is watched
    await runtime.kill("early", 0.1)  # returns once the task the launch started has ended
    handle = await launch
    try:
        assert not process_alive(handle.pid, handle.start_time)
        assert (await exits.wait("early")).task_id == "early"
    finally:
        kill_process_group(handle.pid, handle.start_time)
        await runtime.close(kill=True)


async def test_our_own_pid_is_never_one_of_a_tasks_processes(v1: Cgroups) -> None:
    spawner = Spawner.open(v1.mounts)
    assert spawner is not None
    cgroup = v1.create("holder", 0, 0)
    inside = threading.Event()
    leave = threading.Event()
    raw: list[str] = []

    def sit_inside() -> None:
        with spawner.inside(cgroup.dirs):
            raw.extend((cgroup.dirs["memory"] / "cgroup.procs").read_text().split())
            inside.set()
            leave.wait(10)

    try:
        running = asyncio.get_running_loop().run_in_executor(None, sit_inside)
        await asyncio.to_thread(inside.wait, 10)
        assert raw == [str(os.getpid())]  # the kernel lists us while one of our threads is there
        assert cgroup.pids() == []
        assert await cgroup.kill_all() == 0  # and nothing is signalled: we are still here
    finally:
        leave.set()
        await running
        spawner.close()
    await cgroup.destroy(5.0)
    assert not cgroup.dirs["memory"].exists()


def test_the_main_thread_never_joins_a_task_cgroup(tmp_path: Path) -> None:
    spawner = Spawner({"memory": tmp_path})
    with pytest.raises(RuntimeError, match="main thread"):
        with spawner.inside({"memory": tmp_path / "task"}):
            pass
    spawner.close()


def _processes_running(argv: list[str]) -> bool:
    wanted = "\0".join(argv) + "\0"
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/cmdline").read_text() == wanted:
                    return True
            except OSError:
                continue
    return False
