"""Stabilization read from a history's columns answers exactly what sorting the history does.

``stabilize_timeline`` bisects a ``Timeline`` (the history in time order, as columns) instead
of sorting and filtering the tuples; ``_stabilize_sorted`` is the plain reading and the
reference: every history, window, boundary and ``now`` must give the same size, the same kept
history, and a timeline that is the kept history's own.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.recommend import EPS, _stabilize_sorted, stabilize, stabilize_timeline, timeline_of

NOW = 1_700_000_000.0          # at this magnitude EPS is below a float's resolution
windows = st.sampled_from([0.0, 15.0, 60.0, 300.0, 3600.0])
recommendations = st.integers(0, 40)


@st.composite
def histories(draw: st.DrawFn) -> tuple[tuple[float, int], ...]:
    """Histories as the loop leaves them (one entry a cycle, in order), with entries exactly on
    a window's edge, out of order, in the future, or not a number."""
    step = draw(st.sampled_from([1.0, 15.0, 30.0]))
    count = draw(st.integers(0, 25))
    times = [NOW - step * k for k in range(count, 0, -1)]
    kind = draw(st.sampled_from(["ordered", "shuffled", "future", "nan", "equal", "arbitrary"]))
    if kind == "shuffled" and times:
        times = draw(st.permutations(times))
    elif kind == "future" and times:
        times[-1] = NOW + draw(st.sampled_from([EPS, 1.0, 100.0]))
    elif kind == "nan" and times:
        times[draw(st.integers(0, len(times) - 1))] = math.nan
    elif kind == "equal":
        times = sorted(times + times[:3])
    elif kind == "arbitrary":
        times = draw(st.lists(st.floats(NOW - 4000, NOW + 10, allow_nan=False), max_size=25))
    recs = draw(st.lists(recommendations, min_size=len(times), max_size=len(times)))
    return tuple(zip(times, recs))


@settings(max_examples=600, deadline=None)
@given(st.integers(0, 40), recommendations, histories(), windows, windows,
       st.sampled_from([NOW, NOW - 0.5, NOW + 7.5]))
def test_the_timeline_reading_equals_sorting_the_history(current, rec, history, up, down, now):
    expected = _stabilize_sorted(current, rec, history, now, up, down)
    timeline = timeline_of(history)
    stabilized, kept, next_timeline = stabilize_timeline(current, rec, history, timeline, now, up, down)
    assert (stabilized, kept) == expected
    assert stabilize(current, rec, history, now, up, down) == expected
    if next_timeline is not None:
        assert next_timeline == timeline_of(kept)
        assert list(next_timeline.times) == [t for t, _ in kept] and next_timeline.recs == tuple(r for _, r in kept)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(recommendations, st.sampled_from([10.0, 15.0, 20.0])), min_size=1, max_size=40),
       windows, windows)
def test_a_timeline_carried_cycle_after_cycle_equals_reading_each_history_afresh(cycles, up, down):
    history: tuple[tuple[float, int], ...] = ()
    timeline = timeline_of(history)
    now, current = NOW, 5
    for rec, step in cycles:
        now += step
        expected = _stabilize_sorted(current, rec, history, now, up, down)
        current, history, timeline = stabilize_timeline(current, rec, history, timeline, now, up, down)
        assert (current, history) == expected and timeline == timeline_of(history)


@pytest.mark.parametrize("history, expected", [
    ((), ((), ())),
    (((1.0, 3), (2.0, 4)), ((1.0, 2.0), (3, 4))),
    (((2.0, 3), (2.0, 1)), ((2.0, 2.0), (3, 1))),       # equal times keep their order
    (((2.0, 3), (1.0, 4)), None),                      # out of order
    (((1.0, 3), (math.nan, 4)), None),
    (((10**400, 3),), None),                           # beyond a double
])
def test_timeline_of(history, expected):
    timeline = timeline_of(history)
    if expected is None:
        assert timeline is None
    else:
        assert timeline is not None and (tuple(timeline.times), timeline.recs) == expected


@pytest.mark.parametrize("current, rec, history, up, down, expected", [
    # the oldest entry sits exactly on the longer window's edge: EPS is lost at this magnitude, so
    # it is dropped, as sorting drops it; the highest of the others caps the size
    (12, 8, tuple((NOW - 15 * k, 10) for k in range(20, 0, -1)), 0.0, 300.0, (10, 20)),
    # a higher recommendation inside the down window holds the size up ...
    (12, 8, ((NOW - 100, 12), (NOW - 50, 9)), 0.0, 300.0, (12, 3)),
    # ... and not once it is older than the window
    (12, 8, ((NOW - 400, 12), (NOW - 50, 9)), 0.0, 300.0, (9, 2)),
    # the up window lifts the size to the lowest recommendation of its span
    (8, 13, ((NOW - 100, 14), (NOW - 50, 11)), 60.0, 300.0, (11, 3)),
])
def test_stabilize_cases(current, rec, history, up, down, expected):
    stabilized, kept = stabilize(current, rec, history, NOW, up, down)
    assert (stabilized, len(kept)) == expected
