"""Rolling deployments, locks, rollback and the progress deadline on a real `pacer serve`."""

from __future__ import annotations

import time

from .support import EventRecorder, wait_until

SERVER = "exec python3 -m http.server --bind 127.0.0.1 $PORT0"
FAST_CHECK = {"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 0, "intervalSeconds": 1,  # timeout: slack for a loaded CI
              "timeoutSeconds": 3, "maxConsecutiveFailures": 3}


def web_app(app_id: str, instances: int = 2, **extra) -> dict:
    return {"id": app_id, "cmd": SERVER, "instances": instances, "cpus": 0.05, "mem": 16,
            "healthChecks": [FAST_CHECK], **extra}


def deployments_of(server, app_id: str) -> list[dict]:
    return [d for d in server.get("/v2/deployments")[1] if app_id in d["affectedApps"]]


def settled(server, app_id: str, instances: int):
    def check():
        app = server.get(f"/v2/apps{app_id}")[1]["app"]
        return app["tasksHealthy"] == instances == app["tasksRunning"] and not deployments_of(server, app_id) \
            and app
    return wait_until(check, timeout=40, what=f"{app_id} settled with {instances} healthy")


def test_rolling_restart_replaces_every_task_end_to_end(pacer):
    """The capacity bounds at every step are asserted in tests/test_scenarios.py; this is the
    same restart through real processes, real health checks and the HTTP API."""
    assert pacer.request("POST", "/v2/apps", web_app("/roll"))[0] == 201
    before = settled(pacer, "/roll", 2)
    old_ids = {t["id"] for t in before["tasks"]}
    status, body, _ = pacer.request("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})
    assert status == 200
    plan = wait_until(lambda: deployments_of(pacer, "/roll"), timeout=5, interval=0.05)[0]
    assert plan["id"] == body["deploymentId"]
    assert any(a["action"] == "RestartApplication" for s in plan["steps"] for a in s["actions"])
    after = settled(pacer, "/roll", 2)
    assert not old_ids & {t["id"] for t in after["tasks"]}
    assert all(t["version"] == after["version"] for t in after["tasks"])


def test_locked_app_gets_409_until_forced_and_delete_deployment_rolls_back(pacer):
    assert pacer.request("POST", "/v2/apps", web_app("/locked", instances=1))[0] == 201
    settled(pacer, "/locked", 1)
    broken = {"healthChecks": [{**FAST_CHECK, "path": "/missing", "maxConsecutiveFailures": 0}],
              "upgradeStrategy": {"progressDeadlineSeconds": 0}}
    status, first, _ = pacer.request("PUT", "/v2/apps/locked", broken)
    assert status == 200
    status, body, _ = pacer.request("PUT", "/v2/apps/locked", {"instances": 2})
    assert status == 409 and body["deployments"] == [{"id": first["deploymentId"]}]
    assert "locked" in body["message"] and "force=true" in body["message"]
    status, rollback, _ = pacer.request("DELETE", f"/v2/deployments/{first['deploymentId']}")
    assert status == 200 and rollback["deploymentId"] != first["deploymentId"]
    app = settled(pacer, "/locked", 1)
    assert app["healthChecks"][0]["path"] == "/"
    assert pacer.request("DELETE", "/v2/deployments/nope")[0] == 404


def test_forced_update_cancels_the_running_deployment(pacer):
    assert pacer.request("POST", "/v2/apps", web_app("/forced", instances=1))[0] == 201
    settled(pacer, "/forced", 1)
    broken = {"healthChecks": [{**FAST_CHECK, "path": "/missing", "maxConsecutiveFailures": 0}],
              "upgradeStrategy": {"progressDeadlineSeconds": 0}}
    status, first, _ = pacer.request("PUT", "/v2/apps/forced", broken)
    status, second, _ = pacer.request("PUT", "/v2/apps/forced?force=true", {"healthChecks": [FAST_CHECK]})
    assert status == 200
    assert not [d for d in pacer.get("/v2/deployments")[1] if d["id"] == first["deploymentId"]]
    settled(pacer, "/forced", 1)


def test_stalled_deployment_fails_with_a_reason_and_rolls_back(pacer):
    assert pacer.request("POST", "/v2/apps", web_app("/stall", instances=1))[0] == 201
    good = settled(pacer, "/stall", 1)
    bad = {"cmd": "echo boom; exit 3", "upgradeStrategy": {"progressDeadlineSeconds": 4, "autoRollback": True}}
    recorder = EventRecorder(pacer.url, "deployment_failed", "deployment_success")
    status, body, _ = pacer.request("PUT", "/v2/apps/stall", bad)
    assert status == 200
    wait_until(lambda: pacer.get("/v2/apps/stall")[1]["app"]["cmd"] == SERVER and
               not [d for d in pacer.get("/v2/deployments")[1] if d["id"] == body["deploymentId"]],
               timeout=30, what="the automatic rollback")
    after = settled(pacer, "/stall", 1)
    assert after["tasks"][0]["id"] == good["tasks"][0]["id"]      # the old task was never killed
    # the API shows the deployment gone as soon as the state says so; its event reaches the
    # stream's reader a moment later
    wait_until(lambda: recorder.of_type("deployment_success"), timeout=10,
               what="deployment_success of the rollback on /v2/events")
    recorder.close()
    failed = [e for e in recorder.of_type("deployment_failed") if e["id"] == body["deploymentId"]]
    assert failed and "no progress for 4 s" in failed[0]["reason"]
    assert "tasks keep failing" in failed[0]["reason"] and "status 3" in failed[0]["reason"]


def test_interrupted_rolling_restart_resumes_after_scheduler_crash(pacer_factory):
    """kill -9 in the middle of a rolling restart; the restarted scheduler finishes it. The
    bounds across the crash are asserted pass by pass in tests/test_scenario_crash.py."""
    import signal
    args = ("--agent-resources", "cpus=16,mem=16384,disk=10000")
    server = pacer_factory(*args)
    assert server.request("POST", "/v2/apps", web_app("/resume"))[0] == 201
    settled(server, "/resume", 2)
    status, body, _ = server.request("PUT", "/v2/apps/resume", {"env": {"RELEASE": "2"}})
    assert status == 200
    wait_until(lambda: len(server.tasks("/resume")) > 2, timeout=10, interval=0.05,
               what="the rolling restart to start new tasks")
    server.stop(signal.SIGKILL)
    restarted = pacer_factory(*args)
    app = settled(restarted, "/resume", 2)
    assert app["version"] == body["version"]
    assert all(t["version"] == body["version"] for t in app["tasks"])


READY_SERVER = """
import http.server, os, pathlib, sys
flag = pathlib.Path(sys.argv[1])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if self.path == "/ready" and not flag.exists() else 200)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT0"])), Handler).serve_forever()
"""


def test_readiness_check_gates_the_restart_and_shows_in_deployments(pacer, tmp_path):
    flag, script = tmp_path / "ready-flag", tmp_path / "ready_server.py"
    script.write_text(READY_SERVER)
    app = web_app("/gated", instances=1, portDefinitions=[{"port": 0, "name": "http-api"}])
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    old = settled(pacer, "/gated", 1)["tasks"][0]
    update = {"cmd": f"exec python3 {script} {flag}",
              "readinessChecks": [{"path": "/ready", "portName": "http-api", "intervalSeconds": 2,
                                   "timeoutSeconds": 1}]}
    status, body, _ = pacer.request("PUT", "/v2/apps/gated", update)
    assert status == 200, body
    plan = wait_until(lambda: [d for d in deployments_of(pacer, "/gated")
                               if any(r["lastResponse"] for r in d["currentActions"][0]["readinessCheckResults"])],
                      timeout=15, what="readiness results in /v2/deployments")[0]
    result = plan["currentActions"][0]["readinessCheckResults"][0]
    assert result["ready"] is False and result["lastResponse"]["status"] == 503
    time.sleep(2)
    assert old["id"] in {t["id"] for t in pacer.tasks("/gated")}     # not ready: the old task stays
    flag.touch()
    app = settled(pacer, "/gated", 1)
    assert app["tasks"][0]["id"] != old["id"]


def test_rolling_restart_events_reach_an_sse_client_in_order(pacer):
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}
    assert pacer.request("POST", "/v2/apps", web_app("/quad", instances=4, upgradeStrategy=strategy))[0] == 201
    settled(pacer, "/quad", 4)
    recorder = EventRecorder(pacer.url)
    try:
        status, body, _ = pacer.request("PUT", "/v2/apps/quad", {"env": {"RELEASE": "2"}})
        assert status == 200
        after = settled(pacer, "/quad", 4)
        wait_until(lambda: any(kind == "deployment_success" for kind, _ in recorder.events), timeout=10,
                   what="deployment_success on the stream")
    finally:
        recorder.close()
    assert all(t["version"] == after["version"] for t in after["tasks"])
    # an SSE client saw the deployment's events in order
    mine = [(kind, e) for kind, e in recorder.events
            if kind.startswith("deployment_") and (e.get("id") or e.get("plan", {}).get("id")) == body["deploymentId"]]
    kinds = [kind for kind, _ in mine]
    assert kinds[0] == "deployment_info" and kinds[-1] == "deployment_success"
    assert "deployment_step_success" in kinds
    assert kinds.index("deployment_step_success") < kinds.index("deployment_success")


