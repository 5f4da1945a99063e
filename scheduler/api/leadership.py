"""Every API call works on every instance: followers forward to the leader (Marathon's HA API).

`install_leadership(app, leadership)` wires three things into the /v2 application:

* `leadership_middleware`: the leader answers everything; a follower answers what describes
  itself (`proxy_rules.answers_locally`) and forwards the rest to the leader through one shared
  `aiohttp.ClientSession`: method, path and query as sent, body, headers minus the hop-by-hop
  ones, plus `X-Marathon-Via` (loop detection) and `X-Forwarded-For`. The caller's
  `Authorization` goes with them unchanged: the leader authenticates and authorizes the caller
  itself, so a follower holds no credentials of its own. When the API is served over TLS the
  follower speaks HTTPS to the leader and verifies its certificate (host name included)
  against `--tls-ca-file` or the system trust store. Status, headers and body
  come back unchanged, so a 404/409/422 of the leader reaches the client as the leader wrote it.
  `/v2/events` is relayed chunk by chunk for as long as both ends stay.
* an `on_response_prepare` hook: every response, local, proxied or refused, carries
  `X-Marathon-Leader: http(s)://<leader host:port>` while a leader is known (a proxied one keeps the
  value the leader itself sent, as Marathon's forwarder copies the leader's headers).
* shutdown hooks: relayed streams are cut when the server stops (like local streams are ended
  by the event bus), so a stop never waits for a client that keeps a stream open; the client
  session is closed on cleanup.

Errors (Marathon's texts, `{"message": ...}` bodies, never a traceback): no leader, or an election
that still names this instance → 503 "Could not determine the current leader"; a request that
already passed through this instance → 502 "Detected proxying loop."; the leader refusing the
connection → 502; not answering in time → 504; any other failure reaching it (a certificate
that does not verify included, logged with the hint to check `--tls-ca-file`) → 502.

Exceptions: aiohttp's client errors are translated here, at the boundary, and go no further.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from scheduler.api.params import json_response
from scheduler.api.proxy_rules import (
    LEADER_BAD_CONNECTION,
    LEADER_HEADER,
    LEADER_REFUSED,
    LEADER_TIMED_OUT,
    VIA_HEADER,
    forward_headers,
    is_event_stream,
    leader_url,
    relay_headers,
    route,
)
from scheduler.ha import Leadership

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONNECT_SECONDS = 5.0
"""Marathon's `--leader_proxy_connection_timeout` default (5000 ms)."""
READ_SECONDS = 30.0
"""Longest wait for the leader's answer (Marathon: `--leader_proxy_read_timeout`, 10 s). Longer
here: a write answers only once it is durable, and a busy leader's fsync can take seconds."""
EVENTS_PATH = "/v2/events"
_NOT_ADDED_BY_CLIENT = ("Accept-Encoding", "User-Agent")
"""Headers aiohttp's client would add on its own: the leader sees only what the client sent."""

LEADERSHIP_KEY = web.AppKey("leadership", Leadership)


