"""The process-level system calls behind ``ProcessRuntime``: spawn, signal, reap.

Separate from the runtime's bookkeeping so each piece stays small, and so
the rules about *when* a pid or a group id may be signalled (the part that
can hit an innocent process if done wrong) sit in one place:

* a pid or group id is only signalled while something pins it: a live or
  unreaped (zombie) leader, or, for a group, a remaining member;
* a process we did not just start is identified by ``(pid, start_time)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from executor.errors import LaunchFailed
from executor.procfs import DEAD_STATES, iter_stats, read_stat

logger = logging.getLogger(__name__)


def make_sandbox(task_id: str, sandbox: Path) -> None:
    """Create the task's sandbox (its working directory) with its ``stdout`` and ``stderr``.

    The files are created here, not only by the task's logger a moment later, so that they
    exist as soon as the launch returns, as they did when tasks wrote to them directly.
    """
    try:
        sandbox.mkdir(parents=True, exist_ok=True)
        for name in ("stdout", "stderr"):
            os.close(os.open(sandbox / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644))
    except OSError as error:
        raise LaunchFailed(f"cannot launch task {task_id}: {sandbox}: {error.strerror or error}") from error


def spawn(
    task_id: str, argv: list[str], env: dict[str, str], sandbox: Path, stdout: int, stderr: int,
    before_exec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the process as a new session in its sandbox, writing to ``stdout``/``stderr``.

    ``Popen`` rather than ``asyncio.create_subprocess_exec``: on Python 3.11
    the latter's default child watcher costs a thread per child. stdout and
    stderr are the write ends of pipes read by the task's own logger process
    (``executor.logger``), never by us: a pipe read by the scheduler would die
    with it and take the task down with SIGPIPE.
    ``before_exec`` runs in the child after ``setsid`` (joining the task's
    cgroup); it must only make system calls on prepared data. It costs a
    ``fork`` of the whole caller (~3-4 ms for the scheduler) where without it
    ``subprocess`` uses ``vfork`` (~0.5 ms): avoid it where the child can be
    born in its cgroup instead (``executor.cgroup_spawn``).
    """
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=sandbox,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=before_exec,
        )
    except OSError as error:
        where = error.filename if error.filename is not None else argv[0]
        reason = error.strerror or str(error)
        raise LaunchFailed(f"cannot launch task {task_id}: {where}: {reason}") from error
    except ValueError as error:  # e.g. a NUL byte in argv or env
        raise LaunchFailed(f"cannot launch task {task_id}: {error}") from error
    except subprocess.SubprocessError as error:  # before_exec failed in the child, which exited
        raise LaunchFailed(f"cannot launch task {task_id}: cannot join its cgroup") from error


def watchable(task_id: str, child: subprocess.Popen[bytes]) -> tuple[int, int]:
    """The just-started child's pidfd and start time (what names it for good); on failure the
    caller kills it."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except OSError as error:  # EMFILE: out of file descriptors
        raise LaunchFailed(f"cannot watch task {task_id}: {error}") from error
    stat = read_stat(child.pid)  # the unreaped child is there even if it exited
    if stat is None:  # only without /proc
        os.close(pidfd)
        raise LaunchFailed(f"cannot read /proc/{child.pid}/stat for task {task_id}")
    return pidfd, stat.start_time


def release(child: subprocess.Popen[bytes]) -> int:
    """Take the reaping of ``child`` over from its ``Popen`` and return its pid.

    The runtime reaps its children itself (``wait_status``, once the pidfd is readable), so
    it keeps the pid, not the ``Popen`` (~0.6 KB with its lock, per running task). A ``Popen``
    dropped while its child runs warns and joins subprocess's list of children to poll,
    which would then race us for the exit status; one with a return code set does neither.
    """
    child.returncode = 0   # a placeholder for the Popen alone: the real status comes from wait_status
    return child.pid


def abort(child: subprocess.Popen[bytes]) -> None:
    """Undo a launch that cannot be watched: kill its group and reap it."""
    signal_group(child.pid, signal.SIGKILL)
    child.wait()


def signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group, ignoring a group that is already empty."""
    if pgid <= 1:
        return  # killpg(0) would hit the scheduler's own group
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(pgid, sig)
        except PermissionError:
            logger.warning("no permission to signal process group %d", pgid)


def leads_group(pid: int) -> bool:
    """Whether ``pid`` is still the leader of the process group named after it (a task that
    called setsid or setpgid is not, and a group signal no longer reaches it)."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def signal_pidfd(pidfd: int, sig: int) -> None:
    """Signal exactly the process behind ``pidfd``; a process already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)


def live_group_members(pgid: int) -> list[tuple[int, int]]:
    """``(pid, start_time)`` of the group's processes that have not exited yet.

    A cheap probe first (``killpg(pgid, 0)`` fails on an empty group, the
    common case); only a group with members costs a scan of /proc.
    """
    if pgid <= 1:
        return []
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist that we may not signal; the scan still sees them
    return [
        (stat.pid, stat.start_time)
        for stat in iter_stats()
        if stat.pgid == pgid and stat.state not in DEAD_STATES
    ]


def wait_status(pid: int) -> int | None:
    """Reap our exited child ``pid``: its ``Popen``-style return code, None if not ours.

    None means someone else collected it already (or it never was our child).
    Called only once its pidfd is readable, so the blocking fallback returns
    at once; it covers a kernel reporting the exit before it is waitable.
    """
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == 0:
            reaped, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def try_reap(pid: int) -> int | None:
    """Collect ``pid`` if it is an exited child of ours, without ever blocking."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if reaped == pid else None


def kill_process_group(pid: int, start_time: int, sig: int = signal.SIGKILL) -> bool:
    """Kill an orphaned task found by reconciliation, if it is still that task.

    Checks ``(pid, start_time)`` before signalling so a reused pid is never
    hit. Signals the group led by ``pid`` (tasks are group leaders); a process
    that is no longer a group leader is signalled alone. A zombie leader still
    counts: it pins the pid, and its orphaned children may still be running
    in the group. Returns whether a signal was sent.
    """
    if pid <= 1:
        return False
    stat = read_stat(pid)
    if stat is None or stat.start_time != start_time:
        return False
    try:
        if stat.pgid == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
