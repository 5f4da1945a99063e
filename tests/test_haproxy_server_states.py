"""GET /v2/haproxy/servers: HAProxy's runtime view of each server, joined to the app and task it
stands for. The join and the CSV reading are pure (unit and property tests); the endpoint is
tested against a real master-worker HAProxy checking real backends on 127.0.0.1 free ports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haproxy_bridge.errors import SocketError
from haproxy_bridge.server_states import ServerOwner, server_owners, servers_document, stat_rows
from haproxy_bridge.servers import Server

from .haproxy_support import (BridgeThread, app_json, bridge_options, free_port, get, needs_haproxy, running_bridge,
                              wait_for)

COLUMNS = ["pxname", "svname", "scur", "status", "weight", "check_status", "check_code", "check_duration",
           "lastchg", "type", "addr"]
SERVERS = [
    {"pxname": "web_10001", "svname": "web.a", "scur": "0", "status": "UP", "weight": "1", "check_status": "L7OK",
     "check_code": "200", "check_duration": "1", "lastchg": "12", "type": "2", "addr": "127.0.0.1:31001"},
    {"pxname": "web_10001", "svname": "web.b", "scur": "0", "status": "DOWN 1/2", "weight": "1",
     "check_status": "* L4CON", "check_code": "", "check_duration": "0", "lastchg": "3", "type": "2",
     "addr": "127.0.0.1:31002"},
    {"pxname": "pacer_bridge_status", "svname": "bridge", "scur": "0", "status": "no check", "weight": "1",
     "check_status": "", "check_code": "", "check_duration": "", "lastchg": "40", "type": "2",
     "addr": "127.0.0.1:9092"},
]
AGGREGATES = [
    {"pxname": "web_10001", "svname": "FRONTEND", "status": "OPEN", "type": "0"},
    {"pxname": "web_10001", "svname": "BACKEND", "status": "UP", "type": "1"},
]


def csv_text(columns: list[str], rows: list[dict[str, str]]) -> str:
    return "\n".join(["# " + ",".join(columns) + ",", *(",".join(r.get(c, "") for c in columns) + "," for r in rows),
                      ""])


def owners() -> dict[tuple[str, str], ServerOwner]:
    servers = (Server("web.a", "127.0.0.1", 31001, "web.a-task"), Server("web.b", "127.0.0.1", 31002, "web.b-task"))
    return server_owners([("web_10001", "/web", servers)])


def test_rows_are_read_by_column_name_and_joined_to_their_tasks() -> None:
    text = csv_text(COLUMNS, [AGGREGATES[0], SERVERS[0], SERVERS[1], AGGREGATES[1], SERVERS[2]])
    services = [("web_10001", "/web", (Server("web.a", "127.0.0.1", 31001, "web.a-task"),
                                       Server("web.b", "127.0.0.1", 31002, "web.b-task")))]
    doc = servers_document(text, services, {})
    by_name = {s["server"]: s for s in doc["servers"]}
    assert list(by_name) == ["bridge", "web.a", "web.b"]          # sorted by backend, then server
    assert by_name["web.a"] == {"backend": "web_10001", "server": "web.a", "address": "127.0.0.1:31001", "weight": 1,
                                "status": "UP", "checkStatus": "L7OK", "checkCode": 200, "checkDurationMs": 1,
                                "lastChangeSeconds": 12, "appId": "/web", "taskId": "web.a-task", "draining": False}
    # HAProxy's own words for the state; the `* ` of a check in progress is not part of the last result
    assert (by_name["web.b"]["status"], by_name["web.b"]["checkStatus"], by_name["web.b"]["checkCode"]) == \
        ("DOWN 1/2", "L4CON", None)
    # a server the bridge does not route for an app (its status backend) has no owner
    assert (by_name["bridge"]["appId"], by_name["bridge"]["taskId"], by_name["bridge"]["checkStatus"]) == \
        (None, None, None)


def test_a_draining_server_keeps_its_task_and_says_it_drains() -> None:
    text = csv_text(COLUMNS, [SERVERS[0], {**SERVERS[1], "status": "DRAIN"}])
    services = [("web_10001", "/web", (Server("web.a", "127.0.0.1", 31001, "web.a-task"),))]
    doc = servers_document(text, services, {("web_10001", "web.b"): Server("web.b", "127.0.0.1", 31002, "web.b-task")})
    b = next(s for s in doc["servers"] if s["server"] == "web.b")
    assert (b["status"], b["appId"], b["taskId"], b["draining"]) == ("DRAIN", "/web", "web.b-task", True)


@pytest.mark.parametrize("answer", ["", "Unknown command: 'show stat'\n", "# type,status\n2,UP\n"])
def test_an_answer_without_statistics_is_an_error_naming_it(answer: str) -> None:
    with pytest.raises(SocketError, match="show stat"):
        stat_rows(answer)


@given(st.permutations(COLUMNS), st.permutations(SERVERS + AGGREGATES))
def test_column_and_row_order_do_not_change_the_answer(columns: list[str], rows: list[dict[str, str]]) -> None:
    expected = servers_document(csv_text(COLUMNS, SERVERS), [], {})
    assert servers_document(csv_text(list(columns), list(rows)), [], {}) == expected


# -- against a real HAProxy ------------------------------------------------------------------------

def checked_app(app_id: str, service_port: int, ports: list[int]) -> dict[str, Any]:
    """An app whose HTTP health check HAProxy runs every second and fails on the first miss."""
    app = app_json(app_id, service_port, ports, health=True)
    app["healthChecks"][0].update(intervalSeconds=1, timeoutSeconds=1, maxConsecutiveFailures=0)
    return app


def servers_of(port: int) -> dict[str, dict[str, Any]]:
    status, body, _ = get(f"http://127.0.0.1:{port}/v2/haproxy/servers")
    assert status == 200, body
    return {s["taskId"]: s for s in json.loads(body)["servers"] if s["taskId"]}


@needs_haproxy
@pytest.mark.timeout(120)
def test_a_healthy_server_is_up_and_one_whose_task_stops_answering_goes_down(backends, master, tmp_path: Path) -> None:
    b1, b2 = backends.start("one"), backends.start("two")
    sp = free_port()
    master.apps = [checked_app("/web", sp, [b1, b2])]
    opts = bridge_options(tmp_path / "hx", master.url, status_port=free_port())
    one, two = f"web.instance-{b1}._app.1", f"web.instance-{b2}._app.1"
    with running_bridge(opts, status=True):
        up = wait_for(lambda: (s := servers_of(opts.status_port)) and
                      all(s.get(t, {}).get("checkStatus") == "L7OK" for t in (one, two)) and s,
                      30, "both servers to pass a check")
        assert up[one] | {"lastChangeSeconds": 0, "checkDurationMs": 0} == {
            "backend": f"web_{sp}", "server": one, "address": f"127.0.0.1:{b1}", "weight": 1, "status": "UP",
            "checkStatus": "L7OK", "checkCode": 200, "checkDurationMs": 0, "lastChangeSeconds": 0, "appId": "/web",
            "taskId": one, "draining": False}
        assert up[two]["status"] == "UP" and up[one]["lastChangeSeconds"] >= 0

        backends.stop(b2)          # the task stops answering; the bridge's model still routes it
        down = wait_for(lambda: (s := servers_of(opts.status_port))[two]["status"] == "DOWN" and s, 30,
                        "the silent server to go down")
        assert down[two]["checkStatus"].startswith("L4"), down[two]      # a refused connection: L4CON
        assert down[two]["appId"] == "/web" and down[one]["status"] == "UP"


@needs_haproxy
def test_before_haproxy_runs_the_answer_is_503_saying_so(master, tmp_path: Path) -> None:
    opts = bridge_options(tmp_path / "hx", master.url, status_port=free_port())
    bt = BridgeThread(opts)            # the status server up, HAProxy not started
    try:
        bt.call(bt._serve_status())
        status, body, headers = get(f"http://127.0.0.1:{opts.status_port}/v2/haproxy/servers")
        assert status == 503 and headers["content-type"].startswith("application/json")
        assert "HAProxy is not running yet" in json.loads(body)["message"]
    finally:
        bt.stop()
