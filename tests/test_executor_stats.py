"""Per-task usage read from /proc for a real busy process group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from executor import (
    ProcessRuntime,
    TaskLaunch,
    kill_process_group,
    process_group_usage,
    process_group_usages,
)
from executor.testing import ExitRecorder

BUSY = "sleep 60 & while :; do :; done"


async def test_busy_group_shows_growing_cpu_and_memory(tmp_path: Path) -> None:
    runtime = ProcessRuntime(ExitRecorder())
    handle = await runtime.launch(TaskLaunch("busy", ["/bin/sh", "-c", BUSY], {}, tmp_path / "busy"))
    try:
        await asyncio.sleep(0.15)
        first = process_group_usage(handle.pid)
        await asyncio.sleep(0.3)
        second = process_group_usage(handle.pid)
        assert first is not None and second is not None
        assert second.cpu_ns > first.cpu_ns
        assert second.cpu_ns - first.cpu_ns >= 50_000_000  # a spinning shell, ~0.3 s of CPU
        assert second.rss_bytes > 0
        assert second.processes == 2  # the shell and its sleep
        assert set(process_group_usages([handle.pid, 2**22 + 11])) == {handle.pid}
    finally:
        kill_process_group(handle.pid, handle.start_time)
        await runtime.close(kill=True)
    assert process_group_usage(handle.pid) is None


def test_unknown_group_has_no_usage() -> None:
    assert process_group_usage(2**22 + 13) is None
    assert process_group_usage(0) is None
    assert process_group_usages([]) == {}
