"""HAProxy's ``show stat`` answer, parsed into per-server rows and counters. Pure.

The Runtime API (or the stats socket) answers ``show stat`` with CSV: a header line
starting with ``# `` that names the columns, then one line per frontend, backend, server
and listener. The column set grows between versions (2.6 has ~100, 1.x had ~60), so columns
are read by name from the header, never by position; a counter HAProxy leaves empty (a
server has no ``req_tot`` in TCP mode) is None here, not 0.

What a server's counters mean for a canary, as measured against HAProxy 2.6 (see the
tests): a server answering 500 counts them in its ``hrsp_5xx``; one that closes the
connection counts ``eresp`` (the client gets HAProxy's 502, counted on the backend only);
one that refuses connections counts ``econ`` (503 after retries) and serves no ``req_tot``.
All three are the server's failures, so :attr:`ServerStat.errors` adds them. ``lbtot``
counts how often the balancer picked the server, served or not, so it is the fairest
count of the requests the version was *sent*: :attr:`ServerStat.requests` takes the
largest of ``lbtot``, ``req_tot`` and the response counts.

Server names map to versions through the tasks they stand for (the HAProxy bridge names
a server after its task id): :func:`version_of_servers`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .analysis import ServerCounters
from .errors import StatsFormatError

__all__ = ["ServerStat", "counters_of", "parse_show_stat", "version_of_servers", "worker_generation"]

_AGGREGATES = frozenset({"FRONTEND", "BACKEND"})
_SERVER_TYPE = "2"  # the `type` column: 0 frontend, 1 backend, 2 server, 3 listener
_INT_COLUMNS = ("scur", "stot", "lbtot", "req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
                "hrsp_other", "econ", "eresp", "cli_abrt", "srv_abrt", "weight", "rtime", "ttime", "rtime_max")


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


def _int(value: str, column: str, where: str) -> int | None:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise StatsFormatError(f"{where}: column {column} is not a number: {value[:40]!r}") from None


def parse_show_stat(text: str, backend: str | None = None) -> tuple[ServerStat, ...]:
    """The server rows of a ``show stat`` answer (of one ``backend`` if given), in answer order.

    Raises :class:`StatsFormatError` when the text has no ``# pxname,svname,...`` header
    or a counter column holds something other than a number. Blank lines and frontend,
    backend and listener rows are skipped.
    """
    lines = text.lstrip().splitlines()
    if not lines or not lines[0].startswith("# "):
        head = lines[0][:60] if lines else ""
        raise StatsFormatError(f"not a show stat answer (no '# pxname,svname,...' header): {head!r}")
    rows = csv.reader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    header = next(rows)
    col = {name: i for i, name in enumerate(header) if name}
    missing = {"pxname", "svname"} - col.keys()
    if missing:
        raise StatsFormatError(f"show stat header lacks {', '.join(sorted(missing))}")
    servers = []
    for number, row in enumerate(rows, start=2):
        if not row or row == [""]:
            continue
        cell = {name: (row[i] if i < len(row) else "") for name, i in col.items()}
        if cell["svname"] in _AGGREGATES or cell.get("type", _SERVER_TYPE) not in (_SERVER_TYPE, ""):
            continue
        if backend is not None and cell["pxname"] != backend:
            continue
        where = f"line {number} ({cell['pxname']}/{cell['svname']})"
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


def counters_of(stats: Iterable[ServerStat]) -> dict[str, ServerCounters]:
    """Server name -> the counters the analysis needs (names are unique within one backend)."""
    return {
        s.server: ServerCounters(s.requests, s.errors, float(s.rtime_ms) if s.rtime_ms is not None else None)
        for s in stats
    }


def version_of_servers(server_task: Mapping[str, str], task_version: Mapping[str, str]) -> dict[str, str]:
    """Server name -> version, through the task each server stands for; unknown tasks are left out."""
    return {server: task_version[task] for server, task in server_task.items() if task in task_version}


def worker_generation(show_info: str) -> str:
    """Which worker's counters a snapshot holds, from ``show info``: ``"<Pid>@<Start_time_sec>"``.

    A reload starts a new worker whose counters begin at zero; comparing generations lets
    :func:`~scheduler.canary.analysis.interval_deltas` tell a restart from a quiet interval
    even when the new counters have already climbed past the old ones. Raises
    :class:`StatsFormatError` when the answer has no ``Pid`` line.
    """
    fields = dict(line.split(":", 1) for line in show_info.splitlines() if ":" in line)
    pid = fields.get("Pid", "").strip()
    if not pid:
        raise StatsFormatError("not a show info answer (no Pid line)")
    started = fields.get("Start_time_sec", fields.get("Uptime_sec", "")).strip()
    return f"{pid}@{started}"
