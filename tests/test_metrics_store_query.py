"""The embedded store's usage query, read a slice of rows at a time and laid out once.

* ``RingSlab.window_chunks`` answers, slice after slice, what ``windows`` answers at once, and
  rows asked for block by block (each block's rows gathered straight into the answer) read as
  a plain filter reads them;
* ``usage_from_chunks`` over rows cut anywhere equals ``usage_from_columns`` over the whole;
* ``EmbeddedStore.usage`` reuses the last query's layout only while no series came or went.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import EmbeddedStore, Point
from metrics.ring import RingSlab
from metrics.schema import NS_PER_S
from metrics.usage import usage_from_chunks, usage_from_columns

from .test_metrics_store_rings import _plain_window, _slab, operations


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), operations, st.integers(0, 60), st.integers(0, 180), st.booleans(),
       st.sampled_from([1, 2, 3, RingSlab.BLOCK_ROWS]), st.integers(1, 4))
def test_rows_asked_block_by_block_read_as_a_plain_filter_in_any_slices(capacity, ops, lo, hi, in_order,
                                                                           block_rows, chunk):
    slab, rows, appended = _slab(capacity, ops, block_rows, in_order)
    slots = sorted(rows, key=lambda s: rows[s])                # ascending rows: block by block
    asked = np.array([rows[s] for s in slots], dtype=np.int64)
    whole = slab.windows(asked, lo, hi)
    parts = list(slab.window_chunks(asked, lo, hi, chunk))
    joined = [np.concatenate([p[i] for p in parts]) for i in range(3)]
    for got, expected in zip(joined, whole):
        assert np.array_equal(got, expected)
    start = 0
    for slot, length in zip(slots, whole[2].tolist()):
        got = list(zip(whole[0][start:start + length].tolist(), whole[1][start:start + length].tolist()))
        assert got == _plain_window(appended[slot], capacity, lo, hi)
        start += length


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["cpu", "mem"]),
       st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**10)), max_size=7), max_size=8),
       st.lists(st.integers(0, 8), max_size=4))
def test_usage_from_chunks_equals_one_piece(metric, rows, cuts):
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    times = np.cumsum([step for r in rows for step, _ in r], dtype=np.int64) * NS_PER_S
    values = np.array([v for r in rows for _, v in r], dtype=np.float64)
    layout = {"/a": {f"t{i}": i for i in range(len(rows))}}
    whole = usage_from_columns(metric, layout, times, values, lengths)
    bounds = sorted({0, len(rows), *[min(c, len(rows)) for c in cuts]})
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    chunks = [(times[offsets[a]:offsets[b]], values[offsets[a]:offsets[b]], lengths[a:b])
              for a, b in zip(bounds, bounds[1:])] or [(times, values, lengths)]
    joined = usage_from_chunks(metric, layout, chunks)
    assert np.array_equal(joined.offsets, whole.offsets)
    assert np.array_equal(joined.times, whole.times) and np.array_equal(joined.values, whole.values)


def _cpu(app_id: str, task_id: str, second: int, cores: float) -> Point:
    return Point("cpu_usage_total", {"app_id": app_id, "task_id": task_id}, {"value": int(second * cores * NS_PER_S)},
                 second * NS_PER_S)


def _rates(batch) -> dict[str, dict[str, list[float]]]:
    return {app_id: {task_id: series.values.tolist() for task_id, series in tasks.items()}
            for app_id, tasks in batch.items()}


def test_the_layout_is_reused_until_a_series_comes_or_goes():
    store = EmbeddedStore(retention=30, interval=1)
    store.write([_cpu(f"/a{a}", f"t{t}", s, 0.5) for s in range(5) for a in range(3) for t in range(2)])
    first = store.usage("cpu", 0, 10, ["/a0", "/a1", "/a2"])
    again = store.usage("cpu", 0, 10, ["/a0", "/a1", "/a2"])
    assert again.rows_of_app is first.rows_of_app and _rates(again) == _rates(first)
    store.write([_cpu("/a1", "t9", s, 0.25) for s in range(5)])          # a new series
    grown = store.usage("cpu", 0, 10, ["/a0", "/a1", "/a2"])
    assert grown.rows_of_app is not first.rows_of_app and grown["/a1"]["t9"].values.tolist() == [0.25] * 4
    assert store.usage("cpu", 0, 10, ["/a2", "/a0"]).rows_of_app.keys() == {"/a2", "/a0"}
    store.write([_cpu("/a0", "t0", 100, 0.5)])        # 70 s past the retention: the others go
    store.prune()
    after = store.usage("cpu", 0, 200, ["/a0", "/a1", "/a2"])
    assert set(_rates(after)) == {"/a0"} and set(after.rows_of_app) == {"/a0"} and set(after["/a0"]) == {"t0"}


def test_a_query_in_slices_of_rows_answers_as_in_one():
    store = EmbeddedStore(retention=60, interval=1)
    store.write([_cpu(f"/a{a}", f"t{t}", s, 0.1 * (a + t + 1)) for s in range(8) for a in range(5) for t in range(3)])
    whole = _rates(store.usage("cpu", 2, 7))
    for rows in (1, 2, 4):
        with mock.patch.object(EmbeddedStore, "QUERY_CHUNK_ROWS", rows):
            store._layout = None
            assert _rates(store.usage("cpu", 2, 7)) == whole
