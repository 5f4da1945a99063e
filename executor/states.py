"""Pure mapping from how a process ended to the Mesos task state Pacer reports.

Kept apart from the I/O so the rules (which drive Marathon's backoff: FAILED
and FINISHED raise the launch delay, KILLED does not) can be tested without
processes, and so the Docker runtime can reuse them.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace

TASK_FINISHED = "TASK_FINISHED"
TASK_FAILED = "TASK_FAILED"
TASK_KILLED = "TASK_KILLED"
TASK_LOST = "TASK_LOST"
"""Not emitted by ``ProcessRuntime``: for callers whose ``adopt`` returned False."""

ADOPTED_EXIT_MESSAGE = "exited (status unknown: adopted after scheduler restart)"
ADOPTED_KILL_MESSAGE = "killed (status unknown: adopted after scheduler restart)"
MEMORY_LIMIT_MESSAGE = "memory limit of {mem_mb:g} MB exceeded"


@dataclass(frozen=True, slots=True)
class TaskExit:
    """How one task ended; delivered exactly once per task to ``on_exit``.

    ``exit_code`` and ``signal`` are both None when the status is unknown
    (a process adopted from an earlier scheduler is not our child, so its
    exit status cannot be collected).
    """

    task_id: str
    state: str
    exit_code: int | None
    signal: int | None
    message: str


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; a plain ``signal 77`` for numbers Python does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_from_returncode(task_id: str, returncode: int, *, killed: bool) -> TaskExit:
    """Map a ``Popen``-style return code (negative = killed by that signal).

    ``killed`` means we asked for the kill: the task is TASK_KILLED however
    it ended afterwards (even exit 0 after SIGTERM), as Mesos reports it.
    Otherwise exit 0 is TASK_FINISHED and anything else TASK_FAILED.
    """
    if returncode < 0:
        number = -returncode
        exit_code, sig = None, number
        message = f"Command terminated with signal {signal_name(number)}"
    else:
        exit_code, sig = returncode, None
        message = f"Command exited with status {returncode}"
    if killed:
        state = TASK_KILLED
    elif returncode == 0:
        state = TASK_FINISHED
    else:
        state = TASK_FAILED
    return TaskExit(task_id, state, exit_code, sig, message)


def exit_of_adopted(task_id: str, *, killed: bool) -> TaskExit:
    """The report for an adopted process whose exit status we cannot know.

    TASK_FAILED rather than TASK_LOST: the process is known to have stopped on
    its own, which is a failure of a long-running service; TASK_KILLED when
    we had asked it to stop.
    """
    if killed:
        return TaskExit(task_id, TASK_KILLED, None, None, ADOPTED_KILL_MESSAGE)
    return TaskExit(task_id, TASK_FAILED, None, None, ADOPTED_EXIT_MESSAGE)


def exit_status_lost(task_id: str, *, killed: bool) -> TaskExit:
    """Our own child was reaped by someone else before we could collect it.

    Only happens when other code in the process calls ``os.wait()`` or
    ``waitpid(-1)``; reported as failed with the reason, never as finished.
    """
    if killed:
        return TaskExit(task_id, TASK_KILLED, None, None, "killed (exit status was collected elsewhere)")
    return TaskExit(task_id, TASK_FAILED, None, None, "exited (exit status was collected elsewhere)")


def with_memory_limit(report: TaskExit, *, oom_kills: int, mem_mb: float | None) -> TaskExit:
    """The end of a task whose cgroup saw OOM kills: TASK_FAILED, "memory limit of N MB exceeded".

    As Mesos reports a container that exceeded its memory limit, whatever its leader's own
    exit status was (a shell whose child was OOM-killed may exit 137, or even 0). A kill we
    asked for stays TASK_KILLED, and without a limit (``mem`` 0) an OOM kill is the host's
    memory pressure, not the task's fault: the report is then left as it was.
    """
    if report.state == TASK_KILLED or oom_kills <= 0 or not mem_mb:
        return report
    return replace(report, state=TASK_FAILED, message=MEMORY_LIMIT_MESSAGE.format(mem_mb=mem_mb))
