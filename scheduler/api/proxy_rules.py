"""Who answers a request, and which headers cross the proxy: the pure half of leader proxying.

Marathon's `LeaderProxyFilter` and `JavaUrlConnectionRequestForwarder` (mesosphere/marathon,
`api/LeaderProxyFilter.scala`, `api/forwarder/`) are the model: the leader answers everything;
a follower answers only what describes itself (`/ping`, `GET /v2/leader`, `/v2/info`, `/metrics`,
the UI page, its own HAProxy bridge's status) and forwards the rest to the leader, adding
`X-Marathon-Via: 1.1 <its host:port>` so that a request which comes back to an instance it
already passed through is refused (502 "Detected proxying loop.") instead of circling for ever.
The texts of the errors are Marathon's, so clients and operators see what they know.

`scheduler.api.leadership` does the I/O around these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

VIA_HEADER = "X-Marathon-Via"
LEADER_HEADER = "X-Marathon-Leader"
FORWARDED_FOR_HEADER = "X-Forwarded-For"
VIA_PROTOCOL = "1.1"

NO_CURRENT_LEADER = "Could not determine the current leader"
PROXY_LOOP = "Detected proxying loop."
LEADER_REFUSED = "Connection to leader refused."
LEADER_TIMED_OUT = "Connection to leader timed out."
LEADER_BAD_CONNECTION = "Failed to successfully establish a connection to the leader."
THERE_IS_NO_LEADER = "There is no leader"
LEADERSHIP_ABDICATED = "Leadership abdicated"

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
"""RFC 9110 §7.6.1: headers about one connection, never forwarded by a proxy."""

_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
"""The client library sets these for the new connection and the body it sends."""

_READS = frozenset({"GET", "HEAD"})
_LOCAL_READS = frozenset({"/ping", "/v2/leader", "/v2/info", "/metrics", "/", "/ui", "/ui/", "/favicon.ico"})
_UI_FILES = "/ui/static/"
"""The web UI's modules: every instance serves the same packaged files."""
_LOCAL_TREE = "/v2/haproxy"
"""Each instance runs its own HAProxy bridge: its status is this instance's, whoever leads."""


def answers_locally(method: str, path: str) -> bool:
    """True for what an instance answers about itself, leader or not (Marathon serves `/ping`,
    `/v2/info` and `GET /v2/leader` on standbys too; `DELETE /v2/leader` goes to the leader)."""
    if path == _LOCAL_TREE or path.startswith(_LOCAL_TREE + "/"):
        return True
    return method.upper() in _READS and (path in _LOCAL_READS or path.startswith(_UI_FILES))


@dataclass(frozen=True)
class Route:
    """Where one request goes: answered here, forwarded to `target`, or refused with `status`."""

    kind: Literal["local", "proxy", "refuse"]
    target: str | None = None
    status: int = 0
    message: str = ""


LOCAL = Route("local")


def route(*, is_leader: bool, leader: str | None, own_address: str, method: str, path: str,
          via: Iterable[str]) -> Route:
    """Decide who answers, as Marathon does.

    The leader answers everything. A follower answers its local paths, forwards the rest to the
    leader, refuses with 503 while there is no leader, or while the election still names this
    very instance (it must not proxy to itself), and with 502 when the request already passed
    through this instance (`via`: the values of `X-Marathon-Via` it arrived with).
    """
    if is_leader or answers_locally(method, path):
        return LOCAL
    if leader is None or leader == own_address:
        return Route("refuse", status=503, message=NO_CURRENT_LEADER)
    if own_address in via_hops(via):
        return Route("refuse", status=502, message=PROXY_LOOP)
    return Route("proxy", target=leader)


def via_entry(address: str) -> str:
    """This instance's `X-Marathon-Via` entry, Marathon's form: `1.1 host:port`."""
    return f"{VIA_PROTOCOL} {address}"


def via_hops(values: Iterable[str]) -> list[str]:
    """The `host:port` of each proxy a request passed, from all its `X-Marathon-Via` values
    (repeated headers or comma-separated entries; the protocol token before the address is
    optional, as in `Via`)."""
    hops = []
    for value in values:
        for entry in value.split(","):
            parts = entry.split()
            if parts:
                hops.append(parts[-1])
    return hops


def leader_url(address: str, scheme: str = "http") -> str:
    """The `X-Marathon-Leader` value: Marathon sends the leader's URL, not its bare address
    (``https`` when the instances serve the API over TLS)."""
    return f"{scheme}://{address}"


def forward_headers(headers: Iterable[tuple[str, str]], own_address: str,
                    remote: str | None) -> list[tuple[str, str]]:
    """The request headers to send to the leader.

    All the client's headers but the hop-by-hop ones (and those its `Connection` names), `Host`
    and `Content-Length`; this instance appended to `X-Marathon-Via`; the client's address
    appended to `X-Forwarded-For` (one value, as Marathon joins them), so the leader's
    `api_post_event` can still tell who asked.
    """
    pairs = list(headers)
    dropped = _NOT_FORWARDED | _named_by_connection(pairs)
    out: list[tuple[str, str]] = []
    forwarded_for: list[str] = []
    for name, value in pairs:
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == FORWARDED_FOR_HEADER.lower():
            forwarded_for.append(value)
            continue
        out.append((name, value))
    out.append((VIA_HEADER, via_entry(own_address)))
    if remote:
        forwarded_for.append(remote)
    if forwarded_for:
        out.append((FORWARDED_FOR_HEADER, ",".join(forwarded_for)))
    return out


def relay_headers(headers: Iterable[tuple[str, str]], own_address: str) -> list[tuple[str, str]]:
    """The leader's response headers to pass back to the client: all but the hop-by-hop ones and
    `Content-Length` (this side frames the body again), plus this instance in `X-Marathon-Via`
    (Marathon marks proxied responses too, which tells a client its call went through a standby).
    The leader's own `X-Marathon-Leader` passes unchanged."""
    pairs = list(headers)
    dropped = HOP_BY_HOP | {"content-length"} | _named_by_connection(pairs)
    out = [(name, value) for name, value in pairs if name.lower() not in dropped]
    out.append((VIA_HEADER, via_entry(own_address)))
    return out


def _named_by_connection(pairs: list[tuple[str, str]]) -> set[str]:
    """Headers a `Connection` header declares hop-by-hop (`Connection: close, X-Foo`)."""
    return {token.strip().lower() for name, value in pairs if name.lower() == "connection"
            for token in value.split(",") if token.strip()}


def is_event_stream(content_type: str | None) -> bool:
    """An SSE response is relayed chunk by chunk for as long as it lasts, never buffered."""
    return (content_type or "").split(";")[0].strip().lower() == "text/event-stream"
