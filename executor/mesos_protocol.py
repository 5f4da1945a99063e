"""The pure half of ``pacer executor``: the agent's environment, the v1 executor calls, what a
``TaskInfo`` becomes, and the bookkeeping of unacknowledged status updates.

Everything here takes plain values and returns plain values (the uuid and the clock are passed
in), so the rules are unit-tested without an agent; ``executor.mesos_executor`` does the I/O.

Sources: ``include/mesos/v1/executor/executor.proto`` and ``docs/executor-http-api.md`` of
github:apache/mesos. JSON mapping as Mesos's: proto field names, enums by name, bytes base64.

Decisions worth knowing:

* The agent acknowledges a status update with an ``ACKNOWLEDGED`` event naming its uuid; until
  then the update is kept and sent again in the next ``SUBSCRIBE`` (``unacknowledged_updates``).
  A task none of whose updates was acknowledged yet is sent back in ``unacknowledged_tasks``
  (the doc's definition), so an agent that restarted before it checkpointed the launch learns
  of it.
* The executor is done when every task it launched has ended and each of their updates was
  acknowledged (``all_done``): leaving earlier would lose a terminal update the agent never
  got.
* Usage: the executor API has no usage call. The ``TASK_RUNNING`` update carries, in its
  ``data`` field (opaque bytes to Mesos), a JSON object with the task's leader pid and its
  process group's usage at that moment (``usage_data``); nothing else is invented.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.env import task_command
from executor.errors import BadEnvironment, InvalidTaskSpec
from executor.process import DEFAULT_KILL_GRACE_SECONDS, TaskLaunch
from executor.states import TASK_FAILED, TASK_FINISHED, TASK_KILLED, TaskExit
from executor.stats import ResourceUsage

Json = dict[str, Any]

API_PATH = "/api/v1/executor"
TASK_STARTING = "TASK_STARTING"
TASK_RUNNING = "TASK_RUNNING"
TASK_KILLING = "TASK_KILLING"
TERMINAL_STATES = frozenset({TASK_FINISHED, TASK_FAILED, TASK_KILLED, "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
                             "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"})

DEFAULT_RECOVERY_TIMEOUT = 15 * 60.0        # the agent's --recovery_timeout default
DEFAULT_BACKOFF_MAX = 2.0                   # the agent's --executor_reregistration_timeout default
DEFAULT_SHUTDOWN_GRACE = 5.0                # the agent's --executor_shutdown_grace_period default

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0, "days": 86400.0,
          "weeks": 604800.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]+)\s*$")


def parse_duration(text: str) -> float:
    """Seconds of a duration as stout's ``Duration`` prints it (``15mins``, ``5secs``, ``250ms``).

    A bare number is taken as seconds (a hand-written environment); anything else raises
    ``ValueError`` naming the accepted units.
    """
    try:
        return float(text)
    except ValueError:
        pass
    found = _DURATION.match(text)
    if found is None or found.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a duration (a number and one of {', '.join(_UNITS)})")
    return float(found.group(1)) * _UNITS[found.group(2)]


@dataclass(frozen=True)
class ExecutorConfig:
    """What the agent tells its executor through ``MESOS_*`` variables."""

    framework_id: str
    executor_id: str
    agent_endpoint: str          # host:port of the agent's HTTP API
    directory: Path              # the executor's sandbox on the host
    checkpoint: bool = False     # the framework checkpoints: reconnect after an agent restart
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    backoff_max: float = DEFAULT_BACKOFF_MAX
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE

    @property
    def url(self) -> str:
        return f"http://{self.agent_endpoint}{API_PATH}"


def config_from_env(env: Mapping[str, str]) -> ExecutorConfig:
    """Read the agent's variables (``docs/executor-http-api.md``); ``BadEnvironment`` names a
    missing or malformed one."""
    missing = [name for name in ("MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_AGENT_ENDPOINT",
                                 "MESOS_DIRECTORY") if not env.get(name)]
    if missing:
        raise BadEnvironment(f"{', '.join(missing)} not set: `pacer executor` is started by a Mesos agent, "
                             "which sets them")

    def duration(name: str, default: float) -> float:
        raw = env.get(name)
        if not raw:
            return default
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise BadEnvironment(f"{name}: {exc}") from None

    return ExecutorConfig(
        framework_id=env["MESOS_FRAMEWORK_ID"], executor_id=env["MESOS_EXECUTOR_ID"],
        agent_endpoint=env["MESOS_AGENT_ENDPOINT"], directory=Path(env["MESOS_DIRECTORY"]),
        checkpoint=env.get("MESOS_CHECKPOINT", "").strip().lower() in ("1", "true"),
        recovery_timeout=duration("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT),
        backoff_max=duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", DEFAULT_BACKOFF_MAX),
        shutdown_grace=duration("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", DEFAULT_SHUTDOWN_GRACE))


def backoff(attempt: int, maximum: float, base: float = 0.1) -> float:
    """Seconds before subscription attempt ``attempt`` (0-based): linear, as the doc suggests,
    and never above ``MESOS_SUBSCRIPTION_BACKOFF_MAX``."""
    return min(maximum, base * (attempt + 1))


# -- calls ---------------------------------------------------------------------------------

def _ids(config: ExecutorConfig) -> Json:
    return {"executor_id": {"value": config.executor_id}, "framework_id": {"value": config.framework_id}}


def subscribe_call(config: ExecutorConfig, tasks: Sequence[Json], updates: Sequence[Json]) -> Json:
    """SUBSCRIBE, with what the agent may not know after a restart (empty lists left out)."""
    subscribe: Json = {}
    if tasks:
        subscribe["unacknowledged_tasks"] = list(tasks)
    if updates:
        subscribe["unacknowledged_updates"] = [{"status": status} for status in updates]
    return {**_ids(config), "type": "SUBSCRIBE", "subscribe": subscribe}


def update_call(config: ExecutorConfig, status: Json) -> Json:
    return {**_ids(config), "type": "UPDATE", "update": {"status": status}}


def task_status(config: ExecutorConfig, task_id: str, state: str, *, uuid: bytes, now: float,
                message: str = "", reason: str | None = None, data: bytes | None = None,
                agent_id: str | None = None) -> Json:
    """A ``TaskStatus`` from this executor; ``uuid`` is 16 random bytes (base64 on the wire)."""
    status: Json = {"task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
                    "executor_id": {"value": config.executor_id}, "timestamp": now,
                    "uuid": base64.b64encode(uuid).decode()}
    if agent_id:
        status["agent_id"] = {"value": agent_id}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if data is not None:
        status["data"] = base64.b64encode(data).decode()
    return status


def exit_status(report: TaskExit) -> tuple[str, str, str | None]:
    """(state, message, reason) of the update reporting a task's end."""
    reason = None
    if report.state == TASK_FAILED:
        reason = ("REASON_CONTAINER_LIMITATION_MEMORY" if "memory limit" in report.message
                  else "REASON_COMMAND_EXECUTOR_FAILED")
    return report.state, report.message, reason


