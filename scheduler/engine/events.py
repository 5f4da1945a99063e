"""The event bus behind /v2/events: Marathon's event types, fanned out through bounded queues.

Each event is serialised once, whatever the number of subscribers. A subscriber whose queue
is full is disconnected instead of being waited for: the scheduler never slows down for a
slow client (Marathon's `event_stream_max_outstanding_messages`). Clients reconnect and
re-fetch, which is what Marathon's docs ask them to do anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from scheduler.state.clock import Clock, SystemClock, iso_timestamp

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1024


@dataclass(frozen=True)
class Event:
    event_type: str
    data: str          # the JSON body, serialised once

    def sse_frame(self) -> bytes:
        return f"event: {self.event_type}\ndata: {self.data}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    types: frozenset[str] | None
    remote: str
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(DEFAULT_QUEUE_SIZE))
    dropped: bool = False

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class EventBus:
    def __init__(self, clock: Clock | None = None, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._clock = clock or SystemClock()
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size
        self.published = 0
        self.slow_clients_dropped = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event_type: str, **fields: Any) -> None:
        self.published += 1
        wanting = [sub for sub in self._subscribers if sub.wants(event_type)]
        if not wanting:
            return      # rendered only for someone: a deployment event carries its whole plan
        payload = {"eventType": event_type, "timestamp": iso_timestamp(self._clock.now()), **fields}
        event = Event(event_type, json.dumps(payload, separators=(",", ":"), default=str))
        for sub in wanting:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        """Disconnect a subscriber that fell behind: empty its queue and end its stream."""
        self._subscribers.discard(sub)
        sub.dropped = True
        self.slow_clients_dropped += 1
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)
        log.warning("event stream client %s fell %d events behind; disconnected", sub.remote, self._queue_size)

    def subscribe(self, types: Iterable[str] | None, remote: str) -> Subscription:
        wanted = frozenset(types) if types else None
        sub = Subscription(types=wanted, remote=remote, queue=asyncio.Queue(self._queue_size))
        self._subscribers.add(sub)
        self.publish("event_stream_attached", remoteAddress=remote)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self.publish("event_stream_detached", remoteAddress=sub.remote)

    def close(self) -> None:
        for sub in list(self._subscribers):
            self._subscribers.discard(sub)
            sub.queue.put_nowait(None) if not sub.queue.full() else None
