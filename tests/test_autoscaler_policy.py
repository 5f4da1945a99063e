"""Policies from labels and REST JSON: defaults, modes, every validation naming its field."""

from __future__ import annotations

import pytest

from autoscaler.policy import THRESHOLD, PolicyError, parse_policy, policy_from_json, policy_from_labels
from autoscaler.store import PolicyStore


def test_labels_target_tracking_with_defaults():
    p = policy_from_labels("/web", {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_TARGET": "60", "AUTOSCALE_MAX": "8",
                                    "HAPROXY_GROUP": "external"})
    assert p is not None
    assert (p.mode, p.metric, p.target, p.min_instances, p.max_instances) == ("target", "cpu", 60.0, 1, 8)
    assert (p.tolerance, p.stabilization_up, p.stabilization_down, p.window) == (0.1, 0.0, 300.0, 30.0)
    assert p.source == "labels"


def test_labels_threshold_mode_like_marathon_autoscale():
    p = policy_from_labels("/web", {
        "AUTOSCALE_ENABLED": "TRUE", "AUTOSCALE_METRIC": "mem", "AUTOSCALE_MIN": "2", "AUTOSCALE_MAX": "20",
        "AUTOSCALE_SCALE_UP_ABOVE": "80", "AUTOSCALE_SCALE_DOWN_BELOW": "20.5",
        "AUTOSCALE_SCALE_UP_CYCLES": "2", "AUTOSCALE_SCALE_DOWN_CYCLES": "4", "AUTOSCALE_MULTIPLIER": "2",
        "AUTOSCALE_STABILIZATION_UP": "30", "AUTOSCALE_WINDOW": "45"})
    assert p is not None and p.mode == THRESHOLD and p.metric == "mem"
    assert (p.scale_up_above, p.scale_down_below, p.scale_up_cycles, p.scale_down_cycles) == (80, 20.5, 2, 4)
    assert (p.multiplier, p.stabilization_up, p.stabilization_down, p.window) == (2.0, 30.0, 0.0, 45.0)


@pytest.mark.parametrize("labels", [{}, {"AUTOSCALE_TARGET": "50"}, {"AUTOSCALE_ENABLED": "false", "AUTOSCALE_TARGET": "x"}])
def test_labels_without_enabled_mean_no_policy(labels):
    assert policy_from_labels("/a", labels) is None