def test_always_failing_health_check_stalls_then_rolls_back_to_healthy_version(pacer):
    assert pacer.request("POST", "/v2/apps", web_app("/v3", instances=2))[0] == 201
    settled(pacer, "/v3", 2)
    assert pacer.request("PUT", "/v2/apps/v3", {"env": {"V": "2"}})[0] == 200
    v2 = settled(pacer, "/v3", 2)
    recorder = EventRecorder(pacer.url, "deployment_failed")
    bad = {"env": {"V": "3"}, "healthChecks": [{**FAST_CHECK, "path": "/never-there", "maxConsecutiveFailures": 0}],
           "upgradeStrategy": {"progressDeadlineSeconds": 4, "autoRollback": True}}
    status, body, _ = pacer.request("PUT", "/v2/apps/v3", bad)
    assert status == 200
    wait_until(lambda: recorder.of_type("deployment_failed"), timeout=30, what="the deployment to fail")
    recorder.close()
    reason = recorder.of_type("deployment_failed")[0]["reason"]
    assert "never healthy" in reason and "404" in reason
    back = settled(pacer, "/v3", 2)
    assert back["env"] == {"V": "2"} and back["versionInfo"]["lastConfigChangeAt"] == \
        v2["versionInfo"]["lastConfigChangeAt"]
    assert {t["id"] for t in back["tasks"]} == {t["id"] for t in v2["tasks"]}   # v2's tasks were kept


