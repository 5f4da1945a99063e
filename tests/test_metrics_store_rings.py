"""The store's rings share two 2-D arrays: many rows, written interleaved, read together.

``RingSlab.windows`` (all rows at once, a vectorised search) must answer exactly what a plain
filter over each row's last ``capacity`` appends answers, whatever the interleaving, widening,
release and reuse of rows, and appends out of time order.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.ring import RingSlab

# one operation: ("append", row slot, time) or ("release", row slot)
operations = st.lists(st.one_of(st.tuples(st.just("append"), st.integers(0, 5), st.integers(0, 60)),
                                st.tuples(st.just("release"), st.integers(0, 5))), max_size=120)


def _plain_window(appends: list[tuple[int, float]], capacity: int, lo: int, hi: int) -> list[tuple[int, float]]:
    kept = sorted(appends[-capacity:], key=lambda p: p[0])   # stable: equal times keep append order
    return [(t, v) for t, v in kept if lo <= t <= hi]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), operations, st.integers(0, 60), st.integers(0, 60), st.booleans())
def test_windows_of_many_rows_equal_a_plain_filter_row_by_row(capacity, ops, a, b, in_order):
    slab = RingSlab(capacity)
    rows: dict[int, int] = {}
    appended: dict[int, list[tuple[int, float]]] = {}
    clock = 0
    for n, op in enumerate(ops):
        if op[0] == "release":
            if op[1] in rows:
                slab.release(rows.pop(op[1]))
            continue
        slot, t = op[1], op[2]
        if in_order:
            clock += t % 3
            t = clock
        if slot not in rows:
            rows[slot] = slab.add_row()
            appended[slot] = []
        slab.append(rows[slot], t, float(n))
        appended[slot].append((t, float(n)))
    lo, hi = min(a, b), max(a, b) if not in_order else max(a, b) * 3
    slots = sorted(rows)
    times, values, lengths = slab.windows(np.array([rows[s] for s in slots], dtype=np.int64), lo, hi)
    assert len(slab) == len(rows) and lengths.tolist() == [
        len(_plain_window(appended[s], capacity, lo, hi)) for s in slots]
    start = 0
    for slot, length in zip(slots, lengths.tolist()):
        got = list(zip(times[start:start + length].tolist(), values[start:start + length].tolist()))
        assert got == _plain_window(appended[slot], capacity, lo, hi)
        start += length
        assert slab.count(rows[slot]) == min(capacity, len(appended[slot]))


def test_a_released_row_comes_back_empty():
    slab = RingSlab(4)
    row = slab.add_row()
    for t in (5, 3):
        slab.append(row, t, 1.0)
    slab.release(row)
    again = slab.add_row()
    assert again == row and slab.count(again) == 0 and slab.last_time_ns(again) == -1
    slab.append(again, 1, 2.0)
    assert slab.window(again, 0, 10)[1].tolist() == [2.0]
