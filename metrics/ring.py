"""A bounded ring buffer of (time, value) samples on numpy arrays.

The arrays start small and double until they reach `capacity`, so a young series costs what
it holds, not an hour of samples (5,000 tasks × 9 series × 361 slots would be 260 MB up
front). Once full, the oldest sample is overwritten: memory per series is bounded by
construction (capacity × 16 bytes), and appends are amortised O(1).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    __slots__ = ("_times", "_values", "_head", "_count", "last_time_ns", "_ordered", "_limit")

    INITIAL_SLOTS = 8

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._limit = capacity
        self._times = np.zeros(min(capacity, self.INITIAL_SLOTS), dtype=np.int64)
        self._values = np.zeros(len(self._times), dtype=np.float64)
        self._head = 0          # next slot to write
        self._count = 0
        self.last_time_ns = -1  # newest time appended (not necessarily the max if out of order)
        self._ordered = True    # every append so far was at or after the previous one

    @property
    def capacity(self) -> int:
        return self._limit

    def _grow(self) -> None:
        """Double the arrays; only called while the buffer has never wrapped (data is [0, n))."""
        size = min(len(self._times) * 2, self._limit)
        times = np.zeros(size, dtype=np.int64)
        values = np.zeros(size, dtype=np.float64)
        times[:self._count] = self._times
        values[:self._count] = self._values
        self._times, self._values = times, values
        self._head = self._count

    def __len__(self) -> int:
        return self._count

    def append(self, time_ns: int, value: float) -> None:
        if self._count == len(self._times) < self._limit:
            self._grow()
        if time_ns < self.last_time_ns:
            self._ordered = False
        self._times[self._head] = time_ns
        self._values[self._head] = value
        self._head = (self._head + 1) % len(self._times)
        if self._count < len(self._times):
            self._count += 1
        self.last_time_ns = time_ns

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All held samples, oldest first (copies)."""
        n, cap, head = self._count, len(self._times), self._head
        if n < cap:
            times, values = self._times[:n].copy(), self._values[:n].copy()
        elif head == 0:
            times, values = self._times.copy(), self._values.copy()
        else:
            times = np.concatenate((self._times[head:], self._times[:head]))
            values = np.concatenate((self._values[head:], self._values[:head]))
        if not self._ordered and n > 1 and np.any(times[1:] < times[:-1]):
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
        return times, values

    def window(self, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples with start_ns <= time <= end_ns, oldest first (copies)."""
        n, cap, head = self._count, len(self._times), self._head
        if self._ordered and n:
            if n < cap or head == 0:         # one contiguous, ordered run: slice it
                times, values = self._times[:n], self._values[:n]
            else:                            # two runs: keep only the part of the older one we need
                older_last = self._times[cap - 1]
                if start_ns > older_last:    # the window lies in the newer run [0, head)
                    times, values = self._times[:head], self._values[:head]
                else:
                    times, values = self.arrays()
            lo = int(times.searchsorted(start_ns, side="left"))
            hi = int(times.searchsorted(end_ns, side="right"))
            return times[lo:hi].copy(), values[lo:hi].copy()
        times, values = self.arrays()
        lo = int(np.searchsorted(times, start_ns, side="left"))
        hi = int(np.searchsorted(times, end_ns, side="right"))
        return times[lo:hi], values[lo:hi]
