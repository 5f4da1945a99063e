"""`pacer executor` as a real process under the simulated agent's v1 executor API
(`tests/mesos_sim/executor_agent.py`), and end to end under `pacer serve --master`.

The framework's side is played by the test (it acknowledges updates through the `Cluster`, as
the master would on the framework's ACKNOWLEDGE), except in the end-to-end test, where it is a
real `pacer serve`. Waits are polls of a condition, never guessed sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from scheduler.backends.mesos_tasks import executor_command

from .mesos_sim import AgentSpec, Cluster
from .mesos_sim.agents import SimTask
from .mesos_sim.executor_agent import ExecutorAgent, SimExecutor, pid_alive
from .mesos_sim.harness import SimHarness
from .support import PacerServer, eventually, wait_until

FW = "fw-test"
T = TypeVar("T")
Json = dict[str, Any]


def task_info(agent_id: str, task_id: str, cmd: str, grace: float | None = None) -> Json:
    """A TaskInfo as Pacer's scheduler builds one for `"executor": "pacer"` (command in `data`)."""
    command = {"shell": True, "value": cmd, "environment": {"variables": [{"name": "GREETING", "value": "hello"},
                                                                          {"name": "MESOS_TASK_ID", "value": task_id}]}}
    argv = executor_command()
    info: Json = {"name": "t", "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
                  "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
                  "data": base64.b64encode(json.dumps(command).encode()).decode(),
                  "executor": {"type": "CUSTOM", "executor_id": {"value": f"pacer-{task_id}"},
                               "command": {"shell": False, "value": argv[0], "arguments": argv},
                               "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}]}}
    if grace is not None:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(grace * 1e9)}}
    return info


AgentFactory = Callable[..., Awaitable[ExecutorAgent]]


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[AgentFactory]:
    started: list[ExecutorAgent] = []

    async def make(**options: Any) -> ExecutorAgent:
        cluster = Cluster()
        cluster.add_agent(AgentSpec("agent-1"))
        agent = await ExecutorAgent(cluster, work_dir=tmp_path / f"agent{len(started)}", **options).start()
        agent.frameworks[FW] = {"user": "root", "name": "test", "id": {"value": FW}, "checkpoint": True}
        started.append(agent)
        return agent

    yield make
    for agent in started:
        await agent.close()          # every executor by its pid, then its tasks' groups
        assert agent.rejections == []


def launch(agent: ExecutorAgent, task_id: str, cmd: str, grace: float | None = None) -> tuple[SimTask, SimExecutor]:
    agent_id = next(iter(agent.cluster.agents))
    task = agent.add_task(FW, task_info(agent_id, task_id, cmd, grace))
    return task, agent.executor(f"pacer-{task_id}")


def acknowledge_all(agent: ExecutorAgent, task: SimTask) -> list[str]:
    """What the framework does: acknowledge every pending update of the task, oldest first."""
    states = []
    while task.pending:
        states.append(task.pending[0]["state"])
        assert agent.cluster.acknowledge(FW, task.task_id, task.pending[0]["uuid"])
    return states


def running_pid(executor: SimExecutor, task_id: str) -> int:
    running = next(u for u in executor.updates if u["task_id"]["value"] == task_id and u["state"] == "TASK_RUNNING")
    return int(json.loads(base64.b64decode(running["data"]))["pid"])


async def test_runs_a_task_to_finished_and_exits_once_everything_is_acknowledged(make_agent: AgentFactory) -> None:
    agent = await make_agent()
    task, executor = launch(agent, "echo-1", 'echo "$GREETING from $MESOS_TASK_ID"')
    await eventually(lambda: task.state == "TASK_FINISHED", what="TASK_FINISHED")
    assert task.statuses == ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert [u["state"] for u in task.pending] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert all(u["source"] == "SOURCE_EXECUTOR" for u in executor.updates)
    assert task.pending[-1]["message"] == "Command exited with status 0"
    usage = json.loads(base64.b64decode(task.pending[1]["data"]))
    assert usage["pid"] > 1
    assert (executor.sandbox / "tasks" / "echo-1" / "stdout").read_text() == "hello from echo-1\n"
    assert executor.process is not None and executor.process.poll() is None   # waits for the acknowledgements
    assert acknowledge_all(agent, task) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    await eventually(lambda: executor.exit_code is not None, what="the executor to exit")
    assert executor.exit_code == 0
    assert len(executor.subscriptions) == 1 and executor.subscriptions[0]["subscribe"] == {}


