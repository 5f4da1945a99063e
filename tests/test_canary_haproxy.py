"""`show stat` parsing: a recorded HAProxy 2.6 answer, bad input, then a real HAProxy on loopback
with a stable and a canary server, canary weights set over the Runtime API, and the counters read
back through the same socket."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app_definitions.strategies import CanaryAnalysis
from scheduler.canary import (
    StatsFormatError,
    StatsSnapshot,
    canary_weights,
    counters_of,
    interval_deltas,
    judge,
    parse_show_stat,
    sample,
    traffic_by_version,
    version_of_servers,
    weight_commands,
    worker_generation,
)

from .haproxy_support import HAPROXY, free_port, get, needs_haproxy, wait_for
from .support import answering_server, stop_process

# Recorded from HAProxy 2.6.12 (`show stat` on a `stats socket`): s1 answers 200, s2 answers 500,
# s3 closes the connection without answering, s4 refuses connections; 20 requests, roundrobin.
HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
          "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
          "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
          "hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
          "lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,"
          "agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,"
          "conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,"
          "srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,"
          "used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,")


def row(name: str, stot: int, lbtot: int, req: int, h2: int, h5: int, econ: int, eresp: int, rtime: int) -> str:
    cells = {k: "" for k in HEADER[2:].split(",")}
    cells.update(pxname="be", svname=name, stot=str(stot), lbtot=str(lbtot), req_tot=str(req), hrsp_1xx="0",
                 hrsp_2xx=str(h2), hrsp_3xx="0", hrsp_4xx="0", hrsp_5xx=str(h5), hrsp_other="0", econ=str(econ),
                 eresp=str(eresp), rtime=str(rtime), ttime=str(rtime + 1), status="no check", weight="1",
                 type="2", addr=f"127.0.0.1:1809{name[-1]}")
    return ",".join(cells[k] for k in HEADER[2:].split(","))


RECORDED = "\n".join([
    HEADER,
    "fe,FRONTEND,,,0,1,9986,20,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,0,5,0,0,15,0,,0,1,20",
    row("s1", 5, 5, 5, 5, 0, 0, 0, 2),
    row("s2", 5, 5, 5, 0, 5, 0, 0, 1),
    row("s3", 5, 5, 0, 0, 0, 0, 5, 0),
    row("s4", 20, 5, 0, 0, 0, 5, 0, 0),
    "be,BACKEND,0,0,0,1,999,20,0,0,0,0,,5,5,15,0,UP,4,4,0,,0,1,0,,1,3,0,,20,,1,0,,1,,,,0,5,0,0,15,0,,,,20",
    "",
])


def test_recorded_answer() -> None:
    stats = parse_show_stat(RECORDED)
    assert [s.server for s in stats] == ["s1", "s2", "s3", "s4"]
    assert [(s.requests, s.errors) for s in stats] == [(5, 0), (5, 5), (5, 5), (5, 5)]
    assert stats[0].weight == 1 and stats[0].address == "127.0.0.1:18091" and stats[0].rtime_ms == 2
    assert stats[3].sessions_total == 20 and stats[3].requests_total == 0
    assert parse_show_stat(RECORDED, backend="other") == ()
    counters = counters_of(stats)
    assert counters["s2"].requests == 5 and counters["s2"].errors == 5 and counters["s2"].response_ms == 1.0


def test_tcp_mode_rows_have_no_http_counters() -> None:
    text = "# pxname,svname,stot,lbtot,req_tot,hrsp_5xx,econ,eresp,type\ntcp,t1,7,7,,,0,1,2\n"
    (stat,) = parse_show_stat(text)
    assert stat.requests_total is None and stat.responses[4] is None
    assert (stat.requests, stat.errors) == (7, 1)


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "pxname,svname\nbe,s1\n", "# a,b\n1,2\n",
                                  "# pxname,svname,stot\nbe,s1,many\n"])
def test_not_a_show_stat_answer(text: str) -> None:
    with pytest.raises(StatsFormatError):
        parse_show_stat(text)


def test_worker_generation() -> None:
    info = "Name: HAProxy\nVersion: 2.6.12\nPid: 3282\nUptime_sec: 4\nStart_time_sec: 1796455391\n"
    assert worker_generation(info) == "3282@1796455391"
    with pytest.raises(StatsFormatError):
        worker_generation("Unknown command\n")


def test_version_of_servers() -> None:
    assert version_of_servers({"web.instance-a._app.1": "web.instance-a._app.1", "x": "gone"},
                              {"web.instance-a._app.1": "v2"}) == {"web.instance-a._app.1": "v2"}


# -- a real HAProxy ---------------------------------------------------------------------------------

def runtime(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.fixture
def haproxy_two_versions(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """HAProxy in front of a stable server (200) and a canary server (500), stats socket at admin level."""
    stable, stable_port = answering_server(b"status=200\n")
    canary, canary_port = answering_server(b"status=500\n", status=500)
    front = free_port()
    sock = tmp_path / "admin.sock"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend web
    bind 127.0.0.1:{front}
    default_backend web_{front}
backend web_{front}
    balance roundrobin
    server web.instance-old._app.1 127.0.0.1:{stable_port} weight 1
    server web.instance-new._app.2 127.0.0.1:{canary_port} weight 1
""")
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: sock.exists() and "web" in runtime(sock, "show stat"), 10, "haproxy stats socket")
        yield {"front": front, "sock": sock, "backend": f"web_{front}",
               "stable": "web.instance-old._app.1", "canary": "web.instance-new._app.2"}
    finally:
        stop_process(proc, 5)
        stable.shutdown()
        canary.shutdown()
        stable.server_close()
        canary.server_close()


