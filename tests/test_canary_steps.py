"""The canary's steps as a pure state machine: tables of scripted ticks, then properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_definitions.strategies import Canary
from scheduler.canary import (
    Abort,
    CanaryState,
    SetWeight,
    StartFullRoll,
    StateMismatch,
    SwitchOver,
    Transition,
    Verdict,
    VersionSample,
    Wait,
    abort,
    advance,
    begin,
)

ISSUE = {"instances": 1,
         "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}}, {"setWeight": 50}, {"pause": {"seconds": 60}}],
         "analysis": {"intervalSeconds": 10, "minRequests": 50, "maxErrorRate": 0.02, "failureLimit": 2}}


def spec(**changes: Any) -> Canary:
    return Canary.model_validate({**ISSUE, **changes})


def verdict(outcome: str) -> Verdict:
    return Verdict(outcome, f"the interval was {outcome}", VersionSample(), VersionSample())  # type: ignore[arg-type]


PASS, FAIL, NODATA = verdict("pass"), verdict("fail"), verdict("inconclusive")
Tick = tuple[float, Verdict | None, str | None]


def run(canary: Canary, ticks: list[Tick], deadline: float = 0.0) -> tuple[Transition, list[Transition]]:
    history = [begin(canary, 0.0)]
    for now, v, promote in ticks:
        history.append(advance(history[-1].state, canary, now, v, promote,  # type: ignore[arg-type]
                               progress_deadline_seconds=deadline))
    return history[-1], history


def actions(history: list[Transition]) -> list[Any]:
    return [a for t in history for a in t.actions if not isinstance(a, Wait)]


def test_begin_applies_the_first_weight_and_waits_in_the_pause() -> None:
    t = begin(spec(), 0.0)
    assert t.actions == (SetWeight(10), Wait(60.0, 10.0, "pausing 60s"))
    assert t.entered == (0, 1)
    assert (t.state.step_index, t.state.weight, t.state.phase) == (1, 10, "steps")


# name, spec, ticks, deadline, expected (phase, step, weight, failures), non-wait actions in order
TABLE: list[tuple[str, Canary, list[Tick], float, tuple[str, int, int, int], list[Any]]] = [
    ("passing canary goes all the way",
     spec(), [(10, PASS, None), (60, PASS, None), (70, PASS, None), (120, PASS, None)], 0,
     ("promoted", 4, 50, 0), [SetWeight(10), SetWeight(50), StartFullRoll()]),
    ("time alone does not end a pause with analysis",
     spec(), [(60, None, None), (61, None, None)], 0, ("steps", 1, 10, 0), [SetWeight(10)]),
    ("a pass before the time is up waits for the time",
     spec(), [(10, PASS, None), (59, None, None)], 0, ("steps", 1, 10, 0), [SetWeight(10)]),
    ("a pause that is over waits for a passing interval",
     spec(), [(10, NODATA, None), (60, None, None), (65, NODATA, None), (75, PASS, None)], 0,
     ("steps", 3, 50, 0), [SetWeight(10), SetWeight(50)]),
    ("one failure below the limit holds the step",
     spec(), [(10, FAIL, None), (60, None, None)], 0, ("steps", 1, 10, 1), [SetWeight(10)]),
    ("failures count across steps and abort at the limit",
     spec(), [(10, FAIL, None), (60, PASS, None), (70, FAIL, None)], 0, ("aborted", 3, 0, 2),
     [SetWeight(10), SetWeight(50), Abort("x")]),
    ("failure limit 1 aborts at once",
     spec(analysis={**ISSUE["analysis"], "failureLimit": 1}), [(10, FAIL, None)], 0, ("aborted", 1, 0, 1),
     [SetWeight(10), Abort("x")]),
    ("no data past the progress deadline aborts",
     spec(), [(10, NODATA, None), (20, NODATA, None), (100, NODATA, None), (120, None, None)], 120,
     ("aborted", 1, 0, 0), [SetWeight(10), Abort("x")]),
    ("no data without a deadline waits forever",
     spec(), [(10, NODATA, None), (10_000, NODATA, None)], 0, ("steps", 1, 10, 0), [SetWeight(10)]),
    ("conclusive data resets the deadline",
     spec(), [(10, FAIL, None), (100, NODATA, None), (129, None, None)], 120, ("steps", 1, 10, 1), [SetWeight(10)]),
    ("manual pause waits for a person",
     spec(steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]),
     [(10, PASS, None), (10_000, NODATA, None)], 60, ("steps", 1, 20, 0), [SetWeight(20)]),
    ("promote next ends a manual pause",
     spec(steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]),
     [(5, None, "next"), (9, None, "next")], 0, ("promoted", 4, 60, 0),
     [SetWeight(20), SetWeight(60), StartFullRoll()]),
    ("promote next overrides a failing interval",
     spec(), [(10, FAIL, "next")], 0, ("steps", 3, 50, 1), [SetWeight(10), SetWeight(50)]),
    ("promote full skips the rest",
     spec(), [(1, None, "full")], 0, ("promoted", 4, 10, 0), [SetWeight(10), StartFullRoll()]),
    ("failures still abort a manual pause",
     spec(steps=[{"setWeight": 20}, {"pause": {}}]), [(10, FAIL, None), (20, FAIL, None)], 0,
     ("aborted", 1, 0, 2), [SetWeight(20), Abort("x")]),
    ("without analysis pauses are timers",
     spec(analysis=None), [(30, FAIL, None), (60, None, None), (119, None, None), (120, None, None)], 0,
     ("promoted", 4, 50, 0), [SetWeight(10), SetWeight(50), StartFullRoll()]),
    ("blue/green switches instead of rolling",
     spec(blueGreen=True, steps=[{"pause": {"seconds": 30}}]), [(10, PASS, None), (30, None, None)], 0,
     ("promoted", 1, 100, 0), [SwitchOver()]),      # the switch holds all traffic on the new set
    ("no steps: straight to the roll", spec(steps=[], analysis=None), [], 0, ("promoted", 0, 0, 0), [StartFullRoll()]),
    ("a finished canary ignores everything",
     spec(), [(1, None, "full"), (2, FAIL, None), (3, FAIL, "next")], 0, ("promoted", 4, 10, 0),
     [SetWeight(10), StartFullRoll()]),
    ("zero-second pause with analysis still needs a pass",
     spec(steps=[{"setWeight": 5}, {"pause": {"seconds": 0}}]), [(1, None, None), (10, PASS, None)], 0,
     ("promoted", 2, 5, 0), [SetWeight(5), StartFullRoll()]),
]


@pytest.mark.parametrize(("canary", "ticks", "deadline", "expected", "done"), [t[1:] for t in TABLE],
                         ids=[t[0] for t in TABLE])
def test_table(canary: Canary, ticks: list[Tick], deadline: float, expected: tuple[str, int, int, int],
               done: list[Any]) -> None:
    last, history = run(canary, ticks, deadline)
    s = last.state
    assert (s.phase, s.step_index, s.weight, s.failures) == expected, s
    got = actions(history)
    assert [type(a) for a in got] == [type(a) for a in done]
    assert [a for a in got if not isinstance(a, Abort)] == [a for a in done if not isinstance(a, Abort)]
    if s.phase == "aborted":
        assert s.reason and isinstance(got[-1], Abort) and got[-1].reason == s.reason


def test_abort_reasons_name_the_cause() -> None:
    last, _ = run(spec(), [(10, FAIL, None), (20, FAIL, None)])
    assert last.state.reason == "analysis failed 2 time(s), reaching failureLimit 2: the interval was fail"
    last, _ = run(spec(), [(10, NODATA, None), (130, None, None)], deadline=120)
    assert last.state.reason is not None and last.state.reason.startswith("no conclusive analysis for 130s")
    assert "the interval was inconclusive" in last.state.reason


def test_abort_on_request_and_its_json() -> None:
    state = begin(spec(), 0.0).state
    t = abort(state, "aborted by DELETE /v2/deployments/abc")
    assert t.actions == (Abort("aborted by DELETE /v2/deployments/abc"),) and t.state.weight == 0
    assert abort(t.state, "again").actions == ()
    body = t.state.to_json(spec())
    assert body["phase"] == "aborted" and body["failureLimit"] == 2 and body["weight"] == 0
    with_verdict = advance(state, spec(), 10, PASS).state.to_json(spec())
    assert with_verdict["lastAnalysis"]["verdict"] == "pass" and with_verdict["step"] == 1


def test_wait_tells_when_to_analyse() -> None:
    t = advance(begin(spec(), 0.0).state, spec(), 10, PASS)
    assert t.judged and t.actions == (Wait(60, 20, "pausing 60s"),)
    held = advance(t.state, spec(), 60, FAIL)
    assert held.actions == (Wait(None, 70, "the last interval failed"),)


def test_state_past_the_steps_is_refused() -> None:
    state = CanaryState(0, 0, 0, step_index=9)
    with pytest.raises(StateMismatch):
        advance(state, spec(), 1.0)


# -- properties over random specs and random tick scripts ----------------------------------------

@st.composite
def specs(draw: st.DrawFn) -> Canary:
    weights = sorted(draw(st.sets(st.integers(0, 100), max_size=4)))
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps.append({"setWeight": weight})
        for _ in range(draw(st.integers(0, 2))):
            steps.append({"pause": draw(st.sampled_from([{}, {"seconds": draw(st.integers(0, 300))}]))})
    body: dict[str, Any] = {"steps": steps, "blueGreen": draw(st.booleans())}
    if any("pause" in s for s in steps) and draw(st.booleans()):
        body["analysis"] = {"intervalSeconds": draw(st.integers(1, 60)), "maxErrorRate": 0.1,
                            "failureLimit": draw(st.integers(1, 4))}
    return Canary.model_validate(body)


ticks = st.lists(st.tuples(st.floats(0, 200), st.sampled_from([None, PASS, FAIL, NODATA]),
                           st.sampled_from([None, None, None, None, "next", "full"])), max_size=25)
PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(specs(), ticks, st.sampled_from([0.0, 100.0]))
def test_invariants(canary: Canary, script: list[tuple[float, Verdict | None, str | None]], deadline: float) -> None:
    now = 0.0
    t = begin(canary, now)
    limit = canary.analysis.failure_limit if canary.analysis else None
    for gap, v, promote in script:
        now += gap
        before = t.state
        t = advance(before, canary, now, v, promote, progress_deadline_seconds=deadline)  # type: ignore[arg-type]
        s = t.state
        if before.finished:  # terminal states never move
            assert s == before and t.actions == ()
            continue
        assert 0 <= s.weight <= 100 and 0 <= s.step_index <= len(canary.steps)
        assert s.step_index >= before.step_index
        if s.phase == "steps":
            assert s.weight >= before.weight
            set_so_far = [st_.set_weight for st_ in canary.steps[:s.step_index] if st_.set_weight is not None]
            assert s.weight == (set_so_far[-1] if set_so_far else 0)
            assert canary.steps[s.step_index].pause is not None  # it only ever waits in a pause
            assert isinstance(t.actions[-1], Wait)
        kinds = [type(a) for a in t.actions]
        assert (Abort in kinds) == (s.phase == "aborted")
        assert ((StartFullRoll in kinds) or (SwitchOver in kinds)) == (s.phase == "promoted")
        if s.phase == "promoted":
            assert (SwitchOver in kinds) == canary.blue_green
        if limit is not None:
            assert s.failures <= limit
            if s.failures >= limit:
                assert s.phase == "aborted"
        else:
            assert s.failures == 0
        if promote is None and s.step_index > before.step_index:
            # a pause was left without a person: its time was up and, with analysis, it had passed
            pause = canary.steps[before.step_index].pause
            assert pause is not None and not pause.is_manual and pause.seconds is not None
            assert now >= before.step_started_at + pause.seconds
            if canary.analysis is not None:
                assert before.step_passed or (v is not None and v.outcome == "pass")


@PROPS
@given(specs())
def test_passing_canary_with_a_patient_person_is_always_promoted(canary: Canary) -> None:
    now = 0.0
    t = begin(canary, now)
    for _ in range(3 * len(canary.steps) + 2):
        if t.state.finished:
            break
        now += 400
        manual = t.state.manual_pause
        t = advance(t.state, canary, now, PASS, "next" if manual else None)
    assert t.state.phase == "promoted" and t.state.step_index == len(canary.steps)


@PROPS
@given(specs(), st.integers(0, 10))
def test_a_failing_canary_is_never_promoted_without_a_person(canary: Canary, gaps: int) -> None:
    if canary.analysis is None:
        return
    now = 0.0
    t = begin(canary, now)
    promoted_early = t.state.phase == "promoted"  # no pause before the end: nothing to judge in
    for _ in range(gaps + canary.analysis.failure_limit):
        now += 500
        t = advance(t.state, canary, now, FAIL)
    assert t.state.phase == ("promoted" if promoted_early else "aborted")