async def test_acknowledged_updates_are_dropped_and_the_rest_resent_on_resubscribe(make_agent: AgentFactory) -> None:
    agent = await make_agent()
    task, executor = launch(agent, "sleep-1", "sleep 60")
    await eventually(lambda: task.state == "TASK_RUNNING", what="TASK_RUNNING")
    starting = task.pending[0]["uuid"]
    assert agent.cluster.acknowledge(FW, "sleep-1", starting)        # STARTING acknowledged, RUNNING not
    stderr = executor.sandbox / "stderr"
    await eventually(lambda: f"update {starting} of task sleep-1 acknowledged" in stderr.read_text(),
                     what="the executor to get ACKNOWLEDGED")
    await agent.stop_endpoint()                                       # the agent restarts
    await agent.start_endpoint()
    await eventually(lambda: len(executor.subscriptions) == 2, what="the executor to re-subscribe")
    again = executor.subscriptions[1]["subscribe"]
    assert [u["status"]["state"] for u in again["unacknowledged_updates"]] == ["TASK_RUNNING"]
    assert again["unacknowledged_updates"][0]["status"]["uuid"] == task.pending[0]["uuid"]
    assert "unacknowledged_tasks" not in again        # one of its updates was acknowledged: the agent knows it
    assert [u["state"] for u in task.pending] == ["TASK_RUNNING"]  # the resent one was not taken twice
    assert pid_alive(running_pid(executor, "sleep-1"))


async def test_kill_sends_sigterm_then_sigkill_after_the_grace_period(make_agent: AgentFactory) -> None:
    agent = await make_agent()
    cmd = "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done"
    task, executor = launch(agent, "stubborn-1", cmd, grace=1.0)
    stdout = executor.sandbox / "tasks" / "stubborn-1" / "stdout"
    await eventually(lambda: task.state == "TASK_RUNNING" and "ready" in stdout.read_text(), what="the task up")
    pid = running_pid(executor, "stubborn-1")
    acknowledge_all(agent, task)
    started = time.monotonic()
    agent.kill_task("stubborn-1")
    await eventually(lambda: task.state == "TASK_KILLED", what="TASK_KILLED")
    waited = time.monotonic() - started
    assert task.statuses[-2:] == ["TASK_KILLING", "TASK_KILLED"]
    assert "got TERM" in stdout.read_text()                     # SIGTERM first, trapped
    assert task.pending[-1]["message"] == "Command terminated with signal SIGKILL"
    assert waited >= 0.9                                        # SIGKILL only after the grace period
    assert not pid_alive(pid)


async def test_agent_back_within_the_recovery_timeout_keeps_the_task(make_agent: AgentFactory) -> None:
    agent = await make_agent(recovery_timeout=20.0, backoff_max=0.1)
    task, executor = launch(agent, "sleep-2", "sleep 60")
    await eventually(lambda: task.state == "TASK_RUNNING", what="TASK_RUNNING")
    pid = running_pid(executor, "sleep-2")
    await agent.stop_endpoint()
    stderr = executor.sandbox / "stderr"
    await eventually(lambda: "re-subscribing" in stderr.read_text(), what="the executor to notice the agent left")
    assert pid_alive(pid) and executor.process is not None and executor.process.poll() is None
    await agent.start_endpoint()
    await eventually(lambda: len(executor.subscriptions) == 2, what="the executor to re-subscribe")
    again = executor.subscriptions[1]["subscribe"]
    assert [t["task_id"]["value"] for t in again["unacknowledged_tasks"]] == ["sleep-2"]
    assert [u["status"]["state"] for u in again["unacknowledged_updates"]] == ["TASK_STARTING", "TASK_RUNNING"]
    assert pid_alive(pid)
    assert acknowledge_all(agent, task) == ["TASK_STARTING", "TASK_RUNNING"]   # ACKNOWLEDGED on the new stream
    agent.kill_task("sleep-2")
    await eventually(lambda: task.state == "TASK_KILLED", what="TASK_KILLED after the restart")


async def test_agent_gone_past_the_recovery_timeout_kills_the_task_and_exits(make_agent: AgentFactory) -> None:
    agent = await make_agent(recovery_timeout=1.0, backoff_max=0.1)
    task, executor = launch(agent, "sleep-3", "sleep 60")
    await eventually(lambda: task.state == "TASK_RUNNING", what="TASK_RUNNING")
    pid = running_pid(executor, "sleep-3")
    await agent.stop_endpoint()
    await eventually(lambda: executor.exit_code is not None, what="the executor to give up")
    assert executor.exit_code == 1
    assert not pid_alive(pid)
    assert "could not re-subscribe" in (executor.sandbox / "stderr").read_text()


