"""Samples in cAdvisor's InfluxDB schema, plus Pacer's own measurements. Pure: no I/O, no clock.

cAdvisor's InfluxDB storage driver writes one measurement per statistic, each point with a
single integer field ``value`` and the tags ``container_name`` and ``machine``; filesystem
points also carry ``device`` and ``type`` (``usage`` / ``limit``). Pacer writes the same
measurements and field so existing cAdvisor dashboards and queries work unchanged, and adds
the tags ``app_id``, ``task_id`` and ``agent_id`` so a query can group by app.

Pacer's own measurements (same ``value`` field convention):

=====================  =======  ===========================================================
measurement            type     meaning
=====================  =======  ===========================================================
cpu_limit              float    the task's CPU allocation (cpus)
memory_limit           integer  the task's memory allocation in bytes
cpu_utilization        float    CPU used over the last sampling interval, % of cpu_limit
memory_utilization     float    memory_working_set, % of memory_limit
instances              integer  per app (tags app_id): configured instances; field
                                ``running`` = tasks running
autoscaler_decision    integer  per app (tags app_id, action): desired instances; fields
                                ``current``, ``observed``, ``target``, ``reason``
=====================  =======  ===========================================================

Counters and byte counts are integers (as cAdvisor writes them); InfluxDB refuses a field
whose type changes, so every writer must keep to the types above.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

FieldValue = int | float | bool | str

# -- cAdvisor measurements --------------------------------------------------------------
CPU_USAGE_TOTAL = "cpu_usage_total"
CPU_USAGE_SYSTEM = "cpu_usage_system"
CPU_USAGE_USER = "cpu_usage_user"
MEMORY_USAGE = "memory_usage"
MEMORY_WORKING_SET = "memory_working_set"
RX_BYTES = "rx_bytes"
TX_BYTES = "tx_bytes"
FS_USAGE = "fs_usage"
FS_LIMIT = "fs_limit"
CADVISOR_MEASUREMENTS = (CPU_USAGE_TOTAL, CPU_USAGE_SYSTEM, CPU_USAGE_USER, MEMORY_USAGE,
                         MEMORY_WORKING_SET, RX_BYTES, TX_BYTES, FS_USAGE, FS_LIMIT)

# -- Pacer's measurements ---------------------------------------------------------------
CPU_LIMIT = "cpu_limit"
MEMORY_LIMIT = "memory_limit"
CPU_UTILIZATION = "cpu_utilization"
MEMORY_UTILIZATION = "memory_utilization"
INSTANCES = "instances"
AUTOSCALER_DECISION = "autoscaler_decision"

# -- fields and tags --------------------------------------------------------------------
VALUE = "value"
TAG_CONTAINER_NAME = "container_name"
TAG_MACHINE = "machine"
TAG_APP_ID = "app_id"
TAG_TASK_ID = "task_id"
TAG_AGENT_ID = "agent_id"
TAG_DEVICE = "device"
TAG_TYPE = "type"
TAG_ACTION = "action"

NS_PER_S = 1_000_000_000
BYTES_PER_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Point:
    """One line-protocol point: measurement, tags, fields and a timestamp in nanoseconds."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int

    @property
    def value(self) -> FieldValue | None:
        return self.fields.get(VALUE)


@dataclass(frozen=True, slots=True)
class TaskSample:
    """What a collector read about one task at one instant.

    ``None`` means "not measured by this runtime" (a process task has no network or
    filesystem counters of its own): that measurement is then not written at all, rather
    than written as a misleading zero.
    """

    app_id: str
    task_id: str
    agent_id: str
    machine: str
    time_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    memory_usage_bytes: int
    memory_working_set_bytes: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    fs_usage_bytes: int | None = None
    fs_limit_bytes: int | None = None
    fs_device: str = "sandbox"
    cpus: float | None = None              # allocation
    mem_mb: float | None = None            # allocation
    cpu_utilization: float | None = None   # % of cpus over the last interval (needs two samples)
    container_name: str = ""

    @property
    def cpu_total_ns(self) -> int:
        return self.cpu_user_ns + self.cpu_system_ns

    @property
    def working_set(self) -> int:
        return self.memory_usage_bytes if self.memory_working_set_bytes is None \
            else self.memory_working_set_bytes

    def tags(self) -> dict[str, str]:
        return {
            TAG_CONTAINER_NAME: self.container_name or self.task_id,
            TAG_MACHINE: self.machine,
            TAG_APP_ID: self.app_id,
            TAG_TASK_ID: self.task_id,
            TAG_AGENT_ID: self.agent_id,
        }


