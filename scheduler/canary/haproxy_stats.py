"""HAProxy's server rows turned into what the canary analysis counts. Pure.

Parsing ``show stat`` is :mod:`metrics.haproxy_stats` (shared with the HAProxy bridge, which
may not import ``scheduler``); this module maps its rows to :class:`ServerCounters` and server
names to versions, through the tasks they stand for (the HAProxy bridge names a server after
its task id): :func:`version_of_servers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from metrics.haproxy_stats import ServerStat, StatsFormatError, parse_show_stat, worker_generation

from .analysis import ServerCounters

__all__ = ["ServerStat", "StatsFormatError", "counters_of", "parse_show_stat", "version_of_servers",
           "worker_generation"]


def counters_of(stats: Iterable[ServerStat]) -> dict[str, ServerCounters]:
    """Server name -> the counters the analysis needs (names are unique within one backend)."""
    return {
        s.server: ServerCounters(s.requests, s.errors, float(s.rtime_ms) if s.rtime_ms is not None else None)
        for s in stats
    }


def version_of_servers(server_task: Mapping[str, str], task_version: Mapping[str, str]) -> dict[str, str]:
    """Server name -> version, through the task each server stands for; unknown tasks are left out."""
    return {server: task_version[task] for server, task in server_task.items() if task in task_version}
