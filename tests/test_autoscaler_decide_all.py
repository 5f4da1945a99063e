"""``decide_all``'s shortcuts decide exactly as the plain path does.

* a ``Decision`` made field by field into its ``__dict__`` is the dataclass's own;
* the state carried from one cycle to the next holds its history's timeline, and deciding
  from it equals deciding from a fresh ``AppState`` of the same history;
* samples are reduced a slice of rows at a time; wherever the slices cut, the observation is
  the same to the last bit (per-row sums stay one ``bincount`` over the row's samples in order).
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import autoscaler.decision as decision
import autoscaler.observe as observe
from autoscaler.decision import AppInputs, AppState, Decision, decide_all, desired_instances
from autoscaler.policy import parse_policy
from autoscaler.recommend import timeline_of
from metrics.schema import NS_PER_S
from metrics.usage import build_usage

NOW = 1_700_000_000.0


def test_a_measured_decision_is_the_dataclass_own():
    args = ("/a", NOW, 3, 5, "scale_up", "ratio 1.400 over 3 task(s)", "cpu", "target", 70.0, 50.0, 3, 0, 5, 5)
    fast = decision._measured(*args)
    plain = Decision(*args)
    assert fast == plain and vars(fast) == vars(plain) and repr(fast) == repr(plain)
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(Decision)}
    assert fast.to_json() == plain.to_json() and dataclasses.replace(fast, extra={"x": 1}).extra == {"x": 1}
    with_extra = dataclasses.replace(fast, extra={"applied": True})
    assert with_extra.to_json()["applied"] is True and fast.extra == {}


def _batch_and_items(loads: list[list[float]], windows: list[int], currents: list[int]):
    raw = []
    for a, cores in enumerate(loads):
        for t, core in enumerate(cores):
            times = (NOW - 40 + np.arange(41)) * NS_PER_S
            raw.append((f"/a{a}", f"t{t}", times.astype(np.int64), np.arange(41) * core * NS_PER_S))
    batch = build_usage("cpu", raw)
    items = []
    for a, cores in enumerate(loads):
        policy = parse_policy(f"/a{a}", {"target": 50, "max": 40, "window": windows[a], "stabilizationDown": 60})
        running = tuple(f"t{t}" for t in range(len(cores)))
        items.append((policy, AppInputs(f"/a{a}", currents[a], running, batch.app_series(f"/a{a}"), scale=200.0),
                      AppState()))
    return items


loads = st.lists(st.lists(st.sampled_from([0.05, 0.25, 0.3, 0.5]), min_size=0, max_size=5), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(loads, st.data())
def test_row_slices_cut_anywhere_give_the_same_observations(app_loads, data):
    windows = data.draw(st.lists(st.sampled_from([10, 30]), min_size=len(app_loads), max_size=len(app_loads)))
    currents = data.draw(st.lists(st.integers(1, 6), min_size=len(app_loads), max_size=len(app_loads)))
    items = _batch_and_items(app_loads, windows, currents)
    whole = decide_all(items, NOW)
    for at_once in (1, 2, 3, 7):
        with mock.patch.object(observe, "_ROWS_AT_ONCE", at_once):
            assert decide_all(items, NOW) == whole
    assert whole == [desired_instances(p, i, s, NOW) for p, i, s in items]


@settings(max_examples=60, deadline=None)
@given(loads, st.integers(2, 6))
def test_a_carried_timeline_decides_as_a_fresh_state_of_the_same_history(app_loads, cycles):
    items = _batch_and_items(app_loads, [30] * len(app_loads), [4] * len(app_loads))
    for cycle in range(cycles):
        now = NOW + 15 * cycle
        carried = decide_all(items, now)
        fresh = decide_all([(p, i, AppState(s.history, s.up_cycles, s.down_cycles)) for p, i, s in items], now)
        assert carried == fresh
        for (made, state), (_, again) in zip(carried, fresh):
            if made.recommendation is not None:      # measured, not held: the timeline came along
                assert vars(state).get("timeline") is not None
            assert state.timeline == timeline_of(state.history) == again.timeline
        items = [(p, i, s) for (p, i, _), (_, s) in zip(items, carried)]


def test_an_out_of_order_history_is_stabilized_as_before_and_not_carried_as_a_timeline():
    policy = parse_policy("/a", {"target": 50, "max": 40, "window": 30, "stabilizationDown": 300})
    items = _batch_and_items([[0.05, 0.05, 0.05]], [30], [6])
    state = AppState(((NOW - 10, 6), (NOW - 100, 5)))       # out of order
    assert state.timeline is None
    (made, next_state), = decide_all([(policy, items[0][1], state)], NOW)
    assert made.desired == 6 and "stabilized at 6" in made.reason
    assert next_state.history == ((NOW - 10, 6), (NOW - 100, 5), (NOW, made.recommendation))
    assert "timeline" not in vars(next_state) and next_state.timeline is None
