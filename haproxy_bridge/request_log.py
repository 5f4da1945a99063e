"""HAProxy's per-request log for canary latency: when it is on, its line format, its parser (pure).

``show stat`` gives a server's response time only as a mean (``rtime``, over its last 1024
requests), so a canary's ``maxLatencyP95Ratio`` would compare means. A real p95 needs one
figure per request, which HAProxy's request log gives. While an app runs a canary whose
analysis judges latency (``canaryTraffic`` shown and ``maxLatencyP95Ratio`` set), the renderer
turns the log on for that app only:

    global          log <socket> len 1024 format raw local0 info     (a unix datagram socket)
    frontends       log global / log-format "<LOG_FORMAT>" / http-request set-log-level silent
    its backends    http-request set-log-level info

Backend ``http-request`` rules run after the frontend's, so the backend's ``info`` overrides the
frontend's ``silent``: only the canary app's requests are sent, and the shared vhost frontends
log nothing for the other apps they route (checked on HAProxy 2.6.12; see
tests/test_canary_latency_haproxy.py). Only latency-judged canaries turn it on because the
change is a reload (log settings cannot be changed through the Runtime API) when the canary
starts and another when it ends; other canaries keep their no-reload steps. Without such a
canary not one line of the file changes.

One datagram is one line, in HAProxy's ``raw`` format (no syslog header)::

    pacer1 <backend> <server> <status> <Tr> <Ta>

``%b`` and ``%s`` are the backend and server names (``<NOSRV>`` when no server was picked),
``%ST`` the HTTP status, ``%Tr`` the server's response time (ms from the request sent to the
response headers received; -1 when no response came), ``%Ta`` the whole request's active time.
The ``pacer1`` tag names this format: a line of any other shape (a later format, a truncated
datagram, anything else written to the socket) is not a sample. :func:`parse_request_line`
never raises: a bad line is ``None``, for the receiver to count and drop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["LOG_FORMAT", "LOG_TAG", "RequestRecord", "format_request_line", "judges_latency", "parse_request_line"]

LOG_TAG = "pacer1"
LOG_FORMAT = f"{LOG_TAG} %b %s %ST %Tr %Ta"
MAX_LINE = 1024             # the `len` of the global `log` line: HAProxy truncates longer ones

_LINE = re.compile(rf"{LOG_TAG} ([^\s/]{{1,128}}) ([^\s/]{{1,128}}) (-1|[0-9]{{1,3}}) (-1|[0-9]{{1,9}}) (-1|[0-9]{{1,9}})")


class RequestRecord(NamedTuple):
    """One request as HAProxy logged it (times in ms; -1: not reached)."""
    backend: str
    server: str
    status: int
    tr_ms: int
    ta_ms: int

    @property
    def key(self) -> str:
        """``backend/server``: the key ``show stat`` figures are kept under too."""
        return f"{self.backend}/{self.server}"


def parse_request_line(line: str | bytes) -> RequestRecord | None:
    """The request a log line describes, or None for anything that is not a ``pacer1`` line
    (never raises). Trailing newlines and NULs (HAProxy ends raw lines with one) are ignored."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        if not isinstance(text, str) or len(text) > MAX_LINE:
            return None
        match = _LINE.fullmatch(text.rstrip("\r\n\0"))
    except (UnicodeDecodeError, AttributeError, TypeError):
        return None
    if match is None:
        return None
    backend, server, status, tr, ta = match.groups()
    return RequestRecord(backend, server, int(status), int(tr), int(ta))


def format_request_line(record: RequestRecord) -> str:
    """The line HAProxy writes for ``record`` (without its newline): the parser's inverse, for tests."""
    return f"{LOG_TAG} {record.backend} {record.server} {record.status} {record.tr_ms} {record.ta_ms}"


def judges_latency(app: Mapping[str, Any]) -> bool:
    """Does the app run a canary (``canaryTraffic`` shown) whose analysis has a
    ``maxLatencyP95Ratio``? Read defensively from the app's JSON: anything malformed is no."""
    if not isinstance(app.get("canaryTraffic"), Mapping):
        return False
    strategy = app.get("upgradeStrategy")
    canary = strategy.get("canary") if isinstance(strategy, Mapping) else None
    analysis = canary.get("analysis") if isinstance(canary, Mapping) else None
    ratio = analysis.get("maxLatencyP95Ratio") if isinstance(analysis, Mapping) else None
    return isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