def _send(front: int, count: int) -> dict[int, int]:
    seen: dict[int, int] = {}
    for _ in range(count):
        status = get(f"http://127.0.0.1:{front}/")[0]
        seen[status] = seen.get(status, 0) + 1
    return seen


@needs_haproxy
@pytest.mark.timeout(60)
def test_real_haproxy_weights_counters_and_verdict(haproxy_two_versions: dict[str, Any]) -> None:
    h = haproxy_two_versions
    sock, backend = h["sock"], h["backend"]
    version_of = version_of_servers({h["stable"]: "task-old", h["canary"]: "task-new"},
                                    {"task-old": "v1", "task-new": "v2"})

    def snapshot() -> StatsSnapshot:
        stats = parse_show_stat(runtime(sock, "show stat"), backend=backend)
        return StatsSnapshot(time.time(), worker_generation(runtime(sock, "show info")), counters_of(stats))

    # 25% to the canary through the Runtime API, no reload
    weights = canary_weights(1, 1, 25)
    assert (weights.stable, weights.canary) == (3, 1)
    for command in weight_commands(backend, [h["stable"]], [h["canary"]], weights):
        assert runtime(sock, command).strip() == ""
    stats = {s.server: s for s in parse_show_stat(runtime(sock, "show stat"), backend=backend)}
    assert (stats[h["stable"]].weight, stats[h["canary"]].weight) == (3, 1)

    before = snapshot()
    assert all(c.requests == 0 for c in before.servers.values())
    seen = _send(h["front"], 80)
    after = snapshot()
    assert seen == {200: 60, 500: 20}  # weighted roundrobin: exactly 3 to 1 over whole cycles

    stats = {s.server: s for s in parse_show_stat(runtime(sock, "show stat"), backend=backend)}
    assert stats[h["stable"]].requests_total == 60 and stats[h["stable"]].responses[1] == 60
    assert stats[h["canary"]].requests_total == 20 and stats[h["canary"]].hrsp_5xx == 20

    traffic = traffic_by_version(interval_deltas(before, after), version_of)
    assert (traffic["v1"].requests, traffic["v1"].errors) == (60, 0)
    assert (traffic["v2"].requests, traffic["v2"].errors) == (20, 20)
    assert traffic["v1"].latency_ms is not None

    spec = CanaryAnalysis.model_validate({"minRequests": 10, "maxErrorRate": 0.02})
    verdict = judge(sample(traffic["v1"]), sample(traffic["v2"]), spec, latency_kind="mean")
    assert verdict.outcome == "fail"
    assert verdict.reason == "canary error rate 100.00% (20 of 20 requests) is above maxErrorRate 2.00%"

    # the next interval counts only what came after the last snapshot
    _send(h["front"], 8)
    later = snapshot()
    traffic = traffic_by_version(interval_deltas(after, later), version_of)
    assert (traffic["v1"].requests, traffic["v2"].requests) == (6, 2)

    # abort: the canary's weight goes to 0 and it gets nothing more
    for command in weight_commands(backend, [h["stable"]], [h["canary"]], canary_weights(1, 1, 0)):
        runtime(sock, command)
    assert _send(h["front"], 10) == {200: 10}
    final = traffic_by_version(interval_deltas(later, snapshot()), version_of)
    assert (final["v1"].requests, final["v2"].requests) == (10, 0)
