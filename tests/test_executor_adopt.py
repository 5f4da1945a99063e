"""Adopting tasks after a scheduler restart, in-process and across a SIGKILLed scheduler."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor import (
    TASK_FAILED,
    TASK_KILLED,
    ProcessHandle,
    ProcessRuntime,
    TaskLaunch,
    kill_process_group,
    process_alive,
)
from executor.states import ADOPTED_EXIT_MESSAGE, ADOPTED_KILL_MESSAGE
from executor.testing import ExitRecorder

REPO = Path(__file__).resolve().parents[1]

# A stand-in for an earlier scheduler process: it launches two tasks, prints
# their handles and then waits to be SIGKILLed.
OLD_SCHEDULER = """
import asyncio, json, sys
from pathlib import Path
from executor import ProcessRuntime, TaskLaunch

async def main() -> None:
    root = Path(sys.argv[1])
    runtime = ProcessRuntime(lambda report: None)
    handles = [
        await runtime.launch(TaskLaunch("long", ["sleep", "60"], {}, root / "long")),
        await runtime.launch(TaskLaunch(
            "gated", ["/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.01; done"], {}, root / "gated")),
    ]
    print(json.dumps([[h.task_id, h.pid, h.start_time] for h in handles]), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
async def cleanup() -> AsyncIterator[list[ProcessHandle]]:
    """Handles to kill by pid after the test, whatever happened in it."""
    handles: list[ProcessHandle] = []
    yield handles
    for handle in handles:
        kill_process_group(handle.pid, handle.start_time)


async def test_new_runtime_adopts_and_kills_a_task_left_running(
    tmp_path: Path, cleanup: list[ProcessHandle]
) -> None:
    first_exits, second_exits = ExitRecorder(), ExitRecorder()
    first = ProcessRuntime(first_exits)
    handle = await first.launch(TaskLaunch("kept", ["sleep", "60"], {}, tmp_path / "kept"))
    cleanup.append(handle)
    await first.close(kill=False)
    assert process_alive(handle.pid, handle.start_time)

    second = ProcessRuntime(second_exits)
    try:
        assert second.adopt(handle)
        assert second.adopt(handle)  # adopting the same handle again is harmless
        assert second.is_running("kept") and second.running() == [handle]
        await second.kill("kept", grace_seconds=1)
        assert not process_alive(handle.pid, handle.start_time)
        [report] = second_exits.reports_for("kept")
        assert report.state == TASK_KILLED
        assert first_exits.exits == []
    finally:
        await second.close(kill=True)


async def test_adopt_refuses_a_wrong_start_time_or_a_dead_pid(
    tmp_path: Path, cleanup: list[ProcessHandle]
) -> None:
    runtime = ProcessRuntime(ExitRecorder())
    other = ProcessRuntime(ExitRecorder())
    try:
        handle = await runtime.launch(TaskLaunch("real", ["sleep", "60"], {}, tmp_path / "real"))
        cleanup.append(handle)
        assert not other.adopt(ProcessHandle("real", handle.pid, handle.start_time + 1))
        assert not other.adopt(ProcessHandle("gone", 2**22 + 7, 1))
        assert not other.adopt(ProcessHandle("nonsense", 0, 0))
        assert other.running() == []
        assert other.adopt(handle)
        assert not other.adopt(ProcessHandle("alias", handle.pid, handle.start_time))
    finally:
        await other.close(kill=False)
        await runtime.close(kill=True)


async def test_tasks_survive_a_sigkilled_scheduler_and_are_adopted(
    tmp_path: Path, cleanup: list[ProcessHandle]
) -> None:
    old = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OLD_SCHEDULER, str(tmp_path),
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert old.stdout is not None
    line = await asyncio.wait_for(old.stdout.readline(), timeout=60)
    handles = {task_id: ProcessHandle(task_id, pid, start) for task_id, pid, start in json.loads(line)}
    cleanup.extend(handles.values())
    old.send_signal(signal.SIGKILL)
    await old.wait()
    assert all(process_alive(h.pid, h.start_time) for h in handles.values())

    exits = ExitRecorder()
    runtime = ProcessRuntime(exits)
    try:
        assert runtime.adopt(handles["long"]) and runtime.adopt(handles["gated"])

        (tmp_path / "gated" / "go").touch()
        gated = await exits.wait("gated")
        assert (gated.state, gated.exit_code, gated.signal, gated.message) == (
            TASK_FAILED, None, None, ADOPTED_EXIT_MESSAGE,
        )

        # SIGTERM ends `sleep`: with a grace period no test outlives, kill() returning within
        # the safety net proves it noticed the death of a process that is not its child
        await asyncio.wait_for(runtime.kill("long", grace_seconds=3600), 60)
        long = exits.reports_for("long")
        assert [(r.state, r.exit_code, r.message) for r in long] == [
            (TASK_KILLED, None, ADOPTED_KILL_MESSAGE)
        ]
        assert not process_alive(handles["long"].pid, handles["long"].start_time)
    finally:
        await runtime.close(kill=True)
