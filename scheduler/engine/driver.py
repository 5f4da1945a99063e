"""Driving deployments: what each app does in this pass, and when a step or a plan is done.

Mixed into Scheduler (like `mutations`), so the loop in `core` reads as: decide per app,
launch and kill, then advance deployments. The decisions themselves are the pure
`plan_convergence` and `next_restart_step`; this module feeds them the instance states
(health, readiness) and turns their answers into step progress, failures and rollbacks.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scheduler.state.apps import AppRecord
from scheduler.state.clock import parse_timestamp
from scheduler.decide.constraints import AgentView
from scheduler.deploy.runs import DeploymentRun, auto_rollback, progress_deadline, run_record, stall_reason, stalled
from scheduler.state.model import RUNNING, Instance
from scheduler.deploy.plan import DeploymentAction
from scheduler.decide.reconcile import Convergence, plan_convergence
from scheduler.decide.restart import InstanceState, next_restart_step

if TYPE_CHECKING:
    from scheduler.engine.core import Scheduler

log = logging.getLogger(__name__)

_Base: Any = object


class DeploymentDriver(_Base):
    def _run_for(self: "Scheduler", app_id: str) -> DeploymentRun | None:
        return next((run for run in self.deployments.values() if app_id in run.plan.affected_app_ids), None)

    def _considered_healthy(self: "Scheduler", inst: Instance) -> bool:
        """Marathon's consideredHealthy: running, and healthy by its checks (or it has none)."""
        if inst.state != RUNNING:
            return False
        health = self.healthy(inst)
        return health is True or (health is None and not self.health_checks_of(inst))

    def _ready(self: "Scheduler", inst: Instance) -> bool:
        """Readiness gates deployments only: no readiness check means ready once running."""
        if not self.apps[inst.app_id].definition.readiness_checks:
            return inst.state == RUNNING
        return self.health.is_ready(inst.instance_id)

    def _decide(self: "Scheduler", record: AppRecord, insts: list[Instance], action: DeploymentAction | None,
                agents: dict[str, AgentView]) -> tuple[Convergence, bool]:
        """What this pass does for one app, and whether its deployment action is complete.

        A StartApplication step holds a new app at 0 (its scale_to) until the step of its
        dependency level scales it up, which is what orders a group's deployment.
        """
        app = record.definition
        if action is not None and action.action == "RestartApplication":
            states = [InstanceState(instance_id=i.instance_id, is_new=i.config_version == record.config_version,
                                    healthy=self._considered_healthy(i), ready=self._ready(i),
                                    active=i.active, staged_at=i.staged_at) for i in insts]
            strategy = app.upgrade_strategy
            step = next_restart_step(app.instances, (strategy.minimum_health_capacity, strategy.maximum_over_capacity),
                                     states, resident=app.is_resident)
            return Convergence(launch=step.launch, kill=tuple(step.kill)), step.done
        target = action.scale_to if action is not None and action.scale_to is not None else app.instances
        plan = plan_convergence(target=target, instances=insts,
                                kill_selection=app.kill_selection, constraints=record.task_request.constraints,
                                agents=agents)
        active = [i for i in insts if i.active]
        complete = (not plan.launch and not plan.kill and len(active) == len(insts) == target
                    and all(self._considered_healthy(i) for i in active))
        return plan, complete

    def _new_healthy(self: "Scheduler", run: DeploymentRun) -> int:
        count = 0
        for action in run.current_actions():
            record = self.apps.get(action.app_id)
            if record is None:
                continue
            count += sum(1 for i in self.instances_of(action.app_id)
                         if i.config_version == record.config_version and self._considered_healthy(i)
                         and self._ready(i))
        return count

    def _advance_deployments(self: "Scheduler", done: dict[str, bool], t: float) -> None:
        for run in list(self.deployments.values()):
            # one step per pass: `done` was judged against this step's actions only
            if not run.finished and all(done.get(a.app_id, False) for a in run.current_actions()):
                self.events.publish("deployment_step_success", plan=run.plan.to_json(),
                                    currentStep={"actions": run.to_json()["currentActions"]})
                run.step_index += 1
                self.store.put_deployment(run.id, run_record(run))
                self._touched.update(a.app_id for a in run.current_actions())
                self.wake()
            if run.finished:
                self._forget_run(run.id)
                self.events.publish("deployment_success", id=run.id, plan=run.plan.to_json())
                continue
            marker = (run.step_index, self._new_healthy(run))
            if marker > run.progress_marker:
                run.progress_marker = marker
                run.last_progress_at = t
            elif stalled(run, t):
                self._fail(run)

    def _fail(self: "Scheduler", run: DeploymentRun) -> None:
        apps = [a.app_id for a in run.current_actions()]
        causes = {}
        for app_id in apps:
            for inst in self.instances_of(app_id):
                records = self.health.records.get(inst.instance_id) or []
                cause = next((r.last_failure_cause for r in records if r.last_failure_cause), None)
                if cause:
                    causes[app_id] = cause
        recent = {a: f for a, f in self.last_failures.items() if parse_timestamp(f["timestamp"]) >= run.started_at}
        reason = stall_reason(apps, recent, causes,
                              {a: (self.queue[a].message if a in self.queue else None) for a in apps},
                              progress_deadline(run.plan))
        log.warning("deployment %s failed: %s", run.id, reason)
        self._forget_run(run.id)
        self.events.publish("deployment_step_failure", plan=run.plan.to_json(),
                            currentStep={"actions": run.to_json()["currentActions"]})
        self.events.publish("deployment_failed", id=run.id, plan=run.plan.to_json(), reason=reason)
        self.failed_deployments[run.id] = reason
        if auto_rollback(run.plan):
            log.warning("rolling back deployment %s", run.id)
            self.rollback(run)
