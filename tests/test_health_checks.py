"""Health checks against real tasks through a real `pacer serve`."""

from __future__ import annotations

from .support import wait_until

CHECK = {"gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}


def test_http_and_tcp_checks_report_healthy(pacer):
    app = {"id": "/healthy", "cmd": "exec python3 -m http.server --bind 127.0.0.1 $PORT0", "instances": 2,
           "cpus": 0.1, "mem": 32, "healthChecks": [
               {**CHECK, "protocol": "HTTP", "path": "/"}, {**CHECK, "protocol": "TCP"}]}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    body = wait_until(lambda: (b := pacer.get("/v2/apps/healthy")[1]["app"])["tasksHealthy"] == 2 and b,
                      what="2 healthy tasks")
    assert body["tasksUnhealthy"] == 0
    results = body["tasks"][0]["healthCheckResults"]
    assert len(results) == 2 and all(r["alive"] and r["firstSuccess"] for r in results)


def test_command_check_sees_the_task_ports(pacer):
    app = {"id": "/cmdcheck", "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 8,
           "healthChecks": [{**CHECK, "protocol": "COMMAND", "command": {"value": 'test -n "$PORT0"'}}]}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: pacer.get("/v2/apps/cmdcheck")[1]["app"]["tasksHealthy"] == 1, what="healthy")


def test_failing_http_check_kills_and_replaces_the_task(pacer):
    app = {"id": "/sick", "cmd": "exec python3 -m http.server --bind 127.0.0.1 $PORT0", "instances": 1,
           "cpus": 0.1, "mem": 32, "backoffSeconds": 1,
           "healthChecks": [{**CHECK, "protocol": "HTTP", "path": "/does-not-exist"}]}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    first = wait_until(lambda: pacer.running("/sick") and pacer.running("/sick")[0])
    failure = wait_until(lambda: pacer.get("/v2/apps/sick")[1]["app"].get("lastTaskFailure"), timeout=20,
                         what="the unhealthy task to be killed")
    assert failure["taskId"] == first["id"] and "FailedHealthChecks" in failure["message"]
    assert "404" in failure["message"]
    wait_until(lambda: [t for t in pacer.running("/sick") if t["id"] != first["id"]], timeout=20,
               what="a replacement")
