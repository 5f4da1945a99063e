"""Definitions share equal parts (field sets, small nested models) and stay what they were."""

from __future__ import annotations

from app_definitions import AppDefinition, parse_app_definition

APP = {"id": "/shared/a", "cmd": "sleep 1", "labels": {"team": "x"},
       "portDefinitions": [{"port": 0, "name": "http"}],
       "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}}


def test_equal_parts_of_two_definitions_are_one_object_and_nothing_else_changes():
    a = parse_app_definition(APP)
    b = parse_app_definition({**APP, "id": "/shared/b"})
    assert a.upgrade_strategy is b.upgrade_strategy and a.unreachable_strategy is b.unreachable_strategy
    assert a.networks[0] is b.networks[0] and a.port_definitions[0] is b.port_definitions[0]
    assert a.model_fields_set is b.model_fields_set
    again = parse_app_definition(a.to_json())    # read back, every field given
    assert again == a and again.to_json() == a.to_json()
    assert again.model_fields_set >= a.model_fields_set


def test_a_copy_with_changes_leaves_the_shared_parts_of_others_alone():
    a = parse_app_definition(APP)
    b = parse_app_definition({**APP, "id": "/shared/b"})
    scaled = a.model_copy(update={"instances": 7})
    assert "instances" in scaled.model_fields_set and "instances" not in b.model_fields_set
    assert b.instances == 1 and b.to_json() == parse_app_definition({**APP, "id": "/shared/b"}).to_json()


def test_values_equal_but_not_alike_are_not_merged():
    """1 and 1.0, 0.0 and -0.0 compare equal but are not the same JSON."""
    zero = parse_app_definition({**APP, "upgradeStrategy": {"minimumHealthCapacity": 0.0}})
    negative = parse_app_definition({**APP, "id": "/shared/n", "upgradeStrategy": {"minimumHealthCapacity": -0.0}})
    assert zero.upgrade_strategy is not negative.upgrade_strategy or \
        str(zero.upgrade_strategy.minimum_health_capacity) == str(negative.upgrade_strategy.minimum_health_capacity)
    assert isinstance(parse_app_definition(APP), AppDefinition)
