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

from collections.abc import Iterable, Iterator, Mapping
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


AppsUsage = Mapping[str, Mapping[str, Series]]   # app_id -> task_id -> Series


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


class AppSeries(Mapping[str, Series]):
    """One app's tasks in a ``UsageBatch``: task id -> Series, tasks without samples absent.

    ``rows`` (task id -> row of the batch, samples or not) is what the autoscaler's vectorised
    decision reads; the mapping interface builds Series only when asked.
    """

    __slots__ = ("batch", "rows")

    def __init__(self, batch: "UsageBatch", rows: Mapping[str, int]) -> None:
        self.batch = batch
        self.rows = rows

    def __getitem__(self, task_id: str) -> Series:
        series = self.batch.row_series(self.rows[task_id])
        if not len(series):
            raise KeyError(task_id)
        return series

    def __iter__(self) -> Iterator[str]:
        offsets = self.batch.offsets
        return (t for t, r in self.rows.items() if offsets[r + 1] > offsets[r])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class UsageBatch(Mapping[str, AppSeries]):
    """Usage series of many tasks in columns: every row's samples back to back.

    Row r holds ``times[offsets[r]:offsets[r + 1]]`` (seconds, ascending) and the matching
    ``values``; ``rows_of_app`` says which task each row is. One query's answer stays in this
    shape so the autoscaler can decide over thousands of tasks without a Python object per
    task. As a mapping (app id -> task id -> Series) it lists only apps and tasks with samples,
    as every source's ``task_usage`` does.
    """

    __slots__ = ("times", "values", "offsets", "rows_of_app")

    def __init__(self, times: np.ndarray, values: np.ndarray, offsets: np.ndarray,
                 rows_of_app: Mapping[str, Mapping[str, int]]) -> None:
        self.times = times
        self.values = values
        self.offsets = offsets
        self.rows_of_app = rows_of_app

    @classmethod
    def of(cls, usage: AppsUsage) -> "UsageBatch":
        """Any per-app, per-task mapping of Series in columns (a batch is returned as it is)."""
        if isinstance(usage, UsageBatch):
            return usage
        rows_of_app: dict[str, dict[str, int]] = {}
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for app_id, tasks in usage.items():
            rows = rows_of_app[app_id] = {}
            for task_id, series in tasks.items():
                rows[task_id] = len(times)
                times.append(np.asarray(series.times, dtype=np.float64))
                values.append(np.asarray(series.values, dtype=np.float64))
        lengths = np.fromiter((len(t) for t in times), dtype=np.int64, count=len(times))
        return cls(np.concatenate(times) if times else np.empty(0), np.concatenate(values) if values else np.empty(0),
                   _offsets(lengths), rows_of_app)

    def row_series(self, row: int) -> Series:
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        return Series(self.times[a:b], self.values[a:b])

    def app_series(self, app_id: str) -> AppSeries:
        """The app's tasks, also when none has samples (then an empty mapping)."""
        return AppSeries(self, self.rows_of_app.get(app_id, {}))

    def __getitem__(self, app_id: str) -> AppSeries:
        tasks = AppSeries(self, self.rows_of_app[app_id])
        if not any(True for _ in tasks):
            raise KeyError(app_id)
        return tasks

    def __iter__(self) -> Iterator[str]:
        return (app_id for app_id in self.rows_of_app if app_id in self)

    def __contains__(self, app_id: object) -> bool:
        rows = self.rows_of_app.get(app_id) if isinstance(app_id, str) else None
        return rows is not None and any(True for _ in AppSeries(self, rows))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def build_usage(metric: str, rows: Iterable[tuple[str, str, np.ndarray, np.ndarray]], *,
                ordered: bool = False) -> UsageBatch:
    """(app_id, task_id, times_ns, values) rows of one measurement -> usage per app and task.

    The same arithmetic as ``metric_series`` row by row, in one vectorised pass (the
    autoscaler asks for thousands of tasks at once). ``ordered=True`` promises every row is
    already in ascending time order (the stores' and InfluxQL's answers are).
    """
    if metric not in MEASUREMENT_OF_METRIC:
        raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    rows_of_app: dict[str, dict[str, int]] = {}
    times_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    for app_id, task_id, times_ns, values in rows:
        if not len(times_ns):
            continue
        if not ordered and len(times_ns) > 1 and np.any(times_ns[1:] < times_ns[:-1]):
            order = np.argsort(times_ns, kind="stable")
            times_ns, values = times_ns[order], values[order]
        rows_of_app.setdefault(app_id, {})[task_id] = len(times_parts)
        times_parts.append(times_ns)
        value_parts.append(values)
    lengths = np.fromiter((len(t) for t in times_parts), dtype=np.int64, count=len(times_parts))
    times = np.concatenate(times_parts) if times_parts else np.empty(0, dtype=np.int64)
    values = np.concatenate(value_parts) if value_parts else np.empty(0)
    return usage_from_columns(metric, rows_of_app, times, values, lengths)


def usage_from_columns(metric: str, rows_of_app: Mapping[str, Mapping[str, int]], times_ns: np.ndarray,
                       values: np.ndarray, lengths: np.ndarray) -> UsageBatch:
    """Raw points of one measurement in columns (row r: ``lengths[r]`` samples, ascending in
    time, rows back to back) -> the usage series in columns (cores for cpu, bytes for mem)."""
    times, usage, row_lengths = usage_columns(metric, times_ns, values, lengths)
    return UsageBatch(times, usage, _offsets(row_lengths), rows_of_app)


def usage_from_chunks(metric: str, rows_of_app: Mapping[str, Mapping[str, int]],
                      chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> UsageBatch:
    """``usage_from_columns`` over consecutive slices of the rows, each (times_ns, values,
    lengths) as that function takes them, reduced one at a time and joined at the end.

    Why: for thousands of series every array over all their samples is megabytes, and each
    fresh one costs page faults; slice by slice the intermediate arrays stay small and their
    memory is reused. The answer is the same as for the rows in one piece.
    """
    parts = [usage_columns(metric, times_ns, values, lengths) for times_ns, values, lengths in chunks]
    if len(parts) == 1:
        times, usage, row_lengths = parts[0]
    else:
        times = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
        usage = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
        row_lengths = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, dtype=np.int64)
    return UsageBatch(times, usage, _offsets(row_lengths), rows_of_app)


def usage_columns(metric: str, times_ns: np.ndarray, values: np.ndarray,
                  lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays of ``usage_from_columns``: (times in seconds, usage, samples per row)."""
    if metric not in MEASUREMENT_OF_METRIC:
        raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    times = np.asarray(times_ns).astype(np.int64, copy=False)
    values = np.asarray(values).astype(np.float64, copy=False)
    lengths = np.asarray(lengths, dtype=np.int64)
    if metric != "cpu":
        return times / NS_PER_S, values, lengths
    offsets = _offsets(lengths)
    dt = np.diff(times)
    dv = np.diff(values)
    ok = (dt > 0) & (dv >= 0)
    # step i joins samples i and i + 1: the step across two rows is no rate
    ok[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(times))] - 1] = False
    kept = np.flatnonzero(ok)                           # the steps that give a rate, in order
    # a row's steps are [offsets[r], offsets[r + 1] - 1) and the step ending it is no rate, so
    # the kept steps before a row's first sample are where its rates start in the answer
    rate_offsets = np.searchsorted(kept, offsets)
    rates = dv[kept] / dt[kept]                         # ns of CPU per ns = cores
    return times[1:][kept] / NS_PER_S, rates, np.diff(rate_offsets)


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
