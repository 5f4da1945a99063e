"""HTTP to a Mesos master's v1 scheduler API: the SUBSCRIBE event stream and the calls.

Both are `POST /api/v1/scheduler` with a JSON `Call` (Mesos's JSON mapping of the protos).
SUBSCRIBE answers 200 with a RecordIO body (`<length>\\n<json>`, repeated) and a
`Mesos-Stream-Id` header that every other call must carry; other calls answer 202. A master
that does not lead answers 307 with the leader in `Location` (protocol-relative: `//host:port/…`);
SUBSCRIBE follows it, moves on to the next configured master when one does not answer, and the
client keeps talking to the leader from then on. SUBSCRIBE uses aiohttp (one long response);
the other calls, by the hundred thousand on a large cluster, go through `mesos_http`.

pymesos would do this, but does not install on current Pythons; the protocol is small enough
to speak directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from executor.errors import RecordIOError
from executor.recordio import RecordIODecoder

from scheduler.backends.mesos_errors import CallRejected, MasterUnreachable, NotSubscribed, SubscriptionLost
from scheduler.backends.mesos_http import CallChannel

log = logging.getLogger(__name__)

API_PATH = "/api/v1/scheduler"
MAX_REDIRECTS = 4
MAX_RECORD_BYTES = 64 * 1024 * 1024     # one OFFERS event of a large cluster fits; a broken stream does not

Json = dict[str, Any]


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class EventStream:
    """The body of a SUBSCRIBE response, read one RecordIO record (one `Event`) at a time.

    The body is read in whatever chunks arrive and every complete record of a chunk is decoded
    at once: a busy master writes many events per packet, and a read per event would cost a
    trip through the event loop for each."""

    def __init__(self, response: aiohttp.ClientResponse, master: str) -> None:
        self._response = response
        self.master = master
        self.stream_id = response.headers.get("Mesos-Stream-Id", "")
        self._decoder = RecordIODecoder(MAX_RECORD_BYTES)
        self._events: deque[Json] = deque()

    @property
    def buffered(self) -> bool:
        """Events already read and decoded: `next_event` returns one without waiting."""
        return bool(self._events)

    async def next_event(self) -> Json:
        while not self._events:
            try:
                chunk = await self._response.content.readany()
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise SubscriptionLost(f"the event stream ended: {exc or type(exc).__name__}") from exc
            if not chunk:
                raise SubscriptionLost("the master closed the event stream")
            self._decode(chunk)
        return self._events.popleft()

    def _decode(self, chunk: bytes) -> None:
        try:
            records = self._decoder.feed(chunk)
        except RecordIOError as exc:
            raise SubscriptionLost(str(exc)) from exc
        for record in records:
            try:
                event = json.loads(record)
            except ValueError as exc:
                raise SubscriptionLost(f"undecodable event in the stream: {exc}") from exc
            if not isinstance(event, dict):
                raise SubscriptionLost("an event that is not a JSON object")
            self._events.append(event)

    def close(self) -> None:
        self._response.close()


class MesosClient:
    """Calls to the leading master, which it finds by following redirects."""

    def __init__(self, masters: Sequence[str], *, call_timeout: float = 10.0, connect_timeout: float = 5.0,
                 auth: aiohttp.BasicAuth | None = None) -> None:
        if not masters:
            raise ValueError("at least one master URL is needed")
        self._masters = [m.rstrip("/") for m in masters]
        self.leader = self._masters[0]
        self._call_timeout = call_timeout
        self._connect_timeout = connect_timeout
        self._auth = auth
        self._session: aiohttp.ClientSession | None = None      # SUBSCRIBE: the event stream
        self._channel: CallChannel | None = None                # every other call
        self._retired: set[asyncio.Task[None]] = set()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(auth=self._auth, headers={"Content-Type": "application/json",
                                                                           "Accept": "application/json"})
        return self._session

    def use_masters(self, masters: Sequence[str]) -> None:
        """Talk to these masters from now on (`--master zk://…`: the leader ZooKeeper names at each
        SUBSCRIBE, made only while no subscription is live, so no call of an old one goes astray)."""
        self._masters = [m.rstrip("/") for m in masters]
        self.leader = self._masters[0]

    def _candidates(self) -> list[str]:
        return [self.leader] + [m for m in self._masters if m != self.leader]

    async def _post(self, body: bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout,
                    call_type: str) -> tuple[aiohttp.ClientResponse, str]:
        """POST to the leader; follow 307s; try the next master when one does not answer."""
        errors: list[str] = []
        for start in self._candidates():
            url = start + API_PATH
            for _ in range(MAX_REDIRECTS):
                try:
                    response = await self._http().post(url, data=body, headers=headers, timeout=timeout,
                                                       allow_redirects=False)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    errors.append(f"{_base(url)}: {exc or type(exc).__name__}")
                    break
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    response.release()
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status == 503:
                    errors.append(f"{_base(url)}: 503 {(await response.text()).strip()}")
                    response.release()
                    break
                self.leader = _base(url)
                return response, self.leader
            else:
                errors.append(f"{start}: too many redirects")
        raise MasterUnreachable(f"{call_type}: no master answered ({'; '.join(errors)})")

    async def subscribe(self, call: Json) -> EventStream:
        """Open the event stream; the first event is SUBSCRIBED (or ERROR)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout,
                                        sock_read=None, connect=self._connect_timeout)
        response, master = await self._post(json.dumps(call).encode(), {}, timeout, "SUBSCRIBE")
        if response.status != 200:
            text = await response.text()
            response.release()
            if response.status == 401:          # Mesos answers an empty body: say what to check
                text = (f"{text.strip() or 'Unauthorized'}; check --mesos-authentication-principal and "
                        "--mesos-authentication-secret-file")
            raise CallRejected("SUBSCRIBE", response.status, text)
        return EventStream(response, master)

    def _channel_to(self, base: str) -> CallChannel:
        channel = self._channel
        if channel is None or channel.base != base:
            if channel is not None:              # a new leader: the old connection's calls are over
                retiring = asyncio.get_running_loop().create_task(channel.close())
                self._retired.add(retiring)
                retiring.add_done_callback(self._retired.discard)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._auth is not None:
                headers["Authorization"] = self._auth.encode()
            channel = self._channel = CallChannel(base, headers=headers, connect_timeout=self._connect_timeout,
                                                  call_timeout=self._call_timeout)
        return channel

    async def call(self, call: Json, stream_id: str) -> None:
        """Send a non-SUBSCRIBE call to the leader; returns when the master accepted it (202).

        Calls go on a pipelined connection of their own (`mesos_http`), not through aiohttp: a
        large cluster makes hundreds of thousands of them. A master that no longer leads answers
        with a redirect: the call is refused with `NotSubscribed` (its stream id means nothing
        to another master)."""
        call_type = str(call.get("type"))
        leader = self.leader
        try:
            answer = await self._channel_to(leader).post(API_PATH, json.dumps(call).encode(),
                                                         {"Mesos-Stream-Id": stream_id})
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise MasterUnreachable(f"{call_type}: {leader}: {exc or type(exc).__name__}") from exc
        if answer.status in (301, 302, 303, 307, 308) and "location" in answer.headers:
            raise NotSubscribed(f"{call_type}: {leader} no longer leads (redirects to {answer.headers['location']})")
        if answer.status == 503:
            raise MasterUnreachable(f"{call_type}: {leader}: 503 {answer.body.decode(errors='replace').strip()}")
        if answer.status not in (200, 202):
            raise CallRejected(call_type, answer.status, answer.body.decode(errors="replace"))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        await asyncio.gather(*self._retired, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