async def test_shutdown_kills_the_tasks_and_exits_0(make_agent: AgentFactory) -> None:
    agent = await make_agent(shutdown_grace=3.0)
    task, executor = launch(agent, "sleep-4", "sleep 60")
    await eventually(lambda: task.state == "TASK_RUNNING", what="TASK_RUNNING")
    pid = running_pid(executor, "sleep-4")
    agent.shutdown("pacer-sleep-4")
    await eventually(lambda: executor.exit_code is not None, what="the executor to exit")
    assert executor.exit_code == 0
    assert task.state == "TASK_KILLED" and task.statuses[-2:] == ["TASK_KILLING", "TASK_KILLED"]
    assert not pid_alive(pid)


async def test_the_endpoint_refuses_calls_outside_executor_proto(make_agent: AgentFactory) -> None:
    import aiohttp
    agent = await make_agent()
    url = f"http://{agent.endpoint}/api/v1/executor"
    bad = {"type": "SUBSCRIBE", "executor_id": {"value": "e"}, "framework_id": {"value": FW},
           "subscribe": {"unacknowledged_tasks": []}, "stream_id": "x"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=bad) as response:
            assert response.status == 400
            assert "stream_id: unknown field of executor.Call" in await response.text()
    assert len(agent.rejections) == 1
    agent.rejections.clear()


# -- end to end: `pacer serve --master` with an app that asks for `pacer executor` ----------------

@pytest.fixture
def sim_with_executors(tmp_path: Path) -> Iterator[tuple[SimHarness, ExecutorAgent]]:
    harness = SimHarness([AgentSpec("agent-1", cpus=4, mem=4096, disk=1000)], heartbeat_interval=1.0,
                         allocation_interval=0.1).start()
    agent = ExecutorAgent(harness.cluster, work_dir=tmp_path / "executors")
    asyncio.run_coroutine_threadsafe(agent.start(), harness.loop).result(30)
    harness.run(lambda: agent.attach(harness.leader))
    try:
        yield harness, agent
    finally:
        asyncio.run_coroutine_threadsafe(agent.close(), harness.loop).result(60)
        harness.stop()
    assert agent.rejections == []


def test_pacer_serve_runs_an_app_through_pacer_executor(
        sim_with_executors: tuple[SimHarness, ExecutorAgent], pacer_factory: Callable[..., PacerServer]) -> None:
    sim, agent = sim_with_executors
    server = pacer_factory("--master", sim.url)
    app = {"id": "/viaexec", "cmd": "echo started; sleep 1000", "executor": "pacer", "cpus": 0.1, "mem": 16,
           "taskKillGracePeriodSeconds": 2}
    status, body, _ = server.request("POST", "/v2/apps", app)
    assert status == 201, body
    tasks = wait_until(lambda: [t for t in server.tasks("/viaexec") if t["state"] == "TASK_RUNNING"],
                       timeout=60, what="the task RUNNING through pacer executor")
    task_id = tasks[0]["id"]
    executor = sim.run(lambda: agent.executor(f"pacer-{task_id}"))
    assert sim.run(lambda: [u["state"] for u in executor.updates]) == ["TASK_STARTING", "TASK_RUNNING"]
    launched = sim.run(lambda: sim.cluster.task(task_id).info)
    assert launched["executor"]["type"] == "CUSTOM" and "command" not in launched
    stdout = executor.sandbox / "tasks" / task_id / "stdout"
    wait_until(lambda: stdout.exists() and "started" in stdout.read_text(), what="the task's output")
    pid = sim.run(lambda: running_pid(executor, task_id))
    assert server.request("DELETE", "/v2/apps/viaexec")[0] == 200
    wait_until(lambda: sim.run(lambda: executor.exit_code) is not None, timeout=60,
               what="the executor to exit once its killed task was acknowledged")
    assert sim.run(lambda: executor.exit_code) == 0
    assert sim.run(lambda: sim.cluster.task(task_id).statuses[-2:]) == ["TASK_KILLING", "TASK_KILLED"]
    assert not pid_alive(pid)
    assert sim.rejections() == []
