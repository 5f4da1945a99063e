"""What a task cgroup holds, as data: the limit files to write and how to read counter files.

Pure (no I/O), so the mapping from an app's ``mem``/``cpus`` to kernel knobs is table-tested
for cgroup v1 and v2 alike, on any host. ``executor.cgroups`` does the writing and reading.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

DEFAULT_PIDS_MAX = 4096
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000


@dataclass(frozen=True)
class CgroupOptions:
    """Agent-wide policy: a hard CPU quota only on request (shares never waste idle CPU)."""

    cpu_quota: bool = False
    pids_max: int | None = DEFAULT_PIDS_MAX  # None or 0: unlimited


@dataclass(frozen=True)
class LimitWrite:
    controller: str
    file: str
    value: str
    optional: bool = False  # the file exists only with some kernel options (swap accounting…)


def cpu_shares(cpus: float) -> int:
    """v1 ``cpu.shares``: 1024 per CPU, at least the kernel's minimum of 2."""
    return max(2, round(cpus * 1024))


def cpu_weight(cpus: float) -> int:
    """v2 ``cpu.weight`` from the shares, with the conversion runc and the kubelet use."""
    return min(10_000, max(1, 1 + (cpu_shares(cpus) - 2) * 9999 // 262_142))


def limit_writes(version: int, mem_mb: float, cpus: float, options: CgroupOptions) -> list[LimitWrite]:
    """What to write into a new task cgroup, in order (pure, so it is table-testable).

    Swap is limited to the memory limit (v1 ``memsw`` = limit, v2 ``swap.max`` = 0) so that
    exceeding ``mem`` is an OOM kill, not a slow swap-out; v2 kills the whole task on OOM
    (``memory.oom.group``).
    """
    writes: list[LimitWrite] = []
    memory = str(int(mem_mb * 1024 * 1024)) if mem_mb > 0 else None
    quota = f"{max(MIN_CFS_QUOTA_US, round(cpus * CFS_PERIOD_US))}" if options.cpu_quota and cpus > 0 else None
    if version == 1:
        if memory:
            writes += [LimitWrite("memory", "memory.limit_in_bytes", memory),
                       LimitWrite("memory", "memory.memsw.limit_in_bytes", memory, optional=True)]
        if cpus > 0:
            writes.append(LimitWrite("cpu", "cpu.shares", str(cpu_shares(cpus))))
        if quota:
            writes += [LimitWrite("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)),
                       LimitWrite("cpu", "cpu.cfs_quota_us", quota)]
    else:
        if memory:
            writes += [LimitWrite("memory", "memory.max", memory),
                       LimitWrite("memory", "memory.swap.max", "0", optional=True),
                       LimitWrite("memory", "memory.oom.group", "1", optional=True)]
        if cpus > 0:
            writes.append(LimitWrite("cpu", "cpu.weight", str(cpu_weight(cpus))))
        if quota:
            writes.append(LimitWrite("cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}"))
    if options.pids_max:
        writes.append(LimitWrite("pids", "pids.max", str(options.pids_max)))
    return writes


def parse_keyed(text: str) -> dict[str, int]:
    """``name value`` lines (memory.stat, cpu.stat, memory.events, memory.oom_control…)."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            result[name] = int(value)
    return result


__all__ = ["CFS_PERIOD_US", "DEFAULT_PIDS_MAX", "CgroupOptions", "LimitWrite", "cpu_shares", "cpu_weight",
           "limit_writes", "parse_keyed"]
