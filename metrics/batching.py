"""A sink that encodes points to line protocol, buffers them (bounded) and sends batches.

``write`` is synchronous and O(points): it encodes, appends to a deque and returns. A
background task (started by the first ``write`` made inside a running event loop) sends
batches of up to ``batch_size`` lines whenever the buffer holds a full batch or
``flush_interval`` seconds have passed. When the server is down, slow or failing, batches
stay buffered (retried with exponential backoff up to ``max_backoff``) until the buffer
reaches ``max_buffer`` lines; past that the *oldest* lines are dropped and counted, since
recent samples matter most to the autoscaler. A batch the server refuses as malformed (HTTP
4xx other than 404/408/429) is dropped and counted as ``rejected``: resending it cannot help.
The scheduler and the autoscaler never wait on any of this.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from periodic import run_periodically

from .lineprotocol import encode_points
from .schema import Point

log = logging.getLogger(__name__)


class TransportError(Exception):
    """A batch was not stored. `retryable` says whether sending it again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Transport(Protocol):
    name: str

    async def send(self, body: str) -> None:
        """Store the lines (newline-separated) or raise TransportError."""

    async def close(self) -> None: ...


class BatchingSink:
    def __init__(self, transport: Transport, *, batch_size: int = 5000, flush_interval: float = 1.0,
                 max_buffer: int = 100_000, max_backoff: float = 10.0) -> None:
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be at least 1")
        self.transport = transport
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_backoff = max_backoff
        self._buffer: deque[str] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._backoff = 0.0
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.errors = 0
        self.batches = 0
        self.last_error: str | None = None

    # -- the caller's side: never blocks ---------------------------------------------------
    def write(self, points: Iterable[Point]) -> None:
        lines = encode_points(points)
        if not lines:
            return
        if self._closed:
            self.dropped += len(lines)
            return
        self._buffer.extend(lines)
        self._trim()
        self._ensure_task()
        if len(self._buffer) >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _trim(self) -> None:
        excess = len(self._buffer) - self.max_buffer
        for _ in range(max(0, excess)):
            self._buffer.popleft()
        if excess > 0:
            self.dropped += excess

    def _ensure_task(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return   # no loop yet: the lines wait in the buffer for the next write or flush
        self._wake = asyncio.Event()
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._task = loop.create_task(self._run(), name=f"metrics-sink-{self.transport.name}")

    def stats(self) -> dict[str, Any]:
        return {"backend": self.transport.name, "written": self.written, "dropped": self.dropped,
                "rejected": self.rejected, "buffered": len(self._buffer), "batches": self.batches,
                "errors": self.errors, "last_error": self.last_error}

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- the background side ---------------------------------------------------------------
    async def _run(self) -> None:
        """Flush every `flush_interval` seconds, or at once when `write` fills a batch."""
        await run_periodically(f"metrics sink {self.transport.name}", self._flush_round,
                               lambda: self.flush_interval, log=log, wake=self._wake, first_delay=True)

    async def _flush_round(self) -> None:
        """One round of the flusher; after a retryable failure it holds off for the backoff.

        The backoff is slept here, not added to the loop's interval, so that a `write` that
        fills a batch cannot cut it short and hammer a server that is down.
        """
        if self._closed:   # `close` cancels the task; this also ends it if a cancel went astray
            raise asyncio.CancelledError
        try:
            ok = await self._send_buffered()
        except Exception as exc:  # a bug here must not kill the flusher: count, the loop logs it
            self.errors += 1
            self.last_error = repr(exc)
            raise
        if not ok:
            await asyncio.sleep(self._backoff)

    async def _send_buffered(self) -> bool:
        """Send batches until the buffer is empty; False after a retryable failure."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self._buffer:
                n = min(self.batch_size, len(self._buffer))
                batch = [self._buffer.popleft() for _ in range(n)]
                try:
                    await self.transport.send("\n".join(batch))
                except TransportError as exc:
                    self.errors += 1
                    self.last_error = str(exc)
                    if not exc.retryable:
                        self.rejected += n
                        log.warning("metrics sink %s: %d lines rejected: %s", self.transport.name, n, exc)
                        continue
                    self._buffer.extendleft(reversed(batch))
                    self._trim()
                    self._backoff = min(self.max_backoff, max(0.1, self._backoff * 2))
                    log.debug("metrics sink %s: %s (retry in %.1fs)", self.transport.name, exc, self._backoff)
                    return False
                self.written += n
                self.batches += 1
                self._backoff = 0.0
            return True

    async def flush(self) -> None:
        """Try once to send everything buffered (a failure leaves it buffered)."""
        await self._send_buffered()

    async def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._buffer:
            try:
                await asyncio.wait_for(self._send_buffered(), timeout)
            except (asyncio.TimeoutError, Exception):  # best effort on the way out
                pass
        self.dropped += len(self._buffer)
        self._buffer.clear()
        await self.transport.close()
