"""HAProxy's own view of each server, joined to the tasks the bridge routes (pure).

The bridge's model says which servers exist and which task each stands for; only HAProxy knows
whether a server passes its check right now, is in maintenance, or drains. GET /v2/haproxy/servers
asks HAProxy (``show stat`` on the Runtime API) at request time and joins the two here, so an
operator sees weight, state and last check of a server next to the app and task behind it.

``show stat`` answers CSV whose first line, ``# pxname,svname,...``, names the columns; the set
grows between HAProxy versions, so columns are read by name (:func:`stat_rows`), never by
position; the parsing itself is :mod:`metrics.haproxy_stats`, shared with the canary analysis.
The ``status`` and ``check_status`` texts are passed on as HAProxy writes them (``UP``,
``DOWN 1/2``, ``MAINT (via b/s)``, ``DRAIN``, ``NOLB``, ``no check``; ``L7OK``, ``L4CON``…):
they are HAProxy's vocabulary, documented in its management guide, and what operators search for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from metrics.haproxy_stats import StatsFormatError, stat_rows as parse_rows

from .errors import SocketError
from .servers import Server

__all__ = ["ServerOwner", "server_owners", "server_states", "servers_document", "stat_rows"]


class ServerOwner(NamedTuple):
    """The app and task a HAProxy server stands for."""

    app_id: str
    task_id: str


def stat_rows(text: str) -> list[dict[str, str]]:
    """The server rows of a ``show stat`` answer as column name -> text, in answer order.

    Frontend, backend and listener rows are left out; a short row reads its missing columns as
    "". Raises :class:`SocketError` when the answer has no ``# pxname,svname,...`` header (an
    error message from HAProxy instead of statistics).
    """
    try:
        return parse_rows(text)
    except StatsFormatError as exc:
        raise SocketError(f"HAProxy did not answer `show stat` with statistics: {exc}") from exc


def _int(value: str) -> int | None:
    return int(value) if value.lstrip("-").isdigit() else None


def server_owners(services: Iterable[tuple[str, str, Iterable[Server]]],
                  draining: Iterable[tuple[tuple[str, str], Server]] = ()) -> dict[tuple[str, str], ServerOwner]:
    """(backend, server name) -> owner, from the live services (backend, app id, servers) and
    the servers still draining (which stay in HAProxy after their task left the model)."""
    owners: dict[tuple[str, str], ServerOwner] = {}
    app_of: dict[str, str] = {}
    for backend, app_id, servers in services:
        app_of[backend] = app_id
        for server in servers:
            owners[(backend, server.name)] = ServerOwner(app_id, server.task_id)
    for (backend, name), server in draining:     # "" when its app left the model with it
        owners.setdefault((backend, name), ServerOwner(app_of.get(backend, ""), server.task_id))
    return owners


def server_states(rows: Iterable[Mapping[str, str]], owners: Mapping[tuple[str, str], ServerOwner],
                  draining: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """One JSON object per server row, sorted by backend and server.

    ``lastChangeSeconds`` is HAProxy's ``lastchg``: seconds since the server last changed state
    (UP/DOWN). ``checkStatus`` drops HAProxy's ``* `` prefix (a check in progress) so the last
    result reads the same while the next check runs. A server HAProxy has that the bridge does
    not route (its own status backend) has ``appId``/``taskId`` null.
    """
    leaving = set(draining)
    out = []
    for row in rows:
        key = (row.get("pxname", ""), row.get("svname", ""))
        owner = owners.get(key)
        check = row.get("check_status", "").removeprefix("* ").strip()
        out.append({
            "backend": key[0], "server": key[1], "address": row.get("addr") or None,
            "weight": _int(row.get("weight", "")), "status": row.get("status", ""),
            "checkStatus": check or None, "checkCode": _int(row.get("check_code", "")),
            "checkDurationMs": _int(row.get("check_duration", "")),
            "lastChangeSeconds": _int(row.get("lastchg", "")),
            "appId": (owner.app_id or None) if owner else None, "taskId": owner.task_id if owner else None,
            "draining": key in leaving,
        })
    out.sort(key=lambda s: (s["backend"], s["server"]))
    return out


def servers_document(show_stat: str, services: Iterable[tuple[str, str, Iterable[Server]]],
                     draining: Mapping[tuple[str, str], Server]) -> dict[str, Any]:
    """What GET /v2/haproxy/servers returns, from HAProxy's ``show stat`` answer and the bridge's
    live services (backend, app id, servers) and draining servers. Raises :class:`SocketError`
    when the answer holds no statistics."""
    owners = server_owners(services, draining.items())
    return {"servers": server_states(stat_rows(show_stat), owners, draining.keys())}
