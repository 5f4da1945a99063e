"""The reader of HAProxy's per-request log inside `pacer serve`: samples for a canary's p95.

While a canary's analysis judges latency, the bridge's HAProxy sends one datagram per request
of that app to a unix datagram socket in its run dir (``haproxy_bridge.request_log`` says what
is rendered, and parses the lines). :class:`RequestLog` is the other end: an asyncio datagram
endpoint bound at that path. Each line is parsed; a bad one is counted (``bad``) and dropped,
never raised; a good one is kept as ``(arrival, %Tr ms)`` under its ``backend/server`` key, the
key ``show stat`` figures use, so :mod:`pacer.canary_stats` maps both to versions one way.

The window is the last ``per_server`` samples of each server, stamped on arrival with this
process's monotonic clock. Why by server and by count: the analysis asks for the samples of its
own interval (:meth:`RequestLog.samples_between`), so the time window is the caller's and the count
only bounds memory, per server so a busy stable server cannot push the canary's few samples
out. A window by version cannot be kept here: which version a server stands for is the
scheduler's to say at analysis time (as for ``show stat``). 4096 samples cover a 2 s analysis
interval up to ~2000 requests a second per server, far above what one canary instance serves in
the tests and the README's example. A server that sent nothing for ``idle_seconds`` (its task
is gone) is forgotten, and at most ``max_servers`` are kept at once.

HAProxy sends to the path whether or not anyone is bound (a datagram to no reader is dropped by
the kernel), so neither end waits for the other; the socket is this reader's, bound on start and
unlinked on stop, never by HAProxy's process code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from haproxy_bridge.request_log import parse_request_line

log = logging.getLogger(__name__)

PER_SERVER = 4096
IDLE_SECONDS = 600.0
MAX_SERVERS = 10_000
RECEIVE_BUFFER = 1 << 20        # bytes: a burst of requests is queued, not dropped, while the loop is busy

Sample = tuple[str, float]      # (backend/server, %Tr in ms)


class RequestLog:
    """Per-server windows of HAProxy's logged response times (``%Tr``), fed by datagrams."""

    def __init__(self, path: Path, *, per_server: int = PER_SERVER, idle_seconds: float = IDLE_SECONDS,
                 max_servers: int = MAX_SERVERS, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.received = 0           # lines read
        self.bad = 0                # lines that were not a request (dropped)
        self.overflow = 0           # samples of a server beyond `max_servers` (dropped)
        self.error: str | None = None       # why the socket could not be bound
        self.bound = asyncio.Event()
        self._per_server = per_server
        self._idle = idle_seconds
        self._max_servers = max_servers
        self._windows: dict[str, deque[tuple[float, float]]] = {}
        self._last: dict[str, float] = {}

    # -- the samples ------------------------------------------------------------------------
    def now(self) -> float:
        """The clock samples are stamped with: the mark an analysis interval starts from."""
        return self.clock()

    def feed(self, data: bytes) -> None:
        """One datagram (normally one line; several newline-separated lines are read too)."""
        at = self.clock()
        for line in data.split(b"\n"):
            if not line.strip(b"\r\0"):
                continue
            self.received += 1
            record = parse_request_line(line)
            if record is None:
                self.bad += 1
                continue
            key = record.key
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= self._max_servers:
                    self.overflow += 1
                    continue
                window = self._windows[key] = deque(maxlen=self._per_server)
            window.append((at, float(record.tr_ms)))
            self._last[key] = at

    def samples_between(self, since: float, until: float) -> list[Sample]:
        """``(backend/server, %Tr ms)`` of every kept request that arrived after ``since`` and no
        later than ``until`` (on :meth:`now`'s clock), so that back-to-back intervals share no
        sample; forgets the servers idle longer than ``idle_seconds``."""
        now = self.clock()
        for key in [k for k, last in self._last.items() if now - last > self._idle]:
            del self._windows[key], self._last[key]
        out: list[Sample] = []
        for key, window in self._windows.items():
            if self._last[key] <= since:
                continue
            for at, ms in reversed(window):        # newest first: stop at the mark
                if at <= since:
                    break
                if at <= until:
                    out.append((key, ms))
        return out

    # -- the socket -------------------------------------------------------------------------
    async def run(self) -> None:
        """Read datagrams until cancelled. A socket that cannot be bound is logged and kept in
        ``error``, and this returns: the canary analysis then uses HAProxy's mean, as without it."""
        try:
            sock = self._bind()
        except OSError as exc:
            self.error = f"cannot bind the HAProxy request log socket {self.path}: {exc}"
            log.warning("%s; canary latency falls back to HAProxy's mean", self.error)
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        inode = os.stat(self.path).st_ino
        self.bound.set()
        try:
            await asyncio.Future()          # until cancelled
        finally:
            self.bound.clear()
            transport.close()
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == inode:      # still ours, not a successor's
                    self.path.unlink()

    def _bind(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):   # left by a reader that died
                self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)      # HAProxy runs as this user; nobody else writes samples
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: RequestLog) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._owner.feed(data)

    def error_received(self, exc: Exception) -> None:      # nothing is sent: only a receive error
        log.warning("HAProxy request log socket: %s", exc)
