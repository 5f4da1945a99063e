"""The embedded metrics store: recent samples in memory, bounded, on numpy ring buffers.

The default backend of `pacer serve`: it is both the sink the sampler writes to and the
source the autoscaler reads, so autoscaling works with nothing else installed.

Every series is one row of a ``RingSlab`` (all series' samples in blocks of 2-D arrays), so
the autoscaler's query over thousands of tasks is a few vectorised numpy passes per block.

Bounds: every series holds at most ``capacity`` samples (``retention / interval``, 1 h at
10 s = 360 by default); at most ``max_series`` series are kept (the least recently written
series is evicted first); a series not written for ``retention`` seconds (measured against
the newest sample seen, never the clock) is dropped by ``prune``, which ``write`` runs
whenever the newest sample has moved on by a twentieth of the retention. Only numeric ``value`` fields are stored; string fields (the
autoscaler's reasons) are the decision log's business.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from .ring import RingSlab
from .schema import NS_PER_S, TAG_APP_ID, TAG_TASK_ID, VALUE, Point, SeriesKey
from .usage import MEASUREMENT_OF_METRIC, UsageBatch, usage_from_chunks


_LayoutKey = tuple[str, "tuple[str, ...] | None", int]


class EmbeddedStore:
    """In-memory sink and source."""

    QUERY_CHUNK_ROWS = 1024
    """Series read and reduced at a time by ``usage``: a block of rings, some 250 kB a column."""

    def __init__(self, *, retention: float = 3600.0, interval: float = 10.0,
                 max_series: int = 200_000, measurements: frozenset[str] | None = None) -> None:
        if retention <= 0 or interval <= 0:
            raise ValueError("retention and interval must be positive")
        self.retention = retention
        self.capacity = max(2, math.ceil(retention / interval) + 1)
        self.max_series = max_series
        # None keeps every measurement; `pacer serve` keeps only what its autoscaler reads
        self.measurements = measurements
        self._prune_every_ns = int(retention * NS_PER_S / 20)
        self._rings = RingSlab(self.capacity)
        self._series: OrderedDict[SeriesKey, int] = OrderedDict()   # key -> row, LRU by last write
        # measurement -> app_id -> task_id -> row, for the per-app queries
        self._by_app: dict[str, dict[str, dict[str, int]]] = {}
        self._index_version = 0     # moves whenever a series joins or leaves `_by_app`
        # the last query's layout: (measurement, apps asked, index version) -> rows_of_app, store rows
        self._layout: tuple[_LayoutKey, dict[str, dict[str, int]], np.ndarray] | None = None
        self._newest_ns = 0
        self._pruned_at_ns = 0
        self.written = 0
        self.dropped = 0        # points without a numeric value
        self.evicted = 0        # series dropped for the max_series bound or by age

    # -- sink -------------------------------------------------------------------------
    def write(self, points: Iterable[Point]) -> None:
        keep = self.measurements
        rings = self._rings
        # The sampler hands every point of one task the same tags mapping: its sorted pairs are
        # worked out once and the one tuple is shared by that task's series (a tuple of five
        # pairs is ~360 bytes, held per series for as long as the series lives).
        last_tags: object = None
        pairs: tuple[tuple[str, str], ...] = ()
        for point in points:
            if keep is not None and point.measurement not in keep:
                continue
            value = point.fields.get(VALUE)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                self.dropped += 1
                continue
            if point.tags is not last_tags:
                last_tags, pairs = point.tags, tuple(sorted(point.tags.items()))
            key = SeriesKey(point.measurement, pairs)
            row = self._series.get(key)
            if row is None:
                row = self._add(key)
            else:
                self._series.move_to_end(key)
            rings.append(row, point.time_ns, float(value))
            if point.time_ns > self._newest_ns:
                self._newest_ns = point.time_ns
            self.written += 1
        if self._newest_ns - self._pruned_at_ns >= self._prune_every_ns:
            self.prune()

    def _add(self, key: SeriesKey) -> int:
        while len(self._series) >= self.max_series:
            old, old_row = self._series.popitem(last=False)
            self._unindex(old, old_row)
            self.evicted += 1
        row = self._rings.add_row()
        self._series[key] = row
        self._index_version += 1
        app_id, task_id = key.tag(TAG_APP_ID), key.tag(TAG_TASK_ID)
        if app_id is not None and task_id is not None:
            self._by_app.setdefault(key.measurement, {}).setdefault(app_id, {})[task_id] = row
        return row

    def _unindex(self, key: SeriesKey, row: int) -> None:
        self._rings.release(row)
        self._index_version += 1
        app_id, task_id = key.tag(TAG_APP_ID), key.tag(TAG_TASK_ID)
        apps = self._by_app.get(key.measurement, {})
        tasks = apps.get(app_id or "", {})
        if tasks.get(task_id or "") == row:
            del tasks[task_id or ""]
            if not tasks:
                del apps[app_id or ""]

    def prune(self) -> int:
        """Drop series not written for `retention` seconds before the newest sample."""
        self._pruned_at_ns = self._newest_ns
        cutoff = self._newest_ns - int(self.retention * NS_PER_S)
        last = self._rings.last_time_ns
        stale = [(key, row) for key, row in self._series.items() if last(row) < cutoff]
        for key, row in stale:
            del self._series[key]
            self._unindex(key, row)
        self.evicted += len(stale)
        return len(stale)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"backend": "embedded", "written": self.written, "dropped": self.dropped,
                "buffered": 0, "series": len(self._series), "evicted": self.evicted,
                "errors": 0, "last_error": None}

    # -- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._series)

    def series(self, measurement: str, start: float, end: float,
               tags: dict[str, str] | None = None) -> list[tuple[SeriesKey, np.ndarray, np.ndarray]]:
        """Every series of `measurement` matching `tags`, samples in [start, end] seconds."""
        lo, hi = int(start * NS_PER_S), int(end * NS_PER_S)
        want = set((tags or {}).items())
        out = []
        for key, row in self._series.items():
            if key.measurement != measurement or not want <= set(key.tags):
                continue
            times, values = self._rings.window(row, lo, hi)
            if len(times):
                out.append((key, times, values))
        return out

    def usage(self, metric: str, start: float, end: float,
              app_ids: Collection[str] | None = None) -> UsageBatch:
        """Per app, per task usage of `metric` with sample times in [start, end]: one vectorised
        window over every task's row, the rows of one app side by side."""
        measurement = MEASUREMENT_OF_METRIC.get(metric)
        if measurement is None:
            raise ValueError(f"unknown metric {metric!r}")
        lo, hi = int(start * NS_PER_S), int(end * NS_PER_S)
        rows_of_app, store_rows = self._rows_for(measurement, app_ids)
        windows = self._rings.window_chunks(store_rows, lo, hi, self.QUERY_CHUNK_ROWS)
        return usage_from_chunks(metric, rows_of_app, windows)

    def _rows_for(self, measurement: str,
                  app_ids: Collection[str] | None) -> tuple[dict[str, dict[str, int]], np.ndarray]:
        """(app id -> task id -> row of the answer, the store's row of each answer row) for a
        query. The autoscaler asks for the same apps every cycle and series rarely come and go
        between two cycles, so the last layout is reused while the index has not moved; the
        answers that share it only read it."""
        asked = None if app_ids is None else tuple(app_ids)
        key = (measurement, asked, self._index_version)
        if self._layout is not None and self._layout[0] == key:
            return self._layout[1], self._layout[2]
        apps = self._by_app.get(measurement, {})
        wanted = apps.keys() if asked is None else [a for a in asked if a in apps]
        rows_of_app: dict[str, dict[str, int]] = {}
        store_rows: list[int] = []
        for app_id in wanted:
            tasks = apps[app_id]
            first = len(store_rows)
            rows_of_app[app_id] = dict(zip(tasks, range(first, first + len(tasks))))
            store_rows.extend(tasks.values())
        rows = np.array(store_rows, dtype=np.int64)
        self._layout = (key, rows_of_app, rows)
        return rows_of_app, rows

    async def task_usage(self, metric: str, start: float, end: float,
                         app_ids: Collection[str] | None = None) -> UsageBatch:
        return self.usage(metric, start, end, app_ids)
