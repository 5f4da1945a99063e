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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from metrics.usage import AppSeries, Series, UsageBatch

from .policy import TARGET, Policy
from .schedule import Bounds, bounds_at, raise_to_minimum

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


class Observation(NamedTuple):
    """What ``observe`` measured of one app (a tuple: thousands are made per cycle)."""

    total: float                # sum over the tasks with data of their mean utilisation
    with_data: int
    missing: int                # running tasks without a sample in the window
    unready: int                # configured instances not running yet
    newest: float | None        # newest sample time of any running task (may be outside the window)

    @property
    def mean(self) -> float | None:
        return self.total / self.with_data if self.with_data else None


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


# -- the parts -------------------------------------------------------------------------------
def observe(utilization: Mapping[str, Series], running: tuple[str, ...] | list[str], current: int,
            now: float, window: float, scale: float = 1.0) -> Observation:
    """Per running task: mean of its samples in (now - window, now] × scale. Others are ignored."""
    return observe_all([(utilization, running, current, window, scale)], now)[0]


def observe_all(apps: list[tuple[Mapping[str, Series], tuple[str, ...] | list[str], int, float, float]],
                now: float) -> list[Observation]:
    """``observe`` for many apps at once: one vectorised pass over all their samples.

    Each item is (utilization, running task ids, current, window, scale). Utilizations that
    are views of one ``UsageBatch`` (what the sources answer) are read in place, by row;
    any other mapping is first laid out in columns the same way.
    """
    batches: dict[int, UsageBatch] = {}
    seg_rows: dict[int, list[int]] = {}        # batch id -> rows of the running tasks, app by app
    seg_apps: dict[int, list[int]] = {}        # batch id -> the app of each of those rows
    plain = UsageBatch.of({str(i): utilization for i, (utilization, *_rest) in enumerate(apps)
                           if not isinstance(utilization, AppSeries)})
    for i, (utilization, running, _current, _window, _scale) in enumerate(apps):
        if not isinstance(utilization, AppSeries):
            utilization = plain.app_series(str(i))
        batch = utilization.batch
        key = id(batch)
        if key not in batches:
            batches[key], seg_rows[key], seg_apps[key] = batch, [], []
        get = utilization.rows.get
        rows = [r for r in map(get, running) if r is not None]
        seg_rows[key].extend(rows)
        seg_apps[key].extend([i] * len(rows))
    n_apps = len(apps)
    lows = np.array([now - window for _u, _r, _c, window, _s in apps], dtype=np.float64)
    scales = np.array([scale for _u, _r, _c, _w, scale in apps], dtype=np.float64)
    totals = np.zeros(n_apps)
    with_data = np.zeros(n_apps, dtype=np.int64)
    newest = np.full(n_apps, -np.inf)
    for key, batch in batches.items():
        seg_app = np.array(seg_apps[key], dtype=np.int64)
        means, has, last, has_samples = _row_means(batch, np.array(seg_rows[key], dtype=np.int64),
                                                   lows[seg_app], now)
        # the per-app sum adds the tasks' means in running order, as sum() over them would
        totals += np.bincount(seg_app[has], weights=means[has] * scales[seg_app[has]], minlength=n_apps)
        with_data += np.bincount(seg_app[has], minlength=n_apps)
        np.maximum.at(newest, seg_app[has_samples], last[has_samples])
    return [Observation(total=total, with_data=n, missing=len(running) - n,
                        unready=max(0, current - len(running)), newest=None if latest == -np.inf else latest)
            for (_u, running, current, _w, _s), total, n, latest
            in zip(apps, totals.tolist(), with_data.tolist(), newest.tolist())]


def _row_means(batch: UsageBatch, rows: np.ndarray, lows: np.ndarray,
               now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (mean of its finite samples in (low, now], whether it has any, its newest
    sample time, whether it has samples at all)."""
    offsets = batch.offsets
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    seg = np.repeat(np.arange(len(rows)), lengths)
    if len(seg) == len(batch.times) and bool(np.all(rows == np.arange(len(rows)))):
        times, values = batch.times, batch.values          # every row, in order: nothing to gather
    else:
        index = np.arange(len(seg)) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        times, values = batch.times[index], batch.values[index]
    ok = (times > np.repeat(lows, lengths)) & (times <= now + _EPS) & np.isfinite(values)
    sums = np.bincount(seg[ok], weights=values[ok], minlength=len(rows))
    counts = np.bincount(seg[ok], minlength=len(rows))
    means = np.divide(sums, counts, out=np.zeros(len(rows)), where=counts > 0)
    has_samples = lengths > 0
    last = batch.times[np.where(has_samples, starts + lengths - 1, 0)] if len(batch.times) else np.zeros(len(rows))
    return means, counts > 0, last, has_samples


def _ceil(x: float) -> int:
    return int(math.ceil(x - _EPS))


def target_recommendation(current: int, values: Sequence[float], target: float, tolerance: float,
                          missing: int = 0, unready: int = 0) -> tuple[int, str]:
    """The HPA replica calculator on utilisation values (% of allocation) of the tasks with data."""
    return target_recommendation_of_total(current, len(values), float(sum(values)), target, tolerance,
                                          missing, unready)


def target_recommendation_of_total(current: int, n: int, total: float, target: float, tolerance: float,
                                   missing: int = 0, unready: int = 0) -> tuple[int, str]:
    """``target_recommendation`` from the sum of the `n` values (what ``observe`` measures)."""
    if n == 0:
        return current, "no task has data"
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
    oldest, oldest_kept, newest = now - keep - _EPS, now, now
    up_from, down_from = now - up_window - _EPS, now - down_window - _EPS
    if history:
        by_time = sorted(history)     # cheaper than min() and max() on the usual, ordered history
        oldest_kept, newest = by_time[0][0], by_time[-1][0]
    if history and oldest_kept > oldest and newest <= now:   # the usual: nothing to drop
        kept = history + ((now, recommendation),)
    else:
        kept = tuple([h for h in history if h[0] > oldest and h[0] <= now]) + ((now, recommendation),)
    # only this recommendation is recent enough when every earlier one is older than up_from
    up_floor = recommendation if newest < up_from else min([r for t, r in kept if t >= up_from])
    down_ceiling = max([r for t, r in kept if t >= down_from])
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
        held = _precheck(policy, inputs, now)
        if held is not None:
            results[k] = (held, state)
        else:
            pending.append(k)
    observations = observe_all([(items[k][1].utilization, items[k][1].running, items[k][1].current,
                                 items[k][0].window, items[k][1].scale) for k in pending], now)
    for k, obs in zip(pending, observations):
        policy, inputs, state = items[k]
        results[k] = _decide(policy, inputs, state, now, obs)
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
    observed = obs.total / obs.with_data

    if policy.mode == TARGET:
        assert policy.target is not None
        rec, why = target_recommendation_of_total(current, obs.with_data, obs.total, policy.target,
                                                  policy.tolerance, obs.missing, obs.unready)
        up, down = state.up_cycles, state.down_cycles
    else:
        rec, up, down, why = threshold_recommendation(policy, current, observed, state.up_cycles,
                                                      state.down_cycles)
    clamped = clamp(rec, policy.min_instances, policy.max_instances)
    stabilized, history = stabilize(current, clamped, state.history, now, policy.stabilization_up,
                                    policy.stabilization_down)
    new_state = AppState(history, up, down)
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
                        observed=observed, tasks_with_data=obs.with_data, missing=obs.missing,
                        recommendation=rec, stabilized=stabilized)
    return decision, new_state
