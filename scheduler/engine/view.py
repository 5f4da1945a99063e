"""Building the `ClusterView` a scheduling pass decides on, from the state, the health
checker and the backend. The only place that turns live objects into the pass's plain data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scheduler.backends import ClusterBackend
from scheduler.decide.scheduling import ClusterView, InstanceHealth
from scheduler.health.checker import HealthChecker
from scheduler.health.state import instance_health
from scheduler.state.cluster import ClusterState
from scheduler.state.model import RUNNING, Instance


def healthy(state: ClusterState, checker: HealthChecker, inst: Instance) -> bool | None:
    """True/False from its version's health checks; None when it has none or nothing is known yet."""
    return instance_health(checker.records.get(inst.instance_id), bool(state.health_checks_of(inst)))


_UNCHECKED = {(considered, ready): InstanceHealth(healthy=considered, ready=ready)
              for considered in (False, True) for ready in (False, True)}


def instance_health_view(state: ClusterState, checker: HealthChecker, inst: Instance) -> InstanceHealth:
    if inst.instance_id not in checker.records:
        # No check has run (none configured, or not yet): the common case of a large launch,
        # answered without the verdict and failure-cause walks below.
        running = inst.state == RUNNING
        record = state.apps.get(inst.app_id)
        ready = checker.is_ready(inst.instance_id) if record is not None and record.definition.readiness_checks \
            else running
        return _UNCHECKED[(running and not state.health_checks_of(inst), ready)]
    has_checks = bool(state.health_checks_of(inst))
    verdict = instance_health(checker.records.get(inst.instance_id), has_checks)
    considered = inst.state == RUNNING and (verdict is True or (verdict is None and not has_checks))
    record = state.apps.get(inst.app_id)
    if record is not None and record.definition.readiness_checks:
        ready = checker.is_ready(inst.instance_id)
    else:
        ready = inst.state == RUNNING
    cause = next((r.last_failure_cause for r in checker.records.get(inst.instance_id) or [] if r.last_failure_cause),
                 None)
    return InstanceHealth(healthy=considered, ready=ready, failure_cause=cause)


def build_view(state: ClusterState, checker: HealthChecker, backend: ClusterBackend,
               app_ids: Iterable[str] | None, seed: int, parked: Mapping[str, int] | None = None) -> ClusterView:
    """A view of the apps to consider (None: all, plus orphans), with every running deployment's."""
    wanted = None if app_ids is None else frozenset(app_ids)
    ids = (state.app_ids_with_instances() | set(state.apps)) if wanted is None else set(wanted)
    ids |= {a for run in state.deployments.values() for a in run.plan.affected_app_ids}
    instances = {a: state.instances_of(a) for a in ids}
    health = {i.instance_id: instance_health_view(state, checker, i) for insts in instances.values() for i in insts}
    agents = {offer.agent.agent_id: offer.agent for offer in backend.offers({})}
    return ClusterView(
        apps=state.apps, instances=instances, deployments=list(state.deployments.values()),
        backoffs=state.backoffs, agents=agents,
        offers=lambda: backend.offers(state.usage.usage()),
        health=health, unsupported=lambda record: backend.unsupported_reason(record.definition),
        last_failures=state.last_failures,
        queue_reasons={a: e.message for a, e in state.queue.items()},
        app_ids=wanted, seed=seed, parked=parked or {})
