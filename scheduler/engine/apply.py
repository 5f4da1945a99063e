"""Carrying out a `Pass`: the I/O half of a scheduling pass.

Order matters only where the pass's own decisions depend on it: expired backoffs are cleared
before launches (the pass already launched past them), kills go out before launches (they
free what the launches were placed on in the same pass's accounting), and deployment
verdicts come last (a failed deployment's rollback is a new write through `AppWrites`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from scheduler.decide.scheduling import Pass
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.tasks import EventPublisher, TaskRunner
from scheduler.state.cluster import ClusterState, QueueEntry
from scheduler.state.model import STAGING, Instance, new_instance_id

log = logging.getLogger(__name__)


def apply_pass(p: Pass, now: float, *, state: ClusterState, tasks: TaskRunner, events: EventPublisher,
               rollback: Callable[[DeploymentRun], object]) -> None:
    for app_id in p.expired_backoffs:
        state.set_backoff(app_id, None)
    for kill in p.kills:
        inst = state.instances.get(kill.instance_id)
        if inst is not None:
            tasks.kill(inst, kill.reason)
    for instance_id in p.expunged:
        inst = state.instances.get(instance_id)
        if inst is not None:
            tasks.expunge(inst)
    _apply_queue(p, now, state)
    launched: list[Instance] = []
    for launch in p.launches:
        record = state.apps[launch.app_id]
        app, version, config_version, service_ports = \
            record.definition, record.version, record.config_version, record.service_ports
        if launch.stable is not None:       # a stable instance replaced during a canary phase
            app, version, config_version = launch.stable.definition, launch.stable.version, launch.stable.config_version
            service_ports = tuple(spec.service_port for spec in app.port_specs())
        inst = Instance(
            instance_id=new_instance_id(app.id), app_id=app.id, version=version,
            config_version=config_version, agent_id=launch.agent_id, host=launch.host,
            ports=launch.ports, service_ports=service_ports, state=STAGING, staged_at=now,
            resources={"cpus": app.cpus, "mem": app.mem, "disk": app.disk}, drain_seconds=tasks.drain_for(app))
        tasks.launch(inst, app)
        launched.append(inst)
    tasks.backend.pass_finished(launched)
    for app_id in p.forgotten_apps:
        state.forget_app_index(app_id)
    for verdict in p.runs:
        run = verdict.run
        if verdict.advanced:
            before = state.deployments.get(run.id, run)
            events.publish("deployment_step_success", plan=run.plan.to_json(),
                           currentStep={"actions": before.to_json()["currentActions"]})
            state.save_deployment(run, at_once=False)     # a restart resumes from the last stored step
        if verdict.finished:
            state.forget_deployment(run.id, at_once=False)
            events.publish("deployment_success", id=run.id, plan=run.plan.to_json())
        elif verdict.failure is not None:
            _fail(run, verdict.failure, verdict.rollback, state, events, rollback)
        else:
            state.note_progress(run)


def _apply_queue(p: Pass, now: float, state: ClusterState) -> None:
    for app_id, status in p.queue.items():
        if status is None:
            state.set_queue(app_id, None)
            continue
        entry = state.queue.get(app_id) or QueueEntry(count=status.count, since=now)
        entry.count = status.count
        entry.processed_offers += status.offers_seen
        if status.offers_unused:
            entry.unused_offers += status.offers_seen
            entry.last_unused_offer_at = now
        entry.message = status.message
        if status.placed and not status.reason_kept:
            entry.rejections = dict(status.rejections)
        state.set_queue(app_id, entry)


def _fail(run: DeploymentRun, reason: str, rollback_wanted: bool, state: ClusterState, events: EventPublisher,
          rollback: Callable[[DeploymentRun], object]) -> None:
    log.warning("deployment %s failed: %s", run.id, reason)
    state.forget_deployment(run.id)
    events.publish("deployment_step_failure", plan=run.plan.to_json(),
                   currentStep={"actions": run.to_json()["currentActions"]})
    events.publish("deployment_failed", id=run.id, plan=run.plan.to_json(), reason=reason)
    if rollback_wanted:
        log.warning("rolling back deployment %s", run.id)
        rollback(run)
