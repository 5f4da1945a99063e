"""Running tasks as plain processes: launch, watch, kill, adopt after a restart.

How a task is run, and why:

* Each task is a session and process-group leader (``start_new_session``):
  a SIGKILL of the scheduler, or a Ctrl-C in its terminal, does not reach the
  tasks, as tasks outlive a Mesos agent restart; and the task's children can
  be signalled together through the group.
* stdout/stderr go to ``<sandbox>/stdout`` and ``<sandbox>/stderr`` (Mesos'
  layout) through pipes read by the task's own logger process, which caps and
  rotates them (``executor.logger``, ``TaskLaunch.logs``); the working directory
  is the sandbox. An end is reported once the logger has written the last
  output (at most ``LOG_DRAIN_TIMEOUT`` later).
* One pidfd per task, watched with ``loop.add_reader``; no thread and no
  asyncio subprocess transport per task. Python 3.11's default asyncio child
  watcher starts one thread per child; measured on 500 ``sleep`` tasks,
  ``asyncio.create_subprocess_exec`` cost ~24 KiB RSS, ~5 KiB of Python heap
  and one thread per task; this runtime (``Popen`` + pidfd) ~1.5-3 KiB RSS,
  ~1.5 KiB of heap and one file descriptor per task, no thread (launch
  ~1.2-1.5 ms either way; ``close(kill=True)`` of 1,000 tasks ~0.2 s). A pidfd also works for processes
  that are not our children, which is what adoption needs.
* Our own children are reaped with ``waitpid(pid)`` once their pidfd is
  readable, so their exit status is exact and no zombie stays behind. This
  relies on nobody else in the process calling ``os.wait()``/``waitpid(-1)``
  (asyncio's default watchers wait for their own pids only); if that happens
  the task is still reported, as failed with "exit status was collected
  elsewhere".
* A task ends with its whole group, as Mesos destroys a task's container:
  when the leader exits, what is left of the group is SIGKILLed (before the
  leader is reaped, while its zombie pins the group id), and the end is
  reported, and ``kill`` returns, only once no member is left alive (at most
  ``GROUP_EXIT_TIMEOUT`` later). Processes that leave the group (``setsid``)
  escape it.
* With ``cgroups`` (``executor.cgroups``), each task also gets its own cgroup,
  entered before exec (on v1 by a vfork from a thread inside it,
  ``executor.cgroup_spawn``), holding its ``mem``/``cpus``/pids limits: when the leader
  exits, or when a kill's grace period runs out, the cgroup is frozen and
  everything in it killed, escapees included, and the cgroup removed before
  the end is reported. An OOM kill in it is reported as "memory limit of N MB
  exceeded". Without cgroups (not root, no controllers) tasks are process
  groups only, as above.
* Processes adopted after a restart are not our children: the kernel hands
  their exit status to init, so they are reported with an unknown status.

All methods must be called from the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from executor import posix
from executor.cgroup_spawn import Spawner, usable_with
from executor.cgroups import PROCESS_GROUP, Cgroups, TaskCgroup
from executor.env import process_environment
from executor.errors import ExecutorError, InvalidTaskSpec, LaunchFailed, RuntimeClosed, TaskAlreadyRunning
from executor.posix import kill_process_group
from executor.procfs import process_alive, read_start_time
from executor.states import (
    TaskExit,
    exit_from_returncode,
    exit_of_adopted,
    exit_status_lost,
    with_memory_limit,
)
from executor.starting import Inside, Spawned, Started, start_process, undo_start
from executor.stats import ResourceUsage, task_usages
from executor.task_logs import LogPolicy, LogWriters

__all__ = [
    "ProcessHandle",
    "ProcessRuntime",
    "TaskExit",
    "TaskLaunch",
    "kill_process_group",
    "process_alive",
    "read_start_time",
]

logger = logging.getLogger(__name__)

DEFAULT_KILL_GRACE_SECONDS = 3.0
GROUP_EXIT_TIMEOUT = 5.0
"""How long a SIGKILLed group may take to die before its task is reported anyway.

SIGKILL is only delayed by uninterruptible sleep (a hung NFS read); waiting
for ever there would stall every kill behind it.
"""
LOG_DRAIN_TIMEOUT = 1.0  # an escapee of a process group may hold the pipes: do not wait on it for long


@dataclass(frozen=True)
class TaskLaunch:
    """Everything needed to start one task process; built by the scheduler's backend."""

    task_id: str
    argv: list[str]
    env: dict[str, str]
    sandbox: Path
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    mem_mb: float = 0.0  # the cgroup's memory limit; 0: none
    cpus: float = 0.0  # the cgroup's CPU shares (and quota, if the runtime's cgroups say so)
    logs: LogPolicy = LogPolicy()  # the size cap and rotation of its stdout/stderr


