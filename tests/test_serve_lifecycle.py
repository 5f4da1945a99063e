"""End to end against a real `pacer serve` subprocess, real task processes and real HTTP."""

from __future__ import annotations

import os
import signal
import urllib.request

from .support import task_pids, wait_until

HTTP_APP = {"id": "/web", "cmd": "exec python3 -m http.server --bind 127.0.0.1 $PORT0", "instances": 3,
            "cpus": 0.1, "mem": 32}


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_three_instances_run_on_distinct_ports_and_answer_http(pacer):
    status, body, headers = pacer.request("POST", "/v2/apps", HTTP_APP)
    assert status == 201, body
    assert headers["location"] == "/v2/apps/web"
    assert headers["marathon-deployment-id"] == body["deployments"][0]["id"]
    tasks = wait_until(lambda: len(pacer.running("/web")) == 3 and pacer.running("/web"), what="3 running tasks")
    ports = [t["ports"][0] for t in tasks]
    assert len(set(ports)) == 3
    assert all(31000 <= p <= 32000 for p in ports)
    wait_until(lambda: all(_answers(p) for p in ports), what="every task to answer HTTP")
    status, app, _ = pacer.get("/v2/apps/web")
    assert app["app"]["tasksRunning"] == 3
    assert app["app"]["portDefinitions"][0]["port"] >= 10000
    assert {t["servicePorts"][0] for t in tasks} == {app["app"]["portDefinitions"][0]["port"]}


def test_scale_up_then_down_keeps_the_oldest(pacer):
    app = {"id": "/sleeper", "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    first = wait_until(lambda: len(pacer.running("/sleeper")) == 2 and pacer.running("/sleeper"))
    status, body, _ = pacer.request("PUT", "/v2/apps/sleeper", {"instances": 5})
    assert status == 200 and set(body) == {"deploymentId", "version"}
    wait_until(lambda: len(pacer.running("/sleeper")) == 5, what="5 running")
    assert len(set(task_pids(pacer.home).values())) == 5
    status, body, _ = pacer.request("PUT", "/v2/apps/sleeper", {"instances": 1})
    assert status == 200
    wait_until(lambda: len(pacer.tasks("/sleeper")) == 1, what="scale down to 1")
    survivor = pacer.tasks("/sleeper")[0]
    assert survivor["id"] in {t["id"] for t in first}   # YOUNGEST_FIRST kills the three added last
    wait_until(lambda: len(set(task_pids(pacer.home).values())) == 1, what="killed processes to be gone")
    status, versions, _ = pacer.get("/v2/apps/sleeper/versions")
    assert len(versions["versions"]) == 3


def test_killed_task_is_replaced_with_backoff(pacer):
    app = {"id": "/crashy", "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 8,
           "backoffSeconds": 2, "backoffFactor": 2}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    task = wait_until(lambda: pacer.running("/crashy") and pacer.running("/crashy")[0])
    pid = next(p for p, tid in task_pids(pacer.home).items() if tid == task["id"])
    os.kill(pid, signal.SIGKILL)
    queued = wait_until(lambda: [q for q in pacer.get("/v2/queue?embed=reason")[1]["queue"] if q["app"]["id"] == "/crashy"],
                        timeout=10, interval=0.05, what="the app to wait in the queue")
    assert queued[0]["delay"]["timeLeftSeconds"] > 0
    failure = pacer.get("/v2/apps/crashy")[1]["app"]["lastTaskFailure"]
    assert failure["taskId"] == task["id"] and failure["state"] == "TASK_FAILED"
    replacement = wait_until(lambda: [t for t in pacer.running("/crashy") if t["id"] != task["id"]],
                             timeout=15, what="a replacement task")
    assert replacement


def test_delete_stops_every_process(pacer):
    app = {"id": "/group/doomed", "cmd": "sleep 1000", "instances": 3, "cpus": 0.01, "mem": 8}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: len(set(task_pids(pacer.home).values())) == 3, what="3 processes")
    status, body, _ = pacer.request("DELETE", "/v2/apps/group/doomed")
    assert status == 200 and "deploymentId" in body
    wait_until(lambda: not task_pids(pacer.home), timeout=15, what="every process to stop")
    assert pacer.get("/v2/apps/group/doomed")[0] == 404


def test_kill_minus_nine_mid_scale_then_restart_converges_without_orphans(pacer_factory):
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000")
    app = {"id": "/durable", "cmd": "sleep 1000", "instances": 2, "cpus": 0.01, "mem": 8}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: len(server.running("/durable")) == 2)
    assert server.request("PUT", "/v2/apps/durable", {"instances": 6})[0] == 200
    server.stop(signal.SIGKILL)
    restarted = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000")
    wait_until(lambda: len(restarted.running("/durable")) == 6, what="6 running after restart")
    status, body, _ = restarted.get("/v2/apps/durable")
    assert body["app"]["instances"] == 6
    pids = wait_until(lambda: len(set(task_pids(restarted.home).values())) == 6 and task_pids(restarted.home),
                      what="exactly 6 task processes")
    assert set(pids.values()) == {t["id"] for t in restarted.running("/durable")}


def test_unique_hostname_constraint_across_three_agents(pacer_factory):
    server = pacer_factory("--agents", "3", "--agent-resources", "cpus=4,mem=4096,disk=1000")
    app = {"id": "/spread", "cmd": "sleep 1000", "instances": 4, "cpus": 0.01, "mem": 8,
           "constraints": [["hostname", "UNIQUE"]]}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    tasks = wait_until(lambda: len(server.running("/spread")) == 3 and server.running("/spread"))
    assert sorted(t["host"] for t in tasks) == ["agent-1", "agent-2", "agent-3"]
    queue = wait_until(lambda: server.get("/v2/queue?embed=reason")[1]["queue"], what="the 4th instance in the queue")
    assert queue[0]["count"] == 1
    assert "UNIQUE" in queue[0]["reason"] or "constraint" in queue[0]["reason"].lower()


def test_seed_definition_waits_in_the_queue_saying_why(pacer):
    import json
    from pathlib import Path
    seed = json.loads((Path(__file__).parent / "fixtures" / "seed-marathon-qa.json").read_text())
    assert pacer.request("POST", "/v2/apps", seed)[0] == 201
    entry = wait_until(lambda: [q for q in pacer.get("/v2/queue?embed=reason")[1]["queue"] if q["app"]["id"] == "/appName"],
                       what="the seed app in the queue")[0]
    assert entry["count"] == 2
    assert "calico-net" in entry["reason"]
    assert "NoMatchingNetwork" in {r["reason"] for r in entry["processedOffersSummary"]["rejectSummaryLastOffers"]}
    assert pacer.tasks("/appName") == []
