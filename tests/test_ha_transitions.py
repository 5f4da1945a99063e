"""High availability: the transitions `tests/test_ha.py` leaves out, each with real processes.

`DELETE /v2/leader` (on the leader, and through a follower that forwards it): another instance
takes over with the same framework id and tasks, the one that abdicated exits (status 1,
`--on-session-loss exit`). `--on-session-loss rejoin`: a leader frozen past its session starts
again in place (the same pid, `os.execv`) as a follower and subscribes to nothing. A follower
restarted rejoins without disturbing the leader. And `--zk`'s usage and start-up errors.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .support import PacerServer, free_port, running_tasks, wait_until
from .test_ha import SESSION_TIMEOUT, Ha, _app, _info, ha, sim  # noqa: F401 - ha and sim are fixtures
from .test_startup_errors import pacer_cli, serve_args, the_error_line


def _address(server: PacerServer) -> str:
    return f"127.0.0.1:{server.port}"


def _subscribes_from(ha: Ha, server: PacerServer, since: float) -> list[Any]:
    """The SUBSCRIBE calls `server` made (its webui_url is its URL) since `since` (monotonic)."""
    return ha.sim.run(lambda: [a for m in ha.sim.masters for a in m.attempts
                               if a[0] >= since and a[1] == "SUBSCRIBE" and a[3] == server.url])


def _follows(server: PacerServer, leader: PacerServer) -> bool:
    """`server` answers as a follower that names `leader` (in /v2/info and GET /v2/leader)."""
    info = _info(server)
    return (info.get("elected") is False and info.get("leader") == _address(leader)
            and server.get("/v2/leader")[:2] == (200, {"leader": _address(leader)}))


def _log(server: PacerServer) -> str:
    return (server.home.parent / f"serve-{server.port}.log").read_text(errors="replace")


# -- DELETE /v2/leader ------------------------------------------------------------------------

@pytest.mark.parametrize("through", ["leader", "follower"])
def test_abdication_hands_over_and_the_old_leader_exits(ha: Ha, through: str) -> None:
    servers = ha.start(2)
    leader = ha.leader()
    other = next(s for s in servers if s is not leader)
    assert leader.request("POST", "/v2/apps", _app("/web", 2))[0] == 201
    before = {t["id"] for t in running_tasks(leader, "/web", 2)}
    framework_id = ha.sim.run(lambda: next(iter(ha.sim.leader.frameworks)))
    assert len(ha.sim.calls("SUBSCRIBE")) == 1

    asked = leader if through == "leader" else other
    status, body, headers = asked.request("DELETE", "/v2/leader")
    abdicated_at = time.monotonic()
    assert (status, body) == (200, {"message": "Leadership abdicated"})
    assert headers.get("x-marathon-leader") == f"http://{_address(leader)}"     # answered before stepping down

    wait_until(lambda: _info(other).get("elected"), timeout=15, what="the other instance elected")
    took = time.monotonic() - abdicated_at
    print(f"abdication through the {through}: a new leader serving {took:.1f} s later")
    assert took <= 10
    assert leader.proc is not None
    assert leader.proc.wait(timeout=20) == 1          # a leader that stops leading exits (--on-session-loss exit)
    assert "no longer the leader" in _log(leader)

    # the tasks kept running, the new leader reports them, on the same framework
    assert {t["id"] for t in running_tasks(other, "/web", 2)} == before
    assert ha.sim.live_ids() == before
    subscribes = wait_until(lambda: (lambda c: c if len(c) == 2 else None)(ha.sim.calls("SUBSCRIBE")),
                            what="the new leader's SUBSCRIBE")
    assert subscribes[1]["subscribe"]["framework_info"]["id"]["value"] == framework_id
    assert _subscribes_from(ha, other, abdicated_at)
    assert other.get("/v2/leader")[:2] == (200, {"leader": _address(other)})


# -- --on-session-loss rejoin -------------------------------------------------------------------

def test_a_frozen_leader_with_rejoin_starts_again_in_place_as_a_follower(ha: Ha) -> None:
    ha.start(2, "--on-session-loss", "rejoin")
    leader = ha.leader()
    assert leader.proc is not None
    pid = leader.proc.pid
    leader.proc.send_signal(signal.SIGSTOP)
    successor = wait_until(lambda: next((s for s in ha.alive() if s is not leader and _info(s).get("elected")), None),
                           timeout=SESSION_TIMEOUT + 15, what="another leader while the first is frozen")
    wait_until(lambda: len(ha.sim.calls("SUBSCRIBE")) == 2, what="the successor subscribed")

    thawed_at = time.monotonic()
    leader.proc.send_signal(signal.SIGCONT)
    # it starts again: the same process (os.execv keeps the pid) serving a second time
    wait_until(lambda: _log(leader).count("pacer serving on") == 2 or leader.proc.poll() is not None,
               timeout=30, what="the thawed leader to start again")
    assert leader.proc.poll() is None, f"it exited with {leader.proc.returncode} instead of starting again"
    assert leader.proc.pid == pid
    assert "starting again to rejoin the election" in _log(leader)
    wait_until(leader._ping, timeout=20, what="the restarted instance to answer /ping")
    wait_until(lambda: _follows(leader, successor), timeout=15, what="the restarted instance to follow")

    assert _info(successor)["elected"] is True
    assert not _subscribes_from(ha, leader, thawed_at)
    assert len(ha.sim.calls("SUBSCRIBE")) == 2
    assert leader.proc.poll() is None and successor.proc is not None and successor.proc.poll() is None


# -- a follower restarted -------------------------------------------------------------------------

def test_a_restarted_follower_rejoins_without_disturbing_the_leader(ha: Ha) -> None:
    servers = ha.start(2)
    leader = ha.leader()
    follower = next(s for s in servers if s is not leader)
    assert leader.request("POST", "/v2/apps", _app("/web", 1))[0] == 201
    before = {t["id"] for t in running_tasks(leader, "/web", 1)}
    assert leader.proc is not None
    leader_pid = leader.proc.pid

    restarted_at = time.monotonic()
    follower.stop()                                  # SIGTERM
    assert _info(leader)["elected"] is True
    follower.start()                                 # the same flags, port and home
    wait_until(lambda: _follows(follower, leader), timeout=15, what="the restarted follower to follow")

    assert leader.proc.poll() is None and leader.proc.pid == leader_pid
    assert _info(leader)["elected"] is True
    assert not _subscribes_from(ha, follower, restarted_at) and not _subscribes_from(ha, leader, restarted_at)
    assert len(ha.sim.calls("SUBSCRIBE")) == 1
    # it forwards to the undisturbed leader, whose tasks are the same
    status, body, headers = follower.request("POST", "/v2/apps", _app("/after", 0))
    assert status == 201, body
    assert headers.get("x-marathon-leader") == f"http://{_address(leader)}"
    assert {t["id"] for t in running_tasks(follower, "/web", 1)} == before == ha.sim.live_ids()


# -- usage and start-up errors --------------------------------------------------------------------

def _serve(tmp_path: Path, *extra: str) -> list[str]:
    return serve_args(tmp_path / "home", free_port(), "--haproxy-bridge", "off", *extra)


@pytest.mark.parametrize("flags, needles", [
    (("--zk", "zk://127.0.0.1:2181/pacer"), ("--zk", "--master")),
    (("--master", "http://127.0.0.1:5050", "--zk", "zk:/127.0.0.1:2181/pacer"), ("--zk", "zk:/127.0.0.1:2181/pacer")),
    (("--master", "http://127.0.0.1:5050", "--zk", "zk://127.0.0.1:2181/pacer", "--zk-session-timeout", "0"),
     ("--zk-session-timeout",)),
], ids=["zk-without-master", "malformed-zk-url", "zero-session-timeout"])
def test_zk_usage_errors(tmp_path: Path, flags: tuple[str, ...], needles: tuple[str, ...]) -> None:
    the_error_line(pacer_cli(*_serve(tmp_path, *flags), timeout=30), *needles, status=2)


def test_a_zookeeper_that_does_not_answer(tmp_path: Path) -> None:
    silent = f"zk://127.0.0.1:{free_port()}/pacer"
    began = time.monotonic()
    result = pacer_cli(*_serve(tmp_path, "--master", f"http://127.0.0.1:{free_port()}", "--zk", silent,
                               "--zk-timeout", "2"), timeout=30)
    print(f"a silent ZooKeeper refused in {time.monotonic() - began:.1f} s")
    the_error_line(result, "--zk", silent, "--zk-timeout", status=1)