@dataclass(frozen=True, slots=True)
class ProcessHandle:
    """What the scheduler stores durably to find a task again after it restarts.

    ``start_time`` (field 22 of ``/proc/<pid>/stat``) makes the handle name one
    process, not whatever later reuses the pid.
    """

    task_id: str
    pid: int
    start_time: int


@dataclass(slots=True, eq=False)
class _Watch:
    """Per-task bookkeeping; kept small because one runtime may watch thousands."""

    handle: ProcessHandle
    pidfd: int
    own: bool  # our child (reaped by its pid; its Popen released at launch); False: adopted
    grace: float
    ended: asyncio.Future[None]  # resolved once the end is reported (or on detach)
    killing: bool = False
    collected: bool = False  # the leader's exit was seen: never signal this task again
    cgroup: TaskCgroup | None = None
    logs: asyncio.Future[None] | None = None  # resolved once its logger has exited; None: adopted


class ProcessRuntime:
    """Starts tasks as processes and reports each task's end exactly once.

    ``on_exit`` is called from the event loop for every way a task ends: its
    own exit, our kill, or the death of an adopted process. It is not called
    for tasks left running by ``close(kill=False)``: they did not end.
    """

    def __init__(self, on_exit: Callable[[TaskExit], None], cgroups: Cgroups | None = None) -> None:
        self._on_exit = on_exit
        self._cgroups = cgroups
        self._spawner = Spawner.open(cgroups.mounts) if cgroups is not None and cgroups.version == 1 \
            and usable_with(cgroups.options.pids_max) else None
        self._logs = LogWriters()
        self._tasks: dict[str, _Watch] = {}
        # launches on a spawner thread, by task id: a kill that arrives meanwhile waits for them
        self._launching: dict[str, asyncio.Future[None]] = {}
        self._by_pid: dict[int, _Watch] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def isolation(self) -> str:
        """``cgroups-v1``, ``cgroups-v2`` or ``process-group``: what holds a task's processes."""
        return PROCESS_GROUP if self._cgroups is None else self._cgroups.mode

    async def launch(self, spec: TaskLaunch) -> ProcessHandle:
        """Start the task and watch it; raises ``LaunchFailed`` with the OS's reason.

        With a v1 cgroup the launch's blocking part (cgroup, sandbox, spawn: ~1.5 ms, mostly
        kernel time) runs on a spawner thread that joins the cgroup before it spawns, so the
        process is born inside by a vfork (``executor.cgroup_spawn``); meanwhile the event loop
        goes on. Otherwise it runs inline: with a v2 cgroup the child joins it between fork and
        exec (a fork of the whole scheduler, ~3-4 ms), without cgroups a vfork (~0.5 ms).
        """
        self._check_open()
        if spec.task_id in self._tasks or spec.task_id in self._launching:
            raise TaskAlreadyRunning(f"task {spec.task_id} is already running")
        if not spec.argv:
            raise InvalidTaskSpec(f"task {spec.task_id} has an empty argv")
        loop = asyncio.get_running_loop()
        launched = self._launching[spec.task_id] = loop.create_future()
        try:
            return await self._launch(loop, spec)
        finally:
            del self._launching[spec.task_id]
            launched.set_result(None)

    async def _launch(self, loop: asyncio.AbstractEventLoop, spec: TaskLaunch) -> ProcessHandle:
        env = process_environment(spec.env, os.environ)
        logs = self._logs.open(spec.task_id, spec.sandbox, spec.logs, hold=True)  # sent once the sandbox exists
        spawner = self._spawner if self._spawner is not None and self._spawner.broken is None else None

        def start(inside: Inside | None) -> Started:
            return start_process(self._cgroups, spec.task_id, spec.argv, env, spec.sandbox, spec.mem_mb, spec.cpus,
                                 logs.stdout, logs.stderr, inside)

        try:
            started = start(None) if spawner is None else await spawner.run(lambda: start(spawner.inside), undo_start)
        except BaseException:  # no cgroup could be made, or cancelled (the spawner undid its work)
            self._logs.discard(logs)
            raise
        finally:
            logs.close_write_ends()  # from here on the task alone holds them
        if self._closed and isinstance(started.outcome, Spawned):  # closed while a spawner thread ran
            os.close(started.outcome.pidfd)
            posix.abort(started.outcome.child)
            started = Started(started.cgroup, RuntimeClosed("the process runtime is closed"))
        if isinstance(started.outcome, ExecutorError):
            self._logs.discard(logs)
            if started.cgroup is not None:
                await started.cgroup.destroy(GROUP_EXIT_TIMEOUT)
            raise started.outcome
        self._logs.send(logs)
        spawned = started.outcome
        handle = ProcessHandle(spec.task_id, posix.release(spawned.child), spawned.start_time)
        self._watch(loop, _Watch(handle, spawned.pidfd, True, spec.kill_grace_seconds, loop.create_future(),
                                 cgroup=started.cgroup, logs=logs.drained))
        return handle

    def adopt(
        self, handle: ProcessHandle, kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    ) -> bool:
        """Watch a task started by an earlier scheduler process; False if it is gone.

        The pidfd is opened *before* the identity check: once the check
        passes, the pidfd is known to refer to that process and cannot be
        confused with a later owner of the pid. Adopting a handle that is
        already watched returns True; the same pid under another task id, False.
        """
        self._check_open()
        existing = self._tasks.get(handle.task_id)
        if existing is not None:
            return existing.handle == handle
        if handle.pid <= 1 or handle.pid in self._by_pid:
            return False
        try:
            pidfd = os.pidfd_open(handle.pid)
        except OSError:
            return False
        if not process_alive(handle.pid, handle.start_time):
            os.close(pidfd)
            return False
        loop = asyncio.get_running_loop()
        cgroup = None if self._cgroups is None else self._cgroups.find(handle.task_id)
        self._watch(loop, _Watch(handle, pidfd, False, kill_grace_seconds, loop.create_future(), cgroup=cgroup))
        return True

    async def kill(self, task_id: str, grace_seconds: float | None = None) -> None:
        """SIGTERM the task's group, SIGKILL it after the grace period; wait for the end.

        Idempotent and safe to call concurrently: every caller waits for the
        same end, and the shortest grace period wins. Unknown ids are a
        no-op, so a kill racing with the task's own exit needs no care. A kill
        of a task whose launch is still on a spawner thread waits for that
        launch: the process it starts must not outlive the kill.
        """
        launching = self._launching.get(task_id)
        if launching is not None:
            await asyncio.shield(launching)
        watch = self._tasks.get(task_id)
        if watch is None:
            return
        grace = watch.grace if grace_seconds is None else grace_seconds
        watch.killing = True
        self._signal(watch, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(watch.ended), timeout=max(grace, 0.0))
        except TimeoutError:
            self._signal(watch, signal.SIGKILL)  # a no-op if the exit came meanwhile
            if watch.cgroup is not None and not watch.collected:
                await watch.cgroup.kill_all()  # escapees too; the leader's end then removes it
            await asyncio.shield(watch.ended)

    def is_running(self, task_id: str) -> bool:
        """Whether the task is watched and its end has not been reported."""
        return task_id in self._tasks

    def running(self) -> list[ProcessHandle]:
        """Handles of all watched tasks, for the scheduler to persist or reconcile."""
        return [watch.handle for watch in self._tasks.values()]

    def members(self, task_id: str) -> list[int]:
        """Pids in the task's cgroup (escapees included); empty without one."""
        watch = self._tasks.get(task_id)
        return [] if watch is None or watch.cgroup is None else watch.cgroup.pids()

    async def usages(self) -> dict[str, ResourceUsage]:
        """Usage of every watched task: its cgroup's counters, else its process group's."""
        entries = [(w.handle.task_id, w.handle.pid, w.cgroup) for w in self._tasks.values()]
        return await asyncio.to_thread(task_usages, entries) if entries else {}

    async def remove_strays(self) -> dict[str, int]:
        """Kill and remove every task cgroup under ours that no watched task owns (an earlier
        run's: a task that ended unwatched, or whose adoption failed). Returns task id ->
        processes killed. Call after adopting what is to be kept.
        """
        found: dict[str, int] = {}
        for task_id in [] if self._cgroups is None else self._cgroups.task_ids():
            cgroup = None if task_id in self._tasks else self._cgroups.find(task_id)
            if cgroup is not None:
                found[task_id] = len(cgroup.pids())
                await cgroup.destroy(GROUP_EXIT_TIMEOUT)
        self._tidy_cgroups()
        return found

    async def close(self, kill: bool = False) -> None:
        """Stop watching. ``kill=True`` kills every task first (tests, teardown).

        With ``kill=False`` the tasks keep running, as tasks outlive a Mesos
        agent restart, and a later runtime adopts them from their handles;
        kills in progress and ends being reported are finished first.
        """
        self._closed = True
        if kill:
            await asyncio.gather(*(self.kill(task_id) for task_id in list(self._tasks)))
        else:
            killing = [w.ended for w in self._tasks.values() if w.killing]
            await asyncio.gather(*(asyncio.shield(ended) for ended in killing))
        loop = asyncio.get_running_loop()
        # Tasks left running stay unreaped children of this process when they end: a runtime
        # that adopts them here collects them (``_reap``), and their real status with them.
        for watch in list(self._tasks.values()):
            if not watch.collected:  # collected ones are ending: let them report
                loop.remove_reader(watch.pidfd)
                self._forget(watch)
                watch.ended.set_result(None)
        await asyncio.gather(*(asyncio.shield(w.ended) for w in list(self._tasks.values())))
        await self._logs.close()
        if self._spawner is not None:
            self._spawner.close()
        self._tidy_cgroups()

    # -- internals -------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosed("the process runtime is closed")

    def _tidy_cgroups(self) -> None:
        """Remove our parent cgroup once no task of ours is left in it."""
        if self._cgroups is not None and not self._tasks:
            self._cgroups.remove_parent()

    def _watch(self, loop: asyncio.AbstractEventLoop, watch: _Watch) -> None:
        self._tasks[watch.handle.task_id] = watch
        self._by_pid[watch.handle.pid] = watch
        loop.add_reader(watch.pidfd, self._collect, watch)

    def _forget(self, watch: _Watch) -> None:
        os.close(watch.pidfd)
        self._tasks.pop(watch.handle.task_id, None)
        if self._by_pid.get(watch.handle.pid) is watch:  # a new child may reuse the pid
            del self._by_pid[watch.handle.pid]

    def _signal(self, watch: _Watch, sig: int) -> None:
        """Signal the task's group (the leader and its children), and the leader through its
        pidfd (exact) only when it has left that group: sent both ways, a leader got SIGTERM
        twice, and many programs take a second SIGTERM for "quit now, skip the graceful part".

        Never after the exit was collected: the reaped pid and group id are
        then free for reuse, and the group's leftovers were SIGKILLed already.
        """
        if watch.collected:
            return
        if not posix.leads_group(watch.handle.pid):
            posix.signal_pidfd(watch.pidfd, sig)
        posix.signal_group(watch.handle.pid, sig)

    def _collect(self, watch: _Watch) -> None:
        """The pidfd is readable: the leader has exited. Kill the rest, reap, report."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(watch.pidfd)
        watch.collected = True
        pgid = watch.handle.pid
        posix.signal_group(pgid, signal.SIGKILL)  # our unreaped zombie still pins pgid
        report = self._reap(watch)
        leftovers = posix.live_group_members(pgid) if watch.cgroup is None else []
        if not leftovers and watch.cgroup is None and (watch.logs is None or watch.logs.done()):
            self._finish(watch, report)
            return
        task = loop.create_task(
            self._finish_when_gone(watch, report, leftovers),
            name=f"executor-group-exit-{watch.handle.task_id}",
        )
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _reap(self, watch: _Watch) -> TaskExit:
        task_id, pid = watch.handle.task_id, watch.handle.pid
        if watch.own:
            returncode = posix.wait_status(pid)
            if returncode is None:
                return exit_status_lost(task_id, killed=watch.killing)
            return exit_from_returncode(task_id, returncode, killed=watch.killing)
        # Adopted: not our child, unless a runtime in this same process started it
        # and was closed with kill=False; then collect it (no zombie, real status).
        # Skipped if the pid was freed and reused by a child we launched since.
        returncode = posix.try_reap(pid) if self._by_pid.get(pid) is watch else None
        if returncode is not None:
            return exit_from_returncode(task_id, returncode, killed=watch.killing)
        return exit_of_adopted(task_id, killed=watch.killing)

    async def _finish_when_gone(
        self, watch: _Watch, report: TaskExit, members: list[tuple[int, int]]
    ) -> None:
        """Report the end once the SIGKILLed members of the group (or its cgroup) have died."""
        if watch.cgroup is not None:
            report = with_memory_limit(report, oom_kills=watch.cgroup.oom_kills(), mem_mb=watch.cgroup.mem_mb)
            await watch.cgroup.destroy(GROUP_EXIT_TIMEOUT)
        deadline = asyncio.get_running_loop().time() + GROUP_EXIT_TIMEOUT
        while members := [member for member in members if process_alive(*member)]:
            if asyncio.get_running_loop().time() >= deadline:
                logger.warning(
                    "task %s: %d processes of its group survive SIGKILL; reporting its end anyway",
                    watch.handle.task_id, len(members),
                )
                break
            await asyncio.sleep(0.005)
        if watch.logs is not None and not watch.logs.done():  # the last output, on its way to disk
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watch.logs), LOG_DRAIN_TIMEOUT)
        self._finish(watch, report)

    def _finish(self, watch: _Watch, report: TaskExit) -> None:
        self._forget(watch)
        watch.ended.set_result(None)
        if watch.cgroup is not None:
            self._tidy_cgroups()
        try:
            self._on_exit(report)
        except Exception:  # one failing consumer must not stop the reports of others
            logger.exception("on_exit callback failed for %s", report)
