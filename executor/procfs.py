"""Reading ``/proc/<pid>/stat``: process identity, liveness and usage counters.

A pid alone does not identify a process: after the process exits, the kernel
may hand the same number to an unrelated one. ``(pid, start_time)`` does,
where ``start_time`` is field 22 of ``/proc/<pid>/stat`` (clock ticks since
boot). Every decision to signal a process that is not a fresh child of ours
checks that pair first.

``parse_stat`` is pure; the readers around it only open files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

DEAD_STATES = frozenset("ZXx")
"""Zombie and dead: the process has exited, only its table entry is left."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that Pacer uses (units as the kernel gives them)."""

    pid: int
    state: str
    ppid: int
    pgid: int
    session: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    start_time: int
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line.

    The command name (field 2) is in parentheses and may itself contain spaces
    and parentheses, so the fixed fields are taken after the *last* ``)``.
    Raises ValueError on text that is not a stat line.
    """
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    pid = int(text[:open_paren])
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field n is rest[n - 3].
    if len(rest) < 22:
        raise ValueError(f"short stat line: {len(rest)} fields after comm")
    return ProcStat(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        session=int(rest[3]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
        start_time=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def read_stat(pid: int) -> ProcStat | None:
    """The stat of ``pid``, or None when there is no such process (or no /proc)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return parse_stat(handle.read())
    except (OSError, ValueError):
        return None


def read_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``; None when the pid does not exist.

    A zombie still has a start time: callers that need a *running* process
    use ``process_alive``.
    """
    stat = read_stat(pid)
    return None if stat is None else stat.start_time


def process_alive(pid: int, start_time: int) -> bool:
    """Whether this very process (same pid *and* start time) is still running.

    False for a zombie: it has exited even if nobody has collected it yet
    (on machines whose init does not reap, orphans stay zombies for ever).
    """
    stat = read_stat(pid)
    return stat is not None and stat.start_time == start_time and stat.state not in DEAD_STATES


def iter_stats() -> Iterator[ProcStat]:
    """Every process's stat; processes that vanish while we scan are skipped."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                yield stat
