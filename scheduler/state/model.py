"""The scheduler's record of one task (Marathon's instance with its single task).

An `Instance` is plain data: it is persisted as JSON, rendered by the API, and fed to the pure
decision functions. Nothing here does I/O.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import Any

STAGING = "TASK_STAGING"
STARTING = "TASK_STARTING"
RUNNING = "TASK_RUNNING"
KILLING = "TASK_KILLING"
FINISHED = "TASK_FINISHED"
FAILED = "TASK_FAILED"
KILLED = "TASK_KILLED"
LOST = "TASK_LOST"
ERROR = "TASK_ERROR"
UNREACHABLE = "TASK_UNREACHABLE"

TERMINAL_STATES = frozenset({FINISHED, FAILED, KILLED, LOST, ERROR, "TASK_DROPPED", "TASK_GONE",
                             "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"})
ACTIVE_STATES = frozenset({STAGING, STARTING, RUNNING})


_CONDITIONS = {STAGING: "Staging", STARTING: "Starting", RUNNING: "Running", KILLING: "Killing",
               FINISHED: "Finished", FAILED: "Failed", KILLED: "Killed", LOST: "Gone", ERROR: "Error",
               "TASK_DROPPED": "Dropped", "TASK_GONE": "Gone", "TASK_UNKNOWN": "Unknown",
               "TASK_UNREACHABLE": "Unreachable", "TASK_GONE_BY_OPERATOR": "Gone"}


def condition_of(task_state: str) -> str:
    """Marathon's instance condition for a Mesos task state (instance_changed_event)."""
    return _CONDITIONS.get(task_state, "Unknown")


def new_instance_id(app_id: str) -> str:
    """Marathon 1.8+ task id form: `<app path with / -> _>.instance-<uuid>._app.1`."""
    return f"{app_id.strip('/').replace('/', '_')}.instance-{uuid.uuid4()}._app.1"


@dataclass(frozen=True, slots=True)       # slots: a large cluster keeps a hundred thousand of them
class Instance:
    instance_id: str
    app_id: str
    version: str                 # the app version this task was launched from
    config_version: str          # lastConfigChangeAt of that version: differs => needs replacing
    agent_id: str
    host: str
    ports: tuple[int, ...]
    service_ports: tuple[int, ...]
    state: str = STAGING
    staged_at: float = 0.0
    started_at: float | None = None
    pid: int | None = None
    pid_start_time: int | None = None
    killing: bool = False        # a kill was asked for; it no longer counts toward `instances`
    kill_reason: str = ""        # why we killed it; "FailedHealthChecks" counts toward backoff
    message: str = ""
    resources: dict[str, float] = field(default_factory=dict)
    container_id: str | None = None   # Docker tasks: the engine's container id (None for processes)
    drain_seconds: float = 0.0   # how long a kill waits for the load balancer to let go of it
    unreachable_since: float | None = None   # while TASK_UNREACHABLE: since when (the strategy counts from it)
    returned_inactive: bool = False   # came back after it was replaced: the first to go when the app has too many

    def __post_init__(self) -> None:
        # one dict per distinct allocation, not per instance: 5,000 tasks of 1,000 apps held
        # 5,000 equal {"cpus", "mem", "disk"} dicts (~1 MB); instances are values, never mutated
        object.__setattr__(self, "resources", _shared_resources(self.resources))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES and not self.killing

    @property
    def holds_resources(self) -> bool:
        """Counted as taken when the backend computes the free offers: active, or still ending."""
        return self.active or self.killing

    def with_(self, **changes: Any) -> "Instance":
        return replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        """The stored form. Written field by field: `dataclasses.asdict` recurses through every
        value and took most of the time of writing a pass of many launches down."""
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["ports"] = list(self.ports)
        data["service_ports"] = list(self.service_ports)
        data["resources"] = dict(self.resources)
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Instance":
        data = dict(data)
        data["ports"] = tuple(data.get("ports", ()))
        data["service_ports"] = tuple(data.get("service_ports", ()))
        # decoded JSON gives every record its own copy of strings all instances of an app
        # (and all of an agent) share; a recovered cluster would hold thousands of each
        for name in _SHARED_STRINGS:
            value = data.get(name)
            if type(value) is str:
                data[name] = sys.intern(value)
        return cls(**data)


_FIELD_NAMES = tuple(f.name for f in fields(Instance))
_SHARED_STRINGS = ("app_id", "version", "config_version", "agent_id", "host", "state", "kill_reason")

_SHARED_RESOURCES_MAX = 4096
_shared_resource_dicts: dict[tuple[tuple[str, type, Any], ...], dict[str, float]] = {}


def _shared_resources(resources: dict[str, float]) -> dict[str, float]:
    """The one dict holding exactly these items (same order, same value types), kept for every
    instance with this allocation. Bounded: past `_SHARED_RESOURCES_MAX` distinct allocations
    (far more than apps ever differ in) a dict is kept as given."""
    try:
        key = tuple((name, type(value), value) for name, value in resources.items())
        shared = _shared_resource_dicts.get(key)
    except (TypeError, AttributeError):     # not a plain mapping of hashables: keep as given
        return resources
    if shared is None:
        if len(_shared_resource_dicts) >= _SHARED_RESOURCES_MAX:
            return resources
        shared = _shared_resource_dicts[key] = dict(resources)   # a copy: the caller's may change
    return shared
