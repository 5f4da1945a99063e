"""The scaling decision: fetched data in, desired instances and the reason out. Pure, numpy.

No I/O and no clock: ``now`` is passed in, and the state carried between cycles (the
recommendation history for stabilization, the threshold cycle counters) goes in and comes
back out as a value.

The pipeline of ``desired_instances`` (HPA's order):

1. **Hold** without touching the state when the app is blocked (a non-scaling deployment),
   the metrics source failed, no running task has a sample in the window, or the newest
   sample is older than the window (stale). Missing data never scales anything, in either
   direction, and never below ``min``.
2. **Recommend**: target tracking — the HPA replica calculator: ``ratio = mean / target``;
   inside ``1 ± tolerance`` → keep ``current``; else ``ceil(ratio × tasks)``; tasks without
   data ("missing") count as 100 % of target when scaling down and 0 % when scaling up, and
   not-yet-running instances ("unready") as 0 % when scaling up; if that fill-in flips the
   direction or lands inside the tolerance, keep ``current``. Threshold mode — consecutive
   cycle counters and the multiplier, as marathon-autoscale. Then clamp to [min, max].
3. **Stabilize**: the final size is ``current`` pulled up to the *lowest* recommendation of
   the last ``stabilization_up`` seconds and down to the *highest* of the last
   ``stabilization_down`` seconds (so a scale-down happens only after the load stayed low
   for the whole window).
4. **Limit the step**: at most ``2 × current`` (and at least ``current + 1``) up, at most
   half of ``current`` down; then clamp to [min, max] again.

[min, max] are the policy's as moved by its ``schedule`` windows active at ``now``. A raised
minimum is reached at once, past stabilization, the step limit and a metrics hold (not past a
running deployment or a suspended app); the decision's ``schedule`` names the windows.

``decide_all`` runs the same decision for many apps, observing all their samples in one numpy
pass. The sources answer a ``UsageBatch`` (every task's samples in columns); utilizations
that are views of it are read by row, with no Python object per task or sample, since the
aim is 2,000 apps × 10 tasks × 30 samples in ≤ 50 ms for the whole cycle (bench/autoscaler.py).

The samples are read in ``autoscaler.observe`` and the arithmetic of steps 2 to 4 for one app
lives in ``autoscaler.recommend`` (both re-exported here); this module composes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from metrics.usage import Series

from .observe import Observation, measure_columns, observe, observe_all
from .policy import TARGET, Policy
from .recommend import (Timeline, clamp, limit_step, stabilize, stabilize_timeline, target_recommendation,
                        target_recommendation_of_total, threshold_recommendation, timeline_of)
from .schedule import Bounds, bounds_at, raise_to_minimum

__all__ = ["SCALE_UP", "SCALE_DOWN", "NONE", "AppInputs", "AppState", "Observation", "Decision", "observe",
           "observe_all", "decide_all", "desired_instances", "clamp", "limit_step", "stabilize",
           "target_recommendation", "target_recommendation_of_total", "threshold_recommendation"]

SCALE_UP = "scale_up"
SCALE_DOWN = "scale_down"
NONE = "none"


@dataclass(frozen=True)
class AppInputs:
    """What the loop fetched about one app this cycle."""

    app_id: str
    current: int                                   # configured instances
    running: tuple[str, ...] = ()                  # ids of the tasks running now
    utilization: Mapping[str, Series] | None = None  # task id -> series; None: the source failed
    error: str | None = None                       # why `utilization` is None
    blocked: str | None = None                     # why the app must not be scaled now
    scale: float = 1.0                             # series value × scale = % of the allocation


@dataclass(frozen=True)
class AppState:
    """Carried from one cycle to the next for one app."""

    history: tuple[tuple[float, int], ...] = ()    # (time, clamped recommendation)
    up_cycles: int = 0
    down_cycles: int = 0

    @cached_property
    def timeline(self) -> Timeline | None:
        """The history as columns (None when it is not in time order), for ``stabilize_timeline``:
        worked out once per state, or handed over by the cycle that made the state."""
        return timeline_of(self.history)


def _carried(history: tuple[tuple[float, int], ...], up_cycles: int, down_cycles: int,
             timeline: Timeline | None) -> AppState:
    """The next ``AppState``, with the timeline stabilization already knows stored where
    ``cached_property`` keeps it (so it is not worked out again from the tuples)."""
    state = AppState(history, up_cycles, down_cycles)
    if timeline is not None:
        vars(state)["timeline"] = timeline
    return state


@dataclass(frozen=True)
class Decision:
    app_id: str
    time: float
    current: int
    desired: int
    action: str                                   # scale_up | scale_down | none
    reason: str
    metric: str | None = None
    mode: str | None = None
    observed: float | None = None                 # mean utilisation, %
    target: float | None = None
    tasks_with_data: int = 0
    missing: int = 0
    recommendation: int | None = None             # raw, before clamping
    stabilized: int | None = None
    schedule: Mapping[str, Any] | None = None     # bounds and windows, when the policy has a schedule
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scales(self) -> bool:
        return self.action != NONE

    def to_json(self) -> dict[str, Any]:
        out = {"appId": self.app_id, "time": self.time, "current": self.current, "desired": self.desired,
               "action": self.action, "reason": self.reason, "metric": self.metric, "mode": self.mode,
               "observed": None if self.observed is None else round(self.observed, 3),
               "target": self.target, "tasksWithData": self.tasks_with_data, "missing": self.missing,
               "recommendation": self.recommendation, "stabilized": self.stabilized}
        if self.schedule is not None:
            out["schedule"] = self.schedule
        out.update(self.extra)
        return out


_new_object, _set_attribute = object.__new__, object.__setattr__


def _measured(app_id: str, time: float, current: int, desired: int, action: str, reason: str, metric: str,
              mode: str, observed: float, target: float | None, tasks_with_data: int, missing: int,
              recommendation: int, stabilized: int) -> Decision:
    """``Decision(...)`` of a measured app, made the cheap way: a frozen dataclass's generated
    ``__init__`` sets its 16 fields one ``object.__setattr__`` call at a time, which was a third
    of deciding one app; filling the instance's ``__dict__`` at once makes the same object."""
    decision = _new_object(Decision)
    _set_attribute(decision, "__dict__", {
        "app_id": app_id, "time": time, "current": current, "desired": desired, "action": action,
        "reason": reason, "metric": metric, "mode": mode, "observed": observed, "target": target,
        "tasks_with_data": tasks_with_data, "missing": missing, "recommendation": recommendation,
        "stabilized": stabilized, "schedule": None, "extra": {}})
    return decision


