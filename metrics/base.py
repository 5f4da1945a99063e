"""The two I/O seams of the metrics layer, as Protocols.

``MetricsSink.write`` is synchronous and never blocks: the embedded store appends to its
ring buffers, the InfluxDB sinks append encoded lines to a bounded buffer that a background
task flushes. ``MetricsSource.task_usage`` is a coroutine (it may query a server) and raises
``MetricsQueryError`` when it cannot answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol, runtime_checkable

from .schema import Point
from .usage import AppsUsage


@runtime_checkable
class MetricsSink(Protocol):
    def write(self, points: Iterable[Point]) -> None:
        """Accept points; never blocks and never raises for I/O reasons."""

    async def flush(self) -> None:
        """Send what is buffered now (best effort)."""

    async def close(self) -> None:
        """Flush and release connections."""

    def stats(self) -> dict[str, Any]:
        """Counters: written, dropped, buffered, errors, last_error."""


@runtime_checkable
class MetricsSource(Protocol):
    async def task_usage(self, metric: str, start: float, end: float,
                         app_ids: Collection[str] | None = None) -> AppsUsage:
        """Per app, per task usage series of `metric` ("cpu": cores, "mem": bytes) with
        sample times in [start, end] (seconds since the epoch). Apps without data are absent."""

    async def close(self) -> None:
        """Release connections."""


def kept_measurements(sink: MetricsSink) -> frozenset[str] | None:
    """The measurements `sink` keeps, or None when it keeps every one.

    A sink that stores only some measurements names them in a ``measurements`` set (the
    embedded store of ``pacer serve`` keeps only what the autoscaler reads) and drops the
    others on write; a writer with many points of a dropped measurement can skip making them.
    """
    kept = getattr(sink, "measurements", None)
    return kept if isinstance(kept, frozenset) else None


def sink_keeps(sink: MetricsSink, measurement: str) -> bool:
    """Whether points of `measurement` written to `sink` are kept."""
    kept = kept_measurements(sink)
    return kept is None or measurement in kept
