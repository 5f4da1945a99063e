"""An app's metric series for charts, shaped as the autoscaler sees them. Pure, numpy.

Why: a chart of an autoscaled app is only useful if it shows what the decisions saw. So the
values are the policy's unit, utilisation in % of each task's allocation (``cpus`` for cpu,
``mem`` for mem), averaged the way ``autoscaler.decision.observe`` does it: per task over a
bucket, then the mean of the tasks that have samples. The instance count is the one the
decisions left the app at (a scale that failed leaves it where it was).

``shape_series`` takes fetched usage and decisions and returns the points; ``series_step``
picks the bucket width. Neither reads the clock: ``start`` and ``end`` are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metrics.usage import Series, allocation_units

MAX_POINTS = 300
"""Buckets in the longest answer: as many as a chart a few hundred pixels wide can show."""
MIN_STEP = 1.0
DEFAULT_SECONDS = 3600
MAX_SECONDS = 7 * 24 * 3600


def series_step(seconds: float) -> float:
    """Bucket width for a range of ``seconds``: at most `MAX_POINTS` buckets, at least 1 s each."""
    return max(MIN_STEP, float(seconds) / MAX_POINTS)


def bucket_means(usage: Mapping[str, Series], scale: float, start: float, step: float,
                 buckets: int) -> np.ndarray:
    """Per bucket: mean over tasks of each task's mean value × ``scale`` in it; NaN where no task
    has a sample. Samples outside [start, start + buckets × step] are left out."""
    total = np.zeros(buckets)
    tasks = np.zeros(buckets)
    for series in usage.values():
        times = np.asarray(series.times, dtype=np.float64)
        values = np.asarray(series.values, dtype=np.float64)
        index = np.floor((times - start) / step).astype(np.int64)
        index[times == start + buckets * step] = buckets - 1          # the end itself is in the last bucket
        keep = (index >= 0) & (index < buckets) & np.isfinite(values)
        counts = np.bincount(index[keep], minlength=buckets)
        sums = np.bincount(index[keep], weights=values[keep], minlength=buckets)
        has = counts > 0
        total[has] += sums[has] / counts[has]
        tasks[has] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tasks > 0, total / np.maximum(tasks, 1) * scale, np.nan)


def instances_after(decision: Mapping[str, Any]) -> int:
    """How many instances a decision left the app at: its ``desired`` if it scaled, else ``current``."""
    scaled = decision.get("applied") is True
    return int(decision["desired"] if scaled else decision["current"])


def instance_counts(times: np.ndarray, decisions: Sequence[Mapping[str, Any]], current: int) -> np.ndarray:
    """The instance count at each of ``times``: as the last decision at or before it left it;
    before the first decision, that decision's ``current``; without decisions, ``current``."""
    ordered = sorted(decisions, key=lambda d: float(d["time"]))
    if not ordered:
        return np.full(len(times), current, dtype=np.int64)
    at = np.array([float(d["time"]) for d in ordered])
    after = np.array([instances_after(d) for d in ordered], dtype=np.int64)
    last = np.searchsorted(at, times, side="right") - 1
    return np.where(last >= 0, after[np.maximum(last, 0)], int(ordered[0]["current"]))


def _value(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 3)


def shape_series(cpu: Mapping[str, Series], mem: Mapping[str, Series], *, cpus: float, mem_mb: float,
                 decisions: Sequence[Mapping[str, Any]], current: int, start: float, end: float,
                 step: float) -> list[dict[str, Any]]:
    """Points of [start, end] in buckets of ``step`` seconds: ``time`` (the bucket's end, epoch
    seconds), ``cpu`` and ``memory`` (% of the per-task allocation; None in a bucket without
    samples, or when the app allocates none), ``instances``. Buckets with neither samples nor
    a decision are left out.

    ``cpu`` is in cores per task, ``mem`` in bytes per task, task id -> Series (what a metrics
    source answers for one app); ``decisions`` are the autoscaler's recorded decisions of the app.
    """
    if end <= start or step <= 0:
        return []
    buckets = max(1, math.ceil((end - start) / step))
    columns = []
    for metric, usage in (("cpu", cpu), ("mem", mem)):
        allocation = allocation_units(metric, cpus, mem_mb)
        columns.append(bucket_means(usage, 100.0 / allocation, start, step, buckets) if allocation > 0
                       else np.full(buckets, np.nan))
    cpu_pct, mem_pct = columns
    decided = np.zeros(buckets, dtype=bool)
    for d in decisions:
        i = math.floor((float(d["time"]) - start) / step)
        if 0 <= i < buckets or float(d["time"]) == end:
            decided[min(i, buckets - 1)] = True
    times = np.minimum(start + step * np.arange(1, buckets + 1), end)
    counts = instance_counts(times, decisions, current)
    shown = np.flatnonzero(~np.isnan(cpu_pct) | ~np.isnan(mem_pct) | decided)
    return [{"time": round(float(times[i]), 3), "cpu": _value(cpu_pct[i]), "memory": _value(mem_pct[i]),
             "instances": int(counts[i])} for i in shown]
