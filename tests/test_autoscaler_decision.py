"""The scaling decision, table-tested like the HPA's replica calculator, plus invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decision import (
    NONE,
    SCALE_DOWN,
    SCALE_UP,
    AppInputs,
    AppState,
    decide_all,
    desired_instances,
    limit_step,
    stabilize,
    target_recommendation,
    threshold_recommendation,
)
from autoscaler.policy import Policy, parse_policy
from metrics.usage import Series

NOW = 10_000.0


# -- the replica calculator ----------------------------------------------------------------------
@pytest.mark.parametrize("current, values, target, tolerance, missing, unready, expected", [
    # HPA "scale up": 3 pods at 30/50/70 % of requests, target 30 % -> ceil(3 × 50/30) = 5
    (3, [30, 50, 70], 30, 0.1, 0, 0, 5),
    # HPA "scale up, unready less scale": one pod starting counts as 0 % -> 4, not 6
    (3, [50, 70], 30, 0.1, 0, 1, 4),
    # HPA "scale up, unready no scale": counting the 2 starting pods flips the direction -> hold
    (3, [40], 30, 0.1, 0, 2, 3),
    # HPA "scale down": mean 28 % vs 50 % -> ceil(5 × 0.56) = 3
    (5, [10, 30, 50, 25, 25], 50, 0.1, 0, 0, 3),
    # unready instances are ignored when scaling down
    (5, [10, 10], 50, 0.1, 0, 3, 1),
    # tolerance: 2 % off -> hold; 11 % off -> act; exactly 10 % off -> hold
    (3, [101, 103, 102], 100, 0.1, 0, 0, 3),
    (3, [111, 111, 111], 100, 0.1, 0, 0, 4),
    (3, [109, 109, 109], 100, 0.1, 0, 0, 3),
    (10, [55] * 10, 50, 0.1, 0, 0, 10),
    (10, [45] * 10, 50, 0.1, 0, 0, 10),
    (2, [51, 51], 50, 0.0, 0, 0, 3),
    # missing metrics, scale up: missing pods count as 0 % -> 300/4 = 75 % -> ceil(4 × 1.5) = 6
    (4, [100, 100, 100], 50, 0.1, 1, 0, 6),
    # missing metrics, scale down: missing pods count as the target -> (30+50)/4 = 20 % -> 2
    (4, [10, 10, 10], 50, 0.1, 1, 0, 2),
    # missing metrics flip the direction -> hold
    (2, [60], 50, 0.1, 1, 0, 2),
    # missing metrics land inside the tolerance -> hold
    (3, [75, 75], 50, 0.1, 1, 0, 3),
    # scale down with missing ends at current -> hold
    (3, [40, 40], 50, 0.1, 1, 0, 3),
    # no data -> hold
    (3, [], 50, 0.1, 0, 0, 3),
    # large ratios are not limited here (the step limit comes later)
    (1, [1000], 10, 0.1, 0, 0, 100),
])
def test_target_recommendation(current, values, target, tolerance, missing, unready, expected):
    rec, reason = target_recommendation(current, np.array(values, dtype=float), target, tolerance, missing, unready)
    assert rec == expected, reason


@pytest.mark.parametrize("current, observed, up, down, expected", [
    (3, 90, 0, 0, (3, 1, 0)),          # first cycle above: count
    (3, 90, 2, 0, (5, 0, 0)),          # third cycle above: ceil(3 × 1.5) = 5, counters reset
    (1, 90, 2, 0, (2, 0, 0)),          # ceil(1.5) = 2
    (2, 90, 2, 0, (3, 0, 0)),
    (3, 50, 2, 4, (3, 0, 0)),          # in range resets both
    (3, 10, 2, 0, (3, 0, 1)),          # below resets the up counter
    (3, 10, 0, 4, (2, 0, 0)),          # fifth cycle below: floor(3 / 1.5) = 2
    (10, 10, 0, 4, (6, 0, 0)),         # floor(6.67) = 6
    (1, 10, 0, 4, (0, 0, 0)),          # would be 0: clamped to min later
    (3, 80, 0, 0, (3, 0, 0)),          # exactly on a bound is in range
    (3, 20, 0, 0, (3, 0, 0)),
])
def test_threshold_recommendation(current, observed, up, down, expected):
    policy = parse_policy("/a", {"scaleUpAbove": 80, "scaleDownBelow": 20, "max": 50})
    rec, new_up, new_down, _ = threshold_recommendation(policy, current, observed, up, down)
    assert (rec, new_up, new_down) == expected


@pytest.mark.parametrize("current, desired, expected", [
    (1, 10, 2), (3, 10, 6), (4, 5, 5), (10, 1, 5), (11, 1, 6), (1, 0, 1), (2, 1, 1), (5, 5, 5), (0, 3, 3),
])
def test_limit_step(current, desired, expected):
    assert limit_step(current, desired) == expected


def test_stabilize_takes_the_max_over_the_down_window_and_min_over_the_up_window():
    history: tuple = ()
    out = []
    for t, rec in [(0, 4), (15, 2), (30, 2), (45, 3), (320, 2), (350, 2)]:
        size, history = stabilize(4, rec, history, float(t), up_window=0, down_window=300)
        out.append(size)
    assert out == [4, 4, 4, 4, 3, 2]
    assert all(t >= 50 for t, _ in history)          # history is trimmed to the longest window
    size, history = stabilize(2, 6, ((0.0, 2),), 30.0, up_window=60, down_window=0)
    assert size == 2                                   # a 2 within 60 s caps the scale up
    size, _ = stabilize(2, 6, ((0.0, 2), (31.0, 6)), 61.0, up_window=60, down_window=0)
    assert size == 6


# -- the whole decision --------------------------------------------------------------------------
def series(value: float, *, times=(NOW - 20, NOW - 10, NOW)) -> Series:
    return Series(np.array(times, dtype=float), np.full(len(times), float(value)))


def inputs(current: int, utils: list[float] | None, *, running: int | None = None, **kw) -> AppInputs:
    running = current if running is None else running
    ids = tuple(f"t{i}" for i in range(running))
    util = None if utils is None else {f"t{i}": series(u) for i, u in enumerate(utils)}
    return AppInputs("/app", current, ids, util, **kw)


def policy(**kw) -> Policy:
    body = {"target": 50, "min": 1, "max": 10, "stabilizationDown": 0, **kw}
    return parse_policy("/app", body)


@pytest.mark.parametrize("name, pol, inp, desired, action, reason", [
    ("scale up", policy(), inputs(2, [100, 100]), 4, SCALE_UP, "ratio 2.000"),
    ("step limited to ×2", policy(), inputs(2, [400, 400]), 4, SCALE_UP, "step limited"),
    ("clamped to max", policy(max=3), inputs(2, [400, 400]), 3, SCALE_UP, "clamped"),
    ("scale down", policy(), inputs(4, [20, 20, 20, 20]), 2, SCALE_DOWN, "ratio 0.400"),
    ("step limited to −50 %", policy(), inputs(10, [1] * 10), 5, SCALE_DOWN, "step limited"),
    ("never below min", policy(min=3), inputs(4, [1] * 4), 3, SCALE_DOWN, "clamped"),
    ("current below min is raised", policy(min=3), inputs(1, [50]), 3, SCALE_UP, "clamped"),
    ("current above max is lowered", policy(max=3), inputs(6, [50] * 6), 3, SCALE_DOWN, "clamped"),
    ("within tolerance", policy(), inputs(3, [52, 48, 53]), 3, NONE, "within tolerance"),
    ("disabled", policy(enabled=False), inputs(2, [100, 100]), 2, NONE, "disabled"),
    ("blocked by a deployment", policy(), inputs(2, [100, 100], blocked="deployment d1 in progress (RestartApplication)"),
     2, NONE, "deployment d1"),
    ("source failed", policy(), inputs(2, None, error="InfluxDB unreachable"), 2, NONE, "InfluxDB unreachable"),
    ("no running tasks", policy(), inputs(2, [], running=0), 2, NONE, "no running tasks"),
    ("no data", policy(), inputs(2, []), 2, NONE, "no metrics"),
    ("memory metric", policy(metric="mem", target=80), inputs(2, [96, 96]), 3, SCALE_UP, "ratio 1.200"),
    ("threshold mode counts cycles first", policy(target=None, scaleUpAbove=80, scaleDownBelow=20),
     inputs(2, [95, 95]), 2, NONE, "1/3 cycles"),
])
def test_desired_instances(name, pol, inp, desired, action, reason):
    decision, _ = desired_instances(pol, inp, AppState(), NOW)
    assert (decision.desired, decision.action) == (desired, action), decision.reason
    assert reason in decision.reason


def test_stale_data_holds_and_says_so():
    stale = AppInputs("/app", 2, ("t0", "t1"), {"t0": series(500, times=(NOW - 200, NOW - 100)),
                                               "t1": series(500, times=(NOW - 200, NOW - 95))})
    decision, state = desired_instances(policy(), stale, AppState(), NOW)
    assert decision.action == NONE and decision.desired == 2 and "stale metrics: newest sample 95s old" in decision.reason
    assert state == AppState()


def test_samples_of_tasks_no_longer_running_are_ignored():
    util = {"t0": series(50), "old": series(1000)}
    decision, _ = desired_instances(policy(), AppInputs("/app", 1, ("t0",), util), AppState(), NOW)
    assert decision.action == NONE and decision.observed == 50


def test_a_task_without_data_counts_as_missing():
    util = {"t0": series(100), "t1": series(100)}
    decision, _ = desired_instances(policy(), AppInputs("/app", 3, ("t0", "t1", "t2"), util), AppState(), NOW)
    # 200 % over 3 tasks vs 50 % -> ratio 1.333 -> ceil(4) = 4
    assert (decision.desired, decision.missing, decision.tasks_with_data) == (4, 1, 2)


def test_scale_down_waits_for_the_stabilization_window():
    pol = policy(stabilizationDown=60)
    state = AppState()
    sizes = []
    for t, util in [(0, 50), (15, 10), (30, 10), (45, 10), (61, 10), (75, 10)]:
        now = NOW + t
        inp = AppInputs("/app", 4, tuple(f"t{i}" for i in range(4)),
                        {f"t{i}": series(util, times=(now - 10, now)) for i in range(4)})
        decision, state = desired_instances(pol, inp, state, now)
        sizes.append(decision.desired)
    assert sizes == [4, 4, 4, 4, 2, 2]


def test_threshold_mode_scales_after_the_consecutive_cycles():
    pol = policy(target=None, scaleUpAbove=80, scaleDownBelow=20, scaleUpCycles=2, scaleDownCycles=3,
                 multiplier=2)
    state, out = AppState(), []
    for i, util in enumerate([90, 50, 90, 90, 10, 10, 10]):
        now = NOW + 15 * i
        inp = AppInputs("/app", 3, ("t0",), {"t0": series(util, times=(now - 5, now))})
        decision, state = desired_instances(pol, inp, state, now)
        out.append(decision.desired)
    assert out == [3, 3, 3, 6, 3, 3, 2]   # floor(3 / 2) = 1, but one step removes at most half


def test_holding_for_missing_data_keeps_the_state():
    state = AppState(history=((NOW - 5, 7),), up_cycles=2)
    for inp in (inputs(2, None, error="x"), inputs(2, []), inputs(2, [], running=0),
                inputs(2, [100, 100], blocked="deploying")):
        _, new_state = desired_instances(policy(), inp, state, NOW)
        assert new_state is state


# -- invariants ----------------------------------------------------------------------------------
policies = st.builds(
    lambda target, lo, span, tol, up, down: policy(target=target, min=lo, max=lo + span, tolerance=tol,
                                                    stabilizationUp=up, stabilizationDown=down),
    st.floats(1, 200), st.integers(1, 5), st.integers(0, 30), st.floats(0, 0.5),
    st.sampled_from([0, 30, 120]), st.sampled_from([0, 60, 300]),
)
histories = st.lists(st.tuples(st.floats(NOW - 400, NOW), st.integers(1, 40)), max_size=8).map(tuple)


@st.composite
def app_inputs(draw):
    current = draw(st.integers(0, 40))
    running = draw(st.integers(0, current + 2))
    with_data = draw(st.integers(0, running))
    utils = draw(st.lists(st.floats(0, 2000), min_size=with_data, max_size=with_data))
    return inputs(current, utils, running=running)


@settings(max_examples=400, deadline=None)
@given(policies, app_inputs(), histories)
def test_invariants(pol, inp, history):
    state = AppState(history=history)
    decision, new_state = desired_instances(pol, inp, state, NOW)
    if decision.action != NONE:
        assert pol.min_instances <= decision.desired <= pol.max_instances
        assert decision.desired >= 1
        assert decision.tasks_with_data > 0
    else:
        assert decision.desired == inp.current
    if pol.min_instances <= inp.current <= pol.max_instances and inp.current > 0:
        assert decision.desired <= max(2 * inp.current, inp.current + 1)
        assert decision.desired >= inp.current - inp.current // 2
    if decision.tasks_with_data == 0:
        assert decision.action == NONE and new_state is state
    if new_state is not state:
        assert all(t > NOW - 301 for t, _ in new_state.history)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(1, 30), st.floats(0, 1000), st.floats(0, 1000), histories)
def test_more_load_never_means_fewer_instances(pol, current, a, b, history):
    lo, hi = sorted((a, b))
    state = AppState(history=history)
    d_lo, _ = desired_instances(pol, inputs(current, [lo] * current), state, NOW)
    d_hi, _ = desired_instances(pol, inputs(current, [hi] * current), state, NOW)
    assert d_lo.desired <= d_hi.desired


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(1, 30), histories, st.sampled_from(["none", "error", "stale", "no-running"]))
def test_missing_or_stale_data_never_scales(pol, current, history, kind):
    if kind == "none":
        inp = inputs(current, [])
    elif kind == "error":
        inp = inputs(current, None, error="down")
    elif kind == "stale":
        inp = AppInputs("/app", current, ("t0",), {"t0": series(900, times=(NOW - 500, NOW - pol.window - 1))})
    else:
        inp = inputs(current, [], running=0)
    decision, _ = desired_instances(pol, inp, AppState(history=history), NOW)
    assert decision.action == NONE and decision.desired == current


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(policies, app_inputs(), histories), max_size=6), st.floats(0.01, 10))
def test_decide_all_equals_one_by_one(items, scale):
    items = [(p, AppInputs(i.app_id, i.current, i.running, i.utilization, scale=scale), AppState(history=h))
             for p, i, h in items]
    batch = decide_all(items, NOW)
    single = [desired_instances(p, i, s, NOW) for p, i, s in items]
    assert [(d.desired, d.action, d.reason, s) for d, s in batch] == [(d.desired, d.action, d.reason, s) for d, s in single]


def test_scale_turns_raw_usage_into_percent():
    # 0.5 cores used of a 0.25-cpu allocation = 200 % vs target 50 % -> ×4, limited to ×2
    raw = {"t0": Series(np.array([NOW - 1, NOW]), np.array([0.5, 0.5]))}
    decision, _ = desired_instances(policy(), AppInputs("/app", 1, ("t0",), raw, scale=100 / 0.25), AppState(), NOW)
    assert decision.observed == pytest.approx(200.0) and decision.desired == 2