def task_points(sample: TaskSample, only: Collection[str] | None = None) -> list[Point]:
    """The points cAdvisor would write for this container, plus Pacer's limits/utilisation.

    ``only``: the measurements wanted (None: all), in the same order. The embedded store keeps
    two of these ~12 measurements; a sampler pass over 5,000 tasks built ~60,000 points (and
    their tag and field dicts, ~20 MB) for the store to drop all but 10,000 of them.
    """
    tags = sample.tags()
    t = sample.time_ns
    points: list[Point] = []

    def add(measurement: str, value: FieldValue, extra: Mapping[str, str] | None = None) -> None:
        if only is None or measurement in only:
            points.append(Point(measurement, {**tags, **extra} if extra else tags, {VALUE: value}, t))

    add(CPU_USAGE_TOTAL, int(sample.cpu_total_ns))
    add(CPU_USAGE_SYSTEM, int(sample.cpu_system_ns))
    add(CPU_USAGE_USER, int(sample.cpu_user_ns))
    add(MEMORY_USAGE, int(sample.memory_usage_bytes))
    add(MEMORY_WORKING_SET, int(sample.working_set))
    if sample.rx_bytes is not None:
        add(RX_BYTES, int(sample.rx_bytes))
    if sample.tx_bytes is not None:
        add(TX_BYTES, int(sample.tx_bytes))
    if sample.fs_usage_bytes is not None:
        add(FS_USAGE, int(sample.fs_usage_bytes), {TAG_DEVICE: sample.fs_device, TAG_TYPE: "usage"})
    if sample.fs_limit_bytes is not None:
        add(FS_LIMIT, int(sample.fs_limit_bytes), {TAG_DEVICE: sample.fs_device, TAG_TYPE: "limit"})
    if sample.cpus is not None and sample.cpus > 0:
        add(CPU_LIMIT, float(sample.cpus))
        if sample.cpu_utilization is not None:
            add(CPU_UTILIZATION, float(sample.cpu_utilization))
    if sample.mem_mb is not None and sample.mem_mb > 0:
        limit = int(sample.mem_mb * BYTES_PER_MB)
        add(MEMORY_LIMIT, limit)
        add(MEMORY_UTILIZATION, 100.0 * sample.working_set / limit)
    return points


def cpu_utilization(prev_cpu_ns: int, prev_time_ns: int, cpu_ns: int, time_ns: int,
                    cpus: float) -> float | None:
    """CPU used between two cumulative samples, as % of the allocation; None if undefined."""
    dt = time_ns - prev_time_ns
    used = cpu_ns - prev_cpu_ns
    if dt <= 0 or used < 0 or cpus <= 0:
        return None
    return 100.0 * used / dt / cpus


def instances_point(app_id: str, instances: int, running: int, time_ns: int) -> Point:
    return Point(INSTANCES, {TAG_APP_ID: app_id}, {VALUE: int(instances), "running": int(running)}, time_ns)


def decision_point(app_id: str, action: str, desired: int, current: int, observed: float | None,
                   target: float | None, reason: str, time_ns: int) -> Point:
    fields: dict[str, FieldValue] = {VALUE: int(desired), "current": int(current), "reason": reason}
    if observed is not None:
        fields["observed"] = float(observed)
    if target is not None:
        fields["target"] = float(target)
    return Point(AUTOSCALER_DECISION, {TAG_APP_ID: app_id, TAG_ACTION: action}, fields, time_ns)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of one stored series: measurement plus its sorted tag pairs."""

    measurement: str
    tags: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def of(cls, point: Point) -> "SeriesKey":
        return cls(point.measurement, tuple(sorted(point.tags.items())))

    def tag(self, name: str) -> str | None:
        for key, value in self.tags:
            if key == name:
                return value
        return None
