"""The agent side of the v1 executor API, for tasks that name an executor (`pacer executor`).

A task whose TaskInfo carries an `executor` is not simulated on timers: the agent starts the
executor's command as a real process, with the `MESOS_*` environment of
`docs/executor-http-api.md` pointing at `POST /api/v1/executor`, served here on 127.0.0.1. It
answers the executor's SUBSCRIBE with SUBSCRIBED then LAUNCH, turns its UPDATE calls into the
task's reliable status updates (same uuid) for the framework, and sends ACKNOWLEDGED once the
framework acknowledged one (Mesos's agent acknowledges when it has checkpointed the update; later
is stricter for the executor's bookkeeping). KILL from the framework is forwarded.

Calls are validated against executor.proto (`executor_protocol`) as strictly as the master
validates scheduler calls: a wrong call is a 400 naming the field, kept in `rejections`.

Every process started here is stopped by its pid in `close` (the executor gets SIGTERM, then
SIGKILL; tasks it reported, by their process group, in case it could not kill them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


from aiohttp import web

from .agents import Cluster, Json, Quantity, SimTask
from .executor_protocol import validate_call, validate_event
from .master import Connection, SimulatedMaster
from .protocol import ProtocolError, recordio

log = logging.getLogger(__name__)


@dataclass
class SimExecutor:
    framework_id: str
    executor_id: str
    agent_id: str
    info: Json                                     # ExecutorInfo
    framework_info: Json
    sandbox: Path
    process: subprocess.Popen[bytes] | None = None
    tasks: dict[str, SimTask] = field(default_factory=dict)
    queued: list[Json] = field(default_factory=list)        # events for the next subscription
    connection: Connection | None = None
    seen: set[str] = field(default_factory=set)             # update uuids received
    acked: set[str] = field(default_factory=set)            # of those, acknowledged by the framework
    subscriptions: list[Json] = field(default_factory=list)  # every SUBSCRIBE call, in order
    updates: list[Json] = field(default_factory=list)        # every UPDATE's status, duplicates too
    task_pids: set[int] = field(default_factory=set)         # from TASK_RUNNING data
    exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def send(self, event: Json) -> None:
        validate_event(event)       # the simulator holds itself to the protos too
        if self.connection is None:
            self.queued.append(event)
        else:
            self.connection.send(event)


class ExecutorAgent:
    """The executor endpoint of every simulated agent (one server; executors are known by ids)."""

    def __init__(self, cluster: Cluster, *, work_dir: Path | None = None, recovery_timeout: float = 15.0,
                 backoff_max: float = 0.2, shutdown_grace: float = 5.0) -> None:
        self.cluster = cluster
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="sim-executors-"))
        self.recovery_timeout, self.backoff_max, self.shutdown_grace = recovery_timeout, backoff_max, shutdown_grace
        self.executors: dict[tuple[str, str], SimExecutor] = {}
        self.frameworks: dict[str, Json] = {}       # FrameworkInfo of frameworks not seen through a master
        self.masters: list[SimulatedMaster] = []
        self.rejections: list[tuple[int, str]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        cluster.on_acknowledged = self.acknowledged

    # -- lifecycle ------------------------------------------------------------------------
    def attach(self, master: SimulatedMaster) -> None:
        """Run the tasks `master` launches with an executor here."""
        self.masters.append(master)
        master.launch_hook = self.launch
        master.kill_hook = self.kill

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> "ExecutorAgent":
        await self.start_endpoint()
        self._watcher = asyncio.get_running_loop().create_task(self._watch_processes(), name="sim-executors")
        return self

    async def start_endpoint(self) -> None:
        """Serve the executor API (again, on the same port after `stop_endpoint`)."""
        app = web.Application()
        app.router.add_route("*", "/api/v1/executor", self._executor_api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop_endpoint(self) -> None:
        """The agent process goes away: every executor's stream ends, calls get no answer."""
        for executor in self.executors.values():
            if executor.connection is not None:
                executor.connection.close(abrupt=True)
                executor.connection = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop_endpoint()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for executor in self.executors.values():
            await _stop_process(executor)

    # -- launching (the master's hooks) ---------------------------------------------------------
    def framework_info(self, framework_id: str) -> Json:
        for master in self.masters:
            framework = master.frameworks.get(framework_id)
            if framework is not None:
                return {**framework.info, "id": {"value": framework_id}}
        return self.frameworks[framework_id]

    def launch(self, task: SimTask) -> bool:
        """A launched task: True (held from the master's timers) when an executor runs it."""
        info = task.info.get("executor")
        if info is None:
            return False
        key = (task.framework_id, info["executor_id"]["value"])
        executor = self.executors.get(key)
        if executor is None or executor.exit_code is not None:
            sandbox = self.work_dir / f"{key[1]}-{len(self.executors)}"
            sandbox.mkdir(parents=True)
            executor = SimExecutor(task.framework_id, key[1], task.agent_id,
                                   {**info, "framework_id": {"value": task.framework_id}},
                                   self.framework_info(task.framework_id), sandbox)
            self.executors[key] = executor
            executor.process = self._spawn(executor)
        executor.tasks[task.task_id] = task
        executor.send({"type": "LAUNCH", "launch": {"task": task.info}})
        return True

    def add_task(self, framework_id: str, info: Json) -> SimTask:
        """Launch a TaskInfo without a master (executor tests): staged, then `launch`."""
        task = SimTask(framework_id, info["task_id"]["value"], info["agent_id"]["value"], info,
                       Quantity.of(info.get("resources", [])))
        task.statuses.append(task.state)
        self.cluster.add_task(task)
        self.launch(task)
        return task

    def _spawn(self, executor: SimExecutor) -> subprocess.Popen[bytes]:
        command = executor.info.get("command", {})
        variables = {v["name"]: v.get("value", "") for v in command.get("environment", {}).get("variables", [])}
        env = {**os.environ, **variables,
               "MESOS_FRAMEWORK_ID": executor.framework_id, "MESOS_EXECUTOR_ID": executor.executor_id,
               "MESOS_DIRECTORY": str(executor.sandbox), "MESOS_SANDBOX": str(executor.sandbox),
               "MESOS_AGENT_ENDPOINT": self.endpoint,
               "MESOS_CHECKPOINT": "1" if executor.framework_info.get("checkpoint") else "0",
               "MESOS_RECOVERY_TIMEOUT": f"{self.recovery_timeout:g}secs",
               "MESOS_SUBSCRIPTION_BACKOFF_MAX": f"{int(self.backoff_max * 1000)}ms",
               "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": f"{self.shutdown_grace:g}secs"}
        if command.get("shell", True):
            argv, program = ["/bin/sh", "-c", command["value"]], "/bin/sh"
        else:
            argv, program = list(command.get("arguments") or [command["value"]]), command["value"]
        with open(executor.sandbox / "stdout", "wb") as out, open(executor.sandbox / "stderr", "wb") as err:
            return subprocess.Popen(argv, executable=program, cwd=executor.sandbox, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def _executor_of(self, task: SimTask) -> SimExecutor | None:
        return next((e for e in self.executors.values()
                     if e.framework_id == task.framework_id and task.task_id in e.tasks), None)

    def kill(self, task: SimTask, kill: Json) -> bool:
        """The framework's KILL: forwarded to the task's executor (True), if it has one."""
        executor = self._executor_of(task)
        if executor is None:
            return False
        launch = next((e for e in executor.queued if e["type"] == "LAUNCH"
                       and e["launch"]["task"]["task_id"]["value"] == task.task_id), None)
        if launch is not None:                     # never reached the executor
            executor.queued.remove(launch)
            self.cluster.report(task, "TASK_KILLED", "Killed before delivery to the executor",
                                "REASON_TASK_KILLED_DURING_LAUNCH", source="SOURCE_AGENT")
            return True
        event: Json = {"task_id": kill["task_id"]}
        if "kill_policy" in kill:
            event["kill_policy"] = kill["kill_policy"]
        executor.send({"type": "KILL", "kill": event})
        return True

    def acknowledged(self, task: SimTask, update_uuid: str) -> None:
        """The framework acknowledged an update: ACKNOWLEDGED to the executor that sent it."""
        executor = self._executor_of(task)
        if executor is None or update_uuid not in executor.seen:
            return
        executor.acked.add(update_uuid)
        if executor.connection is not None:
            executor.send({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": task.task_id},
                                                                    "uuid": update_uuid}})

    # -- what a test makes happen ---------------------------------------------------------------
    def executor(self, executor_id: str | None = None) -> SimExecutor:
        found = [e for e in self.executors.values() if executor_id is None or e.executor_id == executor_id]
        assert len(found) == 1, f"{len(found)} executors match {executor_id!r}"
        return found[0]

    def shutdown(self, executor_id: str | None = None) -> None:
        self.executor(executor_id).send({"type": "SHUTDOWN"})

    def kill_task(self, task_id: str, grace_seconds: float | None = None) -> None:
        kill: Json = {"task_id": {"value": task_id}}
        if grace_seconds is not None:
            kill["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_seconds * 1e9)}}
        self.kill(self.cluster.task(task_id), kill)

    # -- HTTP -------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str) -> web.Response:
        self.rejections.append((status, message))
        log.warning("simulated agent refused an executor call (%d): %s", status, message)
        return web.Response(status=status, text=message)

    async def _executor_api(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"}, text="Expecting one of { 'POST' }")
        if request.headers.get("Content-Type") != "application/json":
            return self._refuse(415, "Expecting 'Content-Type' of application/json")
        if "Mesos-Stream-Id" in request.headers:
            return self._refuse(400, "The executor API does not use the 'Mesos-Stream-Id' header")
        try:
            call = json.loads(await request.read())
            validate_call(call)
        except ValueError as exc:       # ProtocolError is one
            return self._refuse(400, f"Failed to convert JSON into Call protobuf: {exc}")
        executor = self.executors.get((call["framework_id"]["value"], call["executor_id"]["value"]))
        if executor is None:
            return self._refuse(400, "Executor not found")
        kind = call.get("type")
        if kind == "SUBSCRIBE":
            return await self._subscribe(request, executor, call)
        if executor.connection is None:
            return self._refuse(403, "Executor is not subscribed")
        if kind == "UPDATE":
            try:
                self._check_update(call)
            except ProtocolError as exc:
                return self._refuse(400, f"Failed to validate executor::Call: {exc}")
            self._take_update(executor, call["update"]["status"])
        elif kind not in ("MESSAGE", "HEARTBEAT"):
            return self._refuse(400, f"Failed to validate executor::Call: unexpected type {kind}")
        return web.Response(status=202)

    @staticmethod
    def _check_update(call: Json) -> None:
        """`validation::executor::call::validate` for UPDATE."""
        if "update" not in call:
            raise ProtocolError("update", "Expecting 'update' to be present")
        status = call["update"]["status"]
        if "uuid" not in status or len(base64.b64decode(status["uuid"])) != 16:
            raise ProtocolError("update.status.uuid", "Expecting a 16-byte 'uuid'")
        if status["state"] == "TASK_STAGING":
            raise ProtocolError("update.status.state", "Received TASK_STAGING from executor")
        if status.get("source", "SOURCE_EXECUTOR") != "SOURCE_EXECUTOR":
            raise ProtocolError("update.status.source", "Received wrong status source")
        if status.get("executor_id", call["executor_id"]) != call["executor_id"]:
            raise ProtocolError("update.status.executor_id", "ExecutorID mismatch")

    def _take_update(self, executor: SimExecutor, status: Json) -> None:
        executor.updates.append(status)
        update_uuid = status["uuid"]
        task = executor.tasks.get(status["task_id"]["value"])
        if update_uuid in executor.seen or task is None:
            return                                   # a duplicate: the agent has it already
        executor.seen.add(update_uuid)
        if status["state"] == "TASK_RUNNING" and "data" in status:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                executor.task_pids.add(int(json.loads(base64.b64decode(status["data"]))["pid"]))
        if task.terminal:                            # ended by the master (framework removed): nothing to forward
            executor.acked.add(update_uuid)
            self.acknowledged(task, update_uuid)
            return
        self.cluster.report(task, status["state"], status.get("message", ""), status.get("reason"),
                            update_uuid=update_uuid, data=status.get("data"))

    async def _subscribe(self, request: web.Request, executor: SimExecutor, call: Json) -> web.StreamResponse:
        executor.subscriptions.append(call)
        if executor.connection is not None:
            executor.connection.close(abrupt=True)
        connection = Connection(stream_id="", request=request)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        subscribe = call.get("subscribe", {})
        agent = self.cluster.agents.get(executor.agent_id)
        connection.send({"type": "SUBSCRIBED", "subscribed": {
            "executor_info": executor.info, "framework_info": executor.framework_info,
            "agent_info": {"hostname": agent.spec.hostname if agent else "127.0.0.1", "port": self.port,
                           "id": {"value": executor.agent_id}},
            "container_id": {"value": f"container-{executor.executor_id}"}}})
        queued, executor.queued = executor.queued, []
        for event in queued:
            connection.send(event)
        executor.connection = connection
        for update in subscribe.get("unacknowledged_updates", []):
            status = update["status"]
            if status["uuid"] in executor.acked:     # acknowledged while the executor was away
                connection.send({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": status["task_id"],
                                                                          "uuid": status["uuid"]}})
            else:
                self._take_update(executor, status)
        try:
            await _write_events(response, connection)
        finally:
            if executor.connection is connection:
                executor.connection = None
        return response

    async def _watch_processes(self) -> None:
        """An executor that exits leaves its unfinished tasks failed, as Mesos's agent reports them."""
        while True:
            await asyncio.sleep(0.05)
            for executor in self.executors.values():
                if executor.process is None or executor.exit_code is not None:
                    continue
                code = executor.process.poll()
                if code is None:
                    continue
                executor.exit_code = code
                if executor.connection is not None:
                    executor.connection.close()
                for task in executor.tasks.values():
                    if not task.terminal:
                        self.cluster.report(task, "TASK_FAILED", f"Executor terminated (exit status {code})",
                                            "REASON_EXECUTOR_TERMINATED", source="SOURCE_AGENT")


async def _write_events(response: web.StreamResponse, connection: Connection) -> None:
    while True:
        event = await connection.queue.get()
        if event is None:
            return
        try:
            await response.write(recordio(json.dumps(event).encode()))
        except (ConnectionError, RuntimeError):
            return


async def _stop_process(executor: SimExecutor, wait: float = 10.0) -> None:
    """SIGTERM (the executor kills its tasks), SIGKILL after `wait`; then its tasks' groups."""
    process = executor.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while process.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
    _kill_groups(executor.task_pids)


def _kill_groups(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


__all__ = ["ExecutorAgent", "SimExecutor", "pid_alive"]
