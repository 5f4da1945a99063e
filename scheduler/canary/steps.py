"""A canary's progress through its steps, as a value, and the pure transition that moves it.

The engine owns the clock, HAProxy and the tasks; this module owns the rules. Each tick it
calls :func:`advance` with the time, the verdict of an analysis interval judged since the
last call (None when none was) and a person's promote (None, ``"next"``, ``"full"``); it gets
back the new :class:`CanaryState` and the actions to carry out, in order:

* :class:`SetWeight` ``(w)``: give the canary w% of the app's traffic (``weights.py``);
* :class:`Wait` ``(until, analyse_at)``: nothing to do before ``until`` (None: until a
  person promotes) except judging an interval at ``analyse_at``;
* :class:`StartFullRoll`: the steps are done; roll the rest of the app under the usual
  upgradeStrategy and clear the canary weights. :class:`SwitchOver` is its blue/green
  twin: send all traffic to the new set in one step (the state keeps ``weight`` 100 and
  ``switched``, so the weights hold until the old set is gone), then drain and kill the
  old one;
* :class:`Abort` ``(reason)``: canary weight 0, canary instances killed, app version back.

Rules (the why is in each line):

* ``setWeight`` takes no time: it is applied and the next step starts in the same call.
* A timed pause ends when its seconds have passed *and*, if the canary has an analysis,
  the latest interval judged in this step passed: time alone never promotes a canary
  that is failing or unmeasured. With an analysis every pause lasts at least one interval.
* A manual pause (``{"pause": {}}``) ends only by promote; analysis keeps running and
  failures still abort, because a person may be slower than a bad canary.
* Every failing interval counts (passes do not reset the count, as in Flagger); reaching
  ``failureLimit`` aborts at once.
* Missing data pauses: an inconclusive interval neither passes nor counts as a failure,
  but a timed pause that has seen no conclusive interval (and no step change) for the
  progress deadline aborts, so an unmeasurable canary cannot hold a deployment forever.
  Manual pauses are exempt: waiting is what they are for.
* ``promote="next"`` ends the current pause now, whatever the analysis says (a person
  decided); ``"full"`` skips every remaining step. A promote on a finished or aborted
  canary changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from app_definitions.strategies import Canary, CanaryStep

from .analysis import Verdict
from .errors import StateMismatch

__all__ = [
    "Abort",
    "Action",
    "CanaryState",
    "Phase",
    "Promote",
    "SetWeight",
    "StartFullRoll",
    "SwitchOver",
    "Transition",
    "Wait",
    "abort",
    "advance",
    "begin",
]

Phase = Literal["steps", "promoted", "aborted"]
Promote = Literal["next", "full"]


@dataclass(frozen=True)
class SetWeight:
    """Send ``weight`` % of the app's traffic to the canary servers."""

    weight: int


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until`` (None: until a person promotes); judge an interval at ``analyse_at``."""

    until: float | None
    analyse_at: float | None
    reason: str


@dataclass(frozen=True)
class StartFullRoll:
    """The steps are done: roll the rest of the app to the new version and clear the canary weights."""


@dataclass(frozen=True)
class SwitchOver:
    """Blue/green: switch all traffic to the new set in one step, then drain and kill the old set."""


@dataclass(frozen=True)
class Abort:
    """Roll back: canary weight 0, canary instances killed, the app's version back to the stable one."""

    reason: str


Action = SetWeight | Wait | StartFullRoll | SwitchOver | Abort