class LeaderProxy:
    """A follower's connection to the leader: one client session, the streams it relays.

    The session is opened on first use (inside the server's event loop) and closed with the
    application; streams are tracked so a stopping server can end them instead of waiting.
    """

    def __init__(self, own_address: str, *, connect_seconds: float = CONNECT_SECONDS,
                 read_seconds: float = READ_SECONDS, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: how to verify the leader's certificate when the instances serve HTTPS (None:
        they serve plain HTTP, and so does the proxy)."""
        self._own_address = own_address
        self._tls = tls
        self.scheme = "https" if tls is not None else "http"
        self._connect_seconds = connect_seconds
        self._read_seconds = read_seconds
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[aiohttp.ClientResponse] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # raw bytes both ways: a compressed answer is relayed compressed, with its header
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def forward(self, request: web.Request, leader: str) -> web.StreamResponse:
        """`request` as the leader answers it; a failure to reach the leader is a JSON error."""
        streaming = request.method == "GET" and request.path == EVENTS_PATH
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_seconds,
                                        sock_read=None if streaming else self._read_seconds)
        body = await request.read() if request.body_exists else None
        url = URL(f"{self.scheme}://{leader}{request.raw_path}", encoded=True)
        headers = CIMultiDict(forward_headers(request.headers.items(), self._own_address, request.remote))
        log.debug("proxying %s %s to the leader at %s", request.method, request.raw_path, leader)
        try:
            upstream = await self._client().request(
                request.method, url, data=body, headers=headers, allow_redirects=False,
                timeout=timeout, skip_auto_headers=_NOT_ADDED_BY_CLIENT,
                ssl=self._tls if self._tls is not None else True)
        except Exception as exc:  # noqa: BLE001 - every way of not reaching the leader is answered
            return _unreachable(leader, request, exc)
        try:
            if is_event_stream(upstream.headers.get("Content-Type")):
                return await self._relay_stream(request, upstream)
            try:
                payload = await upstream.read()
            except Exception as exc:  # noqa: BLE001
                return _unreachable(leader, request, exc)
            return web.Response(status=upstream.status, reason=upstream.reason, body=payload,
                                headers=CIMultiDict(relay_headers(upstream.headers.items(), self._own_address)))
        finally:
            upstream.release()

    async def _relay_stream(self, request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """Copy the leader's event stream to the client, chunk by chunk, until either side ends.

        A client that went away is noticed at the next chunk (the leader sends a heartbeat
        every few seconds, so within one heartbeat), and the upstream connection is closed,
        which ends the leader's subscription.
        """
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=CIMultiDict(relay_headers(upstream.headers.items(), self._own_address)))
        response.enable_chunked_encoding()
        self._streams.add(upstream)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.debug("relayed event stream ended: %s", exc or type(exc).__name__)
        finally:
            self._streams.discard(upstream)
            upstream.close()
        return response

    async def end_streams(self) -> None:
        """Cut every relayed stream (server shutdown): each relay sees its upstream end."""
        for upstream in list(self._streams):
            upstream.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _unreachable(leader: str, request: web.Request, exc: BaseException) -> web.Response:
    """Marathon's answer for a leader that could not be reached or did not answer."""
    if isinstance(exc, TimeoutError):
        status, message = 504, LEADER_TIMED_OUT
    elif isinstance(exc, aiohttp.ClientSSLError):       # before its base, ClientConnectorError
        log.warning("the leader at %s is reached over HTTPS but its certificate does not verify (%s): check "
                    "--tls-ca-file and that the leader's --tls-cert names the address it advertises", leader, exc)
        status, message = 502, LEADER_BAD_CONNECTION
    elif isinstance(exc, aiohttp.ClientConnectorError):
        status, message = 502, LEADER_REFUSED
    else:
        status, message = 502, LEADER_BAD_CONNECTION
    log.warning("proxying %s %s to the leader at %s failed: %s: %s", request.method, request.raw_path,
                leader, type(exc).__name__, exc)
    return json_response({"message": message}, status=status)


PROXY_KEY = web.AppKey("leader_proxy", LeaderProxy)


def leadership_of(request: web.Request) -> Leadership:
    """The instance's `Leadership` (from a sub-application too: it is looked up the app chain)."""
    return request.config_dict[LEADERSHIP_KEY]


def current_leader(leadership: Leadership) -> str | None:
    """The leader's address as this instance knows it: its own while it leads."""
    return leadership.address if leadership.is_leader() else leadership.leader_address()


@web.middleware
async def leadership_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer here, forward to the leader, or refuse: `proxy_rules.route` decides."""
    leadership = leadership_of(request)
    decision = route(is_leader=leadership.is_leader(), leader=leadership.leader_address(),
                     own_address=leadership.address, method=request.method, path=request.path,
                     via=request.headers.getall(VIA_HEADER, []))
    if decision.kind == "local":
        return await handler(request)
    if decision.kind == "refuse" or decision.target is None:
        # a loop is a misconfiguration worth a warning; no leader is a (logged) election state
        log.log(logging.WARNING if decision.status == 502 else logging.INFO, "refusing %s %s: %s",
                request.method, request.path, decision.message)
        return json_response({"message": decision.message}, status=decision.status or 503)
    return await request.config_dict[PROXY_KEY].forward(request, decision.target)


async def _stamp_leader(request: web.Request, response: web.StreamResponse) -> None:
    """`X-Marathon-Leader` on every response while a leader is known (kept if relayed)."""
    leader = current_leader(leadership_of(request))
    if leader is not None and LEADER_HEADER not in response.headers:
        response.headers[LEADER_HEADER] = leader_url(leader, request.config_dict[PROXY_KEY].scheme)


def install_leadership(app: web.Application, leadership: Leadership, *,
                       read_seconds: float = READ_SECONDS, tls: ssl.SSLContext | None = None) -> None:
    """Put `leadership` and its proxy on `app`; the middleware itself is listed by `build_api`.
    ``tls``: the instances serve HTTPS; the proxy verifies the leader with this context."""
    proxy = LeaderProxy(leadership.address, read_seconds=read_seconds, tls=tls)
    app[LEADERSHIP_KEY] = leadership
    app[PROXY_KEY] = proxy
    app.on_response_prepare.append(_stamp_leader)

    async def end_streams(_: web.Application) -> None:
        await proxy.end_streams()

    async def close(_: web.Application) -> None:
        await proxy.close()

    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(close)