def usage_data(pid: int, usage: ResourceUsage | None) -> bytes:
    """The ``data`` of TASK_RUNNING: the task's pid and its usage when it was sampled (JSON)."""
    body: Json = {"pid": pid}
    if usage is not None:
        body["usage"] = {"cpu_user_ns": usage.cpu_user_ns, "cpu_system_ns": usage.cpu_system_ns,
                         "rss_bytes": usage.rss_bytes, "processes": usage.processes}
    return json.dumps(body, sort_keys=True).encode()


# -- what a TaskInfo becomes ------------------------------------------------------------------

def grace_seconds(kill_policy: Mapping[str, Any] | None, default: float) -> float:
    """``KillPolicy.grace_period`` in seconds, or ``default`` when it sets none."""
    nanos = (kill_policy or {}).get("grace_period", {}).get("nanoseconds")
    return default if nanos is None else max(0.0, int(nanos) / 1e9)


def task_argv(command: Mapping[str, Any]) -> list[str]:
    """``CommandInfo`` as Mesos runs it: ``shell`` (the proto's default: true) runs ``value``
    through ``/bin/sh -c``; otherwise ``value`` is exec'd with ``arguments`` as its argv."""
    if command.get("shell", True):
        return task_command(command.get("value"), None)
    arguments = [str(a) for a in command.get("arguments", [])]
    return task_command(None, arguments or ([command["value"]] if command.get("value") else None))


