"""HTTP/1.1 for the scheduler's calls: one kept-alive connection to the leading master, with the
requests pipelined on it.

A framework on a large cluster makes a call per status update (ACKNOWLEDGE) and one per agent
per pass (ACCEPT): a hundred thousand tasks take some two hundred thousand calls. A general
HTTP client spends most of each call on what these calls never need (a connection pool,
cookies, redirects, a response object with its own stream) and waits a round trip per call.
Here a call is a few header lines and its body written to the connection; the master answers
requests in the order they came (HTTP/1.1 pipelining, which Mesos's libprocess and every
HTTP/1.1 server honour), so the calls of many lanes travel together and their answers come back
in one read.

A call that gets no answer within `call_timeout` (the oldest one is watched) ends the
connection, and with it every call still waiting: each fails with a `ConnectionError`, and the
caller cannot tell whether the master took it (as with any lost connection).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]     # lower-case names
    body: bytes


class CallChannel:
    """POSTs to one master (`base`: `http://host:port` or `https://…`) on one connection."""

    def __init__(self, base: str, *, headers: Mapping[str, str] | None = None, connect_timeout: float = 5.0,
                 call_timeout: float = 10.0) -> None:
        parts = urlsplit(base)
        self.base = base
        self._host = parts.hostname or "127.0.0.1"
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = self._host if parts.port is None else f"{self._host}:{parts.port}"
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: deque[tuple[float, asyncio.Future[Answer]]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The master's answer; ConnectionError (or another OSError) when there was none."""
        writer = self._writer if self._writer is not None else await self._connect()
        loop = asyncio.get_running_loop()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n{self._fixed}{extra}"
                f"Content-Length: {len(body)}\r\n\r\n")
        future: asyncio.Future[Answer] = loop.create_future()
        self._waiting.append((loop.time(), future))
        writer.write(head.encode("latin-1") + body)
        if self._watchdog is None:
            self._watchdog = loop.call_later(1.0, self._watch)
        return await future

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._lock:
            if self._writer is None:
                context = ssl.create_default_context() if self._tls else None
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_connection(self._host, self._port, ssl=context,
                                                                   limit=MAX_HEADER_BYTES)
                self._writer = writer
                self._reader_task = asyncio.get_running_loop().create_task(self._read_forever(reader, writer),
                                                                           name="mesos-call-answers")
            return self._writer

    async def _read_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                answer = await _read_answer(reader)
                if not self._waiting:
                    raise ConnectionError(f"an answer nobody asked for ({answer.status})")
                _, future = self._waiting.popleft()
                if not future.done():
                    future.set_result(answer)
                if answer.headers.get("connection", "").lower() == "close":
                    raise ConnectionResetError("the master closed the connection")
        except asyncio.CancelledError:
            self._drop(writer, ConnectionAbortedError("the connection was closed"))
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._drop(writer, exc if isinstance(exc, OSError) else ConnectionError(str(exc) or type(exc).__name__))

    def _drop(self, writer: asyncio.StreamWriter, exc: OSError) -> None:
        """The connection is over: fail every call still waiting for an answer on it."""
        if self._writer is writer:
            self._writer = None
        writer.close()
        while self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def _watch(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        sent_at, _ = self._waiting[0]
        if loop.time() - sent_at > self._call_timeout and self._writer is not None:
            if self._reader_task is not None:
                self._reader_task.cancel()
            self._drop(self._writer, TimeoutError(f"no answer within {self._call_timeout:.0f} s"))
            return
        self._watchdog = loop.call_later(1.0, self._watch)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._writer is not None:
            self._drop(self._writer, ConnectionAbortedError("the connection was closed"))


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:                                   # the body ends with the connection
        body = await reader.read()
        headers["connection"] = "close"
    return Answer(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":   # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
