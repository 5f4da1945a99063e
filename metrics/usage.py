"""From stored samples to per-task usage series the autoscaler can use. Pure, numpy.

Every source (embedded store, InfluxDB v1, InfluxDB v2) fetches the raw points of one
measurement and hands them here, so they agree on the arithmetic:

* ``cpu``: the cumulative ``cpu_usage_total`` counter (ns) becomes a rate in cores
  (ns of CPU per ns of wall time) between consecutive samples, stamped at the later sample;
  a counter going backwards (task restarted under the same id) yields no rate for that step.
* ``mem``: ``memory_working_set`` in bytes, as the HPA and cAdvisor use it.

Utilisation (% of the allocation) is usage divided by the app's allocation, which the caller
knows from the app definition (``utilization_percent``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .schema import BYTES_PER_MB, CPU_USAGE_TOTAL, MEMORY_WORKING_SET, NS_PER_S

METRICS = ("cpu", "mem")
MEASUREMENT_OF_METRIC = {"cpu": CPU_USAGE_TOTAL, "mem": MEMORY_WORKING_SET}


@dataclass(frozen=True)
class Series:
    """One task's samples: times in seconds since the epoch (ascending) and values."""

    times: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    @property
    def last_time(self) -> float | None:
        return float(self.times[-1]) if len(self.times) else None


AppsUsage = dict[str, dict[str, Series]]   # app_id -> task_id -> Series


def counter_rates(times_ns: np.ndarray, counter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rates of a cumulative counter, stamped at the later sample of each step."""
    times_ns = np.asarray(times_ns, dtype=np.int64)
    counter = np.asarray(counter, dtype=np.float64)
    if len(times_ns) < 2:
        return np.empty(0), np.empty(0)
    dt = np.diff(times_ns).astype(np.float64)
    dv = np.diff(counter)
    ok = (dt > 0) & (dv >= 0)
    rates = np.divide(dv, dt, out=np.zeros_like(dv), where=dt > 0) * NS_PER_S
    return times_ns[1:][ok] / NS_PER_S, rates[ok]


def metric_series(metric: str, times_ns: np.ndarray, values: np.ndarray) -> Series:
    """Raw points of the metric's measurement -> usage series (cores for cpu, bytes for mem)."""
    if metric == "cpu":
        times, rates = counter_rates(times_ns, values)
        return Series(times, rates / NS_PER_S)
    if metric == "mem":
        return Series(np.asarray(times_ns, dtype=np.int64) / NS_PER_S, np.asarray(values, dtype=np.float64))
    raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")


def build_usage(metric: str, rows: Iterable[tuple[str, str, np.ndarray, np.ndarray]], *,
                ordered: bool = False) -> AppsUsage:
    """(app_id, task_id, times_ns, values) rows of one measurement -> AppsUsage.

    One vectorised pass over all rows (the autoscaler asks for thousands of tasks at once):
    the same arithmetic as ``metric_series`` row by row. ``ordered=True`` promises every row
    is already in ascending time order (the stores' and InfluxQL's answers are).
    """
    if metric not in MEASUREMENT_OF_METRIC:
        raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    keys: list[tuple[str, str]] = []
    times_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    for app_id, task_id, times_ns, values in rows:
        if not len(times_ns):
            continue
        if not ordered and len(times_ns) > 1 and np.any(times_ns[1:] < times_ns[:-1]):
            order = np.argsort(times_ns, kind="stable")
            times_ns, values = times_ns[order], values[order]
        keys.append((app_id, task_id))
        times_parts.append(times_ns)
        value_parts.append(values)
    out: AppsUsage = {}
    if not keys:
        return out
    lens = np.fromiter((len(t) for t in times_parts), dtype=np.int64, count=len(times_parts))
    times = np.concatenate(times_parts).astype(np.int64, copy=False)
    values = np.concatenate(value_parts).astype(np.float64, copy=False)
    seg = np.repeat(np.arange(len(keys)), lens)
    if metric == "cpu":
        dt = np.diff(times).astype(np.float64)
        dv = np.diff(values)
        ok = (seg[1:] == seg[:-1]) & (dt > 0) & (dv >= 0)
        rates = np.divide(dv, dt, out=np.zeros_like(dv), where=ok)   # ns of CPU per ns = cores
        out_times, out_values, out_seg = times[1:][ok] / NS_PER_S, rates[ok], seg[1:][ok]
    else:
        out_times, out_values, out_seg = times / NS_PER_S, values, seg
    counts = np.bincount(out_seg, minlength=len(keys)).tolist()
    start = 0
    for (app_id, task_id), n in zip(keys, counts):
        if n:
            end = start + n
            tasks = out.get(app_id)
            if tasks is None:
                tasks = out[app_id] = {}
            tasks[task_id] = Series(out_times[start:end], out_values[start:end])
            start = end
    return out


def allocation_units(metric: str, cpus: float, mem_mb: float) -> float:
    """The allocation in the metric's usage unit: cores for cpu, bytes for mem."""
    return cpus if metric == "cpu" else mem_mb * BYTES_PER_MB


def utilization_percent(metric: str, usage: Mapping[str, Series], cpus: float,
                        mem_mb: float) -> dict[str, Series]:
    """Per-task usage -> per-task utilisation, % of the per-task allocation."""
    alloc = allocation_units(metric, cpus, mem_mb)
    if alloc <= 0:
        return {}
    return {task_id: Series(s.times, s.values * (100.0 / alloc)) for task_id, s in usage.items()}
