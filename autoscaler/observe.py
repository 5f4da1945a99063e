"""What one cycle measured of each app: per running task, the mean of its samples in the
window; per app, their sum, how many tasks had data, and the newest sample. Pure, numpy.

Why a module of its own: this is the only part of the decision that reads samples, and the
part that must stay vectorised: the sources answer a ``UsageBatch`` (every task's samples in
columns) and ``observe_all`` reads the running tasks' rows of it in place, with no Python
object per sample, for thousands of apps at once. ``observe`` is the same for one app.
No I/O and no clock: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from metrics.usage import AppSeries, Series, UsageBatch

from .recommend import EPS as _EPS


class Observation(NamedTuple):
    """What ``observe`` measured of one app (a tuple: thousands are made per cycle)."""

    total: float                # sum over the tasks with data of their mean utilisation
    with_data: int
    missing: int                # running tasks without a sample in the window
    unready: int                # configured instances not running yet
    newest: float | None        # newest sample time of any running task (may be outside the window)

    @property
    def mean(self) -> float | None:
        return self.total / self.with_data if self.with_data else None


def observe(utilization: Mapping[str, Series], running: tuple[str, ...] | list[str], current: int,
            now: float, window: float, scale: float = 1.0) -> Observation:
    """Per running task: mean of its samples in (now - window, now] × scale. Others are ignored."""
    return observe_all([(utilization, running, current, window, scale)], now)[0]


def observe_all(apps: list[tuple[Mapping[str, Series], tuple[str, ...] | list[str], int, float, float]],
                now: float) -> list[Observation]:
    """``observe`` for many apps at once: one vectorised pass over all their samples.

    Each item is (utilization, running task ids, current, window, scale). Utilizations that
    are views of one ``UsageBatch`` (what the sources answer) are read in place, by row;
    any other mapping is first laid out in columns the same way.
    """
    if not apps:
        return []
    utilizations, runnings, currents, windows, scales = zip(*apps)
    totals, with_data, newest = measure_columns(utilizations, runnings, windows, scales, now)
    return [Observation(total, n, len(running) - n, max(0, current - len(running)), latest)
            for running, current, total, n, latest in zip(runnings, currents, totals, with_data, newest)]


def measure_columns(utilizations: Sequence[Mapping[str, Series]], runnings: Sequence[Sequence[str]],
             windows: Sequence[float], scales: Sequence[float],
             now: float) -> tuple[list[float], list[int], list[float | None]]:
    """``observe_all`` on its items' columns (what ``decide_all`` has at hand without a tuple per
    app), answering the observations' columns: totals, tasks with data, newest sample times."""
    plain = [i for i, utilization in enumerate(utilizations) if not isinstance(utilization, AppSeries)]
    if plain:
        laid_out = UsageBatch.of({str(i): utilizations[i] for i in plain})
        utilizations = list(utilizations)
        for i in plain:
            utilizations[i] = laid_out.app_series(str(i))
    # batch id -> (batch, rows of the running tasks app by app, their apps, how many rows each)
    by_batch: dict[int, tuple[UsageBatch, list[int], list[int], list[int]]] = {}
    for i, (utilization, running) in enumerate(zip(utilizations, runnings)):
        batch = utilization.batch  # type: ignore[attr-defined]
        entry = by_batch.get(id(batch))
        if entry is None:
            entry = by_batch[id(batch)] = (batch, [], [], [])
        rows = list(map(utilization.rows.get, running))  # type: ignore[attr-defined]
        if None in rows:                       # running tasks the source has no row for
            rows = [r for r in rows if r is not None]
        entry[1].extend(rows)
        entry[2].append(i)
        entry[3].append(len(rows))
    n_apps = len(utilizations)
    lows = now - np.array(windows, dtype=np.float64)
    scale = np.array(scales, dtype=np.float64)
    totals = np.zeros(n_apps)
    with_data = np.zeros(n_apps, dtype=np.int64)
    newest = np.full(n_apps, -np.inf)
    for batch, rows, apps, counts in by_batch.values():
        seg_app = np.repeat(np.array(apps, dtype=np.int64), np.array(counts, dtype=np.int64))
        means, has, last, has_samples = _row_means(batch, np.array(rows, dtype=np.int64), lows, seg_app, now)
        # the per-app sum adds the tasks' means in running order, as sum() over them would
        totals += np.bincount(seg_app[has], weights=means[has] * scale[seg_app[has]], minlength=n_apps)
        with_data += np.bincount(seg_app[has], minlength=n_apps)
        np.maximum.at(newest, seg_app[has_samples], last[has_samples])
    return totals.tolist(), with_data.tolist(), [None if latest == -np.inf else latest for latest in newest.tolist()]


_ROWS_AT_ONCE = 1024


def _row_means(batch: UsageBatch, rows: np.ndarray, lows: np.ndarray, seg_app: np.ndarray,
               now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (mean of its finite samples in (low, now], whether it has any, its newest
    sample time, whether it has samples at all); row k's low is ``lows[seg_app[k]]``.

    Rows are reduced `_ROWS_AT_ONCE` at a time: an array over every sample of 20,000 tasks is
    megabytes, and each fresh one is paid in page faults, where a thousand rows' arrays reuse
    the same memory. A row's sum is one ``bincount`` over its samples in order either way. The
    usual cases skip arrays altogether: rows whose samples lie back to back are read in place,
    one window for every app compares against one number, and when every sample counts
    nothing is filtered.
    """
    offsets = batch.offsets
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    row_lows = lows[seg_app]
    in_place = bool(np.all(starts[1:] == starts[:-1] + lengths[:-1]))
    sums = np.zeros(len(rows))
    counts = np.zeros(len(rows), dtype=np.int64)
    for at in range(0, len(rows), _ROWS_AT_ONCE):
        part = slice(at, at + _ROWS_AT_ONCE)
        part_lengths = lengths[part]
        seg = np.repeat(np.arange(len(part_lengths)), part_lengths)
        if in_place:
            first = int(starts[at])
            times, values = batch.times[first:first + len(seg)], batch.values[first:first + len(seg)]
        else:
            index = np.arange(len(seg)) + np.repeat(starts[part] - (np.cumsum(part_lengths) - part_lengths),
                                                    part_lengths)
            times, values = batch.times[index], batch.values[index]
        part_lows = row_lows[part]
        low = part_lows[0] if bool(np.all(part_lows == part_lows[0])) else np.repeat(part_lows, part_lengths)
        ok = (times > low) & (times <= now + _EPS) & np.isfinite(values)
        if bool(ok.all()):
            sums[part] = np.bincount(seg, weights=values, minlength=len(part_lengths))
            counts[part] = part_lengths
        else:
            seg_ok = seg[ok]
            sums[part] = np.bincount(seg_ok, weights=values[ok], minlength=len(part_lengths))
            counts[part] = np.bincount(seg_ok, minlength=len(part_lengths))
    means = np.divide(sums, counts, out=np.zeros(len(rows)), where=counts > 0)
    has_samples = lengths > 0
    last = batch.times[np.where(has_samples, starts + lengths - 1, 0)] if len(batch.times) else np.zeros(len(rows))
    return means, counts > 0, last, has_samples