def task_environment(command: Mapping[str, Any], sandbox: Path) -> dict[str, str]:
    """``CommandInfo.environment`` (VALUE variables; secrets are not supported) and ``MESOS_SANDBOX``."""
    env = {"MESOS_SANDBOX": str(sandbox)}
    for variable in command.get("environment", {}).get("variables", []):
        if variable.get("type", "VALUE") != "VALUE":
            raise InvalidTaskSpec(f"environment variable {variable.get('name')}: only VALUE variables are "
                                  "supported by `pacer executor`")
        env[str(variable["name"])] = str(variable.get("value", ""))
    return env


def task_sandbox(directory: Path, task_id: str) -> Path:
    """``<executor sandbox>/tasks/<task id>``, as Mesos's default executor lays out its tasks:
    the executor's own stdout/stderr stay at the top of the sandbox."""
    return directory / "tasks" / task_id


def task_command_info(task: Mapping[str, Any]) -> Json:
    """The task's ``CommandInfo``: its ``command``, else the JSON CommandInfo in its ``data``.

    Mesos refuses a TaskInfo holding both a command and an executor, so Pacer's scheduler sends
    a ``pacer executor`` task's command in ``data`` (bytes Mesos does not interpret)."""
    task_id = task["task_id"]["value"]
    if "command" in task:
        return dict(task["command"])
    if "data" not in task:
        raise InvalidTaskSpec(f"task {task_id} has no command (`pacer executor` runs commands only)")
    try:
        command = json.loads(base64.b64decode(task["data"]))
    except ValueError as exc:
        raise InvalidTaskSpec(f"task {task_id}: its data is not a JSON CommandInfo: {exc}") from None
    if not isinstance(command, dict):
        raise InvalidTaskSpec(f"task {task_id}: its data is not a JSON CommandInfo object")
    return command


def launch_spec(task: Mapping[str, Any], directory: Path) -> TaskLaunch:
    """The process to start for a ``TaskInfo``; ``InvalidTaskSpec`` when it cannot be one."""
    task_id = str(task["task_id"]["value"])
    command = task_command_info(task)
    if "container" in task:
        raise InvalidTaskSpec(f"task {task_id} has a container: `pacer executor` runs processes only")
    sandbox = task_sandbox(directory, task_id)
    return TaskLaunch(task_id=task_id, argv=task_argv(command), env=task_environment(command, sandbox),
                      sandbox=sandbox,
                      kill_grace_seconds=grace_seconds(task.get("kill_policy"), DEFAULT_KILL_GRACE_SECONDS))


# -- unacknowledged updates ------------------------------------------------------------------

@dataclass
class Ledger:
    """The executor's memory of its tasks and of the updates the agent has not acknowledged.

    A value with methods that only change itself: no I/O, no clock. ``updates`` is in the
    order they were sent, which is the order a re-SUBSCRIBE lists them in.
    """

    tasks: dict[str, Json] = field(default_factory=dict)        # task id -> TaskInfo
    states: dict[str, str] = field(default_factory=dict)        # task id -> latest state sent
    updates: list[Json] = field(default_factory=list)           # unacknowledged TaskStatus, oldest first
    acknowledged_tasks: set[str] = field(default_factory=set)   # at least one update acknowledged

    def launched(self, task: Json) -> None:
        self.tasks[str(task["task_id"]["value"])] = task

    def sent(self, status: Json) -> None:
        self.states[status["task_id"]["value"]] = status["state"]
        self.updates.append(status)

    def acknowledge(self, task_id: str, uuid: str) -> bool:
        """Drop the update with that uuid; False if none was pending (a repeat, or unknown)."""
        for i, status in enumerate(self.updates):
            if status["uuid"] == uuid and status["task_id"]["value"] == task_id:
                del self.updates[i]
                self.acknowledged_tasks.add(task_id)
                return True
        return False

    def unacknowledged_tasks(self) -> list[Json]:
        return [info for task_id, info in self.tasks.items() if task_id not in self.acknowledged_tasks]

    def live(self) -> list[str]:
        """Tasks launched whose end was not reported yet."""
        return [task_id for task_id in self.tasks if self.states.get(task_id) not in TERMINAL_STATES]

    def ended(self, task_id: str) -> bool:
        return self.states.get(task_id) in TERMINAL_STATES

    def all_done(self) -> bool:
        """Tasks were launched, all ended, and the agent acknowledged every update."""
        return bool(self.tasks) and not self.live() and not self.updates


def pending_for(updates: Iterable[Json], task_id: str) -> list[Json]:
    return [u for u in updates if u["task_id"]["value"] == task_id]
