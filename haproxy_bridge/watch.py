"""Following the cluster: the event stream, the polling fallback and the periodic resync.

marathon-lb's event stream could stall silently and leave routes stale. Here:
- `/v2/events` is read with a read timeout (`stream_idle_seconds`): Pacer sends a heartbeat
  comment every 10 s, so silence means a dead connection, and the stream is reopened.
- Every (re)connection asks for a full refresh, since events may have been missed meanwhile.
- While the stream is unavailable (404/405/406 from a server without it, refused, dropped),
  the apps are polled every `poll_seconds` and the stream is retried with exponential
  backoff (capped at `max_backoff_seconds`, with jitter).
- Every `resync_seconds` a full refresh happens regardless.
The watcher only says *that* something changed (`on_change(reason, full)`); the bridge
debounces and refetches `/v2/apps?embed=apps.tasks`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from pacer_client import NO_ACCESS, Access, redact_url, session_for
from periodic import LoopStats, run_periodically

from .sse import SseParser

log = logging.getLogger(__name__)

RELEVANT_EVENTS = (
    "status_update_event", "instance_changed_event", "health_status_changed_event",
    "instance_health_changed_event", "api_post_event", "app_terminated_event",
    "deployment_success", "deployment_step_success", "deployment_info", "deployment_failed",
    "group_change_success", "unhealthy_instance_kill_event", "unhealthy_task_kill_event",
    "canary_step_event", "canary_promoted_event", "canary_aborted_event",     # canary weights change
)


class StreamUnavailable(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"/v2/events answered {status}: {detail}")
        self.status = status


@dataclass
class StreamState:
    mode: str = "starting"                  # sse | polling | starting
    connected: bool = False
    connected_at: float | None = None
    last_event_at: float | None = None
    last_byte_at: float | None = None
    last_error: str | None = None
    reconnects: int = 0
    events: int = 0
    heartbeats: int = 0
    next_attempt_at: float | None = None
    retry_delays: deque[float] = field(default_factory=lambda: deque(maxlen=20))   # the latest waits, seconds
    polls: int = 0
    resyncs: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class Watcher:
    def __init__(self, master: str, on_change: Callable[[str, bool], None], *, poll_seconds: float,
                 resync_seconds: float, idle_seconds: float, max_backoff: float,
                 access: Access = NO_ACCESS) -> None:
        self.url = master.rstrip("/") + "/v2/events"
        self.access = access
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.resync_seconds = resync_seconds
        self.idle_seconds = idle_seconds
        self.max_backoff = max_backoff
        self.state = StreamState()
        self.poll_stats = LoopStats()
        self.resync_stats = LoopStats()
        self._stream_up = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._stream_loop(), name="haproxy-bridge-events")
            tg.create_task(self._poll_loop(), name="haproxy-bridge-poll")
            tg.create_task(self._resync_loop(), name="haproxy-bridge-resync")

    async def _stream_loop(self) -> None:
        first_backoff = min(0.25, self.max_backoff)
        backoff = first_backoff
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0, sock_read=self.idle_seconds)
        params = [("event_type", t) for t in RELEVANT_EVENTS]
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "User-Agent": "pacer-haproxy-bridge"}
        async with session_for(self.access, timeout) as session:
            while True:
                try:
                    await self._consume(session, params, headers)
                    self.state.last_error = "the server closed the event stream"
                except (aiohttp.ClientError, asyncio.TimeoutError, StreamUnavailable, OSError) as exc:
                    self.state.last_error = (f"no byte for {self.idle_seconds:.0f}s (stalled stream)"
                                             if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__)
                if self.state.connected and time.time() - (self.state.connected_at or 0) > 10:
                    backoff = first_backoff         # it worked for a while: retry soon
                self._stream_up.clear()
                self.state.connected = False
                self.state.mode = "polling"
                self.state.reconnects += 1
                delay = backoff * random.uniform(0.8, 1.2)
                self.state.next_attempt_at = time.time() + delay
                self.state.retry_delays.append(delay)
                log.log(logging.INFO if backoff == first_backoff else logging.DEBUG,
                        "event stream unavailable (%s); polling every %.1fs, retrying the stream in %.1fs",
                        self.state.last_error, self.poll_seconds, delay)
                self.on_change("event stream lost", False)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.max_backoff)

    async def _consume(self, session: aiohttp.ClientSession, params: list[tuple[str, str]],
                       headers: dict[str, str]) -> None:
        async with session.get(self.url, params=params, headers=headers) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if resp.status != 200 or "text/event-stream" not in ctype:
                body = (await resp.text())[:200] if resp.status != 200 else ctype
                raise StreamUnavailable(resp.status, body)
            self.state.mode = "sse"
            self.state.connected = True
            self.state.connected_at = time.time()
            self.state.next_attempt_at = None
            self._stream_up.set()
            log.info("following %s", redact_url(self.url))
            self.on_change("event stream connected", False)
            parser = SseParser()
            async for chunk in resp.content.iter_any():
                self.state.last_byte_at = time.time()
                before = parser.comments
                for event in parser.feed(chunk):
                    self.state.events += 1
                    self.state.by_type[event.event] = self.state.by_type.get(event.event, 0) + 1
                    if event.event in RELEVANT_EVENTS:
                        self.state.last_event_at = time.time()
                        self.on_change(event.event, False)
                self.state.heartbeats += parser.comments - before

    async def _poll_loop(self) -> None:
        await run_periodically("haproxy-bridge-poll", self._poll, self.poll_seconds, log=log,
                               stats=self.poll_stats, first_delay=True)

    def _poll(self) -> None:
        if not self._stream_up.is_set():
            self.state.polls += 1
            self.on_change("poll", False)

    async def _resync_loop(self) -> None:
        await run_periodically("haproxy-bridge-resync", self._resync, self.resync_seconds, log=log,
                               stats=self.resync_stats, first_delay=True)

    def _resync(self) -> None:
        self.state.resyncs += 1
        self.on_change("periodic resync", True)
