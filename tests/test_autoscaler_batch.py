"""The service's path — utilizations read by row from one ``UsageBatch`` — decides exactly as
``desired_instances`` does app by app on plain per-task Series.

The batch is built the way a source builds it (``build_usage`` over raw rows, tasks in any
order, tasks that are not running, tasks without samples, apps the loop does not ask about),
so the vectorised observation, the per-app sums and the stale/missing bookkeeping must all
agree to the last bit: the compared decisions include the observed mean and the carried state.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decision import AppInputs, AppState, decide_all, desired_instances
from autoscaler.policy import parse_policy
from metrics.schema import NS_PER_S
from metrics.usage import UsageBatch, build_usage

NOW = 10_000.0

task_samples = st.lists(st.tuples(st.integers(-200, 5), st.integers(0, 4 * 10**9)), max_size=8)
apps = st.lists(st.tuples(
    st.integers(0, 6),                                        # configured instances
    st.lists(task_samples, max_size=6),                       # the app's tasks' raw cpu samples
    st.lists(st.booleans(), min_size=6, max_size=6),          # which tasks are running
    st.sampled_from([10, 30, 120]),                           # window
    st.sampled_from(["target", "threshold"]),
    st.lists(st.tuples(st.floats(NOW - 400, NOW), st.integers(1, 12)), max_size=5).map(tuple),
), max_size=6)


def _policy(app_id: str, mode: str, window: int):
    body = {"target": 50} if mode == "target" else {"scaleUpAbove": 70, "scaleDownBelow": 20, "scaleUpCycles": 1}
    return parse_policy(app_id, {**body, "max": 12, "window": window, "stabilizationDown": 60})


@settings(max_examples=200, deadline=None)
@given(apps, st.floats(0.5, 400), st.randoms(use_true_random=False))
def test_deciding_from_a_usage_batch_equals_app_by_app(app_specs, scale, rnd):
    raw_rows = []
    for a, (_current, tasks, _running, _window, _mode, _history) in enumerate(app_specs):
        for t, samples in enumerate(tasks):
            times = np.array([NOW + dt for dt, _ in samples], dtype=np.int64) * NS_PER_S
            raw_rows.append((f"/a{a}", f"t{t}", times, np.array([v for _, v in samples], dtype=np.float64)))
    raw_rows.append(("/other", "x", np.array([NOW * NS_PER_S], dtype=np.int64), np.array([1.0])))
    rnd.shuffle(raw_rows)
    batch = build_usage("cpu", raw_rows)
    assert isinstance(batch, UsageBatch)
    items, plain = [], []
    for a, (current, tasks, running_flags, window, mode, history) in enumerate(app_specs):
        app_id = f"/a{a}"
        running = tuple(f"t{t}" for t in range(len(tasks)) if running_flags[t]) + ("not-measured",)
        policy = _policy(app_id, mode, window)
        state = AppState(history=tuple(sorted(history)))
        items.append((policy, AppInputs(app_id, current, running, batch.app_series(app_id), scale=scale), state))
        as_dict = {task_id: batch[app_id][task_id] for task_id in batch.get(app_id, {})}
        plain.append((policy, AppInputs(app_id, current, running, as_dict, scale=scale), state))
    together = decide_all(items, NOW)
    one_by_one = [desired_instances(p, i, s, NOW) for p, i, s in plain]
    assert together == one_by_one


def test_a_batch_reads_as_a_mapping_of_apps_with_samples():
    rows = [("/a", "t1", np.array([1, 2], dtype=np.int64) * NS_PER_S, np.array([0.0, 5e8])),
            ("/a", "t2", np.array([1], dtype=np.int64) * NS_PER_S, np.array([0.0])),   # one sample: no rate
            ("/b", "t1", np.array([1], dtype=np.int64) * NS_PER_S, np.array([0.0]))]
    batch = build_usage("cpu", rows)
    assert set(batch) == {"/a"} and "/b" not in batch and len(batch) == 1
    assert set(batch["/a"]) == {"t1"} and batch["/a"]["t1"].values.tolist() == [0.5]
    assert batch.get("/b") is None and len(batch.app_series("/b")) == 0
    assert set(batch.app_series("/a").rows) == {"t1", "t2"}
    assert UsageBatch.of(batch) is batch and build_usage("mem", []) == {}
