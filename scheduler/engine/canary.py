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

A deployment may run several canaries (one per canary app of a group written whole); each
moves on its own, and the abort of any one fails the whole deployment and rolls every app of
it back, the reason naming the app. A person's ``promote`` and ``abort``
(``POST /v2/deployments/{id}/promote|abort``) take the same path at once, for every canary of
the deployment or, with ``appId``, for that app's. Analysis figures come from an ``analyse`` callable; without one (no HAProxy
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
        for run_id, run in list(self._state.deployments.items()):
            for app_id in [c.app_id for c in run.canaries if c.in_steps]:
                current = self._state.deployments.get(run_id)
                if current is None:
                    break           # an earlier canary of it aborted the deployment
                try:
                    self._move(current, app_id, now, None)
                except Exception:      # one broken canary must not stop the scheduling loop
                    log.exception("canary of %s in deployment %s could not be moved on", app_id, run_id)

    # -- a person's requests ------------------------------------------------------------
    def promote(self, deployment_id: str, mode: str, app_id: str | None = None) -> DeploymentRun:
        """Promote every canary of the deployment still in its steps, or only ``app_id``'s.

        All or nothing: when one of them has not begun its steps (instances not all healthy and
        ready) nothing is promoted, so a person never leaves one canary a step ahead by accident."""
        if mode not in ("next", "full"):
            raise InvalidRequest(f'"mode" must be "next" or "full", not {mode!r}')
        run, chosen = self._chosen(deployment_id, app_id)
        stepping = [c for c in chosen if c.in_steps]
        if not stepping:
            if len(chosen) == 1 and chosen[0].state is not None:
                raise Conflict(f"the canary {self._of(run, chosen[0])}of deployment {deployment_id} is already "
                               f"{chosen[0].state.phase}")
            raise Conflict(f"no canary of deployment {deployment_id} is in its steps any more")
        later = [c.app_id for c in stepping if run.action_for(c.app_id) is None]
        if len(later) == len(stepping):
            raise Conflict(f"the canary of {', '.join(later)} in deployment {deployment_id} waits for an earlier "
                           "step of the deployment (its dependencies) to finish")
        stepping = [c for c in stepping if c.app_id not in later]    # their turn comes with their step
        waiting = [c.app_id for c in stepping if c.state is None and not self._startable(run, c.app_id)]
        if waiting:
            raise Conflict(f"the canary instances of {', '.join(waiting)} in deployment {deployment_id} are not all "
                           "healthy and ready yet; promote once the steps have begun")
        now = self._clock.now()
        for canary in stepping:
            current = self._state.deployments.get(deployment_id)
            if current is None:
                break               # an analysis due in this call aborted the deployment
            run = self._move(current, canary.app_id, now, "full" if mode == "full" else "next") or current
        return run

    def abort(self, deployment_id: str, reason: str = "aborted by request", app_id: str | None = None
              ) -> DeploymentRun:
        """Abort the deployment's canaries (or ``app_id``'s): either way the whole deployment fails
        and rolls back, as one canary failing its analysis does."""
        run, chosen = self._chosen(deployment_id, app_id)
        stepping = [c for c in chosen if c.in_steps]
        if not stepping:
            raise Conflict(f"the canary {self._of(run, chosen[0] if app_id else None)}of deployment {deployment_id} "
                           "is already past its steps; DELETE /v2/deployments/{id} rolls the deployment back")
        self._abort(run, app_id, reason)
        return run

    @staticmethod
    def _of(run: DeploymentRun, canary: CanaryRun | None) -> str:
        return f"of {canary.app_id} " if canary is not None and len(run.canaries) > 1 else ""

    def _chosen(self, deployment_id: str, app_id: str | None) -> tuple[DeploymentRun, list[CanaryRun]]:
        run = self._state.deployments.get(deployment_id)
        if run is None:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        if not run.canaries:
            raise Conflict(f"deployment {deployment_id} is not a canary deployment")
        if app_id is None:
            return run, list(run.canaries)
        canary = run.canary_of(app_id)
        if canary is None:
            raise NotFound(f"deployment {deployment_id} runs no canary of app {app_id}; its canaries: "
                           f"{', '.join(c.app_id for c in run.canaries)}")
        return run, [canary]

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

    def _size(self, run: DeploymentRun, app_id: str) -> int | None:
        spec = canary_spec(run.plan, app_id)
        if spec is None:
            return None
        target = run.plan.target.get(app_id)
        return canary_size(spec, target.instances if target is not None else spec.instances)

    def _startable(self, run: DeploymentRun, app_id: str) -> bool:
        """The canary's instances are all healthy and ready: its steps may begin."""
        size = self._size(run, app_id)
        return size is not None and self._ready_new(app_id) >= size

    def _move(self, run: DeploymentRun, app_id: str, now: float, promote: Promote | None) -> DeploymentRun | None:
        """Advance the canary of ``app_id``; the run as stored after it, None when nothing could move."""
        canary = run.canary_of(app_id)
        spec = canary_spec(run.plan, app_id)
        size = self._size(run, app_id)
        if canary is None or spec is None or size is None:
            return None
        state = canary.state
        verdict = None
        if (state is not None and spec.analysis is not None and state.next_analysis_at is not None
                and now >= state.next_analysis_at):
            verdict = self.analyse(run, canary, now)
        moved, transition = tick(canary, spec, self._ready_new(app_id), now, verdict, promote,
                                 progress_deadline_seconds=progress_deadline(run.plan), size=size)
        if transition is None:
            return None
        if promote is None and moved == canary and not transition.judged and not transition.entered:
            return run      # still waiting: nothing to store
        run = replace(run.with_canary(moved), last_progress_at=now)
        self._state.save_deployment(run)
        self._publish(run, moved, transition, len(spec.steps))
        for action in transition.actions:
            if isinstance(action, Abort):
                self._abort(run, app_id, action.reason)
                return run
        self._wake(app_id)
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

    def _abort(self, run: DeploymentRun, app_id: str | None, reason: str) -> None:
        """Fail the whole deployment and put every app's stable version back (canary instances
        killed). ``app_id``: the canary that failed or was aborted (None: all of them, by request);
        the other canaries still stepping are aborted with the deployment, each with an event."""
        named = [c.app_id for c in run.canaries if c.in_steps] if app_id is None else [app_id]
        log.warning("canary of %s aborted: %s", ", ".join(named), reason)
        self._state.forget_deployment(run.id)
        for canary in run.canaries:
            if canary.app_id in named:
                self._events.publish("canary_aborted_event", id=run.id, appId=canary.app_id, reason=reason)
            elif canary.in_steps:
                self._events.publish("canary_aborted_event", id=run.id, appId=canary.app_id,
                                     reason=f"the deployment was rolled back: the canary of {', '.join(named)} "
                                            f"aborted: {reason}")
        self._events.publish("deployment_failed", id=run.id, plan=run.plan.to_json(),
                             reason=f"canary of {', '.join(named)} aborted: {reason}")
        self._rollback(run)
        for canary in run.canaries:
            self._wake(canary.app_id)
