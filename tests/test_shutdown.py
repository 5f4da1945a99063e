"""`pacer serve` stops within its deadline under load, and at once on a second signal.

Real processes throughout: a `pacer serve` holding 2,000 `sleep` tasks across 200 apps with
rolling restarts in flight, an event stream being read, one that is never read, and a kill
that cannot finish (a task that ignores SIGTERM, with a long grace period). The tasks must
outlive the scheduler; the fixture kills them by pid afterwards.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .support import EventRecorder, PacerServer, task_pids, wait_until

APPS = 200
PER_APP = 10
ISSUE_BOUND_SECONDS = 10.0     # the hardening issue's bound for a stop under load
LOAD_ARGS = ("--agent-resources", "cpus=1000,mem=1000000,disk=100000")

pytestmark = pytest.mark.timeout(180)


def sleeper(app_id: str, instances: int, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 3600", "instances": instances, "cpus": 0.01, "mem": 1,
            "portDefinitions": [], **extra}


def stubborn(app_id: str) -> dict[str, Any]:
    """A task that ignores SIGTERM and may take 10 minutes to stop: its kill outlives any shutdown."""
    return {"id": app_id, "cmd": "trap '' TERM; while :; do sleep 1; done", "instances": 1, "cpus": 0.01,
            "mem": 1, "portDefinitions": [], "taskKillGracePeriodSeconds": 600}


def running_count(server: PacerServer) -> int:
    status, body, _ = server.request("GET", "/v2/tasks", timeout=60)
    assert status == 200, body
    return sum(1 for t in body["tasks"] if t["state"] == "TASK_RUNNING")


def stalled_stream(server: PacerServer) -> socket.socket:
    """An /v2/events client that never reads: once its buffers fill, every write to it blocks."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /v2/events HTTP/1.1\r\nHost: pacer\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def kill_in_flight(server: PacerServer, app_id: str) -> None:
    """Start a kill of the app's only task that cannot finish before the shutdown ends."""
    assert server.request("POST", "/v2/apps", stubborn(app_id))[0] == 201
    wait_until(lambda: server.running(app_id), timeout=30, what=f"{app_id} running")
    status, body, _ = server.request("PUT", f"/v2/apps{app_id}?force=true", {"instances": 0})
    assert status == 200, body
    wait_until(lambda: any(t["state"] == "TASK_KILLING" for t in server.tasks(app_id)) or
               not server.running(app_id), timeout=15, what=f"{app_id} being killed")


def stop_and_time(server: PacerServer, sig: int = signal.SIGTERM, limit: float = 30.0) -> tuple[int, float]:
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(sig)
    code = server.proc.wait(timeout=limit)
    return code, time.monotonic() - started


def serve_log(server: PacerServer) -> str:
    return (server.home.parent / f"serve-{server.port}.log").read_text(errors="replace")


@pytest.fixture
def streams() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for stream in opened:
        stream.close()


def test_sigterm_under_load_stops_within_the_bound_and_leaves_tasks_running(pacer_factory, streams) -> None:
    server = pacer_factory(*LOAD_ARGS)
    strategy = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
    group = {"id": "/load", "apps": [sleeper(f"/load/a{i}", PER_APP, upgradeStrategy=strategy) for i in range(APPS)]}
    status, body, _ = server.request("POST", "/v2/groups", group, timeout=60)
    assert status == 201, body
    wait_until(lambda: running_count(server) >= APPS * PER_APP, timeout=120, interval=1.0,
               what=f"{APPS * PER_APP} running tasks")
    streams.append(EventRecorder(server.url))
    streams.append(stalled_stream(server))
    kill_in_flight(server, "/stuck")
    rolled = [{"id": f"/load/a{i}", "env": {"RELEASE": "2"}} for i in range(APPS)]
    status, body, _ = server.request("PUT", "/v2/apps", rolled, timeout=60)
    assert status == 200, body
    deployments = wait_until(lambda: server.get("/v2/deployments")[1], timeout=15, what="deployments in flight")
    before = set(task_pids(server.home).values())

    code, seconds = stop_and_time(server)
    print(f"\npacer serve with {len(before)} tasks and {len(deployments)} deployments in flight "
          f"stopped in {seconds:.2f} s (exit {code})")
    server.proc = None

    assert code == 0, serve_log(server)[-3000:]
    assert seconds < ISSUE_BOUND_SECONDS, serve_log(server)[-3000:]
    assert "Traceback" not in serve_log(server)
    # the rolling restart keeps every app at full strength (minimumHealthCapacity 1): old
    # tasks die only once their replacements run, so a stop at any moment leaves all of them
    after = set(task_pids(server.home).values())
    print(f"task processes: {len(before)} before the signal, {len(after)} after the exit")
    assert len(after) >= APPS * PER_APP, "tasks must outlive the scheduler"


def test_second_signal_during_a_slow_shutdown_exits_at_once(pacer_factory, streams) -> None:
    server = pacer_factory(*LOAD_ARGS)
    assert server.request("POST", "/v2/apps", sleeper("/quiet", 3))[0] == 201
    wait_until(lambda: len(server.running("/quiet")) == 3, timeout=30, what="3 running")
    streams.append(stalled_stream(server))
    kill_in_flight(server, "/stuck")     # holds the shutdown until its step times out
    assert server.proc is not None

    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None, "the shutdown was meant to be slow"
    code, seconds = stop_and_time(server, signal.SIGINT, limit=5.0)
    print(f"\nsecond signal: pacer serve exited {seconds:.2f} s after it (exit {code})")
    server.proc = None

    assert code == 128 + signal.SIGINT, serve_log(server)[-3000:]
    log = serve_log(server)
    assert "second SIGINT while stopping: exiting now" in log
    assert "Traceback" not in log
    assert len(set(task_pids(server.home).values())) >= 3, "tasks must outlive the scheduler"


def test_signals_sent_twice_at_once_count_as_one(pacer_factory) -> None:
    """`timeout` and `kill -- -PGID` deliver one request twice within microseconds: still a clean stop."""
    server = pacer_factory(*LOAD_ARGS)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=15)
    server.proc = None
    assert code == 0, serve_log(server)[-3000:]

