"""The per-version p95 of an analysis interval: held to numpy.percentile, and by version."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.canary.latency import percentile, percentile_by_version

times = st.floats(min_value=0, max_value=60_000, allow_nan=False)
quantiles = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(st.lists(times, min_size=1, max_size=300), quantiles)
def test_percentile_is_numpys_default(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


@given(st.lists(times, min_size=1, max_size=100))
def test_percentile_lies_within_the_values_and_grows_with_q(values: list[float]) -> None:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    assert min(values) <= p50 <= p95 <= max(values)


@given(st.lists(st.tuples(st.sampled_from(["be/a", "be/b", "be/c", "be/x"]), times), max_size=200))
def test_by_version_equals_numpy_on_each_versions_samples(samples: list[tuple[str, float]]) -> None:
    version_of = {"be/a": "stable", "be/b": "stable", "be/c": "canary"}   # be/x: no known version
    got = percentile_by_version(samples, version_of)
    for version in ("stable", "canary"):
        mine = [ms for server, ms in samples if version_of.get(server) == version]
        if mine:
            assert got[version] == pytest.approx(float(np.percentile(mine, 95)), rel=1e-9, abs=1e-9)
        else:
            assert version not in got
    assert set(got) <= {"stable", "canary"}


def test_a_slow_tail_moves_the_p95_but_barely_the_mean() -> None:
    # 1 request in 10 takes 150 ms: the mean stays near 20 ms, the p95 is the slow tail's
    canary = [("be/c", 150.0 if i % 10 == 0 else 5.0) for i in range(200)]
    stable = [("be/a", 5.0) for _ in range(200)]
    got = percentile_by_version(stable + canary, {"be/a": "stable", "be/c": "canary"})
    assert got == {"stable": 5.0, "canary": 150.0}
    assert np.mean([ms for _, ms in canary]) < 25


def test_requests_without_a_response_time_are_left_out() -> None:
    assert percentile_by_version([("be/a", -1.0), ("be/a", 7.0)], {"be/a": "stable"}) == {"stable": 7.0}
    assert percentile_by_version([("be/a", -1.0)], {"be/a": "stable"}) == {}


@pytest.mark.parametrize("values, q", [([], 95.0), ([1.0], -1.0), ([1.0], 100.5), ([1.0], float("nan"))])
def test_bad_input_is_refused(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)
