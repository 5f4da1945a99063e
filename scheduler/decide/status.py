"""What a task's status update means for its app: the pure half of handling an update.

A terminal update ends the instance; it counts toward the app's launch backoff when the task
failed on its own, or when the scheduler killed it for failing its health checks (then it is
reported as TASK_FAILED with that reason, as Marathon does). A kill the scheduler asked for
for any other reason (scale down, restart, delete) is no failure. A non-terminal update moves
the instance on, and notes when it became unreachable or came back (`decide/unreachable.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app_definitions import AppDefinition

from scheduler.decide import backoff as backoff_math
from scheduler.decide import unreachable
from scheduler.state.clock import iso_timestamp
from scheduler.state.model import TERMINAL_STATES, Instance

FAILED_HEALTH_CHECKS = "FailedHealthChecks"


@dataclass(frozen=True)
class StatusVerdict:
    instance: Instance | None                 # the updated instance; None when it ended
    backoff: backoff_math.Backoff | None      # a new backoff for the app, when the end was a failure
    failure: dict[str, Any] | None            # Marathon's lastTaskFailure, when it was one


def judge_status(inst: Instance, state: str, message: str, app: AppDefinition | None,
                 backoff: backoff_math.Backoff | None, now: float) -> StatusVerdict:
    if state not in TERMINAL_STATES:
        strategy = app.unreachable_strategy if app is not None else None
        moved = unreachable.on_update(inst, state, strategy, now)
        return StatusVerdict(moved.with_(state=state, message=message), None, None)
    failed_checks = inst.kill_reason.startswith(FAILED_HEALTH_CHECKS)
    if failed_checks:
        state, message = "TASK_FAILED", inst.kill_reason
    if app is None or not (failed_checks or not inst.killing and backoff_math.counts_as_failure(state)):
        return StatusVerdict(None, None, None)
    new_backoff = backoff_math.record_failure(backoff, now, app.backoff_seconds, app.backoff_factor,
                                              app.max_launch_delay_seconds)
    failure = {"appId": inst.app_id, "host": inst.host, "message": message, "state": state,
               "taskId": inst.instance_id, "timestamp": iso_timestamp(now), "version": inst.version,
               "slaveId": inst.agent_id}
    return StatusVerdict(None, new_backoff, failure)
