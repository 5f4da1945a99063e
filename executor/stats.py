"""Per-task resource usage from /proc, summed over the task's process group.

A task is its whole process group (``ProcessRuntime`` starts every task as a
session and group leader), so a shell wrapper's children count towards the
task's CPU and memory, as a container's cgroup would count them.

CPU is cumulative (nanoseconds since the processes started, like cAdvisor's
``cpu_usage_total``): a rate is the metrics layer's business. It includes
the times of children already reaped by a group member (``cutime``/``cstime``),
so a task spawning short-lived helpers does not appear to lose CPU time.

Scanning /proc costs one read per process on the machine, so sampling many
tasks should use ``process_group_usages`` (one scan for all of them).

A task with a cgroup is measured from the cgroup's counters instead
(``task_usages``): they count every descendant, escaped or not, and cost a few
reads per task rather than a scan.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from executor.procfs import DEAD_STATES, ProcStat, iter_stats


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """A usage sample of one process group."""

    cpu_user_ns: int
    cpu_system_ns: int
    rss_bytes: int
    processes: int

    @property
    def cpu_ns(self) -> int:
        """User plus system CPU time, the counter cAdvisor calls ``cpu_usage_total``."""
        return self.cpu_user_ns + self.cpu_system_ns


@functools.cache
def _clock_ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


@functools.cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def usage_from_stats(
    stats: Iterable[ProcStat], *, ticks_per_second: int, page_size: int
) -> ResourceUsage | None:
    """Sum the stats of one group's live processes; None when there are none.

    Pure (units passed in) so the arithmetic is testable without processes.
    Zombies are skipped: they have exited, and an orphan's zombie may linger
    in the group until init collects it, which must not make a finished
    task look alive.
    """
    user = system = rss = count = 0
    for stat in stats:
        if stat.state in DEAD_STATES:
            continue
        count += 1
        user += stat.utime + stat.cutime
        system += stat.stime + stat.cstime
        rss += stat.rss_pages
    if count == 0:
        return None
    ns_per_tick = 1_000_000_000 // ticks_per_second
    return ResourceUsage(
        cpu_user_ns=user * ns_per_tick,
        cpu_system_ns=system * ns_per_tick,
        rss_bytes=rss * page_size,
        processes=count,
    )


def process_group_usages(pgids: Iterable[int]) -> dict[int, ResourceUsage]:
    """Usage of several process groups with one scan of /proc.

    Groups with no process left are absent from the result.
    """
    wanted = {pgid for pgid in pgids if pgid > 0}
    members: dict[int, list[ProcStat]] = {}
    if wanted:
        for stat in iter_stats():
            if stat.pgid in wanted:
                members.setdefault(stat.pgid, []).append(stat)
    result: dict[int, ResourceUsage] = {}
    for pgid, stats in members.items():
        usage = usage_from_stats(
            stats, ticks_per_second=_clock_ticks_per_second(), page_size=_page_size()
        )
        if usage is not None:
            result[pgid] = usage
    return result


def process_group_usage(pid: int) -> ResourceUsage | None:
    """Usage of the process group led by ``pid`` (a task's ``ProcessHandle.pid``)."""
    return process_group_usages([pid]).get(pid)


class CounterSource(Protocol):
    """Something that measures one task from kernel counters (a ``TaskCgroup``)."""

    def usage(self) -> ResourceUsage | None: ...


def task_usages(tasks: Iterable[tuple[str, int, CounterSource | None]]) -> dict[str, ResourceUsage]:
    """Usage by task id of ``(task id, leader pid, counters)``: counters where they can be read,
    else the process group led by the pid (one /proc scan for all of those).

    Blocking file I/O: call it in a worker thread. A task that ends meanwhile is absent.
    """
    result: dict[str, ResourceUsage] = {}
    by_group: dict[int, str] = {}
    for task_id, pid, counters in tasks:
        usage = counters.usage() if counters is not None else None
        if usage is not None:
            result[task_id] = usage
        else:
            by_group[pid] = task_id
    for pid, usage in process_group_usages(by_group).items():
        result[by_group[pid]] = usage
    return result
