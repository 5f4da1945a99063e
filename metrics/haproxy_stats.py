"""HAProxy's ``show stat`` answer, parsed into per-server rows. Pure: one parser for every caller.

The Runtime API (or the stats socket) answers ``show stat`` with CSV: a header line
starting with ``# `` that names the columns, then one line per frontend, backend, server
and listener. The column set grows between versions (2.6 has ~100, 1.x had ~60), so columns
are read by name from the header, never by position; a counter HAProxy leaves empty (a
server has no ``req_tot`` in TCP mode) is None in :class:`ServerStat`, not 0.

Two readers use it: the HAProxy bridge shows each server's state as HAProxy sees it
(:func:`stat_rows`, every column as text), and the canary analysis sums a version's traffic
(:func:`parse_show_stat`, the counters as numbers). It lives here, below both in the layers,
because the bridge may not import ``scheduler``.

What a server's counters mean for a canary, as measured against HAProxy 2.6: a server
answering 500 counts them in its ``hrsp_5xx``; one that closes the connection counts ``eresp``
(the client gets HAProxy's 502, counted on the backend only); one that refuses connections
counts ``econ`` (503 after retries) and serves no ``req_tot``. All three are the server's
failures, so :attr:`ServerStat.errors` adds them. ``lbtot`` counts how often the balancer
picked the server, served or not, so it is the fairest count of the requests the version was
*sent*: :attr:`ServerStat.requests` takes the largest of ``lbtot``, ``req_tot`` and the
response counts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from .errors import MetricsError

__all__ = ["ServerStat", "StatsFormatError", "parse_show_stat", "stat_rows", "worker_generation"]

_AGGREGATES = frozenset({"FRONTEND", "BACKEND"})
_SERVER_TYPE = "2"  # the `type` column: 0 frontend, 1 backend, 2 server, 3 listener
_INT_COLUMNS = ("scur", "stot", "lbtot", "req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
                "hrsp_other", "econ", "eresp", "cli_abrt", "srv_abrt", "weight", "rtime", "ttime", "rtime_max")


class StatsFormatError(MetricsError, ValueError):
    """The text is not the CSV HAProxy's ``show stat`` answers with (or not a ``show info`` answer)."""


@dataclass(frozen=True)
class ServerStat:
    """One server row of ``show stat``; counters are cumulative since the worker started.

    ``rtime_ms``/``ttime_ms`` are HAProxy's means over the server's last 1024 requests
    (response time, total session time); ``weight`` is the effective weight.
    """

    backend: str
    server: str
    status: str
    weight: int | None
    address: str | None
    sessions_total: int
    lb_total: int | None
    requests_total: int | None
    responses: tuple[int | None, int | None, int | None, int | None, int | None, int | None]
    connection_errors: int | None
    response_errors: int | None
    rtime_ms: int | None
    ttime_ms: int | None

    @property
    def hrsp_5xx(self) -> int:
        return self.responses[4] or 0

    @property
    def requests(self) -> int:
        """Requests sent to this server: the largest of lbtot, req_tot and the responses."""
        answered = sum(r or 0 for r in self.responses)
        return max(self.lb_total or 0, self.requests_total or 0, answered)

    @property
    def errors(self) -> int:
        """The server's failures: 5xx answers, failed connections, broken responses."""
        return self.hrsp_5xx + (self.connection_errors or 0) + (self.response_errors or 0)


def stat_rows(text: str, backend: str | None = None) -> list[dict[str, str]]:
    """The server rows of a ``show stat`` answer (of one ``backend`` if given) as column name ->
    text, in answer order.

    Frontend, backend and listener rows and blank lines are left out; a short row reads its
    missing columns as "". Raises :class:`StatsFormatError` when the answer has no
    ``# pxname,svname,...`` header (an error message from HAProxy instead of statistics).
    """
    lines = text.lstrip().splitlines()
    if not lines or not lines[0].startswith("# "):
        head = lines[0][:80] if lines else ""
        raise StatsFormatError(f"not a show stat answer (no '# pxname,svname,...' header): {head!r}")
    rows = csv.reader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    header = next(rows)
    missing = {"pxname", "svname"} - set(header)
    if missing:
        raise StatsFormatError(f"show stat header lacks {', '.join(sorted(missing))}")
    columns = [(i, name) for i, name in enumerate(header) if name]
    out = []
    for row in rows:
        cell = {name: (row[i] if i < len(row) else "") for i, name in columns}
        if not cell["svname"] or cell["svname"] in _AGGREGATES or cell.get("type", _SERVER_TYPE) not in (_SERVER_TYPE, ""):
            continue
        if backend is not None and cell["pxname"] != backend:
            continue
        out.append(cell)
    return out


def _int(value: str, column: str, where: str) -> int | None:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise StatsFormatError(f"{where}: column {column} is not a number: {value[:40]!r}") from None


def parse_show_stat(text: str, backend: str | None = None) -> tuple[ServerStat, ...]:
    """The server rows of a ``show stat`` answer (of one ``backend`` if given), in answer order,
    with their counters as numbers.

    Raises :class:`StatsFormatError` as :func:`stat_rows` does, and when a counter column holds
    something other than a number.
    """
    servers = []
    for cell in stat_rows(text, backend):
        where = f"{cell['pxname']}/{cell['svname']}"
        num = {name: _int(cell.get(name, ""), name, where) for name in _INT_COLUMNS}
        servers.append(ServerStat(
            backend=cell["pxname"], server=cell["svname"], status=cell.get("status", ""), weight=num["weight"],
            address=cell.get("addr") or None, sessions_total=num["stot"] or 0, lb_total=num["lbtot"],
            requests_total=num["req_tot"],
            responses=(num["hrsp_1xx"], num["hrsp_2xx"], num["hrsp_3xx"], num["hrsp_4xx"], num["hrsp_5xx"],
                       num["hrsp_other"]),
            connection_errors=num["econ"], response_errors=num["eresp"], rtime_ms=num["rtime"],
            ttime_ms=num["ttime"],
        ))
    return tuple(servers)


def worker_generation(show_info: str) -> str:
    """Which worker's counters a snapshot holds, from ``show info``: ``"<Pid>@<Start_time_sec>"``.

    A reload starts a new worker whose counters begin at zero; comparing generations lets a
    reader tell a restart from a quiet interval even when the new counters have already climbed
    past the old ones. Raises :class:`StatsFormatError` when the answer has no ``Pid`` line.
    """
    fields = dict(line.split(":", 1) for line in show_info.splitlines() if ":" in line)
    pid = fields.get("Pid", "").strip()
    if not pid:
        raise StatsFormatError("not a show info answer (no Pid line)")
    started = fields.get("Start_time_sec", fields.get("Uptime_sec", "")).strip()
    return f"{pid}@{started}"
