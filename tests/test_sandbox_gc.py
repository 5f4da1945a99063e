"""Sandboxes of ended tasks are removed after `--sandbox-gc-delay` (sooner on a full disk), the
newest of each app and its newest failure are kept, and live or re-adopted tasks' are never
touched. The choice is pure and table-tested; the rest runs against real directories, and end
to end under `pacer serve` with real processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from executor.sandboxes import (END_MARKER, DiskPolicy, DiskSpace, Sandbox, app_of, choose_removals, gc_delay,
                                mark_ended, remove, scan)
from scheduler.backends.agents import AgentDisk

from .support import PacerServer, wait_until

MB = 1024 * 1024
RESOURCES = ("--agent-resources", "cpus=8,mem=8192,disk=1000")


def box(task_id: str, app: str, ended_at: float, failed: bool = False) -> Sandbox:
    return Sandbox(task_id, app, ended_at, failed)


# -- the pure rules -------------------------------------------------------------------------

def test_the_newest_per_app_stay_and_older_ones_go_after_the_delay() -> None:
    now = 10_000.0
    boxes = [box(f"a{i}", "a", now - 100 * i) for i in range(6)] + [box("b0", "b", now - 5000)]
    assert choose_removals(boxes, now, delay=250, keep=2) == ["a5", "a4", "a3"]   # oldest first
    assert choose_removals(boxes, now, delay=350, keep=2) == ["a5", "a4"]         # a3 is not old enough
    assert choose_removals(boxes, now, delay=0, keep=0) == ["b0", "a5", "a4", "a3", "a2", "a1", "a0"]


def test_the_newest_failure_of_an_app_stays_however_many_ended_after_it() -> None:
    now = 10_000.0
    boxes = [box("killed-new", "a", now - 10), box("killed-mid", "a", now - 20),
             box("failed-new", "a", now - 30, failed=True), box("failed-old", "a", now - 40, failed=True)]
    assert choose_removals(boxes, now, delay=0, keep=1) == ["failed-old", "killed-mid"]


def test_the_delay_shrinks_as_the_disk_fills_and_vanishes_under_the_watermark() -> None:
    policy = DiskPolicy(gc_delay=1000, min_free_mb=64)
    assert gc_delay(policy, DiskSpace(total=100_000 * MB, free=100_000 * MB)) == pytest.approx(900)
    assert gc_delay(policy, DiskSpace(total=100_000 * MB, free=50_000 * MB)) == pytest.approx(400)
    assert gc_delay(policy, DiskSpace(total=100_000 * MB, free=5_000 * MB)) == 0
    assert gc_delay(policy, DiskSpace(total=200 * MB, free=60 * MB)) == 0              # under the watermark
    reserved = DiskSpace(total=100_000 * MB, free=70_000 * MB, used=10_000 * MB)      # root's reserve is not used
    assert gc_delay(policy, reserved) == pytest.approx(800)


def test_app_of_reads_marathon_task_ids() -> None:
    assert app_of("team_web.instance-6f8a7c2e-0000-4000-8000-000000000000._app.1") == "team_web"
    assert app_of("web.6f8a7c2e-0000-4000-8000-000000000000") == "web"


# -- real directories -----------------------------------------------------------------------

def make_sandbox(root: Path, task_id: str, age: float, state: str | None) -> Path:
    path = root / task_id
    path.mkdir(parents=True)
    (path / "stdout").write_text("out\n")
    if state is not None:
        mark_ended(path, state)
    then = time.time() - age
    for item in (path / "stdout", path / END_MARKER, path):
        if item.exists():
            os.utime(item, (then, then))
    return path


def test_scan_skips_live_tasks_and_symlinks_and_reads_the_end_marker(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    make_sandbox(root, "a.instance-1", 50, "TASK_FAILED")
    make_sandbox(root, "a.instance-2", 40, "TASK_KILLED")
    make_sandbox(root, "a.instance-3", 30, None)
    make_sandbox(root, "a.instance-live", 500, None)
    (tmp_path / "elsewhere").mkdir()
    (root / "a.instance-link").symlink_to(tmp_path / "elsewhere")
    found = {s.task_id: s for s in scan(root, live={"a.instance-live"})}
    assert set(found) == {"a.instance-1", "a.instance-2", "a.instance-3"}
    assert found["a.instance-1"].failed and not found["a.instance-2"].failed and not found["a.instance-3"].failed
    assert time.time() - found["a.instance-1"].ended_at == pytest.approx(50, abs=5)
    assert remove(root, ["a.instance-1", "a.instance-link"]) == ["a.instance-1"]
    assert (tmp_path / "elsewhere").is_dir() and not (root / "a.instance-1").exists()


async def test_a_full_disk_collects_at_once_what_the_delay_would_keep(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = home / "sandboxes"
    for i in range(5):
        make_sandbox(root, f"web.instance-{i}", 60 - i, "TASK_KILLED")
    make_sandbox(root, "web.instance-live", 600, None)
    space = {"free": 900 * MB}
    disk = AgentDisk(home, root, DiskPolicy(gc_delay=3600, keep_per_app=2, min_free_mb=64),
                     usage=lambda path: (1000 * MB, 1000 * MB - space["free"], space["free"]))
    live = lambda: {"web.instance-live"}  # noqa: E731
    assert await disk.collect(live) == []                      # 10 % used: an hour's delay
    space["free"] = 30 * MB                                    # 97 % used, under the watermark too
    assert await disk.collect(live) == ["web.instance-0", "web.instance-1", "web.instance-2"]
    assert sorted(p.name for p in root.iterdir()) == ["web.instance-3", "web.instance-4", "web.instance-live"]


# -- end to end -----------------------------------------------------------------------------

def sandboxes_of(home: Path, prefix: str) -> set[str]:
    root = home / "sandboxes"
    return {p.name for p in root.iterdir() if p.name.startswith(prefix + ".")} if root.exists() else set()


def running_ids(server: PacerServer, app_id: str, count: int) -> list[str]:
    tasks = wait_until(lambda: len(server.running(app_id)) == count and server.running(app_id), timeout=30,
                       what=f"{count} running tasks of {app_id}")
    return [t["id"] for t in tasks]


def kill_tasks(server: PacerServer, ids: list[str], scale: bool) -> None:
    status, body, _ = server.request("POST", f"/v2/tasks/delete?scale={'true' if scale else 'false'}", {"ids": ids})
    assert status == 200, body


def test_ended_sandboxes_go_after_the_delay_keeping_the_newest_and_the_last_failure(
        pacer_factory, pacer_home: Path, tmp_path: Path) -> None:
    flags = (*RESOURCES, "--sandbox-gc-delay", "14", "--disk-watch-interval", "0.3", "--sandbox-gc-keep", "2")
    server = pacer_factory(*flags)
    marker = tmp_path / "failed-once"
    apps = [{"id": "/live", "cmd": "sleep 1000", "instances": 1, "cpus": 0.05, "mem": 16},
            {"id": "/gc", "cmd": "sleep 1000", "instances": 5, "cpus": 0.05, "mem": 16},
            {"id": "/flaky", "cmd": f"test -e {marker} || {{ touch {marker}; exit 3; }}; exec sleep 1000",
             "instances": 1, "cpus": 0.05, "mem": 16, "backoffSeconds": 1}]
    for app in apps:
        assert server.request("POST", "/v2/apps", app)[0] == 201
    live = running_ids(server, "/live", 1)
    gc = running_ids(server, "/gc", 5)
    failure = wait_until(lambda: server.get("/v2/apps/flaky")[1]["app"].get("lastTaskFailure"), timeout=30,
                         what="the first /flaky task to fail")["taskId"]
    wait_until(lambda: [t for t in running_ids(server, "/flaky", 1) if t != failure], timeout=30,
               what="its replacement running")
    assert failure in sandboxes_of(pacer_home, "flaky")

    for task_id in gc:                              # one by one: the last two to end are the newest
        kill_tasks(server, [task_id], scale=True)
        wait_until(lambda: task_id not in {t["id"] for t in server.tasks("/gc")}, timeout=20, what="the kill")
        time.sleep(0.2)
    assert sandboxes_of(pacer_home, "gc") == set(gc)    # nothing goes before the delay
    killed = []
    for _ in range(3):                              # three kills end after the failure; replacements run
        (current,) = running_ids(server, "/flaky", 1)
        kill_tasks(server, [current], scale=False)
        killed.append(current)
        wait_until(lambda: current not in {t["id"] for t in server.running("/flaky")}, timeout=20, what="the kill")
    (running,) = running_ids(server, "/flaky", 1)

    wait_until(lambda: sandboxes_of(pacer_home, "gc") == set(gc[-2:]), timeout=30,
               what="the older /gc sandboxes removed, the newest two kept")
    wait_until(lambda: killed[0] not in sandboxes_of(pacer_home, "flaky"), timeout=30,
               what="the oldest kill of /flaky removed")
    assert sandboxes_of(pacer_home, "flaky") == {failure, killed[1], killed[2], running}
    assert sandboxes_of(pacer_home, "live") == set(live)  # running for longer than the delay: untouched

    server.stop()                                      # a restart re-adopts /live: still untouched
    again = pacer_factory(*flags)
    assert running_ids(again, "/live", 1) == live
    time.sleep(2)
    assert sandboxes_of(pacer_home, "live") == set(live)
    assert sandboxes_of(pacer_home, "gc") == set(gc[-2:])
