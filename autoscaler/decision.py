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

``decide_all`` runs the same decision for many apps, observing all their samples in one numpy
pass (2,000 apps × 10 tasks × 30 samples in well under 100 ms; see bench/autoscaler.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metrics.usage import Series

from .policy import TARGET, Policy

SCALE_UP = "scale_up"
SCALE_DOWN = "scale_down"
NONE = "none"
_EPS = 1e-9


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


@dataclass(frozen=True)
class Observation:
    values: Sequence[float]     # per task with data: mean utilisation over the window
    with_data: int
    missing: int                # running tasks without a sample in the window
    unready: int                # configured instances not running yet
    newest: float | None        # newest sample time of any running task (may be outside the window)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if len(self.values) else None


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
        out.update(self.extra)
        return out


# -- the parts -------------------------------------------------------------------------------
def observe(utilization: Mapping[str, Series], running: tuple[str, ...] | list[str], current: int,
            now: float, window: float, scale: float = 1.0) -> Observation:
    """Per running task: mean of its samples in (now - window, now] × scale. Others are ignored."""
    return observe_all([(utilization, running, current, window, scale)], now)[0]


def observe_all(apps: list[tuple[Mapping[str, Series], tuple[str, ...] | list[str], int, float, float]],
                now: float) -> list[Observation]:
    """``observe`` for many apps at once: one vectorised pass over all their samples.

    Each item is (utilization, running task ids, current, window, scale).
    """
    times_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    lengths: list[int] = []
    seg_app: list[int] = []
    app_lo: list[float] = []
    add_times, add_values, add_len, add_app = (times_parts.append, value_parts.append, lengths.append,
                                               seg_app.append)
    for i, (utilization, running, _current, window, _scale) in enumerate(apps):
        app_lo.append(now - window)
        get = utilization.get
        for task_id in running:
            series = get(task_id)
            if series is None:
                continue
            times = series.times
            n = times.shape[0]
            if n:
                add_times(times)
                add_values(series.values)
                add_len(n)
                add_app(i)
    n_seg = len(lengths)
    per_app_values: list[list[float]] = [[] for _ in apps]
    newest: list[float | None] = [None] * len(apps)
    if n_seg:
        times = np.concatenate(times_parts).astype(np.float64, copy=False)
        values = np.concatenate(value_parts).astype(np.float64, copy=False)
        lens = np.asarray(lengths)
        seg = np.repeat(np.arange(n_seg), lens)
        lo = np.asarray(app_lo)[np.asarray(seg_app)][seg]
        ok = (times > lo) & (times <= now + _EPS) & np.isfinite(values)
        sums = np.bincount(seg[ok], weights=values[ok], minlength=n_seg)
        counts = np.bincount(seg[ok], minlength=n_seg)
        lasts = times[np.cumsum(lens) - 1].tolist()      # series are ascending in time
        means = np.divide(sums, counts, out=np.zeros(n_seg), where=counts > 0).tolist()
        has = (counts > 0).tolist()
        for k, i in enumerate(seg_app):
            last = lasts[k]
            current_newest = newest[i]
            if current_newest is None or last > current_newest:
                newest[i] = last
            if has[k]:
                per_app_values[i].append(means[k])
    out = []
    for i, (_utilization, running, current, _window, scale) in enumerate(apps):
        vals = [v * scale for v in per_app_values[i]] if scale != 1.0 else per_app_values[i]
        out.append(Observation(values=vals, with_data=len(vals), missing=len(running) - len(vals),
                               unready=max(0, current - len(running)), newest=newest[i]))
    return out


def _ceil(x: float) -> int:
    return int(math.ceil(x - _EPS))


def target_recommendation(current: int, values: Sequence[float], target: float, tolerance: float,
                          missing: int = 0, unready: int = 0) -> tuple[int, str]:
    """The HPA replica calculator on utilisation values (% of allocation) of the tasks with data."""
    n = len(values)
    if n == 0:
        return current, "no task has data"
    total = float(sum(values))
    ratio = total / n / target
    rebalance_unready = unready > 0 and ratio > 1.0
    if missing == 0 and not rebalance_unready:
        if abs(ratio - 1.0) <= tolerance + _EPS:
            return current, f"within tolerance (ratio {ratio:.3f})"
        return _ceil(ratio * n), f"ratio {ratio:.3f} over {n} task(s)"
    count = n + missing
    if ratio < 1.0:   # scaling down: a missing task may be busy; assume it sits at the target
        total += missing * target
    if rebalance_unready:   # scaling up: starting tasks will take load; assume they sit at 0 %
        count += unready
    new_ratio = total / count / target
    if abs(new_ratio - 1.0) <= tolerance + _EPS or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, (f"ratio {ratio:.3f} does not hold with {missing} missing / "
                         f"{unready if rebalance_unready else 0} starting task(s) counted conservatively "
                         f"({new_ratio:.3f})")
    rec = _ceil(new_ratio * count)
    if (new_ratio < 1.0 and rec > current) or (new_ratio > 1.0 and rec < current):
        return current, f"ratio {new_ratio:.3f} would move against its direction"
    return rec, f"ratio {new_ratio:.3f} over {count} task(s) ({missing} missing)"


def threshold_recommendation(policy: Policy, current: int, observed: float, up_cycles: int,
                             down_cycles: int) -> tuple[int, int, int, str]:
    """marathon-autoscale's rule; returns (recommendation, up_cycles, down_cycles, reason)."""
    assert policy.scale_up_above is not None and policy.scale_down_below is not None
    if observed > policy.scale_up_above:
        up_cycles, down_cycles = up_cycles + 1, 0
        if up_cycles >= policy.scale_up_cycles:
            rec = max(current + 1, _ceil(current * policy.multiplier))
            return rec, 0, 0, (f"{observed:.1f}% above {policy.scale_up_above:g}% for {up_cycles} cycle(s): "
                               f"× {policy.multiplier:g}")
        return current, up_cycles, 0, (f"{observed:.1f}% above {policy.scale_up_above:g}% "
                                       f"({up_cycles}/{policy.scale_up_cycles} cycles)")
    if observed < policy.scale_down_below:
        up_cycles, down_cycles = 0, down_cycles + 1
        if down_cycles >= policy.scale_down_cycles:
            rec = min(current - 1, int(math.floor(current / policy.multiplier + _EPS)))
            return rec, 0, 0, (f"{observed:.1f}% below {policy.scale_down_below:g}% for {down_cycles} cycle(s): "
                               f"÷ {policy.multiplier:g}")
        return current, 0, down_cycles, (f"{observed:.1f}% below {policy.scale_down_below:g}% "
                                         f"({down_cycles}/{policy.scale_down_cycles} cycles)")
    return current, 0, 0, (f"{observed:.1f}% within [{policy.scale_down_below:g}%, "
                           f"{policy.scale_up_above:g}%]")


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


def stabilize(current: int, recommendation: int, history: tuple[tuple[float, int], ...], now: float,
              up_window: float, down_window: float) -> tuple[int, tuple[tuple[float, int], ...]]:
    """HPA's stabilization: returns (stabilized size, history including this recommendation)."""
    keep = max(up_window, down_window)
    kept = tuple((t, r) for t, r in history if t > now - keep - _EPS and t <= now) + ((now, recommendation),)
    up_floor = min(r for t, r in kept if t >= now - up_window - _EPS)
    down_ceiling = max(r for t, r in kept if t >= now - down_window - _EPS)
    result = current
    if result < up_floor:
        result = up_floor
    if result > down_ceiling:
        result = down_ceiling
    return result, kept


def limit_step(current: int, desired: int) -> int:
    """At most ×2 (and at least +1) up, at most −50 % down per decision."""
    if current <= 0:
        return desired
    up_limit = max(2 * current, current + 1)
    down_limit = current - current // 2
    return max(down_limit, min(up_limit, desired))


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
    results: list[tuple[Decision, AppState] | None] = [None] * len(items)
    pending = []
    for k, (policy, inputs, state) in enumerate(items):
        held = _precheck(policy, inputs, now)
        if held is not None:
            results[k] = (held, state)
        else:
            pending.append(k)
    observations = observe_all([(items[k][1].utilization or {}, items[k][1].running, items[k][1].current,
                                 items[k][0].window, items[k][1].scale) for k in pending], now)
    for k, obs in zip(pending, observations):
        policy, inputs, state = items[k]
        results[k] = _decide(policy, inputs, state, now, obs)
    return results  # type: ignore[return-value]


def desired_instances(policy: Policy, inputs: AppInputs, state: AppState, now: float) -> tuple[Decision, AppState]:
    """Decide one app's size for this cycle; returns the decision and the state to carry."""
    held = _precheck(policy, inputs, now)
    if held is not None:
        return held, state
    assert inputs.utilization is not None
    obs = observe(inputs.utilization, inputs.running, inputs.current, now, policy.window, inputs.scale)
    return _decide(policy, inputs, state, now, obs)


def _decide(policy: Policy, inputs: AppInputs, state: AppState, now: float,
            obs: Observation) -> tuple[Decision, AppState]:
    current = inputs.current
    if obs.with_data == 0:
        if obs.newest is not None:
            return _hold(policy, inputs, now, f"stale metrics: newest sample {now - obs.newest:.0f}s old "
                                              f"(window {policy.window:g}s)", missing=obs.missing), state
        return _hold(policy, inputs, now, f"no metrics for any running task in the last {policy.window:g}s",
                     missing=obs.missing), state
    observed = obs.mean
    assert observed is not None
    common = {"observed": observed, "tasks_with_data": obs.with_data, "missing": obs.missing}

    if policy.mode == TARGET:
        assert policy.target is not None
        rec, why = target_recommendation(current, obs.values, policy.target, policy.tolerance,
                                         obs.missing, obs.unready)
        new_state = state
    else:
        rec, up, down, why = threshold_recommendation(policy, current, observed, state.up_cycles,
                                                      state.down_cycles)
        new_state = AppState(state.history, up, down)
    clamped = clamp(rec, policy.min_instances, policy.max_instances)
    stabilized, history = stabilize(current, clamped, state.history, now, policy.stabilization_up,
                                    policy.stabilization_down)
    new_state = AppState(history, new_state.up_cycles, new_state.down_cycles)
    desired = clamp(limit_step(current, stabilized), policy.min_instances, policy.max_instances)

    notes = [why]
    if clamped != rec:
        notes.append(f"clamped to [{policy.min_instances}, {policy.max_instances}]")
    if stabilized != clamped:
        window = policy.stabilization_down if stabilized > clamped else policy.stabilization_up
        notes.append(f"stabilized at {stabilized} (recommendations of the last {window:g}s)")
    if desired != stabilized:
        notes.append(f"step limited to {desired}")
    action = SCALE_UP if desired > current else SCALE_DOWN if desired < current else NONE
    decision = Decision(app_id=inputs.app_id, time=now, current=current, desired=desired, action=action,
                        reason="; ".join(notes), metric=policy.metric, mode=policy.mode,
                        target=policy.target if policy.mode == TARGET else None,
                        recommendation=rec, stabilized=stabilized, **common)
    return decision, new_state