def test_group_dependencies_deploy_in_order(pacer):
    group = {"id": "/stack", "apps": [
        {**web_app("db", instances=1)},
        {**web_app("api", instances=1), "dependencies": ["db"]}]}
    status, body, _ = pacer.request("POST", "/v2/groups", group)
    assert status == 201, body
    settled(pacer, "/stack/api", 1)
    db = pacer.get("/v2/apps/stack/db")[1]["app"]["tasks"][0]
    api = pacer.get("/v2/apps/stack/api")[1]["app"]["tasks"][0]
    db_healthy = db["healthCheckResults"][0]["firstSuccess"]
    assert api["stagedAt"] >= db_healthy      # api was launched only once db was healthy


def test_stuck_event_stream_client_does_not_delay_a_deployment(pacer):
    import socket
    stuck = socket.create_connection(("127.0.0.1", pacer.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /v2/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    try:
        app = {"id": "/busy", "cmd": "sleep 1000", "instances": 20, "cpus": 0.01, "mem": 1,
               "labels": {"padding": "x" * 4000}}
        assert pacer.request("POST", "/v2/apps", app)[0] == 201
        wait_until(lambda: len(pacer.running("/busy")) == 20 and not deployments_of(pacer, "/busy"), timeout=20)
        assert pacer.request("PUT", "/v2/apps/busy", {"instances": 1})[0] == 200
        wait_until(lambda: len(pacer.tasks("/busy")) == 1 and not deployments_of(pacer, "/busy"), timeout=20)
    finally:
        stuck.close()


def test_running_deployment_is_stored_and_resumed_at_its_step(pacer_factory):
    import signal
    args = ("--agent-resources", "cpus=16,mem=16384,disk=10000")
    server = pacer_factory(*args)
    assert server.request("POST", "/v2/apps", web_app("/kept", instances=1))[0] == 201
    settled(server, "/kept", 1)
    stuck = {"healthChecks": [{**FAST_CHECK, "path": "/missing", "maxConsecutiveFailures": 0}],
             "upgradeStrategy": {"progressDeadlineSeconds": 0}}
    status, body, _ = server.request("PUT", "/v2/apps/kept", stuck)
    assert status == 200
    before = wait_until(lambda: deployments_of(server, "/kept"), timeout=5)[0]
    server.stop(signal.SIGKILL)
    restarted = pacer_factory(*args)
    after = wait_until(lambda: deployments_of(restarted, "/kept"), timeout=5)[0]
    assert after["id"] == body["deploymentId"] == before["id"]
    assert after["steps"] == before["steps"] and after["currentStep"] == before["currentStep"]
    status, rollback, _ = restarted.request("DELETE", f"/v2/deployments/{after['id']}")
    assert status == 200
    app = settled(restarted, "/kept", 1)
    assert app["healthChecks"][0]["path"] == "/"


def test_old_instances_keep_their_versions_health_checks_during_a_bad_rollout(pacer):
    assert pacer.request("POST", "/v2/apps", web_app("/judged"))[0] == 201
    old = {t["id"] for t in settled(pacer, "/judged", 2)["tasks"]}
    broken = {"healthChecks": [{**FAST_CHECK, "path": "/missing", "maxConsecutiveFailures": 1}],
              "upgradeStrategy": {"progressDeadlineSeconds": 0}}
    status, body, _ = pacer.request("PUT", "/v2/apps/judged", broken)
    assert status == 200
    # the new tasks fail /missing and are killed; the old ones are still judged by "/" and stay
    wait_until(lambda: pacer.get("/v2/apps/judged")[1]["app"].get("lastTaskFailure"), timeout=20,
               what="a new task to fail its (broken) check")
    app = pacer.get("/v2/apps/judged")[1]["app"]
    assert old <= {t["id"] for t in app["tasks"]}
    assert app["tasksHealthy"] >= 2
    assert all(r["alive"] for t in app["tasks"] if t["id"] in old for r in t["healthCheckResults"])
    assert pacer.request("DELETE", f"/v2/deployments/{body['deploymentId']}")[0] == 200
    assert {t["id"] for t in settled(pacer, "/judged", 2)["tasks"]} == old
