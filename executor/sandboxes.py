"""Sandboxes of ended tasks, and the disk they live on: what to remove, and when launches wait.

Why: every task leaves a sandbox (its working directory and logs) under ``--home``, and nothing
else ever removes it; thousands pile up, and a full disk under ``--home`` takes the scheduler's
store down with it. As a Mesos agent's garbage collector (``--gc_delay``,
``--disk_watch_interval``), the embedded agent removes the sandboxes of ended tasks once they
are older than a delay, a delay that shrinks as the disk fills; and, unlike Mesos, it keeps the
newest few of each app, and the newest that failed, for debugging (``lastTaskFailure`` names
that task). Below a free-space watermark, launches wait in the queue instead of writing more.

* **When a task ended**: the agent writes ``<sandbox>/.pacer-end`` (its terminal state) as it
  ends, so the age of a sandbox is the time since its task ended, across scheduler restarts.
  A sandbox without it (its task ended while no scheduler watched) is as old as the newest of
  its directory, ``stdout`` and ``stderr``.
* **Delay under pressure**: ``delay × max(0, 1 − used fraction − 0.1)`` (Mesos' formula with
  its default headroom): the full delay on an empty disk, none above 90 % used; none either
  while the free space is under the watermark.
* **Which to keep**: per app (the part of the task id before ``.instance-``), the ``keep``
  newest ended sandboxes, and the newest whose task did not end by a kill (a failure).
* **Never**: a sandbox whose task runs, is being launched, or was adopted; the caller passes
  those ids, and checks them again before anything is removed.

``choose_removals``, ``gc_delay`` and ``watermark_reason`` are pure; the rest does file I/O.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

END_MARKER = ".pacer-end"
GC_DISK_HEADROOM = 0.1
KILLED = "TASK_KILLED"
MB = 1024 * 1024
DISK_CHECK_SECONDS = 0.5  # the free space is read at most this often (it is asked per waiting app)


@dataclass(frozen=True)
class DiskPolicy:
    """The agent's disk settings (``pacer serve`` flags)."""

    min_free_mb: float = 64.0          # --min-free-disk-mb: launches wait below it (0: never)
    gc_delay: float = 3600.0           # --sandbox-gc-delay: seconds an ended task's sandbox is kept
    keep_per_app: int = 3              # --sandbox-gc-keep: newest ended sandboxes kept per app
    watch_interval: float = 60.0       # --disk-watch-interval: seconds between collections


@dataclass(frozen=True)
class Sandbox:
    """An ended task's sandbox, as the collector sees it."""

    task_id: str
    app: str
    ended_at: float
    failed: bool


@dataclass(frozen=True)
class DiskSpace:
    """``shutil.disk_usage``'s figures: ``free`` is what we may still write (reserved blocks excluded)."""

    total: int
    free: int
    used: int | None = None  # None: total - free

    @property
    def used_fraction(self) -> float:
        """Used blocks over all blocks, as Mesos' ``fs::usage`` (reserved blocks count as free)."""
        used = self.total - self.free if self.used is None else self.used
        return used / self.total if self.total > 0 else 0.0


def app_of(task_id: str) -> str:
    """The app part of a task id: ``<app>.instance-<uuid>._app.N`` (or ``<app>.<uuid>``)."""
    app, marker, _ = task_id.partition(".instance-")
    return app if marker else task_id.rpartition(".")[0] or task_id


def gc_delay(policy: DiskPolicy, space: DiskSpace) -> float:
    """How old an ended sandbox must be to go, given how full the disk is."""
    if policy.min_free_mb > 0 and space.free < policy.min_free_mb * MB:
        return 0.0
    return policy.gc_delay * max(0.0, 1.0 - space.used_fraction - GC_DISK_HEADROOM)


def choose_removals(sandboxes: Iterable[Sandbox], now: float, delay: float, keep: int) -> list[str]:
    """Task ids whose sandboxes go: older than ``delay``, and neither among the ``keep`` newest of
    their app nor its newest failure. Oldest first."""
    by_app: dict[str, list[Sandbox]] = {}
    for sandbox in sandboxes:
        by_app.setdefault(sandbox.app, []).append(sandbox)
    chosen: list[Sandbox] = []
    for group in by_app.values():
        group.sort(key=lambda s: s.ended_at, reverse=True)
        newest_failure = next((s for s in group if s.failed), None)
        chosen.extend(s for s in group[max(0, keep):]
                      if s is not newest_failure and now - s.ended_at >= delay)
    return [s.task_id for s in sorted(chosen, key=lambda s: s.ended_at)]


def watermark_reason(home: Path, space: DiskSpace, min_free_mb: float) -> str | None:
    """Why launches wait (shown in ``/v2/queue``), or None while there is room."""
    if min_free_mb <= 0 or space.free >= min_free_mb * MB:
        return None
    return (f"free disk under {home} is {space.free / MB:.1f} MB, below the {min_free_mb:g} MB watermark "
            "(--min-free-disk-mb); launches wait until space is freed")


# -- I/O ---------------------------------------------------------------------------------

def mark_ended(sandbox: Path, state: str) -> None:
    """Note when and how the task ended (best effort: a full disk only costs accuracy)."""
    with contextlib.suppress(OSError):
        (sandbox / END_MARKER).write_text(f"{state}\n")


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    for candidate in (path, path / "stdout", path / "stderr"):
        with contextlib.suppress(OSError):
            newest = max(newest, candidate.stat().st_mtime)
    return newest


def scan(root: Path, live: Collection[str]) -> list[Sandbox]:
    """Sandboxes under ``root`` whose tasks are not in ``live`` (real directories only)."""
    found: list[Sandbox] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return found
    for entry in entries:
        if entry.name in live or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            marker = path / END_MARKER
            ended_at, state = marker.stat().st_mtime, marker.read_text().strip()
        except OSError:
            ended_at, state = _newest_mtime(path), ""
        found.append(Sandbox(entry.name, app_of(entry.name), ended_at, failed=bool(state) and state != KILLED))
    return found


def remove(root: Path, task_ids: Sequence[str]) -> list[str]:
    """Remove these sandboxes under ``root``; the ids that are gone."""
    removed = []
    for task_id in task_ids:
        path = root / task_id
        if path.parent != root or path.is_symlink():
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(task_id)
    return removed


class DiskWatch:
    """The space of the disk under a directory, read at most every ``DISK_CHECK_SECONDS``.

    None when it cannot be read (the directory is gone): then nothing waits on it.
    """

    def __init__(self, path: Path, usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._usage = usage
        self._clock = clock
        self._checked_at = float("-inf")
        self._space: DiskSpace | None = None

    def space(self, fresh: bool = False) -> DiskSpace | None:
        now = self._clock()
        if fresh or now - self._checked_at >= DISK_CHECK_SECONDS:
            try:
                total, used, free = self._usage(self.path)
                self._space = DiskSpace(total, free, used)
            except OSError:
                self._space = None
            self._checked_at = now
        return self._space


__all__ = ["END_MARKER", "DiskPolicy", "DiskSpace", "DiskWatch", "Sandbox", "app_of", "choose_removals",
           "gc_delay", "mark_ended", "remove", "scan", "watermark_reason"]
