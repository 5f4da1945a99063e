"""HAProxy weights for a canary share: exact where integers allow, never a black hole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.canary import InvalidCounts, ServerWeights, canary_share, canary_weights, weight_commands
from scheduler.canary.weights import MAX_WEIGHT

# (stable servers, canary servers, percent) -> expected weights, like the HPA's replica calculator table
TABLE: list[tuple[str, int, int, int, ServerWeights]] = [
    ("half and half, one each", 1, 1, 50, ServerWeights(1, 1, 50.0)),
    ("ten percent, one each", 1, 1, 10, ServerWeights(9, 1, 10.0)),
    ("ten percent, four stable", 4, 1, 10, ServerWeights(9, 4, 10.0)),
    ("zero percent", 3, 1, 0, ServerWeights(1, 0, 0.0)),
    ("all to the canary", 3, 1, 100, ServerWeights(0, 1, 100.0)),
    ("no canary servers yet", 3, 0, 50, ServerWeights(1, 0, 0.0)),
    ("only canary servers (blue/green after the switch)", 0, 2, 10, ServerWeights(0, 1, 100.0)),
    ("no servers at all", 0, 0, 50, ServerWeights(0, 0, None)),
    ("best possible when 1 point is out of reach", 10, 1, 99, ServerWeights(1, 256, 100 * 256 / 266)),
    ("one percent to six canaries: best is 2.3%", 1, 6, 1, ServerWeights(256, 1, 100 * 6 / 262)),
    ("a third to two canaries of five", 3, 2, 33, ServerWeights(134, 99, 33.0)),
]


@pytest.mark.parametrize(("stable", "canary", "percent", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_table(stable: int, canary: int, percent: int, expected: ServerWeights) -> None:
    got = canary_weights(stable, canary, percent)
    assert got.stable == expected.stable and got.canary == expected.canary
    assert got.canary_percent == pytest.approx(expected.canary_percent) if expected.canary_percent is not None \
        else got.canary_percent is None


@pytest.mark.parametrize(("stable", "canary", "percent"), [(-1, 1, 10), (1, -1, 10), (1, 1, -1), (1, 1, 101)])
def test_impossible_inputs(stable: int, canary: int, percent: int) -> None:
    with pytest.raises(InvalidCounts):
        canary_weights(stable, canary, percent)


_W = np.arange(1, MAX_WEIGHT + 1, dtype=np.float64)


def _best_possible(stable: int, canary: int, percent: int) -> float:
    """Brute force over every pair of positive weights: the smallest reachable error."""
    canary_total = canary * _W[:, None]
    shares = 100.0 * canary_total / (canary_total + stable * _W[None, :])
    return float(np.abs(shares - percent).min())


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 100))
def test_weights_are_valid_and_share_is_what_they_give(stable: int, canary: int, percent: int) -> None:
    w = canary_weights(stable, canary, percent)
    assert 0 <= w.stable <= MAX_WEIGHT and 0 <= w.canary <= MAX_WEIGHT
    assert w.canary_percent == canary_share(stable, canary, w.stable, w.canary)
    if stable or canary:  # never a black hole while any server exists
        assert stable * w.stable + canary * w.canary > 0
    if stable and canary:
        assert w.canary_percent is not None
        if abs(w.canary_percent - percent) > 1:  # then no integer weights do better
            assert 0 < percent < 100


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 99))
def test_within_one_point_when_integers_allow(stable: int, canary: int, percent: int) -> None:
    w = canary_weights(stable, canary, percent)
    assert w.canary_percent is not None
    if _best_possible(stable, canary, percent) <= 1.0:
        assert abs(w.canary_percent - percent) <= 1.0
    assert w.stable >= 1 and w.canary >= 1  # both versions keep serving between 0 and 100


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 99))
def test_optimal_against_brute_force(stable: int, canary: int, percent: int) -> None:
    w = canary_weights(stable, canary, percent)
    assert w.canary_percent is not None
    assert abs(w.canary_percent - percent) <= _best_possible(stable, canary, percent) + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(0, 99), st.integers(1, 100))
def test_more_percent_never_gives_the_canary_less(stable: int, canary: int, low: int, step: int) -> None:
    high = min(100, low + step)
    a, b = canary_weights(stable, canary, low), canary_weights(stable, canary, high)
    assert a.canary_percent is not None and b.canary_percent is not None
    assert b.canary_percent >= a.canary_percent - 1e-9


def test_commands_never_leave_every_server_at_zero() -> None:
    up = weight_commands("web_80", ["s1", "s2"], ["c1"], ServerWeights(0, 1, 100.0))
    assert up == ["set server web_80/c1 weight 1", "set server web_80/s1 weight 0", "set server web_80/s2 weight 0"]
    down = weight_commands("web_80", ["s1"], ["c1"], ServerWeights(1, 0, 0.0))
    assert down == ["set server web_80/s1 weight 1", "set server web_80/c1 weight 0"]