@dataclass(frozen=True)
class CanaryState:
    """Where a canary release stands; every time in it is the ``now`` some call was given.

    ``step_index`` is the step being executed (``len(steps)`` once they are all done).
    ``progress_at``: when a step last began or an interval last gave a conclusive verdict
    (the progress deadline counts from it). ``step_passed``: the latest verdict judged in
    the current step was a pass. ``reason`` says why the canary was aborted or promoted.
    ``switched``: a blue/green release sent all traffic to its new set (promoted): unlike a
    canary's full roll, the weights stay (new 100%, old 0) while the old set drains.
    """

    started_at: float
    step_started_at: float
    progress_at: float
    step_index: int = 0
    weight: int = 0
    failures: int = 0
    manual_pause: bool = False
    phase: Phase = "steps"
    reason: str | None = None
    step_passed: bool = False
    next_analysis_at: float | None = None
    last_verdict: Verdict | None = None
    switched: bool = False

    @property
    def finished(self) -> bool:
        """True once promoted or aborted: nothing moves it any more."""
        return self.phase != "steps"

    def to_json(self, spec: Canary) -> dict[str, Any]:
        """What ``/v2/deployments`` shows of the canary (times in seconds since the epoch)."""
        out: dict[str, Any] = {
            "phase": self.phase, "step": self.step_index, "steps": len(spec.steps), "weight": self.weight,
            "stepStartedAt": self.step_started_at, "failures": self.failures,
            "waitingForPromotion": self.manual_pause and not self.finished,
        }
        if spec.analysis is not None:
            out["failureLimit"] = spec.analysis.failure_limit
        if spec.blue_green:
            out["blueGreen"] = True
            out["switched"] = self.switched
        if self.reason is not None:
            out["reason"] = self.reason
        if self.last_verdict is not None:
            out["lastAnalysis"] = self.last_verdict.to_json()
        return out


@dataclass(frozen=True)
class Transition:
    """A new state and what to do about it.

    ``entered``: the step indices begun in this call (one ``canary_step`` event each);
    ``judged``: a verdict was taken into account (``canary_analysis``); ``by_person``: a
    promote was applied. ``canary_promoted``/``canary_aborted`` follow from the actions.
    """

    state: CanaryState
    actions: tuple[Action, ...] = ()
    entered: tuple[int, ...] = ()
    judged: bool = False
    by_person: bool = False


def _enter(state: CanaryState, index: int, now: float) -> CanaryState:
    """``state`` at the start of step ``index``: per-step judgement starts afresh."""
    return replace(state, step_index=index, step_started_at=now, progress_at=now, step_passed=False,
                   manual_pause=False, next_analysis_at=None)


def _finish(state: CanaryState, spec: Canary, reason: str) -> tuple[CanaryState, Action]:
    done = replace(state, step_index=len(spec.steps), phase="promoted", reason=reason, manual_pause=False,
                   next_analysis_at=None)
    if spec.blue_green:
        return replace(done, weight=100, switched=True), SwitchOver()
    return done, StartFullRoll()


def _aborted(state: CanaryState, reason: str) -> Transition:
    return Transition(replace(state, phase="aborted", reason=reason, weight=0, manual_pause=False,
                              next_analysis_at=None), (Abort(reason),))


def _pause_wait(state: CanaryState, step: CanaryStep, spec: Canary, now: float) -> tuple[CanaryState, Wait] | None:
    """The wait of a pause step, or None when the pause is over."""
    assert step.pause is not None
    analysis = spec.analysis
    if analysis is not None and state.next_analysis_at is None:
        state = replace(state, next_analysis_at=state.step_started_at + analysis.interval_seconds)
    analyse_at = state.next_analysis_at
    if step.pause.is_manual:
        return replace(state, manual_pause=True), Wait(None, analyse_at, "waiting for a person to promote")
    until = state.step_started_at + step.pause.seconds
    if now < until:
        return state, Wait(until, analyse_at, f"pausing {step.pause.seconds}s")
    if analysis is None or state.step_passed:
        return None
    held = "the last interval failed" if state.last_verdict is not None and state.last_verdict.outcome == "fail" \
        else "waiting for a passing analysis interval"
    return state, Wait(None, analyse_at, held)


def _run(state: CanaryState, spec: Canary, now: float, actions: list[Action], entered: list[int]) -> CanaryState:
    """Carry out steps from the current one until one has to wait or none is left."""
    steps = spec.steps
    while state.step_index < len(steps):
        step = steps[state.step_index]
        if step.set_weight is not None:
            if step.set_weight != state.weight:
                actions.append(SetWeight(step.set_weight))
            state = _enter(replace(state, weight=step.set_weight), state.step_index + 1, now)
            entered.append(state.step_index)
            continue
        waiting = _pause_wait(state, step, spec, now)
        if waiting is not None:
            state, wait = waiting
            actions.append(wait)
            return state
        state = _enter(state, state.step_index + 1, now)
        entered.append(state.step_index)
    state, done = _finish(state, spec, "all steps passed")
    actions.append(done)
    return state


