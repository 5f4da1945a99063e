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


def _slab(capacity: int, ops, block_rows: int, in_order: bool):
    """A slab fed `ops` (appends, in time order when `in_order`, and releases), its rows by
    slot, and what each slot was given."""
    slab = RingSlab(capacity, block_rows=block_rows)
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
    return slab, rows, appended


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), operations, st.integers(0, 60), st.integers(0, 60), st.booleans(),
       st.sampled_from([1, 2, 3, RingSlab.BLOCK_ROWS]), st.randoms(use_true_random=False))
def test_windows_of_many_rows_equal_a_plain_filter_row_by_row(capacity, ops, a, b, in_order, block_rows, rnd):
    """Rows spread over several blocks (each widening on its own) and asked for in any order."""
    slab, rows, appended = _slab(capacity, ops, block_rows, in_order)
    lo, hi = min(a, b), max(a, b) if not in_order else max(a, b) * 3
    slots = sorted(rows)
    rnd.shuffle(slots)
    times, values, lengths = slab.windows(np.array([rows[s] for s in slots], dtype=np.int64), lo, hi)
    assert len(slab) == len(rows) and lengths.tolist() == [
        len(_plain_window(appended[s], capacity, lo, hi)) for s in slots]
    start = 0
    for slot, length in zip(slots, lengths.tolist()):
        got = list(zip(times[start:start + length].tolist(), values[start:start + length].tolist()))
        assert got == _plain_window(appended[slot], capacity, lo, hi)
        start += length
        assert slab.count(rows[slot]) == min(capacity, len(appended[slot]))


def test_blocks_widen_on_their_own_and_hold_only_the_rows_they_need():
    """A block is as wide as its fullest row needs (up to capacity) and a new block starts narrow:
    the memory of many series is the samples they hold, not a doubling of rows or width."""
    slab = RingSlab(100, block_rows=4)
    rows = [slab.add_row() for _ in range(6)]         # block 0: rows 0-3, block 1: rows 4-5
    for t in range(20):
        slab.append(rows[0], t, float(t))
    slab.append(rows[5], 0, 0.0)
    assert slab.width_of(rows[0]) == 32 and slab.width_of(rows[3]) == 32
    assert slab.width_of(rows[5]) == RingSlab.INITIAL_WIDTH
    assert slab.nbytes == (4 * 32 + 4 * RingSlab.INITIAL_WIDTH) * 16   # 16 bytes a sample
    times, values, lengths = slab.windows(np.array([rows[5], rows[0]]), 0, 100)
    assert lengths.tolist() == [1, 20] and times.tolist() == [0, *range(20)] and values[0] == 0.0


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
