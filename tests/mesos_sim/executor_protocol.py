"""The v1 executor API's messages, as schema tables for `protocol.validate`.

Transcribed from `include/mesos/v1/executor/executor.proto` (and the `AgentInfo`, `ContainerID`,
`TaskGroupInfo` of `include/mesos/v1/mesos.proto`) of github:apache/mesos, commit c1b42f79d157.
The executor's `Call` and `Event` are prefixed `executor.` so they sit beside the scheduler
API's in one table; everything else is shared (`TaskInfo`, `TaskStatus`, `ExecutorInfo`, …).
Validated as strictly as the scheduler API: an unknown field is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from .protocol import register, validate

MESSAGES: dict[str, dict[str, str]] = {
    "executor.Call": {"executor_id": "ExecutorID!", "framework_id": "FrameworkID!", "type": "enum:executor.Call.Type",
        "subscribe": "executor.Call.Subscribe", "update": "executor.Call.Update", "message": "executor.Call.Message"},
    "executor.Call.Subscribe": {"unacknowledged_tasks": "TaskInfo*",
        "unacknowledged_updates": "executor.Call.Update*"},
    "executor.Call.Update": {"status": "TaskStatus!"},
    "executor.Call.Message": {"data": "bytes!"},
    "executor.Event": {"type": "enum:executor.Event.Type", "subscribed": "executor.Event.Subscribed",
        "acknowledged": "executor.Event.Acknowledged", "launch": "executor.Event.Launch",
        "launch_group": "executor.Event.LaunchGroup", "kill": "executor.Event.Kill",
        "message": "executor.Event.Message", "error": "executor.Event.Error"},
    "executor.Event.Subscribed": {"executor_info": "ExecutorInfo!", "framework_info": "FrameworkInfo!",
        "agent_info": "AgentInfo!", "container_id": "ContainerID"},
    "executor.Event.Launch": {"task": "TaskInfo!"},
    "executor.Event.LaunchGroup": {"task_group": "TaskGroupInfo!"},
    "executor.Event.Kill": {"task_id": "TaskID!", "kill_policy": "KillPolicy"},
    "executor.Event.Acknowledged": {"task_id": "TaskID!", "uuid": "bytes!"},
    "executor.Event.Message": {"data": "bytes!"},
    "executor.Event.Error": {"message": "string!"},
    "AgentInfo": {"hostname": "string!", "port": "int32", "resources": "Resource*", "attributes": "Attribute*",
        "id": "AgentID", "domain": "DomainInfo", "capabilities": "~AgentInfo.Capability"},
    "ContainerID": {"value": "string!", "parent": "ContainerID"},
    "TaskGroupInfo": {"tasks": "TaskInfo*"},
}

ENUMS: dict[str, tuple[str, ...]] = {
    "executor.Call.Type": ("UNKNOWN", "SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT"),
    "executor.Event.Type": ("UNKNOWN", "SUBSCRIBED", "LAUNCH", "LAUNCH_GROUP", "KILL", "ACKNOWLEDGED", "MESSAGE",
                            "ERROR", "SHUTDOWN", "HEARTBEAT"),
}

_registered = False


def ensure_registered() -> None:
    global _registered
    if not _registered:
        register(MESSAGES, ENUMS)
        _registered = True


def validate_call(call: Any) -> None:
    ensure_registered()
    validate("executor.Call", call)


def validate_event(event: Any) -> None:
    ensure_registered()
    validate("executor.Event", event)
