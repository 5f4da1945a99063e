"""`TaskSampler`: every `interval` seconds, each running task's usage into the metrics sink.

Reads the state's ``instances`` (running instances with a pid) and ``apps``
(allocations, configured instances), measures every task's process group with one scan of
/proc (``executor.process_group_usages``, in a worker thread so the event loop never waits
on /proc), and writes cAdvisor-schema points plus per-app ``instances`` points to the sink.

It never raises into the scheduler: a failing pass is logged and counted (``errors``,
``last_error``) and the next pass runs on schedule.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from executor import ResourceUsage, process_group_usages
from metrics.base import MetricsSink, kept_measurements
from periodic import FixedBeat, run_periodically
from metrics.schema import INSTANCES, Point, TaskSample, cpu_utilization, instances_point, task_points

log = logging.getLogger(__name__)

RUNNING = "TASK_RUNNING"


class _SchedulerView(Protocol):
    """What the sampler reads of the scheduler (`ClusterState` has both)."""

    instances: Mapping[str, Any]
    apps: Mapping[str, Any]


@dataclass(slots=True)      # one per running task, kept between passes
class _Previous:
    time_ns: int
    cpu_ns: int


UsageReader = Callable[[list[int]], Mapping[int, ResourceUsage]]


def points_of(instances: list[Any], apps: list[tuple[str, Any]], usages: Mapping[str, ResourceUsage], time_ns: int,
              machine: str, previous: dict[str, _Previous], only: Collection[str] | None = None) -> list[Point]:
    """Points of one pass from a snapshot of the state (immutable instances and records), so it
    runs in a worker thread and the event loop is not held for the points of thousands of tasks;
    updates `previous` (per task cumulative CPU) for utilisation. `only`: the measurements the
    sink keeps (None: all); the others are not built."""
    points: list[Point] = []
    running: dict[str, int] = {}
    seen: set[str] = set()
    records = dict(apps)
    for inst in instances:
        if inst.state != RUNNING:
            continue
        running[inst.app_id] = running.get(inst.app_id, 0) + 1
        usage = usages.get(inst.instance_id)
        if usage is None:
            continue
        record = records.get(inst.app_id)
        definition = getattr(record, "definition", None)
        cpus = float(inst.resources.get("cpus") or getattr(definition, "cpus", 0) or 0)
        mem = float(inst.resources.get("mem") or getattr(definition, "mem", 0) or 0)
        prev = previous.get(inst.instance_id)
        util = None
        if prev is not None and cpus > 0:
            util = cpu_utilization(prev.cpu_ns, prev.time_ns, usage.cpu_ns, time_ns, cpus)
        previous[inst.instance_id] = _Previous(time_ns, usage.cpu_ns)
        seen.add(inst.instance_id)
        points.extend(task_points(TaskSample(
            app_id=inst.app_id, task_id=inst.instance_id, agent_id=inst.agent_id, machine=machine,
            time_ns=time_ns, cpu_user_ns=usage.cpu_user_ns, cpu_system_ns=usage.cpu_system_ns,
            memory_usage_bytes=getattr(usage, "memory_usage_bytes", None) or usage.rss_bytes,
            memory_working_set_bytes=getattr(usage, "memory_working_set_bytes", None) or usage.rss_bytes,
            cpus=cpus or None, mem_mb=mem or None, cpu_utilization=util,
            container_name=inst.instance_id,
        ), only))
    for gone in set(previous) - seen:
        del previous[gone]
    if only is not None and INSTANCES not in only:
        return points
    for app_id, record in apps:
        configured = getattr(getattr(record, "definition", None), "instances", 0) or 0
        points.append(instances_point(app_id, configured, running.get(app_id, 0), time_ns))
    return points


class TaskSampler:
    def __init__(self, scheduler: _SchedulerView, sink: MetricsSink, interval: float, *,
                 machine: str | None = None, read_usage: UsageReader | None = None,
                 usages: Callable[[], Awaitable[dict[str, ResourceUsage]]] | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.scheduler = scheduler
        self.sink = sink
        self.interval = interval
        self.machine = machine or socket.gethostname()
        self._custom_reader = read_usage
        self._backend_usages = usages
        self._read_usage: UsageReader = read_usage or process_group_usages
        self._previous: dict[str, _Previous] = {}
        # a sink that keeps only some measurements (the embedded store) says which: the rest are
        # not built (`points_of`), every pass, for every task
        self._only = kept_measurements(sink)
        self.passes = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_points = 0

    async def _usages_by_task(self) -> dict[str, ResourceUsage]:
        """The backend's own view when it has one (processes and containers), else by pid."""
        if self._custom_reader is None and self._backend_usages is not None:
            return await self._backend_usages()
        running = [inst for inst in list(self.scheduler.instances.values()) if inst.state == RUNNING and inst.pid]
        by_pid = await asyncio.to_thread(self._read_usage, [inst.pid for inst in running]) if running else {}
        return {inst.instance_id: by_pid[inst.pid] for inst in running if inst.pid in by_pid}

    async def sample_once(self) -> int:
        """One pass; returns the number of points written. Raises (run() catches)."""
        usages = await self._usages_by_task()
        instances, apps = list(self.scheduler.instances.values()), list(self.scheduler.apps.items())
        points = await asyncio.to_thread(points_of, instances, apps, usages, time.time_ns(), self.machine,
                                         self._previous, self._only)
        self.sink.write(points)
        self.passes += 1
        self.last_points = len(points)
        return len(points)

    async def run(self) -> None:
        """Sample every `interval` seconds (a fixed beat) until cancelled; never raises anything else."""
        beat = FixedBeat(self.interval, asyncio.get_running_loop().time)
        await run_periodically("task sampler", self._round, beat, log=log)

    async def _round(self) -> None:
        """One pass; a failure is counted where `stats()` serves it, then re-raised for the
        loop to log (once per distinct error) and survive."""
        try:
            await self.sample_once()
        except Exception as exc:
            self.errors += 1
            self.last_error = repr(exc)
            raise

    def stats(self) -> dict[str, Any]:
        return {"passes": self.passes, "errors": self.errors, "last_error": self.last_error,
                "last_points": self.last_points, "tasks_tracked": len(self._previous)}
