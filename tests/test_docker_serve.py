"""DOCKER apps end to end: a real `pacer serve` subprocess, a real engine, real HTTP on 127.0.0.1."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

from .docker_support import (  # noqa: F401  (fixtures)
    MISSING_IMAGE,
    TEST_IMAGE,
    DockerEngine,
    docker_engine,
    docker_env,
    docker_pacer,
)
from .support import wait_until

MiB = 1024 * 1024


def _body(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def _by_task(engine: DockerEngine, home: Path) -> dict[str, dict[str, Any]]:
    """task id -> container summary, for every container this Pacer home owns (running or not)."""
    return {c["Labels"]["pacer.task-id"]: c for c in engine.pacer_containers(home)}


def _env(info: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


def test_httpd_on_host_networking_is_inspectable_survives_sigkill_and_is_removed_on_delete(
        docker_pacer, docker_env: DockerEngine, pacer_home: Path, tmp_path: Path):
    engine = docker_env
    data = tmp_path / "shared"
    data.mkdir()
    (data / "note.txt").write_text("mounted\n")
    app = {
        "id": "/shop/web", "instances": 3, "cpus": 0.1, "mem": 32, "taskKillGracePeriodSeconds": 60,
        "cmd": "exec httpd -f -h /www -p 127.0.0.1:$PORT0",
        "env": {"GREETING": "hello"}, "labels": {"team": "payments"},
        "portDefinitions": [{"port": 0, "name": "http"}],
        "container": {"type": "DOCKER",
                      "docker": {"image": TEST_IMAGE, "parameters": [{"key": "label", "value": "tier=web"},
                                                                     {"key": "env", "value": "FROM_PARAM=yes"}]},
                      "volumes": [{"containerPath": "/data", "hostPath": str(data), "mode": "RO"}]},
    }
    server = docker_pacer()
    status, body, _ = server.request("POST", "/v2/apps", app)
    assert status == 201, body
    tasks = wait_until(lambda: len(server.running("/shop/web")) == 3 and server.running("/shop/web"),
                       timeout=60, what="3 running containers")
    ports = [t["ports"][0] for t in tasks]
    assert len(set(ports)) == 3
    wait_until(lambda: all(_body(p) == "pacer-test\n" for p in ports), what="every httpd to answer on its PORT0")

    containers = _by_task(engine, pacer_home)
    assert set(containers) == {t["id"] for t in tasks}
    for task in tasks:
        info = engine.inspect(containers[task["id"]]["Id"])
        env, labels, host = _env(info), info["Config"]["Labels"], info["HostConfig"]
        assert env["PORT0"] == env["PORT"] == env["PORT_HTTP"] == str(task["ports"][0])
        assert env["MARATHON_APP_ID"] == "/shop/web" and env["MESOS_TASK_ID"] == task["id"]
        assert env["MARATHON_APP_DOCKER_IMAGE"] == TEST_IMAGE
        assert env["GREETING"] == "hello" and env["FROM_PARAM"] == "yes"
        assert labels["pacer.app-id"] == "/shop/web" and labels["pacer.task-id"] == task["id"]
        assert labels["team"] == "payments" and labels["tier"] == "web"
        assert labels["pacer.app-version"] == task["version"]
        assert f"{data}:/data:ro" in host["Binds"]
        assert host["Memory"] == 32 * MiB and host["NetworkMode"] == "host"
        assert info["State"]["Running"]
    exec_id = engine.api.exec_create(containers[tasks[0]["id"]]["Id"], ["cat", "/data/note.txt"])
    assert engine.api.exec_start(exec_id) == b"mounted\n"

    # SIGKILL the scheduler; meanwhile an unknown app's container and an exited one appear
    before = {task_id: (c["Id"], engine.inspect(c["Id"])["State"]["StartedAt"]) for task_id, c in containers.items()}
    server.stop(signal.SIGKILL)
    scope = {"pacer.home": str(pacer_home.resolve()), "pacer.app-id": "/deleted"}
    stray = engine.api.create_container(TEST_IMAGE, command=["sleep", "300"], detach=True,
                                        labels={**scope, "pacer.task-id": "deleted.instance-1._app.1"},
                                        host_config=engine.api.create_host_config(network_mode="host"))
    engine.api.start(stray["Id"])
    exited = engine.api.create_container(TEST_IMAGE, command=["true"], detach=True,
                                         labels={**scope, "pacer.task-id": "deleted.instance-2._app.1"},
                                         host_config=engine.api.create_host_config(network_mode="host"))
    engine.api.start(exited["Id"])
    engine.created.extend([stray["Id"], exited["Id"]])

    restarted = docker_pacer()
    again = wait_until(lambda: len(restarted.running("/shop/web")) == 3 and restarted.running("/shop/web"),
                       what="the 3 tasks after the restart")
    assert {t["id"] for t in again} == set(before)
    assert {t["id"]: t["ports"] for t in again} == {t["id"]: t["ports"] for t in tasks}
    after = {task_id: (c["Id"], engine.inspect(c["Id"])["State"]["StartedAt"])
             for task_id, c in _by_task(engine, pacer_home).items()}
    assert after == before                                   # same containers, never restarted
    assert all(_body(p) == "pacer-test\n" for p in ports)

    # delete, and SIGKILL the scheduler while it waits out the 60 s grace period (httpd ignores SIGTERM)
    status, body, _ = restarted.request("DELETE", "/v2/apps/shop/web")
    assert status == 200, body
    wait_until(lambda: {t["state"] for t in restarted.get("/v2/tasks")[1]["tasks"]} == {"TASK_KILLING"},
               what="the kills to start")
    restarted.stop(signal.SIGKILL)
    assert len(engine.pacer_containers(pacer_home, all=False)) == 3
    third = docker_pacer()   # finishes the interrupted kills (default 3 s grace), app stays deleted
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="every container to be removed")
    assert third.get("/v2/apps/shop/web")[0] == 404
    wait_until(lambda: third.get("/v2/tasks")[1]["tasks"] == [], what="no task left")


def test_bridge_port_mappings_are_what_the_task_reports(docker_pacer, docker_env: DockerEngine, pacer_home: Path):
    engine = docker_env
    app = {
        "id": "/bridged", "instances": 1, "cpus": 0.1, "mem": 16, "taskKillGracePeriodSeconds": 0,
        "args": ["sleep", "300"], "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "docker": {"image": TEST_IMAGE},
                      "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"},
                                       {"containerPort": 0, "hostPort": 0, "protocol": "udp"}]},
    }
    server = docker_pacer()
    status, body, _ = server.request("POST", "/v2/apps", app)
    assert status == 201, body
    task = wait_until(lambda: server.running("/bridged") and server.running("/bridged")[0], timeout=60)
    http_port, udp_port = task["ports"]
    info = engine.inspect(_by_task(engine, pacer_home)[task["id"]]["Id"])
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    assert info["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": str(http_port)}],
        f"{udp_port}/udp": [{"HostIp": "", "HostPort": str(udp_port)}],   # containerPort 0 = the host port
    }
    assert set(info["Config"]["ExposedPorts"]) == {"80/tcp", f"{udp_port}/udp"}
    env = _env(info)
    assert (env["PORT0"], env["PORT1"], env["PORT_HTTP"]) == (str(http_port), str(udp_port), str(http_port))
    assert server.request("DELETE", "/v2/apps/bridged")[0] == 200
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="the container to be removed")


def test_a_failing_container_is_replaced_with_backoff(docker_pacer, docker_env: DockerEngine, pacer_home: Path):
    app = {"id": "/crashy", "instances": 1, "cpus": 0.1, "mem": 16, "cmd": "sleep 0.3; exit 3",
           "backoffSeconds": 1, "backoffFactor": 2, "container": {"type": "DOCKER", "docker": {"image": TEST_IMAGE}}}
    server = docker_pacer()
    assert server.request("POST", "/v2/apps", app)[0] == 201

    def failure() -> dict[str, Any] | None:
        return server.get("/v2/apps/crashy?embed=app.lastTaskFailure")[1]["app"].get("lastTaskFailure")

    first = wait_until(failure, timeout=30, what="a first failure")
    assert first["state"] == "TASK_FAILED" and first["message"] == "Container exited with status 3"
    queued = wait_until(lambda: [q for q in server.get("/v2/queue?embed=reason")[1]["queue"] if q["app"]["id"] == "/crashy"
                                 and q["delay"]["timeLeftSeconds"] > 0], timeout=10, interval=0.05,
                        what="the app to wait for its backoff")
    assert queued[0]["count"] == 1
    second = wait_until(lambda: (f := failure()) and f["taskId"] != first["taskId"] and f, timeout=30,
                        what="the replacement to fail too")
    assert second["message"] == "Container exited with status 3"
    assert server.request("DELETE", "/v2/apps/crashy")[0] == 200
    wait_until(lambda: not docker_env.pacer_containers(pacer_home), timeout=30, what="no container left")


def test_a_missing_image_fails_clearly_and_bad_parameters_are_refused(docker_pacer, docker_env: DockerEngine,
                                                                      pacer_home: Path):
    server = docker_pacer()
    bad = {"id": "/bad-params", "args": ["true"],
           "container": {"type": "DOCKER", "docker": {"image": TEST_IMAGE,
                                                      "parameters": [{"key": "volume", "value": "/a:/b"},
                                                                     {"key": "publish-all", "value": "true"}]}}}
    status, body, _ = server.request("POST", "/v2/apps", bad)
    assert status == 422
    detail = {d["path"]: d["errors"] for d in body["details"]}
    assert list(detail) == ["/container/docker/parameters(1)/key"]
    assert "'publish-all' is not supported" in detail["/container/docker/parameters(1)/key"][0]
    assert "use portMappings instead" in detail["/container/docker/parameters(1)/key"][0]

    app = {"id": "/ghost", "instances": 1, "args": ["true"], "cpus": 0.1, "mem": 16, "backoffSeconds": 1,
           "container": {"type": "DOCKER", "docker": {"image": MISSING_IMAGE, "forcePullImage": False}}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    failure = wait_until(lambda: server.get("/v2/apps/ghost?embed=app.lastTaskFailure")[1]["app"].get(
        "lastTaskFailure"), timeout=30, what="the launch to fail")
    prefix = f"launch failed: image '{MISSING_IMAGE}' is not on the Docker engine and pulling it failed: "
    assert failure["state"] == "TASK_FAILED" and failure["message"].startswith(prefix)
    daemon_says = failure["message"][len(prefix):]
    assert daemon_says
    entry = wait_until(lambda: [q for q in server.get("/v2/queue?embed=reason")[1]["queue"]
                                if q["app"]["id"] == "/ghost" and daemon_says in (q["reason"] or "")],
                       timeout=15, interval=0.1, what="the daemon's message as the queue reason")[0]
    assert entry["count"] == 1
    assert server.tasks("/ghost") == []
    assert docker_env.pacer_containers(pacer_home) == []


def test_docker_apps_wait_in_the_queue_when_the_engine_does_not_answer(pacer_factory, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    server = pacer_factory("--agent-resources", "cpus=4,mem=4096,disk=1000")
    app = {"id": "/waiting", "args": ["true"], "container": {"type": "DOCKER", "docker": {"image": TEST_IMAGE}}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    process = {"id": "/plain", "cmd": "sleep 300", "cpus": 0.1, "mem": 16}
    assert server.request("POST", "/v2/apps", process)[0] == 201
    entry = wait_until(lambda: [q for q in server.get("/v2/queue?embed=reason")[1]["queue"] if q["app"]["id"] == "/waiting"
                                and q["reason"]], what="the DOCKER app in the queue")[0]
    assert "no-engine.sock does not answer" in entry["reason"]
    wait_until(lambda: server.running("/plain"), what="process apps to run regardless")
