"""The pure half of HA's API: who answers a request, which headers cross the proxy, the
advertised address. Exhaustive here, so the proxy tests need only check the wiring."""

from __future__ import annotations

import pytest

from scheduler.api.proxy_rules import (
    LOCAL,
    NO_CURRENT_LEADER,
    PROXY_LOOP,
    Route,
    answers_locally,
    forward_headers,
    is_event_stream,
    leader_url,
    relay_headers,
    route,
    via_entry,
    via_hops,
)
from scheduler.ha.advertise import advertised_address

ME, LEADER = "b.example:8080", "a.example:8080"


def _route(*, is_leader: bool = False, leader: str | None = LEADER, method: str = "GET",
           path: str = "/v2/apps", via: tuple[str, ...] = ()) -> Route:
    return route(is_leader=is_leader, leader=leader, own_address=ME, method=method, path=path, via=via)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/ping"), ("HEAD", "/ping"), ("GET", "/v2/leader"), ("GET", "/v2/info"), ("GET", "/metrics"),
    ("GET", "/"), ("GET", "/ui"), ("GET", "/v2/haproxy/apps"), ("POST", "/v2/haproxy/reload"), ("get", "/v2/info"),
])
def test_what_an_instance_says_about_itself_is_answered_locally(method: str, path: str) -> None:
    assert answers_locally(method, path)
    assert _route(method=method, path=path) == LOCAL
    assert _route(method=method, path=path, leader=None) == LOCAL


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/v2/leader"), ("POST", "/v2/info"), ("GET", "/v2/apps"), ("POST", "/v2/apps"),
    ("GET", "/v2/events"), ("GET", "/v2/agents"), ("GET", "/v2/autoscaler/policies"), ("GET", "/nowhere"),
    ("GET", "/v2/haproxyx"), ("GET", "/ping/x"),
])
def test_everything_else_goes_to_the_leader(method: str, path: str) -> None:
    assert not answers_locally(method, path)
    assert _route(method=method, path=path) == Route("proxy", target=LEADER)


def test_the_leader_answers_everything_itself() -> None:
    assert _route(is_leader=True, method="DELETE", path="/v2/leader") == LOCAL
    assert _route(is_leader=True, leader=ME, via=(via_entry(ME),)) == LOCAL


def test_no_leader_or_an_election_naming_this_very_follower_is_503() -> None:
    assert _route(leader=None) == Route("refuse", status=503, message=NO_CURRENT_LEADER)
    assert _route(leader=ME) == Route("refuse", status=503, message=NO_CURRENT_LEADER)
    assert NO_CURRENT_LEADER == "Could not determine the current leader"


@pytest.mark.parametrize("via", [
    (via_entry(ME),), ("1.1 c.example:8080", "1.1 b.example:8080"), ("1.1 c.example:8080, 1.1 b.example:8080",),
    ("b.example:8080",),
])
def test_a_request_that_already_passed_through_this_instance_is_a_loop(via: tuple[str, ...]) -> None:
    assert _route(via=via) == Route("refuse", status=502, message=PROXY_LOOP)


def test_other_proxies_in_via_are_no_loop() -> None:
    assert _route(via=("1.1 c.example:8080", "1.1 b.example:80801")) == Route("proxy", target=LEADER)


def test_via_hops_reads_repeated_and_comma_separated_entries() -> None:
    assert via_hops(["1.1 a:1, 1.1 b:2", "c:3", "", " , "]) == ["a:1", "b:2", "c:3"]
    assert via_entry("h:9") == "1.1 h:9"


def test_forwarded_request_headers_drop_hop_by_hop_and_add_via_and_forwarded_for() -> None:
    sent = [("Host", "b.example:8080"), ("Connection", "keep-alive, X-Secret-Hop"), ("Keep-Alive", "5"),
            ("X-Secret-Hop", "1"), ("Content-Length", "12"), ("Transfer-Encoding", "chunked"),
            ("Content-Type", "application/json"), ("Accept", "text/event-stream"), ("Cookie", "a=1"),
            ("Cookie", "b=2"), ("X-Marathon-Via", "1.1 c.example:8080"), ("X-Forwarded-For", "10.0.0.9"),
            ("Authorization", "Basic eDp5")]
    out = forward_headers(sent, ME, "127.0.0.7")
    assert out == [("Content-Type", "application/json"), ("Accept", "text/event-stream"), ("Cookie", "a=1"),
                   ("Cookie", "b=2"), ("X-Marathon-Via", "1.1 c.example:8080"), ("Authorization", "Basic eDp5"),
                   ("X-Marathon-Via", "1.1 b.example:8080"), ("X-Forwarded-For", "10.0.0.9,127.0.0.7")]


def test_forwarded_for_is_left_out_when_nobody_is_known() -> None:
    assert forward_headers([], ME, None) == [("X-Marathon-Via", "1.1 b.example:8080")]


def test_relayed_response_headers_keep_the_leaders_and_mark_this_proxy() -> None:
    got = [("Content-Type", "application/json"), ("Content-Length", "40"), ("Transfer-Encoding", "chunked"),
           ("Connection", "close"), ("X-Marathon-Leader", "http://a.example:8080"),
           ("Marathon-Deployment-Id", "d1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert relay_headers(got, ME) == [
        ("Content-Type", "application/json"), ("X-Marathon-Leader", "http://a.example:8080"),
        ("Marathon-Deployment-Id", "d1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
        ("X-Marathon-Via", "1.1 b.example:8080")]


def test_leader_header_is_a_url_and_event_streams_are_recognised() -> None:
    assert leader_url("a.example:8080") == "http://a.example:8080"
    assert is_event_stream("text/event-stream") and is_event_stream("Text/Event-Stream; charset=utf-8")
    assert not is_event_stream("application/json") and not is_event_stream(None)


def _machine() -> str:
    return "box-7"


@pytest.mark.parametrize(("listen", "hostname", "expected"), [
    ("127.0.0.1", None, "127.0.0.1:8080"),
    ("10.1.2.3", None, "10.1.2.3:8080"),
    ("0.0.0.0", None, "box-7:8080"),
    ("::", None, "box-7:8080"),
    ("", None, "box-7:8080"),
    ("0.0.0.0", "pacer-1.internal", "pacer-1.internal:8080"),
    ("127.0.0.1", "pacer-1.internal", "pacer-1.internal:8080"),
    ("127.0.0.1", "  ", "127.0.0.1:8080"),
    ("::1", None, "[::1]:8080"),
    ("0.0.0.0", "fd00::5", "[fd00::5]:8080"),
    ("0.0.0.0", "[fd00::5]", "[fd00::5]:8080"),
])
def test_advertised_address(listen: str, hostname: str | None, expected: str) -> None:
    assert advertised_address(listen, 8080, hostname, _machine) == expected


def test_the_machine_hostname_is_asked_only_for_a_wildcard_listen() -> None:
    def never() -> str:
        raise AssertionError("not needed")

    assert advertised_address("127.0.0.1", 1, None, never) == "127.0.0.1:1"
    assert advertised_address("0.0.0.0", 1, "h", never) == "h:1"
