"""A lean HTTP/1.1 GET for health probes: keep-alive connections on plain asyncio protocols.

A health check needs one thing from an HTTP exchange: the status line of the answer, within
a timeout. aiohttp's client builds a request object, a response object, a URL object, header
multidicts and a timer context for every GET; at thousands of checks a second that machinery,
not the network, was most of the checker's cost. Here a request is one pre-encoded buffer
written to an idle keep-alive connection, and the answer is read by a small parser that stops
at the status line for the verdict, then drains the body (Content-Length, chunked, or up to
the close) in the background so the connection can serve the next check.

Semantics match the aiohttp GET it replaces: no redirects followed, the verdict comes with
the response head (a slow body does not delay it), the timeout covers connecting and the
head, a reused connection the server had closed is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from urllib.parse import quote

KEEPALIVE_SECONDS = 15.0        # idle connections older than this are closed (aiohttp's default)
MAX_HEAD_BYTES = 64 * 1024      # a response head larger than this is a broken server
NO_BODY_STATUSES = frozenset({204, 304})


class ProbeHTTPError(Exception):
    """The server's answer was not HTTP, or the connection ended before the answer did."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; at most one request outstanding on it."""

    def __init__(self, pool: "ConnectionPool", key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.got_bytes = False          # has any byte of the current answer arrived
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._in_head = False
        self._body_left = 0             # bytes of a Content-Length body still to read
        self._chunked = False
        self._until_close = False
        self._keep_alive = True

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ProbeHTTPError("the server closed the connection"))
        self._waiter = None

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self._buffer += data
        try:
            self._advance()
        except ProbeHTTPError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            self.abort()

    # -- requests ----------------------------------------------------------------------
    def send(self, request: bytes) -> "asyncio.Future[int]":
        """Write a GET; the future resolves to the status once the response head arrived."""
        assert self.transport is not None
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._in_head = True
        self.got_bytes = False
        self._buffer.clear()
        self.transport.write(request)
        return waiter

    def abort(self) -> None:
        self.closed = True
        self._pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def _advance(self) -> None:
        if self._in_head:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ProbeHTTPError("response head too large")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[:end + 4]
            self._in_head = False
            status = self._parse_head(head)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(status)
            self._waiter = None
        self._drain_body()

    def _parse_head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise ProbeHTTPError(f"not an HTTP response: {lines[0][:80]!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        keep_alive = parts[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise ProbeHTTPError("bad Content-Length") from None
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
        self._keep_alive = keep_alive and 200 <= status
        self._chunked = chunked and status not in NO_BODY_STATUSES
        self._body_left = 0 if chunked or status in NO_BODY_STATUSES or status < 200 else (length or 0)
        self._until_close = status >= 200 and status not in NO_BODY_STATUSES and not chunked and length is None
        if self._until_close or status < 200:      # 1xx: an interim answer; read no further on it
            self._keep_alive = False
        return status

    def _drain_body(self) -> None:
        if self._until_close:       # the body ends with the connection; nothing to keep
            self._buffer.clear()
            return
        if self._body_left:
            taken = min(self._body_left, len(self._buffer))
            del self._buffer[:taken]
            self._body_left -= taken
            if self._body_left:
                return
        if self._chunked:
            while self._chunked:
                line_end = self._buffer.find(b"\r\n")
                if line_end < 0:
                    return
                size_text = bytes(self._buffer[:line_end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProbeHTTPError("bad chunk size") from None
                if size == 0:
                    trailer_end = self._buffer.find(b"\r\n\r\n", line_end)
                    if trailer_end < 0:
                        return
                    del self._buffer[:trailer_end + 4]
                    self._chunked = False
                elif len(self._buffer) >= line_end + 2 + size + 2:
                    del self._buffer[:line_end + 2 + size + 2]
                else:
                    return
        if self._waiter is not None:
            return
        if self._keep_alive and not self._buffer:
            self._pool.release(self)
        else:
            self.abort()


class ConnectionPool:
    """Idle keep-alive connections by (host, port, tls); lives on the probe thread's loop."""

    def __init__(self, insecure: ssl.SSLContext, max_idle: int = 1024) -> None:
        self._insecure = insecure
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int, bool], collections.deque[_Connection]] = {}
        self._idle_count = 0
        self._requests: dict[tuple[str, int, str], bytes] = {}

    async def get_status(self, host: str, port: int, path: str, tls: bool) -> int:
        """GET `path` and answer the response status (no redirects followed)."""
        request = self._request(host, port, path)
        key = (host, port, tls)
        conn = self._take_idle(key)
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except (ProbeHTTPError, OSError):
                if conn.got_bytes:
                    raise
                # the server closed a connection that sat idle: try once on a fresh one
        return await self._exchange(await self._connect(key), request)

    @staticmethod
    async def _exchange(conn: _Connection, request: bytes) -> int:
        try:
            return await conn.send(request)
        except asyncio.CancelledError:      # timed out: the answer may still come; drop the connection
            conn.abort()
            raise

    def release(self, conn: _Connection) -> None:
        if self._idle_count >= self._max_idle:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, collections.deque()).append(conn)
        self._idle_count += 1

    def forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._idle_count -= 1

    def close_expired(self, now: float) -> None:
        """Close idle connections past the keep-alive time (called every few seconds)."""
        for idle in list(self._idle.values()):
            while idle and now - idle[0].idle_since > KEEPALIVE_SECONDS:
                idle[0].abort()

    def close(self) -> None:
        for idle in list(self._idle.values()):
            while idle:
                idle[0].abort()

    def _take_idle(self, key: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if not conn.closed:
                return conn
        return None

    async def _connect(self, key: tuple[str, int, bool]) -> _Connection:
        host, port, tls = key
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self, key), host, port,
                                               ssl=self._insecure if tls else None)
        return conn

    def _request(self, host: str, port: int, path: str) -> bytes:
        key = (host, port, path)
        request = self._requests.get(key)
        if request is None:
            if len(self._requests) > 100_000:
                self._requests.clear()
            target = quote(path or "/", safe="/?&=%:@!$'()*+,;~-._[]")
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            request = self._requests[key] = (
                f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n"
                f"User-Agent: Pacer-health-check\r\n\r\n").encode("latin-1")
        return request
