"""The executor's Docker runtime against a real engine (a private dockerd when none answers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import docker.errors
import pytest

from executor import LaunchFailed
from executor.docker_runtime import DockerRuntime, EngineUnavailable, ImageUnavailable
from executor.docker_spec import (
    LABEL_SCOPE,
    LABEL_TASK_ID,
    ContainerHandle,
    ContainerLaunch,
    ContainerUsage,
    PortBinding,
    VolumeMount,
)
from executor.testing import ExitRecorder

from .docker_support import MISSING_IMAGE, TEST_IMAGE, DockerEngine, docker_engine  # noqa: F401

HTTPD = ("httpd", "-f", "-h", "/www", "-p")


def spec(task_id: str, *, args: tuple[str, ...] | None = None, cmd: str | None = None, **kw) -> ContainerLaunch:
    kw.setdefault("image", TEST_IMAGE)
    kw.setdefault("env", {})
    kw.setdefault("labels", {})
    kw.setdefault("kill_grace_seconds", 1.0)
    return ContainerLaunch(task_id=task_id, args=args, shell_command=cmd, **kw)


def scope_containers(engine: DockerEngine, scope: str) -> list[dict]:
    return engine.api.containers(all=True, filters={"label": [f"{LABEL_SCOPE}={scope}"]})


class Runtimes:
    """Runtimes of one test; all closed (and their containers removed) afterwards."""

    def __init__(self, engine: DockerEngine, scope: str) -> None:
        self.engine = engine
        self.scope = scope
        self.made: list[DockerRuntime] = []

    async def start(self, on_exit: ExitRecorder | None = None) -> tuple[DockerRuntime, ExitRecorder]:
        recorder = on_exit or ExitRecorder()
        runtime = DockerRuntime(recorder, base_url=self.engine.url, scope=self.scope, reconcile_seconds=2.0)
        await runtime.start()
        self.made.append(runtime)
        return runtime, recorder


@pytest.fixture
async def runtimes(docker_engine: DockerEngine, tmp_path: Path) -> AsyncIterator[Runtimes]:
    made = Runtimes(docker_engine, str(tmp_path / "scope"))
    yield made
    for runtime in made.made:
        await runtime.close(kill=True)
    leftovers = scope_containers(docker_engine, made.scope)
    for summary in leftovers:
        docker_engine.api.remove_container(summary["Id"], force=True)
    assert not leftovers, "the runtime left containers behind"


def gone(engine: DockerEngine, container_id: str) -> bool:
    try:
        engine.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


async def test_exit_status_maps_to_task_state_and_the_container_is_removed(runtimes: Runtimes, tmp_path: Path):
    runtime, exits = await runtimes.start()
    ok = await runtime.launch(spec("ok", cmd="echo hello from $MESOS_TASK_ID; exit 0",
                                   env={"MESOS_TASK_ID": "ok"}, sandbox=tmp_path / "ok"))
    bad = await runtime.launch(spec("bad", args=("sh", "-c", "echo oops >&2; exit 3"), sandbox=tmp_path / "bad"))
    finished, failed = await exits.wait("ok", 20), await exits.wait("bad", 20)
    assert (finished.state, finished.exit_code) == ("TASK_FINISHED", 0)
    assert (failed.state, failed.exit_code, failed.message) == ("TASK_FAILED", 3, "Container exited with status 3")
    assert gone(runtimes.engine, ok.container_id) and gone(runtimes.engine, bad.container_id)
    assert (tmp_path / "ok" / "stdout").read_text() == "hello from ok\n"   # logs kept in the sandbox
    assert (tmp_path / "bad" / "stderr").read_text() == "oops\n"
    assert not runtime.is_running("ok") and len(exits.reports_for("ok")) == 1


async def test_kill_waits_the_grace_period_then_sigkills(runtimes: Runtimes):
    runtime, exits = await runtimes.start()
    # busybox httpd as PID 1 ignores SIGTERM (no handler): only the SIGKILL after the grace ends it
    stubborn = await runtime.launch(spec("stubborn", args=(*HTTPD, "127.0.0.1:0"), kill_grace_seconds=1.0))
    polite = await runtime.launch(spec("polite", cmd="trap 'exit 0' TERM; while true; do sleep 0.1; done",
                                       kill_grace_seconds=30.0))
    await asyncio.sleep(0.3)  # let the shell install its trap
    started = time.monotonic()
    await asyncio.gather(runtime.kill("stubborn"), runtime.kill("polite"))
    elapsed = time.monotonic() - started
    stubborn_end, polite_end = exits.reports_for("stubborn")[0], exits.reports_for("polite")[0]
    assert stubborn_end.state == polite_end.state == "TASK_KILLED"
    assert stubborn_end.exit_code == 137 and polite_end.exit_code == 0
    assert 1.0 <= elapsed < 10.0   # the polite one did not wait for its 30 s grace
    assert gone(runtimes.engine, stubborn.container_id) and gone(runtimes.engine, polite.container_id)
    await runtime.kill("stubborn")  # idempotent, unknown ids are a no-op
    assert len(exits.exits) == 2


async def test_oom_kill_is_a_failure_with_reason_oom(runtimes: Runtimes):
    runtime, exits = await runtimes.start()
    await runtime.launch(spec("hog", cmd="x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done", mem_mb=8,
                              parameters=(("memory-swap", "8m"),)))
    end = await exits.wait("hog", 30)
    assert end.state == "TASK_FAILED" and end.reason == "OOM"
    assert end.message.startswith("OOM: container exceeded its memory limit of 8 MiB")


async def test_missing_image_fails_with_the_daemons_message(runtimes: Runtimes):
    runtime, exits = await runtimes.start()
    with pytest.raises(ImageUnavailable) as caught:
        await runtime.launch(spec("ghost", image=MISSING_IMAGE, args=("true",)))
    message = str(caught.value)
    assert message.startswith(f"image '{MISSING_IMAGE}' is not on the Docker engine and pulling it failed: ")
    assert len(message) > len(f"image '{MISSING_IMAGE}' is not on the Docker engine and pulling it failed: ") + 10
    assert caught.value.image == MISSING_IMAGE
    assert not runtime.is_running("ghost") and exits.exits == []
    assert scope_containers(runtimes.engine, runtimes.scope) == []


async def test_a_container_that_cannot_start_fails_the_launch_and_is_removed(runtimes: Runtimes):
    runtime, _ = await runtimes.start()
    with pytest.raises(LaunchFailed) as caught:
        await runtime.launch(spec("noexec", args=("/bin/no-such-program",)))
    assert "container for task noexec did not start" in str(caught.value)
    assert "no-such-program" in str(caught.value)
    assert scope_containers(runtimes.engine, runtimes.scope) == []


async def test_inspect_shows_what_the_launch_asked_for(runtimes: Runtimes, tmp_path: Path):
    runtime, _ = await runtimes.start()
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    handle = await runtime.launch(spec(
        "inspected", args=("sleep", "300"), env={"PORT0": "31005", "FROM_APP": "1"},
        labels={"team": "payments", LABEL_TASK_ID: "inspected"}, network="bridge",
        port_bindings=(PortBinding(8080, 31005), PortBinding(31006, 31006, "udp")),
        volumes=(VolumeMount(str(data), "/data", read_only=True),), cpus=0.5, mem_mb=32,
        parameters=(("env", "FROM_PARAM=2"), ("label", "tier=web"), ("v", f"{data}:/more:ro"), ("user", "65534"),
                    ("workdir", "/tmp"), ("add-host", "db.local:10.1.2.3"), ("cap-add", "NET_ADMIN"),
                    ("cap-drop", "MKNOD"), ("ulimit", "nofile=512:1024"), ("memory-swap", "64m")),
        sandbox=tmp_path / "sandbox"))
    info = runtimes.engine.inspect(handle.container_id)
    config, host = info["Config"], info["HostConfig"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PORT0"] == "31005" and env["FROM_APP"] == "1" and env["FROM_PARAM"] == "2"
    assert env["MESOS_SANDBOX"] == "/mnt/mesos/sandbox"
    assert config["Labels"]["team"] == "payments" and config["Labels"]["tier"] == "web"
    assert config["Labels"][LABEL_SCOPE] == runtimes.scope and config["Labels"][LABEL_TASK_ID] == "inspected"
    assert config["User"] == "65534" and config["WorkingDir"] == "/tmp"
    assert config["Cmd"] == ["sleep", "300"]
    assert host["NetworkMode"] == "bridge"
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": "31005"}],
                                    "31006/udp": [{"HostIp": "", "HostPort": "31006"}]}
    assert f"{data}:/data:ro" in host["Binds"] and f"{data}:/more:ro" in host["Binds"]
    assert f"{tmp_path / 'sandbox'}:/mnt/mesos/sandbox:rw" in host["Binds"]
    assert host["Memory"] == 32 * 1024 * 1024 and host["MemorySwap"] == 64 * 1024 * 1024
    assert (host["CpuShares"], host["CpuQuota"], host["CpuPeriod"]) == (512, 50_000, 100_000)
    assert host["ExtraHosts"] == ["db.local:10.1.2.3"]
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 512, "Hard": 1024}]
    assert config["StopTimeout"] == 1
    exec_id = runtimes.engine.api.exec_create(handle.container_id, ["cat", "/data/hello.txt"])
    assert runtimes.engine.api.exec_start(exec_id) == b"from the host\n"


async def test_a_new_runtime_adopts_running_containers_without_restarting_them(runtimes: Runtimes):
    first, first_exits = await runtimes.start()
    handle = await first.launch(spec("durable", args=(*HTTPD, "127.0.0.1:0"), kill_grace_seconds=0.5))
    started_at = runtimes.engine.inspect(handle.container_id)["State"]["StartedAt"]
    await first.close(kill=False)
    assert first_exits.exits == []

    second, second_exits = await runtimes.start()
    listed = await second.containers()
    assert [(c.task_id, c.container_id, c.running) for c in listed] == [("durable", handle.container_id, True)]
    assert second.adopt(ContainerHandle("durable", handle.container_id), grace_seconds=0.5)
    assert second.adopt(ContainerHandle("durable", handle.container_id))          # idempotent
    assert not second.adopt(ContainerHandle("other", handle.container_id))        # one task per container
    state = runtimes.engine.inspect(handle.container_id)["State"]
    assert state["Running"] and state["StartedAt"] == started_at
    await second.kill("durable")
    assert second_exits.reports_for("durable")[0].state == "TASK_KILLED"
    assert gone(runtimes.engine, handle.container_id)


async def test_a_container_that_died_before_adoption_is_reported_by_the_reconcile(runtimes: Runtimes):
    first, _ = await runtimes.start()
    handle = await first.launch(spec("brief", args=("sh", "-c", "sleep 0.3; exit 4")))
    await first.close(kill=False)
    await asyncio.sleep(1.0)  # it exits while no runtime watches it
    second, exits = await runtimes.start()
    assert second.adopt(handle)
    end = await exits.wait("brief", 10)
    assert (end.state, end.exit_code) == ("TASK_FAILED", 4)
    assert gone(runtimes.engine, handle.container_id)


async def test_kill_during_launch_stops_the_container_once_it_exists(runtimes: Runtimes):
    runtime, exits = await runtimes.start()
    launch = asyncio.create_task(runtime.launch(spec("racing", args=(*HTTPD, "127.0.0.1:0"),
                                                     kill_grace_seconds=0.2)))
    await asyncio.sleep(0)  # the launch has registered the task, the engine has not answered yet
    assert runtime.is_running("racing")
    await runtime.kill("racing")
    try:
        handle = await launch
    except LaunchFailed:
        handle = None
    if handle is not None:
        assert exits.reports_for("racing")[0].state == "TASK_KILLED"
    assert not runtime.is_running("racing")
    assert scope_containers(runtimes.engine, runtimes.scope) == []


async def test_stats_give_cpu_and_memory_through_the_runtime(runtimes: Runtimes):
    runtime, _ = await runtimes.start()
    await runtime.launch(spec("busy", cmd="x=0; while [ $x -lt 200000 ]; do x=$((x+1)); done; sleep 300",
                              mem_mb=64, cpus=1.0))
    await asyncio.sleep(1.0)
    usages = await runtime.usages()
    usage = usages["busy"]
    assert isinstance(usage, ContainerUsage)
    assert usage.cpu_ns > 50_000_000                       # >50 ms of counting
    assert usage.memory_usage_bytes > 0
    assert 0 < usage.memory_working_set_bytes <= usage.memory_usage_bytes
    assert usage.memory_limit_bytes == 64 * 1024 * 1024
    assert usage.processes >= 1
    assert usage.rx_bytes is None                          # host networking: no counters of its own
    assert await runtime.usages(["nope"]) == {}


async def test_many_short_containers_are_all_reported_once(runtimes: Runtimes):
    runtime, exits = await runtimes.start()
    ids = [f"short-{i}" for i in range(20)]
    await asyncio.gather(*(runtime.launch(spec(t, args=("sleep", "0.5"))) for t in ids))
    ends = await asyncio.gather(*(exits.wait(t, 30) for t in ids))
    assert {e.state for e in ends} == {"TASK_FINISHED"}
    assert sorted(e.task_id for e in exits.exits) == sorted(ids)
    assert runtime.running() == []


async def test_an_engine_that_does_not_answer_is_reported(tmp_path: Path):
    runtime = DockerRuntime(ExitRecorder(), base_url=f"unix://{tmp_path}/nothing.sock", scope="x")
    with pytest.raises(EngineUnavailable, match="nothing.sock does not answer"):
        await runtime.start()
    await runtime.close()
