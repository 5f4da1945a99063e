"""Driving canary deployments: the I/O around ``deploy.canary_run.tick``.

Each scheduling round (before its pass) every running canary is moved on with the clock's
``now``: its instances' health decides when the steps begin, an analysis interval is judged
when one is due, and the transition's actions are carried out here:

    SetWeight       stored with the run; the API shows it on the app (``canaryTraffic``) and
                    the HAProxy bridge sets the server weights (``canary_step_event`` wakes it)
    StartFullRoll   stored; the next pass rolls the rest of the app, weights cleared
    SwitchOver      blue/green: stored with weight 100 (the bridge moves all traffic to the new
                    set in one step, Runtime API); the next pass's restart finds the whole new
                    set serving and kills the old set, each kill waiting its drain
    Abort           the deployment fails with the reason and the app is rolled back to the
                    stable version (canary instances killed), as a DELETE does

A person's ``promote`` and ``abort`` (``POST /v2/deployments/{id}/promote|abort``) take the
same path at once. Analysis figures come from an ``analyse`` callable; without one (no HAProxy
bridge in this process) every interval is inconclusive, which pauses the steps as the rules say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from scheduler.canary import Abort, SetWeight, StartFullRoll, SwitchOver, Transition, Verdict, VersionSample
from scheduler.canary.steps import Promote
from scheduler.deploy.canary_run import CanaryRun, canary_size, canary_spec, tick
from scheduler.deploy.runs import DeploymentRun, progress_deadline
from scheduler.engine.tasks import EventPublisher
from scheduler.engine.view import instance_health_view
from scheduler.errors import Conflict, InvalidRequest, NotFound
from scheduler.health.checker import HealthChecker
from scheduler.state.clock import Clock
from scheduler.state.cluster import ClusterState

log = logging.getLogger(__name__)

Analyse = Callable[[DeploymentRun, CanaryRun, float], Verdict]

NO_STATS = ("no HAProxy statistics reach this scheduler (no embedded HAProxy bridge): "
            "the canary cannot be measured")


def unmeasured(run: DeploymentRun, canary: CanaryRun, now: float) -> Verdict:
    """The verdict of an interval nothing measured: inconclusive, never a pass."""
    return Verdict("inconclusive", NO_STATS, VersionSample(), VersionSample())


class CanaryDriver:
    def __init__(self, state: ClusterState, checker: HealthChecker, events: EventPublisher, clock: Clock,
                 rollback: Callable[[DeploymentRun], object], wake: Callable[[str], None],
                 analyse: Analyse = unmeasured) -> None:
        self._state = state
        self._checker = checker
        self._events = events
        self._clock = clock
        self._rollback = rollback
        self._wake = wake
        self.analyse = analyse

    # -- the round ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Move every running canary on (called before each scheduling pass)."""
        for run in list(self._state.deployments.values()):
            if run.canary is not None and run.canary.in_steps:
                try:
                    self._move(run, now, None)
                except Exception:      # one broken canary must not stop the scheduling loop
                    log.exception("canary of deployment %s could not be moved on", run.id)

    # -- a person's requests ------------------------------------------------------------
    def promote(self, deployment_id: str, mode: str) -> DeploymentRun:
        if mode not in ("next", "full"):
            raise InvalidRequest(f'"mode" must be "next" or "full", not {mode!r}')
        run = self._canary_run(deployment_id)
        assert run.canary is not None
        if not run.canary.in_steps:
            raise Conflict(f"the canary of deployment {deployment_id} is already {run.canary.state.phase}"
                           if run.canary.state else f"deployment {deployment_id} has no canary running")
        moved = self._move(run, self._clock.now(), "full" if mode == "full" else "next")
        if moved is None:
            raise Conflict(f"the canary instances of deployment {deployment_id} are not all healthy and ready yet; "
                           "promote once the steps have begun")
        return moved

    def abort(self, deployment_id: str, reason: str = "aborted by request") -> DeploymentRun:
        run = self._canary_run(deployment_id)
        assert run.canary is not None
        if not run.canary.in_steps:
            raise Conflict(f"the canary of deployment {deployment_id} is already past its steps; "
                           "DELETE /v2/deployments/{id} rolls the deployment back")
        self._abort(run, reason)
        return run

    def _canary_run(self, deployment_id: str) -> DeploymentRun:
        run = self._state.deployments.get(deployment_id)
        if run is None:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        if run.canary is None:
            raise Conflict(f"deployment {deployment_id} is not a canary deployment")
        return run

    # -- moving one canary --------------------------------------------------------------
    def _ready_new(self, app_id: str) -> int:
        record = self._state.apps.get(app_id)
        if record is None:
            return 0
        count = 0
        for inst in self._state.instances_of(app_id):
            if inst.active and inst.config_version == record.config_version:
                health = instance_health_view(self._state, self._checker, inst)
                count += health.healthy and health.ready
        return count

    def _move(self, run: DeploymentRun, now: float, promote: Promote | None) -> DeploymentRun | None:
        """Advance one canary; the run as stored after it, None when nothing could move."""
        canary = run.canary
        assert canary is not None
        spec = canary_spec(run.plan, canary.app_id)
        if spec is None:
            return None
        state = canary.state
        verdict = None
        if (state is not None and spec.analysis is not None and state.next_analysis_at is not None
                and now >= state.next_analysis_at):
            verdict = self.analyse(run, canary, now)
        target = run.plan.target.get(canary.app_id)
        size = canary_size(spec, target.instances if target is not None else spec.instances)
        moved, transition = tick(canary, spec, self._ready_new(canary.app_id), now, verdict, promote,
                                 progress_deadline_seconds=progress_deadline(run.plan), size=size)
        if transition is None:
            return None
        if promote is None and moved == canary and not transition.judged and not transition.entered:
            return run      # still waiting: nothing to store
        run = replace(run, canary=moved, last_progress_at=now)
        self._state.save_deployment(run)
        self._publish(run, moved, transition, len(spec.steps))
        for action in transition.actions:
            if isinstance(action, Abort):
                self._abort(run, action.reason)
                return run
        self._wake(canary.app_id)
        return run

    def _publish(self, run: DeploymentRun, canary: CanaryRun, transition: Transition, steps: int) -> None:
        state = transition.state
        if transition.judged and state.last_verdict is not None:
            self._events.publish("canary_analysis_event", id=run.id, appId=canary.app_id,
                                 analysis=state.last_verdict.to_json(), failures=state.failures)
        if transition.entered or any(isinstance(a, SetWeight) for a in transition.actions):
            self._events.publish("canary_step_event", id=run.id, appId=canary.app_id, step=state.step_index,
                                 steps=steps, entered=list(transition.entered), weight=state.weight,
                                 waitingForPromotion=state.manual_pause and not state.finished,
                                 byPerson=transition.by_person)
        if any(isinstance(a, StartFullRoll) for a in transition.actions):
            log.info("canary of %s promoted (%s): rolling the rest", canary.app_id, state.reason)
            self._events.publish("canary_promoted_event", id=run.id, appId=canary.app_id, reason=state.reason,
                                 byPerson=transition.by_person)
        if any(isinstance(a, SwitchOver) for a in transition.actions):
            log.info("blue/green release of %s switched (%s): draining the old set", canary.app_id, state.reason)
            self._events.publish("canary_promoted_event", id=run.id, appId=canary.app_id, reason=state.reason,
                                 byPerson=transition.by_person, blueGreen=True, weight=100)

    def _abort(self, run: DeploymentRun, reason: str) -> None:
        """Fail the deployment with the reason and put the stable version back (canary instances killed)."""
        assert run.canary is not None
        log.warning("canary of %s aborted: %s", run.canary.app_id, reason)
        self._state.forget_deployment(run.id)
        self._events.publish("canary_aborted_event", id=run.id, appId=run.canary.app_id, reason=reason)
        self._events.publish("deployment_failed", id=run.id, plan=run.plan.to_json(), reason=f"canary aborted: {reason}")
        self._rollback(run)
        self._wake(run.canary.app_id)
