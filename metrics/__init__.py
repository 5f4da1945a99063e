"""Task usage samples in cAdvisor's InfluxDB schema: model, sinks, sources, dashboards.

Modules, pure first:
    schema        measurements, tags, ``Point``, ``TaskSample`` -> points (cAdvisor schema + Pacer's)
    lineprotocol  line protocol encoding/escaping (and a strict parser)
    usage         raw counters -> per-task usage series (cores, bytes); utilisation %
    ring          fixed-capacity numpy ring buffer
    dashboards    Grafana dashboards and datasource provisioning (builders pure; ``write_dashboards`` writes)
    options, cli  ``MetricsOptions`` and the flags that fill it
    store         ``EmbeddedStore``: the in-memory sink+source (default)
    batching      ``BatchingSink``: bounded buffer, batched async sends, drop counter
    influx_v1     v1 HTTP API sink/source (``/write``, InfluxQL ``/query``)
    influx_v2     v2 API sink/source through influxdb-client (write API, Flux)

Errors: see ``metrics.errors`` (``MetricsError`` > ``LineProtocolError``, ``MetricsQueryError``,
``MetricsConfigError``). Seams: ``metrics.base.MetricsSink`` / ``MetricsSource``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import MetricsSink, MetricsSource
from .errors import LineProtocolError, MetricsConfigError, MetricsError, MetricsQueryError
from .options import MetricsOptions
from .schema import Point, TaskSample, decision_point, instances_point, task_points
from .store import EmbeddedStore
from .usage import MEASUREMENT_OF_METRIC, AppsUsage, Series


@dataclass
class MetricsBackend:
    """Where samples go (``sink``) and where the autoscaler reads them (``source``)."""

    kind: str
    sink: MetricsSink
    source: MetricsSource

    async def close(self) -> None:
        await self.sink.close()
        if self.source is not self.sink:
            await self.source.close()


def open_metrics(options: MetricsOptions) -> MetricsBackend:
    """The backend the options describe; the embedded store when no InfluxDB flag is given.

    Opens no connection (sinks connect on their first flush inside the running loop), so it is
    safe to call before the event loop starts. Raises MetricsConfigError on contradictory options.
    """
    kind = options.kind
    if kind == "influxdb-v1":
        from .influx_v1 import InfluxV1Sink, InfluxV1Source
        assert options.influxdb_url is not None
        auth = {"user": options.influxdb_user, "password": options.influxdb_password}
        return MetricsBackend(kind, InfluxV1Sink(options.influxdb_url, options.database, **auth),
                              InfluxV1Source(options.influxdb_url, options.database, **auth))
    if kind == "influxdb-v2":
        from .influx_v2 import InfluxV2Sink, InfluxV2Source
        args = (options.influxdb_v2_url, options.influxdb_v2_token, options.influxdb_v2_org,
                options.influxdb_v2_bucket)
        assert all(args)
        return MetricsBackend(kind, InfluxV2Sink(*args), InfluxV2Source(*args))  # type: ignore[arg-type]
    # the embedded store serves the autoscaler only: keep the series it reads, not every
    # cAdvisor measurement (InfluxDB gets them all)
    store = EmbeddedStore(retention=options.retention, interval=options.interval,
                          measurements=frozenset(MEASUREMENT_OF_METRIC.values()))
    return MetricsBackend(kind, store, store)


__all__ = [
    "AppsUsage",
    "EmbeddedStore",
    "LineProtocolError",
    "MetricsBackend",
    "MetricsConfigError",
    "MetricsError",
    "MetricsOptions",
    "MetricsQueryError",
    "MetricsSink",
    "MetricsSource",
    "Point",
    "Series",
    "TaskSample",
    "decision_point",
    "instances_point",
    "open_metrics",
    "task_points",
]