def begin(spec: Canary, now: float) -> Transition:
    """The canary's first transition, once its instances are healthy and ready: run step 0 on."""
    state = CanaryState(started_at=now, step_started_at=now, progress_at=now)
    actions: list[Action] = []
    entered = [0] if spec.steps else []
    state = _run(state, spec, now, actions, entered)
    return Transition(state, tuple(actions), tuple(i for i in entered if i < len(spec.steps)))


def abort(state: CanaryState, reason: str) -> Transition:
    """Abort on request (``DELETE /v2/deployments/{id}``); a finished canary stays as it is."""
    if state.finished:
        return Transition(state)
    return _aborted(state, reason)


def _record(state: CanaryState, spec: Canary, verdict: Verdict, now: float) -> CanaryState:
    assert spec.analysis is not None
    state = replace(state, last_verdict=verdict, next_analysis_at=now + spec.analysis.interval_seconds,
                    step_passed=verdict.outcome == "pass")
    if verdict.outcome == "fail":
        return replace(state, failures=state.failures + 1, progress_at=now)
    if verdict.outcome == "pass":
        return replace(state, progress_at=now)
    return state


def _stalled(state: CanaryState, spec: Canary, now: float, deadline: float) -> str | None:
    """Why the canary must abort for lack of data, or None."""
    if deadline <= 0 or spec.analysis is None or state.step_index >= len(spec.steps):
        return None
    pause = spec.steps[state.step_index].pause
    if pause is None or pause.is_manual or now - state.progress_at < deadline:
        return None
    last = f": {state.last_verdict.reason}" if state.last_verdict is not None else ""
    return f"no conclusive analysis for {now - state.progress_at:.0f}s (progress deadline {deadline:g}s){last}"


def advance(state: CanaryState, spec: Canary, now: float, verdict: Verdict | None = None,
            promote: Promote | None = None, *, progress_deadline_seconds: float = 0.0) -> Transition:
    """The canary one tick later: apply the verdict, then the promote, then run the steps.

    ``verdict`` is an interval judged since the last call (ignored without an analysis);
    ``progress_deadline_seconds`` is the app's ``upgradeStrategy.progressDeadlineSeconds``
    (0: wait for data forever). A finished canary is returned unchanged with no action.
    Raises :class:`StateMismatch` if ``state`` lies past the steps of ``spec``.
    """
    if state.finished:
        return Transition(state)
    if not 0 <= state.step_index <= len(spec.steps):
        raise StateMismatch(f"step {state.step_index} of a canary with {len(spec.steps)} steps")
    judged = verdict is not None and spec.analysis is not None
    if judged:
        assert verdict is not None and spec.analysis is not None
        state = _record(state, spec, verdict, now)
        if state.failures >= spec.analysis.failure_limit:
            reason = (f"analysis failed {state.failures} time(s), reaching failureLimit "
                      f"{spec.analysis.failure_limit}: {verdict.reason}")
            return replace(_aborted(state, reason), judged=True)
    actions: list[Action] = []
    entered: list[int] = []
    if promote == "full":
        state, done = _finish(state, spec, "promoted in full by request")
        return Transition(state, (done,), (), judged, True)
    if promote == "next" and state.step_index < len(spec.steps):
        state = _enter(state, state.step_index + 1, now)
        entered.append(state.step_index)
    else:
        stalled = _stalled(state, spec, now, progress_deadline_seconds)
        if stalled is not None:
            return replace(_aborted(state, stalled), judged=judged)
    state = _run(state, spec, now, actions, entered)
    if promote == "next" and state.phase == "promoted":
        state = replace(state, reason="promoted past the last step by request")
    return Transition(state, tuple(actions), tuple(i for i in entered if i < len(spec.steps)), judged,
                      promote == "next")
