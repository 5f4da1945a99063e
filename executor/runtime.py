"""The seam between the scheduler and whatever runs tasks.

``ProcessRuntime`` implements it today; a Docker runtime and test fakes will
implement the same shape, so the scheduler's local backend depends on this
Protocol rather than on processes.
"""

from __future__ import annotations

from typing import Protocol

from executor.process import ProcessHandle, TaskLaunch


class TaskRuntime(Protocol):
    """Start, stop, re-attach and list tasks; ends are reported to a callback given at construction."""

    async def launch(self, spec: TaskLaunch) -> ProcessHandle: ...

    async def kill(self, task_id: str, grace_seconds: float | None = None) -> None: ...

    def adopt(self, handle: ProcessHandle) -> bool: ...

    def is_running(self, task_id: str) -> bool: ...

    def running(self) -> list[ProcessHandle]: ...

    async def close(self, kill: bool = False) -> None: ...
