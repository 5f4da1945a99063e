"""`container.type: MESOS` with a Docker image (Marathon's Universal Container Runtime) runs that image.

Marathon's UCR semantics on the Docker engine: `cmd` runs as `/bin/sh -c cmd` in the image, `args`
follow the image's entrypoint, neither runs the image's own entrypoint and command; host networking
by default, bridge and container networks as for DOCKER apps. What the engine cannot honour is a 422
at submission naming the field, never a task that runs something else. The end-to-end tests run a
real `pacer serve` against the suite's engine with images made by `docker import`.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app_definitions import ValidationFailed, parse_app_definition
from app_definitions.container_rules import SECCOMP_PROFILE_MESSAGE, UCR_SINGLE_NETWORK_MESSAGE

from .docker_support import (  # noqa: F401  (fixtures)
    TEST_IMAGE,
    TEST_LABEL,
    DockerEngine,
    docker_engine,
    docker_env,
    docker_pacer,
    rootfs_tar,
)
from .support import http, wait_until

SHELL_IMAGE = "pacer-test/ucr-shell:1"
"""ENTRYPOINT ["/bin/sh", "-c"] and a CMD serving /www on $PORT0: what runs when the app says nothing."""
FALSE_IMAGE = "pacer-test/ucr-false:1"
"""ENTRYPOINT ["/bin/false"]: any container that keeps the entrypoint exits at once."""
MiB = 1024 * 1024


def ucr(app_id: str, image: str = TEST_IMAGE, **fields: Any) -> dict[str, Any]:
    container = {"type": "MESOS", "docker": {"image": image}, **fields.pop("container", {})}
    return {"id": app_id, "cpus": 0.1, "mem": 32, "taskKillGracePeriodSeconds": 0, **fields,
            "container": container}


def problems(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition(data)
    return {d["path"]: d["errors"] for d in caught.value.to_body()["details"]}


# -- what is accepted, and what is refused, at submission ---------------------------------------

ACCEPTED = [
    ("cmd", {"cmd": "serve"}),
    ("args", {"args": ["--port", "80"]}),
    ("neither: the image's entrypoint", {}),
    ("host network", {"cmd": "x", "networks": [{"mode": "host"}]}),
    ("bridge with mappings", {"cmd": "x", "networks": [{"mode": "container/bridge"}],
                              "container": {"portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"},
                                                             {"containerPort": 53, "protocol": "udp,tcp"}]}}),
    ("named container network", {"cmd": "x", "networks": [{"mode": "container", "name": "backend"}]}),
    ("host volume", {"cmd": "x", "container": {"volumes": [{"containerPath": "/d", "hostPath": "/srv", "mode": "RO"},
                                                            {"containerPath": "cache", "hostPath": "c", "mode": "RW"}]}}),
    ("linuxInfo the engine can apply", {"cmd": "x", "container": {"linuxInfo": {
        "seccomp": {"unconfined": True}, "ipcInfo": {"mode": "PRIVATE", "shmSize": 64}}}}),
    ("user and tty", {"cmd": "x", "user": "nobody", "tty": True}),
]


@pytest.mark.parametrize("fields", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_what_the_engine_can_run_is_accepted(fields: dict[str, Any]) -> None:
    app = parse_app_definition(ucr("/ucr", **fields))
    assert app.container is not None and app.container.type == "MESOS" and app.container.runs_image


REFUSED = [
    # Marathon's own rules for a MESOS container's docker block, with Marathon's messages
    ("parameters", {"container": {"docker": {"image": "img", "parameters": [{"key": "env", "value": "A=1"}]}}},
     "/container/docker/parameters", "must be empty"),
    ("docker.network", {"container": {"docker": {"image": "img", "network": "BRIDGE"}}},
     "/container/docker/network", "must be empty"),
    ("docker.portMappings", {"container": {"docker": {"image": "img", "portMappings": [{"containerPort": 80}]}}},
     "/container/docker/portMappings", "must be empty"),
    ("credential", {"container": {"docker": {"image": "img", "credential": {"principal": "p"}}}},
     "/container/docker/credential", "must be empty"),
    ("seccomp profile and unconfined", {"container": {"linuxInfo": {"seccomp": {"profileName": "p.json",
                                                                                "unconfined": True}}}},
     "/container/linuxInfo/seccomp", "Seccomp unconfined can NOT be true when Profile is defined"),
    ("seccomp neither", {"container": {"linuxInfo": {"seccomp": {}}}},
     "/container/linuxInfo/seccomp", "Seccomp unconfined must be true when Profile is NOT defined"),
    ("shared IPC with a size", {"container": {"linuxInfo": {"ipcInfo": {"mode": "SHARE_PARENT", "shmSize": 8}}}},
     "/container/linuxInfo/ipcInfo", "ipcInfo shmSize can NOT be set when mode is SHARE_PARENT"),
    # what the Docker engine cannot honour for a UCR app
    ("pullConfig", {"secrets": {"pull": {"source": "/registry"}},
                    "container": {"docker": {"image": "img", "pullConfig": {"secret": "pull"}}}},
     "/container/docker/pullConfig", "registry credentials from a secret cannot be honoured"),
    ("persistent volume", {"container": {"volumes": [{"containerPath": "data", "persistent": {"size": 10}}]},
                           "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}},
     "/container/volumes(0)/persistent", "local persistent volumes cannot be honoured for a Docker image"),
    ("external volume", {"container": {"volumes": [{"containerPath": "/v", "mode": "RW",
                                                    "external": {"name": "v", "provider": "dvdi"}}]}},
     "/container/volumes(0)/external", "external volumes cannot be honoured for a Docker image"),
    ("secret volume", {"secrets": {"s": {"source": "/s"}},
                       "container": {"volumes": [{"containerPath": "pw", "secret": "s"}]}},
     "/container/volumes(0)/secret", "secret volumes cannot be honoured"),
    ("two container networks", {"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}]},
     "/networks", UCR_SINGLE_NETWORK_MESSAGE),
    ("seccomp profile", {"container": {"linuxInfo": {"seccomp": {"profileName": "relaxed.json"}}}},
     "/container/linuxInfo/seccomp/profileName", SECCOMP_PROFILE_MESSAGE),
]


@pytest.mark.parametrize(("fields", "path", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_cannot_be_honoured_is_refused_naming_the_field(fields: dict[str, Any], path: str, message: str) -> None:
    found = problems(ucr("/ucr", cmd="x", **fields))
    assert any(m.startswith(message) for m in found.get(path, [])), found


def test_a_docker_container_without_its_docker_block_is_marathons_not_defined() -> None:
    assert problems({"id": "/d", "cmd": "x", "container": {"type": "DOCKER"}}) == {
        "/container/docker": ["not defined"]}
    assert problems({"id": "/d", "cmd": "x", "container": {"type": "MESOS", "docker": {}}}) == {
        "/container/docker/image": ["must not be empty"]}


def test_refusals_are_422s_over_http(api) -> None:
    status, body, _ = http("POST", api.url, "/v2/apps", ucr("/ucr-http", cmd="x", container={
        "docker": {"image": "img", "parameters": [{"key": "name", "value": "n"}]},
        "volumes": [{"containerPath": "data", "persistent": {"size": 1}}]},
        upgradeStrategy={"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}))
    assert status == 422 and body["message"] == "Object is not valid"
    assert {d["path"] for d in body["details"]} == {"/container/docker/parameters", "/container/volumes(0)/persistent"}
    assert http("GET", api.url, "/v2/apps/ucr-http")[0] == 404


# -- end to end ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ucr_images(docker_engine: DockerEngine) -> Iterator[None]:
    """The two entrypoint images, imported from the busybox rootfs; removed afterwards."""
    tar = rootfs_tar(next(p for p in (Path("/bin/busybox"), Path("/usr/bin/busybox")) if p.is_file()))
    changes = {SHELL_IMAGE: ['ENTRYPOINT ["/bin/sh", "-c"]', 'CMD ["exec httpd -f -h /www -p 127.0.0.1:$PORT0"]'],
               FALSE_IMAGE: ['ENTRYPOINT ["/bin/false"]']}
    for image, instructions in changes.items():
        repository, tag = image.split(":")
        docker_engine.api.import_image_from_data(tar, repository=repository, tag=tag, changes=instructions)
    yield
    for image in changes:
        docker_engine.api.remove_image(image, force=True)


@pytest.fixture
def ucr_network(docker_env: DockerEngine) -> Iterator[str]:
    """A user-defined bridge network, removed (with whatever joined it) afterwards."""
    name = f"pacer-ucr-{uuid.uuid4().hex[:8]}"
    docker_env.api.create_network(name, driver="bridge", labels={TEST_LABEL: "1"},
                                  ipam={"Config": [{"Subnet": "10.231.78.0/24"}]})
    yield name
    for container_id in (docker_env.api.inspect_network(name).get("Containers") or {}):
        docker_env.api.remove_container(container_id, force=True, v=True)
    docker_env.api.remove_network(name)


def _body(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def _inspect(engine: DockerEngine, home: Path, task_id: str) -> dict[str, Any]:
    summary = next(c for c in engine.pacer_containers(home) if c["Labels"]["pacer.task-id"] == task_id)
    return engine.inspect(summary["Id"])


def _serve(directory: str, text: str) -> str:
    return f"mkdir -p {directory} && echo {text} > {directory}/index.html && exec httpd -f -h {directory} " \
           "-p 127.0.0.1:$PORT0"


def test_cmd_args_and_neither_run_in_the_image_as_the_ucr_runs_them(ucr_images: None, docker_pacer,
                                                                    docker_env: DockerEngine,
                                                                    pacer_home: Path) -> None:
    engine = docker_env
    apps = {
        # neither cmd nor args: the image's own entrypoint and command
        "/ucr/own": ucr("/ucr/own", SHELL_IMAGE),
        # args: appended to the image's entrypoint (sh -c), which expands $PORT0
        "/ucr/args": ucr("/ucr/args", SHELL_IMAGE, args=[_serve("/tmp/a", "from-args")],
                         networks=[{"mode": "host"}]),
        # cmd: /bin/sh -c cmd in place of an entrypoint that would fail; the UCR's user, tty and linuxInfo
        "/ucr/cmd": ucr("/ucr/cmd", FALSE_IMAGE, cmd=_serve("/tmp/c", "from-cmd"), user="nobody", tty=True,
                        container={"linuxInfo": {"seccomp": {"unconfined": True},
                                                 "ipcInfo": {"mode": "PRIVATE", "shmSize": 16}}}),
    }
    server = docker_pacer()
    for app in apps.values():
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body
        assert body["container"]["type"] == "MESOS" and body["container"]["docker"]["image"] == app[
            "container"]["docker"]["image"]
    tasks = {app_id: wait_until(lambda a=app_id: server.running(a) and server.running(a)[0], timeout=60,
                                what=f"{app_id} to run") for app_id in apps}
    answers = {app_id: wait_until(lambda t=task: _body(t["ports"][0]), timeout=20, what=f"{app_id} to answer")
               for app_id, task in tasks.items()}
    assert answers == {"/ucr/own": "pacer-test\n", "/ucr/args": "from-args\n", "/ucr/cmd": "from-cmd\n"}

    own, args, cmd = (_inspect(engine, pacer_home, tasks[a]["id"]) for a in ("/ucr/own", "/ucr/args", "/ucr/cmd"))
    assert own["Config"]["Image"] == SHELL_IMAGE and own["Config"]["Cmd"] == [
        "exec httpd -f -h /www -p 127.0.0.1:$PORT0"]
    assert args["Config"]["Entrypoint"] == ["/bin/sh", "-c"] and args["Config"]["Cmd"] == [
        _serve("/tmp/a", "from-args")]
    assert cmd["Config"]["Entrypoint"] == ["/bin/sh", "-c"] and cmd["Config"]["Cmd"] == [_serve("/tmp/c", "from-cmd")]
    assert (cmd["Config"]["User"], cmd["Config"]["Tty"]) == ("nobody", True)
    assert cmd["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]
    assert (cmd["HostConfig"]["IpcMode"], cmd["HostConfig"]["ShmSize"]) == ("private", 16 * MiB)
    for info, task in zip((own, args, cmd), tasks.values()):
        assert info["HostConfig"]["NetworkMode"] == "host" and info["State"]["Running"]
        env = dict(item.split("=", 1) for item in info["Config"]["Env"])
        assert env["PORT0"] == str(task["ports"][0]) and env["MARATHON_APP_DOCKER_IMAGE"] == info["Config"]["Image"]

    for app_id in apps:
        assert server.request("DELETE", f"/v2/apps{app_id}")[0] == 200
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="every container to be removed")


def test_bridge_and_container_networks_as_for_docker_apps(ucr_network: str, docker_pacer, docker_env: DockerEngine,
                                                          pacer_home: Path) -> None:
    engine = docker_env
    server = docker_pacer()
    bridged = ucr("/ucr/bridged", cmd="exec httpd -f -h /www -p 80", networks=[{"mode": "container/bridge"}],
                  container={"portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}]})
    joined = ucr("/ucr/joined", cmd="exec httpd -f -h /www -p 8080",
                 networks=[{"mode": "container", "name": ucr_network}],
                 container={"portMappings": [{"containerPort": 8080, "name": "http"}]})
    for app in (bridged, joined):
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body
    bridge_task = wait_until(lambda: server.running("/ucr/bridged") and server.running("/ucr/bridged")[0],
                             timeout=60, what="the bridged app")
    joined_task = wait_until(lambda: server.running("/ucr/joined") and server.running("/ucr/joined")[0],
                             timeout=60, what="the app on the named network")
    bridge_info = _inspect(engine, pacer_home, bridge_task["id"])
    assert bridge_info["HostConfig"]["NetworkMode"] == "bridge"
    assert bridge_info["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": str(bridge_task["ports"][0])}]}
    joined_info = _inspect(engine, pacer_home, joined_task["id"])
    assert joined_info["HostConfig"]["NetworkMode"] == ucr_network and joined_task["ports"] == []
    address = joined_info["NetworkSettings"]["Networks"][ucr_network]["IPAddress"]
    peer = engine.run("sleep", "300", network=ucr_network)       # another container on the same network
    fetched = engine.api.exec_start(engine.api.exec_create(peer, ["wget", "-q", "-O-", f"http://{address}:8080/"]))
    assert fetched == b"pacer-test\n"
    for app_id in ("/ucr/bridged", "/ucr/joined"):
        assert server.request("DELETE", f"/v2/apps{app_id}")[0] == 200
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="every container to be removed")
