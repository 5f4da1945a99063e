"""InfluxDB over the v1 HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

Served by InfluxDB 1.x, and by 2.x/3.x through their v1 compatibility endpoints. Credentials
go as HTTP basic auth, which all of them accept. aiohttp errors are translated here:
``TransportError`` for the sink, ``MetricsQueryError`` for the source.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Collection
from typing import Any

import aiohttp
import numpy as np

from .batching import BatchingSink, TransportError
from .errors import MetricsQueryError
from .schema import NS_PER_S, TAG_APP_ID, TAG_TASK_ID
from .usage import MEASUREMENT_OF_METRIC, AppsUsage, build_usage

MAX_REGEX_APPS = 200   # above this many apps, fetch all and filter here


def quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def regex_alternation(values: Collection[str]) -> str:
    """An InfluxQL regex literal matching exactly one of `values`."""
    body = "|".join(re.escape(v).replace("/", "\\/") for v in sorted(values))
    return f"/^(?:{body})$/"


def usage_query(metric: str, start: float, end: float, app_ids: Collection[str] | None) -> str:
    measurement = MEASUREMENT_OF_METRIC[metric]
    where = f"time >= {int(start * NS_PER_S)} AND time <= {int(end * NS_PER_S)}"
    if app_ids is not None and len(app_ids) <= MAX_REGEX_APPS:
        where += f" AND {quote_ident(TAG_APP_ID)} =~ {regex_alternation(app_ids)}"
    return (f"SELECT {quote_ident('value')} FROM {quote_ident(measurement)} WHERE {where} "
            f"GROUP BY {quote_ident(TAG_APP_ID)}, {quote_ident(TAG_TASK_ID)}")


def parse_series_rows(payload: Any) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    """(tags, times_ns, values) of every series of the first result; raises on errors/garbage."""
    try:
        results = payload["results"]
        result = results[0]
    except (TypeError, KeyError, IndexError):
        raise MetricsQueryError(f"unexpected InfluxDB reply: {str(payload)[:200]}") from None
    if not isinstance(result, dict):
        raise MetricsQueryError(f"unexpected InfluxDB result: {str(result)[:200]}")
    if "error" in result:
        raise MetricsQueryError(f"InfluxDB query error: {result['error']}")
    rows = []
    for series in result.get("series") or []:
        try:
            columns = series["columns"]
            t_col, v_col = columns.index("time"), columns.index("value")
            values = series.get("values") or []
            times = np.array([row[t_col] for row in values], dtype=np.int64)
            vals = np.array([np.nan if row[v_col] is None else row[v_col] for row in values], dtype=np.float64)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise MetricsQueryError(f"unexpected InfluxDB series: {exc}") from None
        ok = np.isfinite(vals)
        rows.append((dict(series.get("tags") or {}), times[ok], vals[ok]))
    return rows


class _Http:
    """A lazily created aiohttp session (it must be made inside the running loop)."""

    def __init__(self, url: str, user: str | None, password: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode() if user else None
        self.headers = {"Authorization": f"Basic {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxV1Transport:
    """POST /write?db=…&precision=ns; creates the database on first use (best effort)."""

    name = "influxdb-v1"

    def __init__(self, url: str, database: str, *, user: str | None = None, password: str | None = None,
                 retention_policy: str | None = None, timeout: float = 5.0, create_database: bool = True) -> None:
        self.http = _Http(url, user, password, timeout)
        self.database = database
        self.retention_policy = retention_policy
        self._need_create = create_database

    async def _create_database(self) -> None:
        try:
            async with self.http.session().post(self.http.url + "/query",
                                                data={"q": f"CREATE DATABASE {quote_ident(self.database)}"}) as resp:
                await resp.read()
                if resp.status < 300:
                    self._need_create = False
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass   # the write below reports the problem

    async def send(self, body: str) -> None:
        if self._need_create:
            await self._create_database()
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        try:
            async with self.http.session().post(self.http.url + "/write", params=params,
                                                data=body.encode()) as resp:
                text = (await resp.text())[:300]
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransportError(f"InfluxDB unreachable at {self.http.url}: {exc!r}", retryable=True) from None
        if status < 300:
            return
        if status == 404 and "database not found" in text:
            self._need_create = True
            raise TransportError(f"database {self.database!r} not found", retryable=True)
        raise TransportError(f"InfluxDB /write answered {status}: {text}",
                             retryable=status >= 500 or status in (404, 408, 429))

    async def close(self) -> None:
        await self.http.close()


class InfluxV1Sink(BatchingSink):
    def __init__(self, url: str, database: str, *, user: str | None = None, password: str | None = None,
                 retention_policy: str | None = None, timeout: float = 5.0, **batching: Any) -> None:
        super().__init__(InfluxV1Transport(url, database, user=user, password=password,
                                           retention_policy=retention_policy, timeout=timeout), **batching)


class InfluxV1Source:
    """Per-task usage series through InfluxQL; any failure becomes MetricsQueryError."""

    def __init__(self, url: str, database: str, *, user: str | None = None, password: str | None = None,
                 timeout: float = 5.0) -> None:
        self.http = _Http(url, user, password, timeout)
        self.database = database

    async def query(self, q: str) -> Any:
        params = {"db": self.database, "q": q, "epoch": "ns"}
        try:
            async with self.http.session().get(self.http.url + "/query", params=params) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise MetricsQueryError(f"InfluxDB unreachable at {self.http.url}: {exc!r}") from None
        try:
            payload = json.loads(text)
        except ValueError:
            raise MetricsQueryError(f"InfluxDB /query answered {status} with non-JSON: {text[:200]!r}") from None
        if status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else payload
            raise MetricsQueryError(f"InfluxDB /query answered {status}: {message}")
        return payload

    async def task_usage(self, metric: str, start: float, end: float,
                         app_ids: Collection[str] | None = None) -> AppsUsage:
        if metric not in MEASUREMENT_OF_METRIC:
            raise ValueError(f"unknown metric {metric!r}")
        if app_ids is not None and not app_ids:
            return {}
        payload = await self.query(usage_query(metric, start, end, app_ids))
        wanted = None if app_ids is None else set(app_ids)
        rows = []
        for tags, times, values in parse_series_rows(payload):
            app_id, task_id = tags.get(TAG_APP_ID), tags.get(TAG_TASK_ID)
            if not app_id or not task_id or (wanted is not None and app_id not in wanted):
                continue
            rows.append((app_id, task_id, times, values))
        return build_usage(metric, rows, ordered=True)   # InfluxQL answers in time order

    async def close(self) -> None:
        await self.http.close()
