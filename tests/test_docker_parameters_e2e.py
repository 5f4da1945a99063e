"""Docker parameters end to end: each newly accepted key reaches the engine and changes the container.

A real `pacer serve`, the suite's engine, and `docker inspect`/`exec` to see the effect of each key.
Keys whose effect needs what this kind of machine may lack (GPUs, xfs project quotas, real-time
cgroups, extended privileges) are checked either way: the container runs with the setting, or the
launch fails with the engine's own words about it, so the setting provably reached the engine.
"""

from __future__ import annotations

import platform
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from executor.docker_spec import short_task_id

from .docker_support import (  # noqa: F401  (fixtures)
    TEST_IMAGE,
    TEST_LABEL,
    DockerEngine,
    docker_engine,
    docker_env,
    docker_pacer,
)
from .support import wait_until

MiB = 1024 * 1024
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _block_device() -> str | None:
    """A block device of this host for the blkio limits (None when there is none to name)."""
    for entry in sorted(Path("/sys/block").iterdir()) if Path("/sys/block").is_dir() else []:
        if not entry.name.startswith(("loop", "ram", "zram")) and Path("/dev", entry.name).exists():
            return f"/dev/{entry.name}"
    return None


def _containers(engine: DockerEngine, home: Path) -> dict[str, dict[str, Any]]:
    """task id -> `docker inspect` of each container this Pacer home owns."""
    return {c["Labels"]["pacer.task-id"]: engine.inspect(c["Id"]) for c in engine.pacer_containers(home)}


def _exec(engine: DockerEngine, container_id: str, *argv: str) -> str:
    return engine.api.exec_start(engine.api.exec_create(container_id, list(argv))).decode()