@pytest.mark.parametrize("labels, field, message", [
    ({"AUTOSCALE_TARGET": "50"}, "AUTOSCALE_MAX", "is required"),
    ({"AUTOSCALE_MAX": "3"}, "AUTOSCALE_TARGET", "is required"),
    ({"AUTOSCALE_TARGET": "0", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_TARGET", "greater than 0"),
    ({"AUTOSCALE_TARGET": "-5", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_TARGET", "greater than 0"),
    ({"AUTOSCALE_TARGET": "lots", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_TARGET", "must be a number"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MIN": "5", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_MIN", "must not exceed AUTOSCALE_MAX"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MIN": "0", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_MIN", "at least 1"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "2.5"}, "AUTOSCALE_MAX", "whole number"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "3", "AUTOSCALE_METRIC": "disk"}, "AUTOSCALE_METRIC", "unknown metric 'disk'"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "3", "AUTOSCALE_SCALE_UP_ABOVE": "80"}, "AUTOSCALE_TARGET", "not both"),
    ({"AUTOSCALE_SCALE_UP_ABOVE": "80", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_SCALE_DOWN_BELOW", "is required"),
    ({"AUTOSCALE_SCALE_UP_ABOVE": "20", "AUTOSCALE_SCALE_DOWN_BELOW": "80", "AUTOSCALE_MAX": "3"},
     "AUTOSCALE_SCALE_DOWN_BELOW", "must be below"),
    ({"AUTOSCALE_SCALE_UP_ABOVE": "80", "AUTOSCALE_SCALE_DOWN_BELOW": "20", "AUTOSCALE_MAX": "3",
      "AUTOSCALE_MULTIPLIER": "1"}, "AUTOSCALE_MULTIPLIER", "greater than 1"),
    ({"AUTOSCALE_SCALE_UP_ABOVE": "80", "AUTOSCALE_SCALE_DOWN_BELOW": "20", "AUTOSCALE_MAX": "3",
      "AUTOSCALE_SCALE_UP_CYCLES": "0"}, "AUTOSCALE_SCALE_UP_CYCLES", "at least 1"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "3", "AUTOSCALE_TOLERANCE": "1.5"}, "AUTOSCALE_TOLERANCE", "below 1"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "3", "AUTOSCALE_STABILIZATION_DOWN": "-1"},
     "AUTOSCALE_STABILIZATION_DOWN", "between 0 and 3600"),
    ({"AUTOSCALE_TARGET": "50", "AUTOSCALE_MAX": "3", "AUTOSCALE_WINDOW": "0"}, "AUTOSCALE_WINDOW", "more than 0"),
    ({"AUTOSCALE_TARGET": "nan", "AUTOSCALE_MAX": "3"}, "AUTOSCALE_TARGET", "finite"),
])
def test_bad_labels_name_the_label(labels, field, message):
    with pytest.raises(PolicyError) as info:
        policy_from_labels("/a", {"AUTOSCALE_ENABLED": "true", **labels})
    assert any(f == field and message in m for f, m in info.value.violations), info.value.violations


def test_bad_enabled_label():
    with pytest.raises(PolicyError, match="AUTOSCALE_ENABLED"):
        policy_from_labels("/a", {"AUTOSCALE_ENABLED": "maybe"})


def test_every_violation_is_reported_at_once():
    with pytest.raises(PolicyError) as info:
        parse_policy("/a", {"target": -1, "min": 0, "max": "x", "metric": "gpu", "colour": "red"})
    fields = {f for f, _ in info.value.violations}
    assert {"target", "min", "max", "metric", "colour"} <= fields


def test_json_policy_and_round_trip():
    p = policy_from_json({"appId": "web/", "target": 70, "max": 4, "metric": "MEM"})
    assert (p.app_id, p.metric, p.source) == ("/web", "mem", "api")
    body = p.to_json()
    assert body["appId"] == "/web" and body["max"] == 4 and body["source"] == "api"
    again = policy_from_json({k: v for k, v in body.items() if k not in ("source", "mode")})
    assert again == p


@pytest.mark.parametrize("body, app_id, field", [
    ([1, 2], None, "/"), ({"target": 5, "max": 2}, None, "appId"), ({"appId": 3, "target": 5, "max": 2}, None, "appId"),
    ({"appId": "/b", "target": 5, "max": 2}, "/a", "appId"), ({"target": True, "max": 2}, "/a", "target"),
])
def test_bad_json_bodies(body, app_id, field):
    with pytest.raises(PolicyError) as info:
        policy_from_json(body, app_id=app_id)
    assert info.value.violations[0][0] == field


def test_policy_store_persists_atomically_and_survives_a_corrupt_file(tmp_path):
    store = PolicyStore(tmp_path / "as")
    assert store.put(policy_from_json({"appId": "/a", "target": 50, "max": 3}))
    assert not store.put(policy_from_json({"appId": "/a", "target": 60, "max": 3}))
    store.put(policy_from_json({"appId": "/b", "scaleUpAbove": 80, "scaleDownBelow": 10, "max": 9}))
    again = PolicyStore(tmp_path / "as")
    assert again.all() == store.all() and again.get("/a").target == 60
    assert again.delete("/a") is not None and again.delete("/a") is None
    assert set(PolicyStore(tmp_path / "as").all()) == {"/b"}
    assert not list((tmp_path / "as").glob("*.tmp"))
    (tmp_path / "as" / "policies.json").write_text("{not json")
    broken = PolicyStore(tmp_path / "as")
    assert broken.all() == {} and (tmp_path / "as" / "policies.json.corrupt").exists()
