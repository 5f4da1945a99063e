"""The blocking half of a process launch: cgroup, sandbox, process, pidfd, on whatever thread runs it.

Kept apart from ``executor.process`` (the event loop's bookkeeping) because it may run on a
spawner thread (``executor.cgroup_spawn``): nothing here touches the loop or the runtime's
state, so a launch's slow part (making five v1 cgroups, the spawn: ~1.5 ms of mostly kernel
time) can leave the event loop free. Failures after the cgroup exists come back as values, the
process already killed, because only the loop can remove a cgroup that may still hold
something (``TaskCgroup.destroy`` waits).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from executor import posix
from executor.cgroups import Cgroups, TaskCgroup
from executor.errors import ExecutorError, LaunchFailed

Inside = Callable[[Mapping[str, Path]], AbstractContextManager[None]]
"""Puts the calling thread in the cgroup directories given (controller -> directory) for a block."""


@dataclass(frozen=True, slots=True)
class Started:
    """What the blocking half left: the task's cgroup (if any), and its process or why it failed."""

    cgroup: TaskCgroup | None
    outcome: Spawned | ExecutorError  # LaunchFailed; RuntimeClosed when the runtime closed meanwhile


@dataclass(frozen=True, slots=True)
class Spawned:
    """The running child, its pidfd and its start time (what names it for good)."""

    child: subprocess.Popen[bytes]
    pidfd: int
    start_time: int


def start_process(cgroups: Cgroups | None, task_id: str, argv: list[str], env: dict[str, str], sandbox: Path,
                  mem_mb: float, cpus: float, stdout: int, stderr: int, inside: Inside | None) -> Started:
    """Create the task's cgroup and sandbox, start its process in them, open its pidfd.

    ``inside`` (a spawner thread's) puts the calling thread in the cgroup while it spawns, so
    the child is born there by a vfork; without it the child joins between fork and exec.
    Raises ``LaunchFailed`` only when the cgroup cannot be made (nothing is left then); any
    later failure is returned with the cgroup, the process killed and reaped.
    """
    cgroup = None if cgroups is None else cgroups.create(task_id, mem_mb, cpus)
    child: subprocess.Popen[bytes] | None = None
    try:
        posix.make_sandbox(task_id, sandbox)
        if cgroup is not None and inside is not None:
            with inside(cgroup.dirs):
                child = posix.spawn(task_id, argv, env, sandbox, stdout, stderr)
        else:
            with cgroup.joining() if cgroup is not None else contextlib.nullcontext() as join:
                child = posix.spawn(task_id, argv, env, sandbox, stdout, stderr, before_exec=join)
        pidfd, start_time = posix.watchable(task_id, child)
    except LaunchFailed as error:
        if child is not None:  # started, but its thread could not leave the cgroup, or no pidfd
            posix.abort(child)
        return Started(cgroup, error)
    return Started(cgroup, Spawned(child, pidfd, start_time))


def undo_start(started: Started) -> None:
    """Take back a launch whose caller was cancelled: kill the process, remove its cgroup."""
    if isinstance(started.outcome, Spawned):
        os.close(started.outcome.pidfd)
        posix.abort(started.outcome.child)
    if started.cgroup is not None:
        started.cgroup.remove()


__all__ = ["Inside", "Spawned", "Started", "start_process", "undo_start"]
