"""How health verdicts reach the scheduler: the checker's `HealthSubject`, backed by the state.

A flip publishes `health_status_changed_event`, a counted failure `failed_health_check_event`,
and an instance past maxConsecutiveFailures is killed with a FailedHealthChecks reason (which
then counts toward the app's backoff, as Marathon does). A verdict that changes what the
scheduler decides on (alive, a counted failure, a kill) wakes the loop for the instance's app,
since deployments wait on health and readiness; a success after a success changes nothing
there, and waking a pass for each of thousands a second would cost a pass each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from app_definitions import AppDefinition, HealthCheck

from scheduler.decide.status import FAILED_HEALTH_CHECKS
from scheduler.engine.tasks import EventPublisher, TaskKiller
from scheduler.health.state import CheckOutcome
from scheduler.state.cluster import ClusterState
from scheduler.state.model import Instance

log = logging.getLogger(__name__)


class StateHealthSubject:
    def __init__(self, state: ClusterState, events: EventPublisher, killer: TaskKiller,
                 wake: Callable[[str], None]) -> None:
        self._state = state
        self._events = events
        self._killer = killer
        self._wake = wake

    def instances(self) -> Iterable[Instance]:
        return self._state.instances.values()

    def instance(self, instance_id: str) -> Instance | None:
        return self._state.instances.get(instance_id)

    def checks_of(self, inst: Instance) -> list[HealthCheck]:
        return self._state.health_checks_of(inst)

    def readiness_of(self, inst: Instance) -> AppDefinition | None:
        record = self._state.apps.get(inst.app_id)
        if record is None or not record.definition.readiness_checks or inst.config_version != record.config_version:
            return None
        return record.definition

    def on_ready(self, inst: Instance) -> None:
        self._wake(inst.app_id)

    def on_health(self, inst: Instance, check: dict[str, Any], outcome: CheckOutcome) -> None:
        if outcome.flipped:
            self._events.publish("health_status_changed_event", appId=inst.app_id, instanceId=inst.instance_id,
                                 version=inst.version, alive=outcome.record.alive)
        if outcome.counted_failure:
            self._events.publish("failed_health_check_event", appId=inst.app_id, taskId=inst.instance_id,
                                 instanceId=inst.instance_id, healthCheck=check)
        current = self._state.instances.get(inst.instance_id, inst)
        if outcome.kill and not current.killing:
            reason = f"{FAILED_HEALTH_CHECKS}: {outcome.record.last_failure_cause}"
            self._events.publish("unhealthy_instance_kill_event", appId=inst.app_id, taskId=inst.instance_id,
                                 instanceId=inst.instance_id, version=inst.version, reason=reason,
                                 host=inst.host, slaveId=inst.agent_id)
            log.warning("killing %s: %s", inst.instance_id, reason)
            self._killer.kill(current, reason=reason)
        if outcome.changes_health:
            self._wake(inst.app_id)
