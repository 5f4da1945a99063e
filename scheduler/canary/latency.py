"""The p95 response time of each version over one analysis interval, from per-request samples. Pure.

HAProxy's counters only carry a mean (``rtime``); a real percentile needs one figure per
request, which HAProxy's own request log gives (``%Tr``: the server's response time, the same
quantity ``rtime`` averages, so a p95 and its mean fallback measure one thing). The caller
collects ``(server key, milliseconds)`` samples of the interval; this module sums them by
version through the server -> version map and takes the percentile.

The percentile is numpy's default (linear interpolation between the closest ranks), written
out here so the canary core stays free of numpy; the property tests hold it to
``numpy.percentile``. A negative time (HAProxy logs ``-1`` when no response came: the request
is an error, counted by the error checks) and a server of no known version are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["P95", "percentile", "percentile_by_version"]

P95 = 95.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation, as
    ``numpy.percentile``'s default; raises ValueError for no values or a ``q`` outside 0..100."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def percentile_by_version(samples: Iterable[tuple[str, float]], version_of_server: Mapping[str, str],
                          q: float = P95) -> dict[str, float]:
    """Version -> the ``q``-th percentile of its servers' response times (ms); a version without
    a sample is absent (never 0: no measurement is not a fast one)."""
    by_version: dict[str, list[float]] = {}
    for server, ms in samples:
        version = version_of_server.get(server)
        if version is None or ms < 0 or math.isnan(ms):
            continue
        by_version.setdefault(version, []).append(ms)
    return {version: percentile(values, q) for version, values in by_version.items()}
