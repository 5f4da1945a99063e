"""HAProxy's request log for a canary's p95, without HAProxy running: the line parser (unit and
property tests), when the renderer turns the log on and exactly what it writes (and that the file
is byte-identical without a latency-judged canary), the incremental renderer's agreement, and the
reader's window over a real unix datagram socket. The run through a real HAProxy is in
test_canary_latency_haproxy.py."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haproxy_bridge.incremental import IncrementalRenderer
from haproxy_bridge.model import build_model
from haproxy_bridge.plan import plan_runtime
from haproxy_bridge.render import render_haproxy_config, render_lines
from haproxy_bridge.request_log import (LOG_FORMAT, RequestRecord, format_request_line, judges_latency,
                                        parse_request_line)
from pacer.request_log import RequestLog

from .haproxy_support import HAPROXY, needs_haproxy
from .test_haproxy_render import SETTINGS, app, task

LOGGING = dataclasses.replace(SETTINGS, request_log="/run/pacer-haproxy/reqlog.sock")


# -- the parser ------------------------------------------------------------------------------------

def test_a_line_as_haproxy_sends_it() -> None:
    record = parse_request_line(b"pacer1 shop_10080 shop.instance-a._app.1 200 203 205\n")
    assert record == RequestRecord("shop_10080", "shop.instance-a._app.1", 200, 203, 205)
    assert record.key == "shop_10080/shop.instance-a._app.1"
    assert parse_request_line("pacer1 shop_10080 <NOSRV> 503 -1 0") == RequestRecord("shop_10080", "<NOSRV>",
                                                                                      503, -1, 0)
    assert parse_request_line("pacer1 b s 200 7 9\r\n\0") == RequestRecord("b", "s", 200, 7, 9)


@pytest.mark.parametrize("line", [
    "", "\n", "pacer1", "pacer2 b s 200 1 1", "pacer1 b s 200 1", "pacer1 b s 200 1 1 1", "pacer1  b s 200 1 1",
    "pacer1 b s 200 1 1 ", " pacer1 b s 200 1 1", "pacer1 b s OK 1 1", "pacer1 b s 200 -2 1", "pacer1 b s 200 1.5 1",
    "pacer1 b s 2000 1 1", "pacer1 b s 200 +1 1", "pacer1 b/x s 200 1 1", "pacer1 b s 200 1 99999999999",
    "<134>Jan  1 00:00:00 haproxy[1]: pacer1 b s 200 1 1", "pacer1 b s 200 1 1\npacer1 b s 200 1 1",
    b"pacer1 b \xff 200 1 1", "pacer1 " + "b" * 2000 + " s 200 1 1",
])
def test_anything_else_is_not_a_sample(line: str | bytes) -> None:
    assert parse_request_line(line) is None


names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_.:-<>"), min_size=1,
                max_size=100).filter(lambda n: n.isascii())
records = st.builds(RequestRecord, names, names, st.sampled_from([-1, 200, 302, 404, 500, 503]),
                    st.integers(-1, 10**9 - 1), st.integers(-1, 10**9 - 1))


@given(records)
def test_every_record_reads_back_from_its_line(record: RequestRecord) -> None:
    line = format_request_line(record)
    assert parse_request_line(line) == record
    assert parse_request_line(line.encode() + b"\n") == record


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_the_parser_never_raises(data: str | bytes) -> None:
    record = parse_request_line(data)
    assert record is None or isinstance(record, RequestRecord)


@given(records, st.integers(0, 60))
def test_a_cut_line_is_a_sample_only_if_it_still_reads_whole(record: RequestRecord, cut: int) -> None:
    """A truncated datagram never parses as another backend or server: at most the last time is cut."""
    line = format_request_line(record)
    got = parse_request_line(line[:max(0, len(line) - cut)])
    if got is not None:
        assert got[:4] == record[:4] and str(record.ta_ms).startswith(str(got.ta_ms))


# -- when the log is on -----------------------------------------------------------------------------

TRAFFIC = {"percent": 50, "canaryTasks": ["shop.3"], "canaryWeight": 2, "stableWeight": 1, "canaryShare": 50.0}


def shop(*, traffic: dict[str, Any] | None = TRAFFIC, ratio: Any = 1.5, mode: str = "http",
         vhost: bool = True) -> dict[str, Any]:
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": mode}
    if vhost:
        labels["HAPROXY_0_VHOST"] = "shop.example.com"
    analysis: dict[str, Any] = {"intervalSeconds": 2, "minRequests": 10}
    if ratio is not None:
        analysis["maxLatencyP95Ratio"] = ratio
    extra: dict[str, Any] = {"upgradeStrategy": {"canary": {"instances": 1, "steps": [{"setWeight": 50}],
                                                            "analysis": analysis}}}
    if traffic is not None:
        extra["canaryTraffic"] = traffic
    return app("/shop", [10080], labels, [task("shop.1", 31001), task("shop.2", 31002), task("shop.3", 31003)],
               **extra)


def other() -> dict[str, Any]:
    return app("/blog", [10090], {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "blog.example.com"},
               [task("blog.1", 31010)])


def test_only_a_running_canary_that_judges_latency_turns_the_log_on() -> None:
    assert judges_latency(shop())
    assert not judges_latency(shop(traffic=None))             # no canary running (before it, after it)
    assert not judges_latency(shop(ratio=None))               # a canary that does not judge latency
    for bad in ("1.5", True, None):
        assert not judges_latency(shop(ratio=bad))
    assert not judges_latency({**shop(), "upgradeStrategy": "canary"})
    assert not judges_latency({**shop(), "canaryTraffic": "50%"})
    (logged,) = build_model([shop()]).services
    (tcp,) = build_model([shop(mode="tcp", vhost=False)]).services
    assert logged.log_requests and not tcp.log_requests      # HAProxy sees no status nor %Tr in tcp mode


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title)
    end = next((n for n in range(start + 1, len(lines)) if lines[n] and not lines[n].startswith(" ")), len(lines))
    return [line for line in lines[start + 1:end] if line]


def test_a_latency_judged_canary_logs_its_own_requests_and_no_one_else_s() -> None:
    text = render_haproxy_config(build_model([shop(), other()]), LOGGING)
    assert section(text, "global")[2] == "  log /run/pacer-haproxy/reqlog.sock len 1024 format raw local0 info"
    log_lines = ["  log global", f'  log-format "{LOG_FORMAT}"', "  http-request set-log-level silent"]
    for frontend in ("frontend pacer_http_in", "frontend pacer_apps_in", "frontend shop_10080"):
        lines = section(text, frontend)
        assert lines[2:5] == log_lines, (frontend, lines)          # after bind and mode, before any rule
    assert section(text, "backend shop_10080")[2] == "  http-request set-log-level info"
    # the other app's own frontend and backend log nothing: no `log global`, no level raised
    blog = section(text, "frontend blog_10090") + section(text, "backend blog_10090")
    assert blog and not any(line.split()[0] in ("log", "log-format") or "set-log-level" in line for line in blog)
    assert text.count("set-log-level info") == 1
    lines = render_lines(build_model([shop(), other()]), LOGGING)      # what `haproxy -c` errors are pinned by
    assert "".join(line + "\n" for line, _ in lines) == text
    assert {owner for line, owner in lines if "log-level" in line or "log " in line} == {None, "/shop"}


@pytest.mark.parametrize("apps", [
    [other()], [shop(traffic=None), other()], [shop(ratio=None), other()], [shop(mode="tcp", vhost=False)]],
    ids=["no canary", "canary over", "canary without a latency check", "tcp canary"])
def test_without_a_latency_judged_canary_the_file_is_byte_identical(apps: list[dict[str, Any]]) -> None:
    assert render_haproxy_config(build_model(apps), LOGGING) == render_haproxy_config(build_model(apps), SETTINGS)
    assert " log" not in render_haproxy_config(build_model(apps), LOGGING)


def test_a_bridge_without_a_reader_never_logs() -> None:
    text = render_haproxy_config(build_model([shop(), other()]), SETTINGS)
    assert "log " not in text and "log-" not in text


def test_turning_the_log_on_or_off_is_a_reload_not_a_runtime_change() -> None:
    plain, logged = build_model([shop(ratio=None)]), build_model([shop()])
    assert plan_runtime(plain, logged) is None and plan_runtime(logged, plain) is None
    assert plan_runtime(logged, build_model([shop(traffic={**TRAFFIC, "canaryWeight": 1})])) is not None


def test_the_incremental_renderer_follows_the_canary_on_and_off() -> None:
    by_change, by_list = IncrementalRenderer(LOGGING), IncrementalRenderer(LOGGING)
    apps = {"/blog": other(), "/shop": shop(traffic=None)}
    by_change.render(list(apps.values()))
    for shop_app in (shop(), shop(traffic={**TRAFFIC, "canaryWeight": 1}), shop(ratio=None), shop(),
                     shop(traffic=None)):
        apps["/shop"] = shop_app
        expected = render_haproxy_config(build_model(list(apps.values())), LOGGING)
        assert by_change.update([copy.deepcopy(shop_app)]).text == expected
        assert by_list.render(list(apps.values())).text == expected


@needs_haproxy
def test_haproxy_accepts_the_logging_config_without_a_reader(tmp_path: Path) -> None:
    settings = dataclasses.replace(LOGGING, admin_socket=str(tmp_path / "admin.sock"),
                                   request_log=str(tmp_path / "reqlog.sock"))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy_config(build_model([shop(), other()]), settings))
    result = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


# -- the reader's window ----------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bad_lines_are_counted_and_dropped() -> None:
    reader = RequestLog(Path("/nonexistent"), clock=Clock())
    reader.feed(b"pacer1 be s1 200 5 6\n")
    reader.feed(b"garbage\n")
    reader.feed(b"pacer1 be s1 200 x 6\npacer1 be s2 500 7 8\n\n")
    reader.feed(b"\xff\xfe")
    assert (reader.received, reader.bad) == (5, 3)
    assert sorted(reader.samples_between(0, 1000)) == [("be/s1", 5.0), ("be/s2", 7.0)]


def test_intervals_share_no_sample_and_the_window_is_bounded_per_server() -> None:
    clock = Clock()
    reader = RequestLog(Path("/nonexistent"), per_server=3, clock=clock)
    mark = reader.now()
    for ms in range(10):                                  # a busy stable server...
        clock.now += 0.1
        reader.feed(f"pacer1 be stable {200} {ms} {ms}".encode())
    clock.now += 0.1
    reader.feed(b"pacer1 be canary 200 900 900")          # ...does not push the canary's sample out
    until = reader.now()
    clock.now += 0.1
    reader.feed(b"pacer1 be canary 200 901 901")          # after the interval: the next one's
    first = reader.samples_between(mark, until)
    assert sorted(first) == [("be/canary", 900.0), ("be/stable", 7.0), ("be/stable", 8.0), ("be/stable", 9.0)]
    assert reader.samples_between(until, reader.now()) == [("be/canary", 901.0)]


def test_idle_servers_are_forgotten_and_their_number_is_capped() -> None:
    clock = Clock()
    reader = RequestLog(Path("/nonexistent"), idle_seconds=60, max_servers=2, clock=clock)
    reader.feed(b"pacer1 be gone 200 1 1")
    clock.now += 61
    reader.feed(b"pacer1 be s1 200 2 2")
    assert reader.samples_between(0, clock.now) == [("be/s1", 2.0)]
    reader.feed(b"pacer1 be s2 200 3 3")
    reader.feed(b"pacer1 be s3 200 4 4")                  # a third server at once: dropped, counted
    assert reader.overflow == 1
    assert sorted(reader.samples_between(0, clock.now)) == [("be/s1", 2.0), ("be/s2", 3.0)]


async def test_the_reader_receives_datagrams_on_its_socket_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "run" / "reqlog.sock"
    path.parent.mkdir()
    path.touch()                                          # not a socket: never removed by the reader
    blocked = RequestLog(path)
    await blocked.run()                                   # cannot bind: says why and returns
    assert blocked.error is not None and "cannot bind" in blocked.error
    path.unlink()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))                                 # a dead reader's socket: replaced
    stale.close()
    reader = RequestLog(path)
    task = asyncio.create_task(reader.run())
    await asyncio.wait_for(reader.bound.wait(), 5)
    mark = reader.now()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for line in (b"pacer1 be s1 200 12 13\n", b"not a line\n", b"pacer1 be s2 200 34 35\n"):
            sender.sendto(line, str(path))
    deadline = asyncio.get_running_loop().time() + 5
    while reader.received < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert (reader.received, reader.bad) == (3, 1)
    assert sorted(reader.samples_between(mark, reader.now())) == [("be/s1", 12.0), ("be/s2", 34.0)]
    assert path.stat().st_mode & 0o777 == 0o600
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not path.exists()
