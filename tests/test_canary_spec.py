"""`upgradeStrategy.canary`: the Pacer extension's model, its 422 errors by path, its JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_definitions import ValidationFailed, is_upgrade, parse_app_definition
from app_definitions.schema import app_json_schema
from app_definitions.strategies import Canary

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ISSUE_EXAMPLE: dict[str, Any] = {
    "instances": 1,
    "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}}, {"setWeight": 50}, {"pause": {"seconds": 60}}],
    "analysis": {"intervalSeconds": 10, "minRequests": 50, "maxErrorRate": 0.02, "maxErrorRateIncrease": 0.01,
                 "maxLatencyP95Ratio": 1.5, "maxCpuRatio": 2.0, "failureLimit": 2},
}


def parse(canary: Any, **extra: Any) -> Any:
    return parse_app_definition({"id": "/web", "cmd": "serve", **extra,
                                 "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
                                                     "canary": canary}})


def errors(canary: Any, **extra: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse(canary, **extra)
    body = caught.value.to_body()
    assert body["message"] == "Object is not valid"
    return {d["path"]: d["errors"] for d in body["details"]}


def test_the_issue_example_parses_and_round_trips() -> None:
    app = parse(ISSUE_EXAMPLE)
    canary = app.upgrade_strategy.canary
    assert canary is not None and canary.instances == 1 and not canary.blue_green
    assert [s.set_weight for s in canary.steps] == [10, None, 50, None]
    assert canary.steps[1].pause is not None and canary.steps[1].pause.seconds == 60
    assert canary.analysis is not None and canary.analysis.failure_limit == 2
    out = app.to_json()
    assert out["upgradeStrategy"]["canary"] == {**ISSUE_EXAMPLE, "blueGreen": False}
    assert parse_app_definition(json.loads(json.dumps(out))) == app


def test_absent_from_json_when_unset() -> None:
    app = parse_app_definition({"id": "/web", "cmd": "serve"})
    assert app.upgrade_strategy.canary is None
    assert app.to_json()["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert "canary" not in app.upgrade_strategy.model_dump()
    assert parse_app_definition({"id": "/web", "cmd": "serve", "upgradeStrategy": {"canary": None}}) == app


def test_manual_pause_and_defaults_render_without_nulls() -> None:
    app = parse({"steps": [{"setWeight": 20}, {"pause": {}}]})
    rendered = app.to_json()["upgradeStrategy"]["canary"]
    assert rendered == {"instances": 1, "blueGreen": False, "steps": [{"setWeight": 20}, {"pause": {}}]}
    # even a plain model_dump (the store, events) carries no nulls a client could misread
    dumped = app.upgrade_strategy.model_dump(by_alias=True)["canary"]
    assert dumped["steps"] == [{"setWeight": 20}, {"pause": {}}] and "analysis" not in dumped
    assert app.upgrade_strategy.canary is not None
    pause = app.upgrade_strategy.canary.steps[1].pause
    assert pause is not None and pause.is_manual


def test_blue_green() -> None:
    canary = parse({"blueGreen": True, "steps": [{"pause": {"seconds": 30}}],
                    "analysis": {"maxErrorRate": 0.05}}).upgrade_strategy.canary
    assert canary is not None and canary.blue_green and canary.steps[0].pause is not None


def test_analysis_thresholds_by_json_name() -> None:
    canary = Canary.model_validate(ISSUE_EXAMPLE)
    assert canary.analysis is not None
    assert canary.analysis.thresholds == {"maxErrorRate": 0.02, "maxErrorRateIncrease": 0.01,
                                          "maxLatencyP95Ratio": 1.5, "maxCpuRatio": 2.0}


# -- 422s, each at the path a user has to change (table) ------------------------------------------

P = "/upgradeStrategy/canary"
CASES: list[tuple[str, Any, dict[str, Any], dict[str, list[str]]]] = [
    ("weight above 100", {"steps": [{"setWeight": 101}]}, {},
     {f"{P}/steps(0)/setWeight": ["got 101, expected 100 or less"]}),
    ("negative weight", {"steps": [{"setWeight": -1}]}, {},
     {f"{P}/steps(0)/setWeight": ["got -1, expected 0 or more"]}),
    ("weight as a string", {"steps": [{"setWeight": "10"}]}, {}, {f"{P}/steps(0)/setWeight": ["must be an integer"]}),
    ("weights must increase", {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 50}]}, {},
     {f"{P}/steps(2)/setWeight": ["got 50, expected more than 50 (the setWeight of steps(0))"]}),
    ("a step of no kind", {"steps": [{}]}, {}, {f"{P}/steps(0)": ["must have exactly one of setWeight or pause"]}),
    ("a step of two kinds", {"steps": [{"setWeight": 5, "pause": {}}]}, {},
     {f"{P}/steps(0)": ["must have exactly one of setWeight or pause"]}),
    ("negative pause", {"steps": [{"pause": {"seconds": -1}}]}, {},
     {f"{P}/steps(0)/pause/seconds": ["got -1, expected 0 or more"]}),
    ("pause not an object", {"steps": [{"pause": 5}]}, {}, {f"{P}/steps(0)/pause": ["must be a JSON object"]}),
    ("no instances", {"instances": 0}, {}, {f"{P}/instances": ["got 0, expected 1 or more"]}),
    ("steps not a list", {"steps": {"setWeight": 1}}, {}, {f"{P}/steps": ["must be a JSON array"]}),
    ("canary not an object", "yes", {}, {P: ["must be a JSON object"]}),
    ("error rate above 1", {"analysis": {"maxErrorRate": 1.5}, "steps": [{"pause": {}}]}, {},
     {f"{P}/analysis/maxErrorRate": ["got 1.5, expected 1.0 or less"]}),
    ("zero ratios and limits", {"steps": [{"pause": {}}],
                                "analysis": {"maxCpuRatio": 0, "maxLatencyP95Ratio": -1, "failureLimit": 0,
                                             "intervalSeconds": 0, "minRequests": -5}}, {},
     {f"{P}/analysis/maxCpuRatio": ["got 0, expected more than 0.0"],
      f"{P}/analysis/maxLatencyP95Ratio": ["got -1, expected more than 0.0"],
      f"{P}/analysis/failureLimit": ["got 0, expected 1 or more"],
      f"{P}/analysis/intervalSeconds": ["got 0, expected 1 or more"],
      f"{P}/analysis/minRequests": ["got -5, expected 0 or more"]}),
    ("analysis without thresholds or pauses", {"analysis": {"intervalSeconds": 5}, "steps": [{"setWeight": 10}]}, {},
     {f"{P}/analysis": ["must set at least one of maxErrorRate, maxErrorRateIncrease, maxLatencyP95Ratio, "
                        "maxCpuRatio", "analysis runs during pause steps, but steps has no pause"]}),
    ("single instance app", {}, {"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"},
                                 "upgradeStrategy": None},
     {P: ["a single instance app cannot run a canary beside its instance"]}),
]


@pytest.mark.parametrize(("canary", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_violations(canary: Any, extra: dict[str, Any], expected: dict[str, list[str]]) -> None:
    if extra.get("upgradeStrategy", 1) is None:  # keep the {0, 0} a single instance app needs
        extra = {k: v for k, v in extra.items() if k != "upgradeStrategy"}
        with pytest.raises(ValidationFailed) as caught:
            parse_app_definition({"id": "/web", "cmd": "serve", **extra,
                                  "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0,
                                                      "canary": canary}})
        assert {d["path"]: d["errors"] for d in caught.value.details} == expected
        return
    assert errors(canary, **extra) == expected


def test_resident_app_cannot_run_a_canary() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition({
            "id": "/db", "cmd": "run",
            "container": {"type": "MESOS",
                          "volumes": [{"containerPath": "data", "persistent": {"size": 100}, "mode": "RW"}]},
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0, "canary": {}},
        })
    assert caught.value.messages(P) == ["a resident app cannot run a canary (it needs over capacity)"]


def test_a_canary_change_is_an_upgrade() -> None:
    plain = parse_app_definition({"id": "/web", "cmd": "serve"})
    assert is_upgrade(plain, parse({"steps": [{"setWeight": 10}]}))


def test_schema_names_the_canary() -> None:
    schema = app_json_schema()
    json.dumps(schema)
    assert "canary" in schema["$defs"]["UpgradeStrategy"]["properties"]
    assert {"setWeight", "pause"} <= set(schema["$defs"]["CanaryStep"]["properties"])
    assert schema["$defs"]["Canary"]["properties"]["steps"]["items"] == {"$ref": "#/$defs/CanaryStep"}
    assert "maxLatencyP95Ratio" in schema["$defs"]["CanaryAnalysis"]["properties"]


# -- property: every valid canary round-trips through to_json/parse ---------------------------------

@st.composite
def canaries(draw: st.DrawFn) -> dict[str, Any]:
    weights = sorted(draw(st.sets(st.integers(0, 100), max_size=4)))
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps.append({"setWeight": weight})
        if draw(st.booleans()):
            steps.append({"pause": draw(st.sampled_from([{}, {"seconds": draw(st.integers(0, 3600))}]))})
    canary: dict[str, Any] = {"steps": steps}
    if draw(st.booleans()):
        canary["instances"] = draw(st.integers(1, 20))
    if draw(st.booleans()):
        canary["blueGreen"] = draw(st.booleans())
    if any("pause" in s for s in steps) and draw(st.booleans()):
        analysis = draw(st.fixed_dictionaries({}, optional={
            "intervalSeconds": st.integers(1, 600), "minRequests": st.integers(0, 1000),
            "maxErrorRateIncrease": st.floats(0, 1), "maxLatencyP95Ratio": st.floats(0.01, 10),
            "maxCpuRatio": st.floats(0.01, 10), "failureLimit": st.integers(1, 10)}))
        analysis["maxErrorRate"] = draw(st.floats(0, 1))
        canary["analysis"] = analysis
    return canary


@SETTINGS
@given(canaries())
def test_valid_canaries_round_trip(canary: dict[str, Any]) -> None:
    app = parse(canary)
    out = app.to_json()
    text = json.dumps(out)
    assert "null" not in text
    again = parse_app_definition(json.loads(text))
    assert again == app and again.to_json() == out
    rendered = out["upgradeStrategy"]["canary"]
    assert rendered["steps"] == canary["steps"]


@SETTINGS
@given(canaries(), st.integers(0, 3), st.integers(-5, 200))
def test_a_decreasing_weight_is_reported_at_its_step(canary: dict[str, Any], where: int, weight: int) -> None:
    weighted = [i for i, s in enumerate(canary["steps"]) if "setWeight" in s]
    if len(weighted) < 2:
        return
    index = weighted[1 + where % (len(weighted) - 1)]
    previous = max(s["setWeight"] for s in canary["steps"][:index] if "setWeight" in s)
    steps = [dict(s) for s in canary["steps"]]
    steps[index] = {"setWeight": min(weight, previous)}
    paths = set(errors({**canary, "steps": steps}))
    assert f"{P}/steps({index})/setWeight" in paths
