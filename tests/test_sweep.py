"""The reconciliation sweep: a share of the apps per round, every app within the period."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.decide.sweep import next_sweep, sweep_share


@pytest.mark.parametrize("total, elapsed, period, share", [
    (0, 1.0, 5.0, 0),
    (1000, 1.0, 5.0, 200),
    (1000, 0.1, 5.0, 20),
    (1000, 0.0, 5.0, 1),          # a wake-up right after a round still moves the sweep on
    (1000, 5.0, 5.0, 1000),       # idle for a whole period: everything at once
    (1000, 60.0, 5.0, 1000),
    (3, 1.0, 5.0, 1),
    (10, 1.0, 0.0, 10),
])
def test_sweep_share(total: int, elapsed: float, period: float, share: int):
    assert sweep_share(total, elapsed, period) == share


def test_next_sweep_goes_on_from_the_cursor_and_wraps():
    ids = ["/a", "/b", "/c", "/d", "/e"]
    assert next_sweep(ids, None, 2) == (["/a", "/b"], "/b")
    assert next_sweep(ids, "/b", 2) == (["/c", "/d"], "/d")
    assert next_sweep(ids, "/d", 2) == (["/e", "/a"], "/a")
    assert next_sweep(ids, "/bb", 1) == (["/c"], "/c")          # the cursor's app is gone
    assert next_sweep(ids, "/c", 9) == (sorted(ids), "/e")
    assert next_sweep([], "/c", 3) == ([], "/c")


ids_sets = st.sets(st.text("abcdef", min_size=1, max_size=3).map(lambda s: "/" + s), min_size=1, max_size=40)


@given(ids_sets, st.lists(st.floats(0.0, 2.0), min_size=1, max_size=30))
def test_every_app_is_covered_within_the_period(ids: set[str], gaps: list[float]):
    """Rounds at any spacing: the rounds of any `period` seconds together cover every id."""
    period, cursor, rounds = 5.0, None, []
    for gap in gaps:
        swept, cursor = next_sweep(ids, cursor, sweep_share(len(ids), gap, period))
        rounds.append((gap, set(swept)))
    for start in range(len(rounds)):
        covered: set[str] = set()
        spent = 0.0
        for gap, swept in rounds[start:]:
            spent += gap
            covered |= swept
            if spent >= period:
                assert covered == ids
                break


@given(ids_sets, st.integers(1, 50))
def test_consecutive_rounds_never_skip_an_id(ids: set[str], count: int):
    cursor, seen = None, []
    for _ in range(math.ceil(len(ids) / count)):
        swept, cursor = next_sweep(ids, cursor, count)
        seen.extend(swept)
    assert set(seen) == ids