def _app(app_id: str, parameters: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    container = {"type": "DOCKER", **fields.pop("container", {}), "docker": {
        "image": TEST_IMAGE, "parameters": [{"key": k, "value": v} for k, v in parameters]}}
    return {"id": app_id, "cpus": 0.1, "mem": 64, "taskKillGracePeriodSeconds": 0, "backoffSeconds": 1,
            **fields, "container": container}


def _cgroup_dirs(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [p for p in root.glob(f"*/{name}") if p.is_dir()] + ([root / name] if (root / name).is_dir() else [])


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A cgroup parent of this test's own; its directories are removed afterwards."""
    name = f"pacer-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    for directory in _cgroup_dirs(name):
        for child in sorted(directory.iterdir(), reverse=True) if directory.is_dir() else []:
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        try:
            directory.rmdir()
        except OSError:
            pass


@pytest.fixture
def engine_network(docker_env: DockerEngine) -> Iterator[str]:
    """A user-defined bridge network with IPv4 and IPv6 subnets, removed (with what joined it) afterwards."""
    name = f"pacer-e2e-{uuid.uuid4().hex[:8]}"
    docker_env.api.create_network(name, driver="bridge", enable_ipv6=True, labels={TEST_LABEL: "1"},
                                  ipam={"Config": [{"Subnet": "10.231.77.0/24"}, {"Subnet": "fd00:231:77::/64"}]})
    yield name
    for container_id in (docker_env.api.inspect_network(name).get("Containers") or {}):
        docker_env.api.remove_container(container_id, force=True, v=True)
    docker_env.api.remove_network(name)


def test_host_network_parameters_reach_the_engine(cgroup_parent: str, docker_pacer, docker_env: DockerEngine,
                                                  pacer_home: Path, tmp_path: Path) -> None:
    engine = docker_env
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "note").write_text("bound\n")
    donor_name = f"pt-donor-{uuid.uuid4().hex[:6]}"
    donor = engine.api.create_container(TEST_IMAGE, ["sh", "-c", "echo shared > /shared/marker; exec sleep 600"],
                                        name=donor_name, volumes=["/shared"], labels={TEST_LABEL: "1"},
                                        host_config=engine.api.create_host_config(network_mode="host"))
    engine.created.append(donor["Id"])
    engine.api.start(donor["Id"])
    device = _block_device()
    parameters = [
        ("name", "pt-web"), ("entrypoint", "/bin/sh"), ("memory", "96m"), ("kernel-memory", "64m"),
        ("memory-swappiness", "10"), ("oom-score-adj", "500"), ("oom-kill-disable", "true"), ("cpu-shares", "300"),
        ("cpu-period", "50000"), ("cpu-quota", "20000"), ("cpu-rt-period", "1000000"), ("cpuset-cpus", "0"),
        ("cpuset-mems", "0"), ("device", "/dev/null:/dev/pacer-null:rw"), ("device-cgroup-rule", "c 1:3 rwm"),
        ("cgroup-parent", f"/{cgroup_parent}"), ("cgroupns", "private"), ("userns", "host"),
        ("isolation", "default"), ("runtime", "runc"), ("volume-driver", "local"), ("group-add", "1234"),
        ("health-cmd", "test -e /dev/pacer-null"), ("health-interval", "1s"), ("health-timeout", "2s"),
        ("health-retries", "2"), ("health-start-period", "1s"), ("interactive", "true"), ("tty", "true"),
        ("stop-timeout", "30"), ("expose", "9000"), ("mount", f"type=bind,source={bound},target=/mnt/bound,readonly"),
        ("ipc", "shareable"), ("pid", "host"), ("uts", "host"), ("platform", f"linux/{ARCH}"), ("rm", "true"),
        ("detach", "true"), ("volumes-from", f"{donor_name}:ro"),
    ]
    if device:
        parameters += [("blkio-weight", "300"), ("blkio-weight-device", f"{device}:200"),
                       ("device-read-bps", f"{device}:1mb"), ("device-write-bps", f"{device}:2mb"),
                       ("device-read-iops", f"{device}:100"), ("device-write-iops", f"{device}:50")]
    server = docker_pacer()
    apps = [_app("/params/web", parameters, instances=2, args=["-c", "exec sleep 600"]),
            _app("/params/cpus", [("cpus", "0.5"), ("no-healthcheck", "true")], cmd="exec sleep 600")]
    for app in apps:
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body
    tasks = wait_until(lambda: len(server.running("/params/web")) == 2 and server.running("/params/web"),
                       timeout=60, what="2 running containers")
    wait_until(lambda: server.running("/params/cpus"), timeout=60, what="the cpus app")
    containers = _containers(engine, pacer_home)

    names = {containers[t["id"]]["Name"] for t in tasks}
    assert names == {f"/pt-web-{short_task_id(t['id'])}" for t in tasks} and len(names) == 2
    assert all(re.fullmatch(r"/pt-web-[0-9a-f]{12}", n) for n in names)
    for task in tasks:
        info = containers[task["id"]]
        host, config = info["HostConfig"], info["Config"]
        assert config["Entrypoint"] == ["/bin/sh"] and config["Cmd"] == ["-c", "exec sleep 600"]
        assert (host["Memory"], host["KernelMemory"], host["MemorySwappiness"]) == (96 * MiB, 64 * MiB, 10)
        assert (host["OomScoreAdj"], host["OomKillDisable"], host["CpuShares"]) == (500, True, 300)
        assert (host["CpuPeriod"], host["CpuQuota"], host["CpuRealtimePeriod"]) == (50_000, 20_000, 1_000_000)
        assert (host["CpusetCpus"], host["CpusetMems"]) == ("0", "0")
        assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/pacer-null",
                                    "CgroupPermissions": "rw"}]
        assert host["DeviceCgroupRules"] == ["c 1:3 rwm"] and host["CgroupParent"] == f"/{cgroup_parent}"
        assert (host["CgroupnsMode"], host["UsernsMode"], host["Isolation"], host["Runtime"]) == \
            ("private", "host", "default", "runc")
        assert host["VolumeDriver"] == "local" and host["GroupAdd"] == ["1234"]
        assert (host["IpcMode"], host["PidMode"], host["UTSMode"]) == ("shareable", "host", "host")
        assert host["VolumesFrom"] == [f"{donor_name}:ro"]
        assert host["Mounts"] == [{"Type": "bind", "Source": str(bound), "Target": "/mnt/bound", "ReadOnly": True}]
        assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /dev/pacer-null"], "Interval": 10**9,
                                         "Timeout": 2 * 10**9, "StartPeriod": 10**9, "Retries": 2}
        assert (config["OpenStdin"], config["Tty"], config["StopTimeout"]) == (True, True, 30)
        assert "9000/tcp" in config["ExposedPorts"]
        if device:   # the engine keeps the limits its kernel supports (blkio weights need CFQ/BFQ)
            assert host["BlkioDeviceReadBps"] == [{"Path": device, "Rate": MiB}]
            assert host["BlkioDeviceWriteBps"] == [{"Path": device, "Rate": 2 * MiB}]
            assert host["BlkioDeviceReadIOps"] == [{"Path": device, "Rate": 100}]
            assert host["BlkioDeviceWriteIOps"] == [{"Path": device, "Rate": 50}]
        container_id = info["Id"]
        assert _exec(engine, container_id, "cat", "/mnt/bound/note") == "bound\n"
        assert _exec(engine, container_id, "cat", "/shared/marker") == "shared\n"     # the donor's volume
        assert _exec(engine, container_id, "cat", "/proc/self/oom_score_adj") == "500\n"
        assert "1234" in _exec(engine, container_id, "id")
    wait_until(lambda: all(engine.inspect(containers[t["id"]]["Id"])["State"]["Health"]["Status"] == "healthy"
                           for t in tasks), timeout=30, what="the engine's health check to pass")
    cpus = next(iter(_containers(engine, pacer_home)[t["id"]] for t in server.running("/params/cpus")))
    assert cpus["HostConfig"]["NanoCpus"] == 500_000_000 and cpus["HostConfig"]["CpuQuota"] == 0
    assert cpus["Config"]["Healthcheck"] == {"Test": ["NONE"]}

    for app in apps:
        assert server.request("DELETE", f"/v2/apps{app['id']}")[0] == 200
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="every container to be removed")


