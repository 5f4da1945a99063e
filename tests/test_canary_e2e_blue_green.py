"""Blue/green releases end to end: a real `pacer serve` with its embedded HAProxy bridge, two
versions of a small HTTP server, a client in a thread sending requests through HAProxy the whole
time. The new set gets no request before the switch; the switch moves every request at once;
an abort before the switch (by a person, or by an analysis that never gets data) kills the new
set and no request ever leaves the old one."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from haproxy_bridge.servers import server_name

from .canary_e2e_support import (
    assert_no_reload_since,
    settled_reloads,
    Client,
    serve_with_stats,
    shop_tasks,
    static_cmd,
    stats_servers,
    steps_app,
    wait_serving,
)
from .haproxy_support import needs_haproxy
from .support import EventRecorder, PacerServer, free_port, wait_until

pytestmark = needs_haproxy


def blue_green_app(cmd: str, port: int, steps: list[dict[str, Any]],
                   analysis: dict[str, Any] | None = None) -> dict[str, Any]:
    app = steps_app(cmd, port, steps, {})
    app["upgradeStrategy"]["canary"] = {"blueGreen": True, "steps": steps}
    if analysis is not None:
        app["upgradeStrategy"]["canary"]["analysis"] = analysis
    return app


def task_ids(server: PacerServer) -> set[str]:
    return {t["id"] for t in shop_tasks(server)}


def test_blue_green_switches_every_request_to_the_new_set_at_once_with_no_failed_request(
        pacer_factory, tmp_path: Path) -> None:
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    v1, v2 = static_cmd(tmp_path, "v1"), static_cmd(tmp_path, "v2")

    def blue_green(command: str) -> dict[str, Any]:
        return blue_green_app(command, port, [{"pause": {"seconds": 3}}])

    assert server.request("POST", "/v2/apps", blue_green(v1))[0] == 201
    wait_serving(server, port)
    old_tasks = task_ids(server)
    reloads = settled_reloads(server)
    client = Client(port)
    status, body, _ = server.request("PUT", "/v2/apps/shop", blue_green(v2))
    assert status == 200, body
    deployment = body["deploymentId"]
    observed: list[tuple[float, dict[str, Any]]] = []

    def switched() -> bool:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        observed.append((time.time(), rows[0]["canary"] if rows else {}))
        return not rows or observed[-1][1].get("switched") is True

    wait_until(switched, timeout=120, what="the blue/green switch")
    healthy_at = min(t for t, block in observed if block.get("phase") == "steps")     # the new set was healthy
    unswitched_at = max(t for t, block in observed if block.get("switched") is False)  # not switched yet
    tasks = shop_tasks(server)
    new_servers = {server_name(t["id"]) for t in tasks if t["id"] not in old_tasks}
    assert len(new_servers) == 2

    def all_on_new() -> bool:
        """Every new server takes requests, no old one does (weight 0, or drained on its way out)."""
        servers = stats_servers(stats_port)
        return new_servers <= set(servers) and all(
            (weight > 0 and not status.startswith(("DRAIN", "MAINT", "DOWN"))) if name in new_servers
            else (weight == 0 or status.startswith(("DRAIN", "MAINT")))
            for name, (weight, status) in servers.items())

    wait_until(all_on_new, timeout=30, interval=0.05, what="HAProxy to send every request to the new set")
    switched_at = time.time()
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=90, what="the deployment to finish")
    wait_until(lambda: task_ids(server).isdisjoint(old_tasks), timeout=60, what="the old set to be drained and killed")
    done_at = time.time()
    wait_until(lambda: len(client.seen) > 0 and client.seen[-1][0] > done_at and client.since(done_at) >= 100,
               timeout=60, what="100 requests after the end")
    seen = client.stop()
    answers = Counter((status, body) for _, _, status, body in seen)
    assert set(answers) <= {(200, "v1"), (200, "v2")}, answers                 # not one failed request
    waiting = [b for s, e, _, b in seen if s >= healthy_at and e <= unswitched_at]
    assert waiting and set(waiting) == {"v1"}                                   # a healthy new set, no traffic
    after = Counter(b for s, _, _, b in seen if s >= switched_at)
    assert set(after) == {"v2"}, after                                          # every request after the switch
    assert_no_reload_since(server, reloads)                                     # weights, no reload
    assert server.get("/v2/apps/shop")[1]["app"]["cmd"] == v2 and len(old_tasks) == 2
    window = [b for s, e, _, b in seen if e > unswitched_at and s < switched_at]
    print(f"\nblue/green: {len(seen)} requests, failed {sum(n for k, n in answers.items() if k[0] != 200)}; "
          f"v1 while the healthy new set waited: {len(waiting)}; during the switch: {Counter(window)}; "
          f"after the switch: {after}")


def killed_tasks(events: EventRecorder) -> set[str]:
    return {e["taskId"] for e in events.of_type("status_update_event") if e["taskStatus"] == "TASK_KILLED"}


def finish_on_the_old_set(server: PacerServer, client: Client, old_tasks: set[str], new_tasks: set[str],
                          events: EventRecorder) -> Counter[tuple[int, str]]:
    """Wait until the aborted release is over (no deployment, the new set killed, the old set the app
    again) and 100 more requests were answered; the answers of the whole test."""
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=90, what="the rollback to finish")
    wait_until(lambda: task_ids(server) == old_tasks, timeout=60, what="the new set to be killed")
    wait_until(lambda: new_tasks <= killed_tasks(events), timeout=30, what="TASK_KILLED of every new task")
    done_at = time.time()
    wait_until(lambda: client.since(done_at) >= 100, timeout=60, what="100 requests after the end")
    return Counter((status, body) for _, _, status, body in client.stop())


def test_a_blue_green_release_aborted_before_its_switch_kills_the_new_set_and_every_request_stays_on_the_old(
        pacer_factory, tmp_path: Path) -> None:
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    v1, v2 = static_cmd(tmp_path, "v1"), static_cmd(tmp_path, "v2")
    steps: list[dict[str, Any]] = [{"pause": {}}]                  # waits for a person: the abort comes first
    assert server.request("POST", "/v2/apps", blue_green_app(v1, port, steps))[0] == 201
    wait_serving(server, port)
    old_tasks = task_ids(server)
    events = EventRecorder(server.url, "canary_aborted_event", "deployment_failed", "canary_promoted_event",
                           "status_update_event")
    client = Client(port)
    status, body, _ = server.request("PUT", "/v2/apps/shop", blue_green_app(v2, port, steps))
    assert status == 200, body
    deployment = body["deploymentId"]

    def waiting_for_a_person() -> dict[str, Any] | None:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        block = rows[0]["canary"] if rows else {}
        return block if block.get("waitingForPromotion") is True else None

    block = wait_until(waiting_for_a_person, timeout=120, what="the healthy new set to wait for a person")
    assert block["phase"] == "steps" and block["switched"] is False and block["weight"] == 0, block
    new_tasks = task_ids(server) - old_tasks
    assert len(new_tasks) == 2 and len(old_tasks) == 2
    new_servers = {server_name(t) for t in new_tasks}
    wait_until(lambda: new_servers <= set(stats_servers(stats_port)), timeout=30,
               what="the new set's servers in HAProxy")
    assert all(weight == 0 for name, (weight, _) in stats_servers(stats_port).items() if name in new_servers)
    healthy_at = time.time()
    wait_until(lambda: client.since(healthy_at) >= 100, timeout=60, what="100 requests while the new set waits")

    status, body, _ = server.request("POST", f"/v2/deployments/{deployment}/abort",
                                     {"reason": "the new checkout page looks wrong"})
    assert status == 200, body
    answers = finish_on_the_old_set(server, client, old_tasks, new_tasks, events)
    events.close()
    assert answers == Counter({(200, "v1"): sum(answers.values())}), answers   # all old, not one failed
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == v1 and "canaryTraffic" not in app
    assert server.get("/v2/deployments")[1] == []
    (aborted,) = events.of_type("canary_aborted_event")
    assert aborted["id"] == deployment and aborted["reason"] == "the new checkout page looks wrong", aborted
    failed = [e for e in events.of_type("deployment_failed") if e["id"] == deployment]
    assert len(failed) == 1 and "the new checkout page looks wrong" in failed[0]["reason"], failed
    assert events.of_type("canary_promoted_event") == []
    print(f"\nblue/green aborted before its switch: {sum(answers.values())} requests, all answered by v1")


def test_a_blue_green_release_whose_analysis_gets_no_data_is_never_switched_and_aborts_at_the_deadline(
        pacer_factory, tmp_path: Path) -> None:
    """With no `setWeight` step the new set gets no request before the switch, so the analysis
    has nothing to judge: every interval is inconclusive, the timed pause holds past its seconds,
    and the progress deadline aborts the release (missing data is never a pass)."""
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    v1, v2 = static_cmd(tmp_path, "v1"), static_cmd(tmp_path, "v2")
    pause, deadline = 2, 20
    steps: list[dict[str, Any]] = [{"pause": {"seconds": pause}}]
    analysis = {"intervalSeconds": 1, "minRequests": 5, "maxErrorRate": 0.05}

    def release(cmd: str) -> dict[str, Any]:
        app = blue_green_app(cmd, port, steps, analysis)
        app["upgradeStrategy"]["progressDeadlineSeconds"] = deadline
        return app

    assert server.request("POST", "/v2/apps", release(v1))[0] == 201
    wait_serving(server, port)
    old_tasks = task_ids(server)
    events = EventRecorder(server.url, "canary_analysis_event", "canary_aborted_event", "deployment_failed",
                           "canary_promoted_event", "deployment_success", "status_update_event")
    client = Client(port)
    status, body, _ = server.request("PUT", "/v2/apps/shop", release(v2))
    assert status == 200, body
    deployment = body["deploymentId"]
    observed: list[tuple[float, dict[str, Any]]] = []
    tasks_seen: set[str] = set()

    def ended() -> bool:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        if rows:
            observed.append((time.time(), rows[0]["canary"]))
            tasks_seen.update(task_ids(server))
        return not rows

    wait_until(ended, timeout=180, interval=0.5, what="the release to end")
    in_steps = [(t, b) for t, b in observed if b.get("phase") == "steps"]
    assert in_steps and all(not b.get("switched") and b["weight"] == 0 for _, b in observed), observed
    held = [b for t, b in in_steps if t > b["stepStartedAt"] + pause + 2 and "lastAnalysis" in b]
    assert held, in_steps                                      # still in its pause well after the pause's seconds
    assert all(b["lastAnalysis"]["verdict"] == "inconclusive" and b["step"] == 0 for b in held), held
    new_tasks = tasks_seen - old_tasks
    answers = finish_on_the_old_set(server, client, old_tasks, new_tasks, events)
    events.close()
    assert len(new_tasks) == 2, new_tasks
    assert answers == Counter({(200, "v1"): sum(answers.values())}), answers   # all old, not one failed

    verdicts = [e for e in events.of_type("canary_analysis_event") if e["id"] == deployment]
    assert len(verdicts) >= 3, verdicts
    assert all(e["analysis"]["verdict"] == "inconclusive" and e["failures"] == 0 for e in verdicts), verdicts
    assert all(e["analysis"]["canary"].get("requests", 0) < analysis["minRequests"] for e in verdicts), verdicts
    assert events.of_type("canary_promoted_event") == []
    assert [e for e in events.of_type("deployment_success") if e["id"] == deployment] == []   # only the rollback's
    (aborted,) = events.of_type("canary_aborted_event")
    assert aborted["id"] == deployment, aborted
    assert "no conclusive analysis" in aborted["reason"] and f"progress deadline {deadline}s" in aborted["reason"]
    failed = [e for e in events.of_type("deployment_failed") if e["id"] == deployment]
    assert len(failed) == 1 and "no conclusive analysis" in failed[0]["reason"], failed
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == v1 and "canaryTraffic" not in app
    print(f"\nblue/green with no data: {len(verdicts)} inconclusive intervals, aborted: {aborted['reason']}; "
          f"{sum(answers.values())} requests, all answered by v1")
