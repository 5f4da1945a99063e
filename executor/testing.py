"""Test support shipped with the package: an ``on_exit`` that can be awaited.

The scheduler's tests need the same thing as the executor's: wait for the
report of one task without sleeping for a guessed time. It lives here rather
than in one test file so both can import it.
"""

from __future__ import annotations

import asyncio

from executor.states import TaskExit


class ExitRecorder:
    """Pass as ``on_exit``; records every report and lets a test await one by task id."""

    def __init__(self) -> None:
        self.exits: list[TaskExit] = []
        self._waiters: dict[str, asyncio.Future[TaskExit]] = {}

    def __call__(self, report: TaskExit) -> None:
        self.exits.append(report)
        waiter = self._waiters.get(report.task_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(report)

    def reports_for(self, task_id: str) -> list[TaskExit]:
        """Every report for ``task_id``; a correct runtime gives at most one."""
        return [report for report in self.exits if report.task_id == task_id]

    async def wait(self, task_id: str, timeout: float = 30.0) -> TaskExit:
        """The first report for ``task_id``, waiting up to ``timeout`` seconds for it.

        The timeout only keeps a broken runtime from hanging a test; it is generous so that
        a loaded machine does not turn a slow exit into a failure.
        """
        for report in self.exits:
            if report.task_id == task_id:
                return report
        waiter = self._waiters.get(task_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[task_id] = waiter
        return await asyncio.wait_for(asyncio.shield(waiter), timeout)
