"""Starting a task inside its cgroup without ``preexec_fn`` (cgroup v1): the spawning thread joins first.

Why: a ``preexec_fn`` (the child writing itself into ``cgroup.procs`` between fork and exec)
makes ``subprocess`` ``fork()`` the whole scheduler instead of ``vfork()``-ing it; with the
scheduler's ~70 MB of page tables to copy that costs ~3-4 ms per launch instead of ~0.5 ms
(measured on this project's machine kind), and it was most of a large launch's time.

How, on cgroup v1 only: v1 places *threads*, not processes (``tasks`` takes a thread id), and a
new process is born in every cgroup of the thread that created it. So a worker thread writes its
own id into each of the task's ``tasks`` files, starts the task with a plain ``vfork``/exec
``Popen``, and writes its id back into the cgroups it came from (its *home*), all before the
launch returns. The task is inside its cgroups from its first instruction, as with
``CLONE_INTO_CGROUP``; nothing of it ever runs outside.

Why a worker thread and never the event loop's: v1 charges a process's memory to the cgroup of
its memory's owner, the main thread; a main thread moved into a task's memory cgroup would have
the scheduler's own allocations charged to (and OOM-killed by) a task's limit of a few MB. A
worker thread costs the task's counters only the ~0.3 ms of CPU and the few kernel objects
(task_struct, kernel stack) that making its process takes, which belong to it anyway. While
inside, the thread counts toward the task's ``pids.max``: with a limit of 1 the spawn would
fail, so that limit keeps the ``preexec_fn`` (``usable_with``). The ten migrations (five
hierarchies, in and out) cost ~0.25 ms, against the ~3 ms a fork saves.

cgroup v2 cannot do this (a process's threads share one cgroup unless it is made *threaded*,
which the memory controller is not) and needs ``clone3(CLONE_INTO_CGROUP)``, which Python does
not offer: there tasks keep joining from a ``preexec_fn`` (``TaskCgroup.joining``). So does v1
when the threads' home cannot be found for certain (``Spawner.open`` says why). A thread that
could not get home (it never should: the process's other threads are there) ends the spawner
for good: its pool winds down, and its tasks' cgroups never count or signal this process
(``TaskCgroup.pids``), since a scheduler thread left in a task's cgroup must not die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from executor.errors import LaunchFailed

logger = logging.getLogger(__name__)

T = TypeVar("T")

SPAWN_THREADS = 2
"""Worker threads that start tasks. Measured on a two-CPU host, 1, 2 and 4 launch 200 tasks
equally fast (the CPUs and the kernel's cgroup migration lock are the limit); two keep one
launch's cgroup and file work beside another's exec."""


def usable_with(pids_max: int | None) -> bool:
    """Whether a thread may sit in a task's cgroup while it spawns: it counts toward ``pids.max``."""
    return not pids_max or pids_max >= 2


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def home_dirs(mounts: Mapping[str, Path], cgroup_text: str, mountinfo_text: str) -> dict[Path, Path] | None:
    """Each v1 hierarchy's directory this process is in, by mount point; None if one cannot be found.

    ``mounts`` maps a controller to its hierarchy's mount point; ``cgroup_text`` is
    ``/proc/self/cgroup`` (``id:controllers:path``), ``mountinfo_text`` ``/proc/self/mountinfo``,
    whose fourth field is the cgroup path mounted there (not ``/`` when a container got a
    sub-tree bind-mounted). Pure, so the path arithmetic is tested on any host.
    """
    roots: dict[Path, str] = {}
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            roots[Path(_unescape(fields[4]))] = _unescape(fields[3])
    paths: dict[str, str] = {}
    for line in cgroup_text.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    homes: dict[Path, Path] = {}
    for controller, mount in mounts.items():
        path, root = paths.get(controller), roots.get(mount)
        if path is None or root is None:
            return None
        if root != "/" and path != root and not path.startswith(root.rstrip("/") + "/"):
            return None  # we live outside the part of the hierarchy mounted here
        relative = path[len(root):] if root != "/" else path
        homes[mount] = mount / relative.lstrip("/")
    return homes


class Spawner:
    """Worker threads that start processes from inside a task's v1 cgroups, then go home."""

    def __init__(self, homes: Mapping[str, Path], threads: int = SPAWN_THREADS) -> None:
        self._homes = dict(homes)  # controller -> the directory our threads live in, in its hierarchy
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pacer-spawn")
        self.broken: str | None = None  # why spawning from inside is off for good (a thread could not get home)

    @classmethod
    def open(cls, mounts: Mapping[str, Path]) -> Spawner | None:
        """A spawner for these v1 hierarchies (controller -> mount point), or None (logged) if our
        home in one of them is not certain."""
        try:
            homes = home_dirs(mounts, Path("/proc/self/cgroup").read_text(),
                              Path("/proc/self/mountinfo").read_text())
        except OSError as error:
            homes, reason = None, str(error)
        else:
            reason = "this process's cgroups are not under the mounted hierarchies"
        if homes is not None:
            missing = [home for home in set(homes.values())
                       if str(os.getpid()) not in (_read_words(home / "cgroup.procs") or [])]
            if not missing:
                return cls({controller: homes[mount] for controller, mount in mounts.items()})
            reason = f"this process is not in {missing[0]}"
        logger.info("tasks join their cgroups from a forked child, not a vfork (%s)", reason)
        return None

    async def run(self, work: Callable[[], T], undo: Callable[[T], None]) -> T:
        """``work()`` on a spawner thread (where it may use ``inside``), the event loop free meanwhile.

        Cancel-safe: the work cannot be stopped half-way, so a cancelled caller waits for it and
        ``undo``-es its result (kills what it started) before the cancellation goes on.
        """
        future = asyncio.get_running_loop().run_in_executor(self._pool, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                undo(await future)
            raise

    def close(self) -> None:
        """Let the threads finish what they run, then end them."""
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def inside(self, dirs: Mapping[str, Path]) -> Iterator[None]:
        """This (worker) thread in the cgroups ``dirs`` (controller -> directory) for the block,
        so that every process it starts there is born inside them; home again after it."""
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("the main thread owns the process's memory: it must never join a task's cgroup")
        tid = str(threading.get_native_id())
        moves = {directory: self._homes[controller] for controller, directory in dirs.items()}
        joined: list[Path] = []
        try:
            for directory in moves:
                try:
                    _write_tid(directory / "tasks", tid)
                except OSError as error:
                    raise LaunchFailed(f"cannot join the cgroup {directory}: {error.strerror or error}") from error
                joined.append(directory)
            yield
        finally:
            self._go_home(joined, moves, tid)

    def _go_home(self, joined: list[Path], moves: Mapping[Path, Path], tid: str) -> None:
        """Back to the thread's own cgroups. Failing that (it never should: the other threads of
        this process are there), no thread serves again: the pool winds down (a thread leaves
        every cgroup as it exits), the launch fails, and the spawner is marked broken so that
        later launches join from a forked child."""
        for directory in joined:
            try:
                _write_tid(moves[directory] / "tasks", tid)
            except OSError as error:
                self.broken = f"a spawning thread could not leave {directory}: {error.strerror or error}"
                logger.error("%s; tasks now join their cgroups from a forked child", self.broken)
                self._pool.shutdown(wait=False)
                raise LaunchFailed(self.broken) from error


def _write_tid(path: Path, tid: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, tid.encode())
    finally:
        os.close(fd)


def _read_words(path: Path) -> list[str] | None:
    try:
        return path.read_text().split()
    except OSError:
        return None


__all__ = ["SPAWN_THREADS", "Spawner", "home_dirs", "usable_with"]