def test_user_defined_network_parameters_reach_the_engine(engine_network: str, docker_pacer,
                                                          docker_env: DockerEngine, pacer_home: Path) -> None:
    engine = docker_env
    peer = f"pt-peer-{uuid.uuid4().hex[:6]}"
    engine.run("httpd", "-f", "-h", "/www", "-p", "80", name=peer, network=engine_network)
    server = docker_pacer()
    app = _app("/params/net", [
        ("ip", "10.231.77.50"), ("ip6", "fd00:231:77::50"), ("mac-address", "02:42:0a:e7:4d:32"),
        ("network-alias", "web-alias"), ("link-local-ip", "169.254.10.10"), ("link", f"{peer}:peer-alias"),
        ("dns-option", "ndots:3"), ("domainname", "corp.local")],
        cmd="exec httpd -f -h /www -p 8080", networks=[{"mode": "container", "name": engine_network}],
        container={"portMappings": [{"containerPort": 8080, "name": "http"}]})
    status, body, _ = server.request("POST", "/v2/apps", app)
    assert status == 201, body
    task = wait_until(lambda: server.running("/params/net") and server.running("/params/net")[0], timeout=60)
    info = _containers(engine, pacer_home)[task["id"]]
    endpoint = info["NetworkSettings"]["Networks"][engine_network]
    assert (endpoint["IPAddress"], endpoint["GlobalIPv6Address"], endpoint["MacAddress"]) == \
        ("10.231.77.50", "fd00:231:77::50", "02:42:0a:e7:4d:32")
    assert "web-alias" in endpoint["Aliases"] and endpoint["IPAMConfig"]["LinkLocalIPs"] == ["169.254.10.10"]
    assert endpoint["Links"] == [f"{peer}:peer-alias"] and info["Config"]["Domainname"] == "corp.local"
    assert "options ndots:3" in _exec(engine, info["Id"], "cat", "/etc/resolv.conf")
    assert _exec(engine, info["Id"], "wget", "-q", "-O-", "http://peer-alias/index.html") == "pacer-test\n"
    assert server.request("DELETE", "/v2/apps/params/net")[0] == 200
    wait_until(lambda: not engine.pacer_containers(pacer_home), timeout=30, what="the container to be removed")