# -- the whole decision -----------------------------------------------------------------------
def _hold(policy: Policy, inputs: AppInputs, now: float, reason: str, **kw: Any) -> Decision:
    return Decision(app_id=inputs.app_id, time=now, current=inputs.current, desired=inputs.current,
                    action=NONE, reason=reason, metric=policy.metric, mode=policy.mode,
                    target=policy.target if policy.mode == TARGET else None, **kw)


def _precheck(policy: Policy, inputs: AppInputs, now: float) -> Decision | None:
    if not policy.enabled:
        return _hold(policy, inputs, now, "policy disabled")
    if inputs.blocked:
        return _hold(policy, inputs, now, inputs.blocked)
    if inputs.utilization is None:
        return _hold(policy, inputs, now, f"metrics unavailable: {inputs.error or 'source failed'}")
    if not inputs.running:
        return _hold(policy, inputs, now, "no running tasks: nothing to measure")
    return None


def decide_all(items: list[tuple[Policy, AppInputs, AppState]], now: float) -> list[tuple[Decision, AppState]]:
    """``desired_instances`` for many apps, observing all their samples in one numpy pass."""
    items = list(items)      # the policies moved by their schedules replace the caller's, in a copy
    results: list[tuple[Decision, AppState] | None] = [None] * len(items)
    pending = []
    scheduled: dict[int, tuple[Policy, Bounds]] = {}
    for k, (policy, inputs, state) in enumerate(items):
        if policy.schedule:
            bounds = bounds_at(policy.schedule, policy.min_instances, policy.max_instances, now)
            scheduled[k] = (policy, bounds)
            policy = replace(policy, min_instances=bounds.min, max_instances=bounds.max)
            items[k] = (policy, inputs, state)
        # what _precheck lets through, without a call per app
        if policy.enabled and not inputs.blocked and inputs.utilization is not None and inputs.running:
            pending.append(k)
        else:
            results[k] = (_precheck(policy, inputs, now), state)  # type: ignore[assignment]
    observed = [items[k] for k in pending]
    totals, with_data, newest = measure_columns(
        [inputs.utilization for _, inputs, _ in observed],  # type: ignore[arg-type]  # pending: measured
        [inputs.running for _, inputs, _ in observed], [policy.window for policy, _, _ in observed],
        [inputs.scale for _, inputs, _ in observed], now)
    for k, (policy, inputs, state), total, n, latest in zip(pending, observed, totals, with_data, newest):
        running = len(inputs.running)
        results[k] = _decide(policy, inputs, state, now, total, n, running - n, max(0, inputs.current - running),
                             latest)
    for k, (policy, bounds) in scheduled.items():
        decision, state = results[k]  # type: ignore[misc]
        results[k] = (_scheduled(decision, policy, items[k][1], bounds), state)
    return results  # type: ignore[return-value]


