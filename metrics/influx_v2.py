"""InfluxDB 2.x/3.x through `influxdb-client`: the v2 write API and Flux queries.

Used for ``--influxdb-v2-url/--influxdb-token/--influxdb-org/--influxdb-bucket``. The async
client (aiohttp underneath) is created lazily inside the running loop. Flux replies are read
with ``query_raw`` and parsed here with the stdlib ``csv`` module, so the client's ``async``
extra (``aiocsv``) is not needed. Its errors
(``ApiException``, ``InfluxDBError``, aiohttp errors, timeouts) are translated here.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Collection
from datetime import datetime
from typing import Any

import aiohttp
import numpy as np
from influxdb_client import Dialect, WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from .batching import BatchingSink, TransportError
from .errors import MetricsQueryError
from .schema import NS_PER_S, TAG_APP_ID, TAG_TASK_ID, VALUE
from .usage import MEASUREMENT_OF_METRIC, AppsUsage, build_usage


def flux_string(text: str) -> str:
    """A Flux string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def usage_flux(bucket: str, metric: str, start: float, end: float, app_ids: Collection[str] | None) -> str:
    """Raw points of the metric's measurement, one table per (app_id, task_id)."""
    measurement = MEASUREMENT_OF_METRIC[metric]
    lines = [
        f"from(bucket: {flux_string(bucket)})",
        f"  |> range(start: time(v: {int(start * NS_PER_S)}), stop: time(v: {int(end * NS_PER_S) + 1}))",
        f"  |> filter(fn: (r) => r._measurement == {flux_string(measurement)} and r._field == {flux_string(VALUE)})",
    ]
    if app_ids is not None:
        ids = ", ".join(flux_string(a) for a in sorted(app_ids))
        lines.append(f"  |> filter(fn: (r) => contains(value: r.{TAG_APP_ID}, set: [{ids}]))")
    lines.append(f'  |> keep(columns: ["_time", "_value", "{TAG_APP_ID}", "{TAG_TASK_ID}"])')
    lines.append(f'  |> group(columns: ["{TAG_APP_ID}", "{TAG_TASK_ID}"])')
    return "\n".join(lines)


CSV_DIALECT = Dialect(header=True, delimiter=",", comment_prefix="#", annotations=[],
                      date_time_format="RFC3339Nano")


def parse_flux_csv(text: str) -> list[dict[str, str]]:
    """Rows of a Flux CSV reply as dicts (several tables, blank-line separated, each with its
    header; annotation rows starting with '#' are skipped). Raises ValueError on an error table."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for record in csv.reader(io.StringIO(text)):
        if not record or all(not cell for cell in record):
            header = None
            continue
        if record[0].startswith("#"):
            continue
        if header is None:
            header = record
            continue
        row = dict(zip(header, record))
        if "error" in row and "_value" not in row:
            raise ValueError(f"query error: {row.get('error')}")
        rows.append(row)
    return rows


def rfc3339_ns(stamp: str) -> int:
    """'2023-11-14T22:13:20.123456789Z' -> nanoseconds since the epoch."""
    base, _, rest = stamp.partition(".")
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
    else:
        base, zone, digits = stamp[:19], stamp[19:], ""
    seconds = datetime.fromisoformat(base + (zone.replace("Z", "+00:00") or "+00:00")).timestamp()
    return int(seconds) * NS_PER_S + int((digits + "000000000")[:9])


def _error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{status}: {message}" if status else message


class _Client:
    def __init__(self, url: str, token: str, org: str, timeout: float) -> None:
        self.url, self.token, self.org = url, token, org
        self.timeout_ms = int(timeout * 1000)
        self._client: InfluxDBClientAsync | None = None

    def get(self) -> InfluxDBClientAsync:
        if self._client is None:
            self._client = InfluxDBClientAsync(url=self.url, token=self.token, org=self.org,
                                               timeout=self.timeout_ms)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class InfluxV2Transport:
    name = "influxdb-v2"

    def __init__(self, url: str, token: str, org: str, bucket: str, *, timeout: float = 5.0) -> None:
        self.client = _Client(url, token, org, timeout)
        self.bucket = bucket

    async def send(self, body: str) -> None:
        try:
            await self.client.get().write_api().write(bucket=self.bucket, org=self.client.org, record=body,
                                                      write_precision=WritePrecision.NS)
        except InfluxDBError as exc:
            status = getattr(exc, "status", None) or 0
            raise TransportError(f"InfluxDB v2 write failed: {_error(exc)}",
                                 retryable=status == 0 or status >= 500 or status in (404, 408, 429)) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransportError(f"InfluxDB v2 unreachable at {self.client.url}: {exc!r}", retryable=True) from None

    async def close(self) -> None:
        await self.client.close()


class InfluxV2Sink(BatchingSink):
    def __init__(self, url: str, token: str, org: str, bucket: str, *, timeout: float = 5.0,
                 **batching: Any) -> None:
        super().__init__(InfluxV2Transport(url, token, org, bucket, timeout=timeout), **batching)


class InfluxV2Source:
    def __init__(self, url: str, token: str, org: str, bucket: str, *, timeout: float = 5.0) -> None:
        self.client = _Client(url, token, org, timeout)
        self.bucket = bucket

    async def task_usage(self, metric: str, start: float, end: float,
                         app_ids: Collection[str] | None = None) -> AppsUsage:
        if metric not in MEASUREMENT_OF_METRIC:
            raise ValueError(f"unknown metric {metric!r}")
        if app_ids is not None and not app_ids:
            return {}
        flux = usage_flux(self.bucket, metric, start, end, app_ids)
        try:
            text = await self.client.get().query_api().query_raw(flux, org=self.client.org, dialect=CSV_DIALECT)
            rows = parse_flux_csv(text)
        except InfluxDBError as exc:
            raise MetricsQueryError(f"InfluxDB v2 query failed: {_error(exc)}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise MetricsQueryError(f"InfluxDB v2 unreachable at {self.client.url}: {exc!r}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise MetricsQueryError(f"InfluxDB v2 answered garbage: {exc!r}") from None
        grouped: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for row in rows:
            app_id, task_id = row.get(TAG_APP_ID), row.get(TAG_TASK_ID)
            try:
                when, value = rfc3339_ns(row["_time"]), float(row["_value"])
            except (KeyError, ValueError):
                continue
            if not app_id or not task_id:
                continue
            times, values = grouped.setdefault((app_id, task_id), ([], []))
            times.append(when)
            values.append(value)
        return build_usage(metric, [(app_id, task_id, np.array(ts, dtype=np.int64), np.array(vs, dtype=np.float64))
                                    for (app_id, task_id), (ts, vs) in grouped.items()])

    async def close(self) -> None:
        await self.client.close()
