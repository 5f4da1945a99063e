"""Bounded rings of (time, value) samples, one row each, held together in blocks of 2-D numpy arrays.

Rows share arrays (not one pair of arrays per series) so that the autoscaler's query — the
samples of 20,000 series inside a time window — is a handful of vectorised numpy operations
per block instead of 20,000 small ``searchsorted`` and copy calls.

Each row is a ring: it keeps the newest ``capacity`` appends, in append order, and
overwrites the oldest append once full. Rows live in blocks of ``block_rows`` rows, each block
a pair of 2-D arrays (times, values) of its own width. A block starts narrow and doubles in
width, up to ``capacity``, when one of its rows fills (and the last block doubles in height
as rows are added), so a young store costs what it holds, not an hour of samples per series.
A row stays unwrapped until its block's width reaches ``capacity`` — a full row at a smaller
width makes the block wider instead — so widening copies every row's samples to the same
columns. Appends out of time order are kept and sorted (stably) when read.

Why blocks rather than one pair of arrays for every row: one array grown by doubling held up
to twice the rows it used, and each widening copied every series at once, old and new array
alive together — for 10,000 series at an hour of 10 s samples the store's resident memory
was 95 MB with a 160 MB peak, where the samples themselves are 58 MB. A block wastes at most
its own unused rows, and a widening copies one block.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_NO_TIME = -1


class RingSlab:
    __slots__ = ("_limit", "_block_rows", "_times", "_values", "_heads", "_counts", "_last", "_ordered",
                 "_disordered", "_free", "_rows")

    INITIAL_WIDTH = 8
    INITIAL_ROWS = 16
    BLOCK_ROWS = 1024

    def __init__(self, capacity: int, *, block_rows: int = BLOCK_ROWS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if block_rows < 1:
            raise ValueError("block_rows must be at least 1")
        self._limit = capacity
        self._block_rows = block_rows
        self._times: list[np.ndarray] = []     # per block: (rows, width) int64
        self._values: list[np.ndarray] = []    # per block: (rows, width) float64
        # per-row bookkeeping in plain lists: appends touch them one at a time, where lists
        # are several times cheaper than numpy scalars; queries convert them once
        self._heads: list[int] = []        # next column to write
        self._counts: list[int] = []
        self._last: list[int] = []         # newest time appended (not necessarily the max)
        self._ordered: list[bool] = []     # every append so far was at or after the previous
        self._disordered = 0               # rows whose `_ordered` is False: a query skips the check when 0
        self._free: list[int] = []
        self._rows = 0

    @property
    def capacity(self) -> int:
        return self._limit

    @property
    def block_rows(self) -> int:
        return self._block_rows

    def width_of(self, row: int) -> int:
        """Columns allocated to `row` now (its block's width)."""
        return int(self._times[row // self._block_rows].shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the sample arrays."""
        return sum(t.nbytes + v.nbytes for t, v in zip(self._times, self._values))

    # -- rows --------------------------------------------------------------------------
    def add_row(self) -> int:
        """A new empty ring; rows released by ``release`` are reused first."""
        if self._free:
            row = self._free.pop()
            if not self._ordered[row]:
                self._disordered -= 1
            self._heads[row], self._counts[row], self._last[row], self._ordered[row] = 0, 0, _NO_TIME, True
            return row
        row = self._rows
        block, index = divmod(row, self._block_rows)
        if block == len(self._times):
            height, width = min(self._block_rows, self.INITIAL_ROWS), min(self._limit, self.INITIAL_WIDTH)
            self._times.append(np.zeros((height, width), dtype=np.int64))
            self._values.append(np.zeros((height, width), dtype=np.float64))
        elif index == self._times[block].shape[0]:
            self._resize(block, min(self._block_rows, index * 2), self._times[block].shape[1])
        self._rows += 1
        self._heads.append(0)
        self._counts.append(0)
        self._last.append(_NO_TIME)
        self._ordered.append(True)
        return row

    def release(self, row: int) -> None:
        self._counts[row] = 0
        self._free.append(row)

    def _resize(self, block: int, rows: int, width: int) -> None:
        old_times, old_values = self._times[block], self._values[block]
        times = np.zeros((rows, width), dtype=np.int64)
        values = np.zeros((rows, width), dtype=np.float64)
        old_rows, old_width = old_times.shape
        times[:old_rows, :old_width] = old_times
        values[:old_rows, :old_width] = old_values
        self._times[block], self._values[block] = times, values

    def _widen(self, block: int) -> None:
        """Double the block's width; only while none of its rows has wrapped, so each row's
        data is [0, count)."""
        height, width = self._times[block].shape
        self._resize(block, height, min(width * 2, self._limit))
        first = block * self._block_rows
        last = min(first + height, self._rows)
        self._heads[first:last] = self._counts[first:last]

    # -- samples -------------------------------------------------------------------------
    def last_time_ns(self, row: int) -> int:
        return self._last[row]

    def __len__(self) -> int:
        return self._rows - len(self._free)

    def count(self, row: int) -> int:
        return self._counts[row]

    def append(self, row: int, time_ns: int, value: float) -> None:
        block, index = divmod(row, self._block_rows)
        times = self._times[block]
        count = self._counts[row]
        width = times.shape[1]
        if count == width < self._limit:
            self._widen(block)
            times = self._times[block]
            width = times.shape[1]
        head = self._heads[row]
        if time_ns < self._last[row] and self._ordered[row]:
            self._ordered[row] = False
            self._disordered += 1
        times[index, head] = time_ns
        self._values[block][index, head] = value
        self._heads[row] = head + 1 if head + 1 < width else 0
        if count < width:
            self._counts[row] = count + 1
        self._last[row] = time_ns

    def arrays(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """All samples held in `row`, oldest first (copies)."""
        block, index = divmod(row, self._block_rows)
        block_times = self._times[block]
        count, head, width = self._counts[row], self._heads[row], block_times.shape[1]
        order = (head - count + np.arange(count)) % width
        times, values = block_times[index, order], self._values[block][index, order]
        if not self._ordered[row] and count > 1 and np.any(times[1:] < times[:-1]):
            by_time = np.argsort(times, kind="stable")
            times, values = times[by_time], values[by_time]
        return times, values

    def window(self, row: int, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples of `row` with start_ns <= time <= end_ns, oldest first (copies)."""
        times, values, _ = self.windows(np.array([row], dtype=np.int64), start_ns, end_ns)
        return times, values

    def windows(self, rows: np.ndarray, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``window`` of many rows at once: (times, values, lengths), the rows back to back.

        Rows whose appends were all in time order (nearly all) are searched together, block by
        block: a vectorised binary search for both ends of the window over each row's time
        order, then one gather. The others are read one by one, sorted, as ``arrays`` reads them.
        When the rows asked for come block by block (a store lists an app's tasks in the order
        their series were added), each block's samples are gathered straight into their place
        of the answer.
        """
        rows = np.asarray(rows, dtype=np.int64)
        return next(self.window_chunks(rows, start_ns, end_ns, max(1, len(rows))))

    def window_chunks(self, rows: np.ndarray, start_ns: int, end_ns: int,
                      chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``windows`` of `rows` a slice of `chunk_rows` rows at a time, in order.

        A caller that reduces each slice before asking for the next keeps every array it
        makes slice-sized: arrays over all the samples of 20,000 series are megabytes each,
        and fresh megabytes are page faults (glibc hands large freed blocks back to the kernel).
        """
        rows = np.asarray(rows, dtype=np.int64)
        counts = _pick(self._counts, rows, np.int64)
        first = _pick(self._heads, rows, np.int64) - counts     # column of the oldest, mod width
        ordered = _pick(self._ordered, rows, bool) if self._disordered else np.ones(len(rows), dtype=bool)
        for at in range(0, max(len(rows), 1), chunk_rows):
            part = slice(at, at + chunk_rows)
            yield self._windows(rows[part], counts[part], first[part], ordered[part], start_ns, end_ns)

    def _windows(self, rows: np.ndarray, counts: np.ndarray, first: np.ndarray, ordered: np.ndarray,
                 start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths = np.zeros(len(rows), dtype=np.int64)
        runs: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []   # block, positions, row base, start column
        by_block, in_runs = _by_block(rows, self._block_rows)
        for block, positions in by_block:
            width = int(self._times[block].shape[1])
            flat_times = self._times[block].reshape(-1)
            row_base = (rows[positions] - block * self._block_rows) * width
            block_first, block_counts = first[positions], counts[positions]
            lo = _first_index(flat_times, row_base, block_first, width, block_counts, start_ns, strict=False)
            hi = _first_index(flat_times, row_base, block_first, width, block_counts, end_ns, strict=True)
            lengths[positions] = np.maximum(hi - lo, 0)
            runs.append((block, positions, row_base, (block_first + lo) % width))
        disordered = np.flatnonzero(~ordered).tolist()
        lengths[disordered] = 0
        pieces: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k in disordered:
            times, values = self.arrays(int(rows[k]))
            a = int(np.searchsorted(times, start_ns, side="left"))
            b = max(a, int(np.searchsorted(times, end_ns, side="right")))     # an empty window: end before start
            pieces[k] = (times[a:b], values[a:b])
            lengths[k] = b - a
        total = int(lengths.sum())
        starts = np.cumsum(lengths) - lengths
        out_times = np.empty(total, dtype=np.int64)
        out_values = np.empty(total, dtype=np.float64)
        if in_runs and not disordered:      # each block's rows fill one slice of the answer
            for block, positions, row_base, column in runs:
                a, b = int(positions[0]), int(positions[-1]) + 1
                run_lengths = lengths[a:b]
                into = slice(int(starts[a]), int(starts[a]) + int(run_lengths.sum()))
                source = _gather_index(row_base, column, run_lengths, starts[a:b] - starts[a], into.stop - into.start,
                                       int(self._times[block].shape[1]))
                out_times[into] = self._times[block].reshape(-1)[source]
                out_values[into] = self._values[block].reshape(-1)[source]
            return out_times, out_values, lengths
        for block, positions, row_base, column in runs:
            kept = np.where(ordered[positions], lengths[positions], 0)
            width = int(self._times[block].shape[1])
            within = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
            source = np.repeat(row_base, kept) + (np.repeat(column, kept) + within) % width
            target = np.repeat(starts[positions], kept) + within
            out_times[target] = self._times[block].reshape(-1)[source]
            out_values[target] = self._values[block].reshape(-1)[source]
        for k, (times, values) in pieces.items():
            out_times[starts[k]:starts[k] + lengths[k]] = times
            out_values[starts[k]:starts[k] + lengths[k]] = values
        return out_times, out_values, lengths


def _by_block(rows: np.ndarray, block_rows: int) -> tuple[list[tuple[int, np.ndarray]], bool]:
    """(block, positions in `rows` of its rows) for every block `rows` touch, in block order; and
    whether those positions are runs in order (every block's one ascending range, the blocks'
    ranges one after the other), as when `rows` ascend block by block."""
    if not len(rows):
        return [], True
    blocks = rows // block_rows
    low, high = int(blocks.min()), int(blocks.max())
    if low == high:
        return [(low, np.arange(len(rows)))], True
    if bool(np.all(blocks[1:] >= blocks[:-1])):
        cuts = [0, *(np.flatnonzero(blocks[1:] != blocks[:-1]) + 1).tolist(), len(rows)]
        return [(int(blocks[a]), np.arange(a, b)) for a, b in zip(cuts, cuts[1:])], True
    by_block = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[by_block]
    cuts = np.flatnonzero(sorted_blocks[1:] != sorted_blocks[:-1]) + 1
    return [(int(blocks[part[0]]), part) for part in np.split(by_block, cuts)], False


def _first_index(flat_times: np.ndarray, row_base: np.ndarray, first: np.ndarray, width: int,
                 counts: np.ndarray, bound: int, *, strict: bool) -> np.ndarray:
    """Per row, the first position j in [0, count) of the row's time order whose time is
    >= bound (> bound if strict): ``searchsorted`` left (right if strict) for all rows at once.

    Row k's j-th oldest sample sits at ``row_base[k] + (first[k] + j) % width`` of the flat array.
    Rows wholly on one side of the bound (the newest sample is usually before the window's end,
    and a young row's oldest after its start) are answered from those two samples, unsearched.
    """
    lo = np.zeros_like(counts)
    hi = counts.copy()
    oldest = flat_times[row_base + first % width]
    newest = flat_times[row_base + (first + counts - 1) % width]
    hi[(oldest > bound) if strict else (oldest >= bound)] = 0
    before = (newest <= bound) if strict else (newest < bound)
    lo[before] = counts[before]
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) >> 1
        times = flat_times[row_base[active] + (first[active] + mid) % width]
        right = times <= bound if strict else times < bound
        lo[active[right]] = mid[right] + 1
        hi[active[~right]] = mid[~right]
        active = active[lo[active] < hi[active]]
    return lo


def _gather_index(row_base: np.ndarray, column: np.ndarray, lengths: np.ndarray, starts: np.ndarray,
                  total: int, width: int) -> np.ndarray:
    """Flat positions of ``lengths[k]`` consecutive ring slots of each row from ``column[k]``,
    rows back to back (row k's first lands at ``starts[k]``). Runs that do not wrap past the
    row's end — all of them until the rings fill — are plain ranges: one repeat and one add."""
    if not total or bool(np.all(column + lengths <= width)):
        return np.arange(total) + np.repeat(row_base + column - starts, lengths)
    within = np.arange(total) - np.repeat(starts, lengths)
    return np.repeat(row_base, lengths) + (np.repeat(column, lengths) + within) % width


def _pick(column: list, rows: np.ndarray, dtype: type) -> np.ndarray:
    """``column[rows]`` as an array: a few rows are picked one by one (one app's query must not
    pay for converting every row's bookkeeping), many by converting the whole list once."""
    if len(rows) * 16 < len(column):
        return np.array([column[r] for r in rows.tolist()], dtype=dtype)
    return np.asarray(column, dtype=dtype)[rows]