def _first_outcome(server: Any, app_id: str) -> tuple[str, Any]:
    """("running", task) or ("failed", lastTaskFailure), whichever comes first."""
    def outcome() -> tuple[str, Any] | None:
        running = server.running(app_id)
        if running:
            return "running", running[0]
        failure = server.get(f"/v2/apps{app_id}?embed=app.lastTaskFailure")[1]["app"].get("lastTaskFailure")
        return ("failed", failure) if failure else None
    return wait_until(outcome, timeout=60, what=f"{app_id} to run or fail")


# key, value, what `docker inspect` shows when the engine runs it, what it says when this host cannot
MACHINE_DEPENDENT: list[tuple[str, str, Callable[[dict[str, Any]], bool], str]] = [
    ("privileged", "true", lambda host: host["Privileged"] is True, "did not start"),
    ("gpus", "all", lambda host: host["DeviceRequests"][0]["Count"] == -1, "could not select device driver"),
    ("storage-opt", "size=1G", lambda host: host["StorageOpt"] == {"size": "1G"}, "--storage-opt is supported only"),
    ("cpu-rt-runtime", "950000", lambda host: host["CpuRealtimeRuntime"] == 950_000, "did not start"),
]


def test_machine_dependent_parameters_run_or_fail_with_the_engines_words(docker_pacer, docker_env: DockerEngine,
                                                                          pacer_home: Path) -> None:
    server = docker_pacer()
    for key, value, _, _ in MACHINE_DEPENDENT:
        app = _app(f"/machine/{key}", [(key, value)], cmd="exec sleep 600")
        assert server.request("POST", "/v2/apps", app)[0] == 201
    pulled = _app("/machine/pull", [("pull", "always")], cmd="exec sleep 600")
    assert server.request("POST", "/v2/apps", pulled)[0] == 201
    for key, _, applied, refusal in MACHINE_DEPENDENT:
        kind, found = _first_outcome(server, f"/machine/{key}")
        if kind == "running":
            assert applied(_containers(docker_env, pacer_home)[found["id"]]["HostConfig"]), key
        else:
            assert refusal in found["message"], found
    kind, failure = _first_outcome(server, "/machine/pull")   # no registry is reachable: the pull fails
    assert kind == "failed" and f"pulling image '{TEST_IMAGE}' failed (forcePullImage)" in failure["message"]
    for key, *_ in MACHINE_DEPENDENT:
        assert server.request("DELETE", f"/v2/apps/machine/{key}")[0] == 200
    assert server.request("DELETE", "/v2/apps/machine/pull")[0] == 200
    wait_until(lambda: not docker_env.pacer_containers(pacer_home), timeout=30, what="every container to be removed")


def test_refused_parameters_are_a_422_at_submission(docker_pacer) -> None:
    server = docker_pacer()
    app = _app("/refused", [("lxc-conf", "lxc.aa_profile=unconfined"), ("env", "A=1"), ("publish", "80:80"),
                            ("restart", "always")], cmd="sleep 1")
    status, body, _ = server.request("POST", "/v2/apps", app)
    assert status == 422 and body["message"] == "Object is not valid"
    paths = {d["path"]: d["errors"] for d in body["details"]}
    assert list(paths) == ["/container/docker/parameters(0)/key", "/container/docker/parameters(2)/key",
                           "/container/docker/parameters(3)/key"]
    assert "LXC execution driver was removed" in paths["/container/docker/parameters(0)/key"][0]
    assert server.get("/v2/apps/refused")[0] == 404