def _scheduled(decision: Decision, policy: Policy, inputs: AppInputs, bounds: Bounds) -> Decision:
    """The decision made within `bounds`, a raised minimum reached at once, the windows recorded."""
    if not policy.enabled:
        return decision
    why_not = inputs.blocked or ("the app is suspended (0 instances)" if inputs.current == 0 else None)
    desired, note = raise_to_minimum(bounds, inputs.current, decision.desired, why_not)
    reason = (decision.reason if not note else f"{decision.reason}; {note}" if desired == decision.desired
              else f"{note} (instead of: {decision.reason})")
    action = SCALE_UP if desired > decision.current else SCALE_DOWN if desired < decision.current else NONE
    return replace(decision, desired=desired, action=action, reason=reason,
                   schedule=bounds.to_json(policy.min_instances, policy.max_instances))


def desired_instances(policy: Policy, inputs: AppInputs, state: AppState, now: float) -> tuple[Decision, AppState]:
    """Decide one app's size for this cycle; returns the decision and the state to carry."""
    if policy.schedule:
        return decide_all([(policy, inputs, state)], now)[0]
    held = _precheck(policy, inputs, now)
    if held is not None:
        return held, state
    assert inputs.utilization is not None
    obs = observe(inputs.utilization, inputs.running, inputs.current, now, policy.window, inputs.scale)
    return _decide(policy, inputs, state, now, *obs)


def _decide(policy: Policy, inputs: AppInputs, state: AppState, now: float, total: float, with_data: int,
            missing: int, unready: int, newest: float | None) -> tuple[Decision, AppState]:
    """One app's decision from what was observed of it (an ``Observation``'s fields)."""
    current = inputs.current
    if with_data == 0:
        if newest is not None:
            return _hold(policy, inputs, now, f"stale metrics: newest sample {now - newest:.0f}s old "
                                              f"(window {policy.window:g}s)", missing=missing), state
        return _hold(policy, inputs, now, f"no metrics for any running task in the last {policy.window:g}s",
                     missing=missing), state
    observed = total / with_data

    target = None
    if policy.mode == TARGET:
        target = policy.target
        assert target is not None
        rec, why = target_recommendation_of_total(current, with_data, total, target, policy.tolerance, missing,
                                                  unready)
        up, down = state.up_cycles, state.down_cycles
    else:
        rec, up, down, why = threshold_recommendation(policy, current, observed, state.up_cycles,
                                                      state.down_cycles)
    lo, hi = policy.min_instances, policy.max_instances
    clamped = clamp(rec, lo, hi)
    stabilized, history, timeline = stabilize_timeline(current, clamped, state.history, state.timeline, now,
                                                       policy.stabilization_up, policy.stabilization_down)
    desired = clamp(limit_step(current, stabilized), lo, hi)

    reason = why
    if clamped != rec or stabilized != clamped or desired != stabilized:
        notes = [why]
        if clamped != rec:
            notes.append(f"clamped to [{lo}, {hi}]")
        if stabilized != clamped:
            window = policy.stabilization_down if stabilized > clamped else policy.stabilization_up
            notes.append(f"stabilized at {stabilized} (recommendations of the last {window:g}s)")
        if desired != stabilized:
            notes.append(f"step limited to {desired}")
        reason = "; ".join(notes)
    action = SCALE_UP if desired > current else SCALE_DOWN if desired < current else NONE
    decision = _measured(inputs.app_id, now, current, desired, action, reason, policy.metric, policy.mode,
                         observed, target, with_data, missing, rec, stabilized)
    return decision, _carried(history, up, down, timeline)
