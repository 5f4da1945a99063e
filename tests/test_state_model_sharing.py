"""Instances share what they hold alike (the allocation dict, strings read back from the store)
and stay equal to what they were."""

from __future__ import annotations

from scheduler.state.model import Instance


def _instance(instance_id: str, **changes: object) -> Instance:
    base = Instance(instance_id=instance_id, app_id="/a", version="v1", config_version="v1", agent_id="agent-1",
                    host="localhost", ports=(31000,), service_ports=(10000,),
                    resources={"cpus": 0.5, "mem": 64.0, "disk": 0.0})
    return base.with_(**changes) if changes else base


def test_equal_allocations_are_one_dict_and_records_round_trip():
    a, b = _instance("a"), _instance("b", state="TASK_RUNNING")
    assert a.resources is b.resources and a.resources == {"cpus": 0.5, "mem": 64.0, "disk": 0.0}
    again = Instance.from_record(a.to_record())
    assert again == a and again.resources is a.resources
    assert again.to_record() == a.to_record() and again.to_record()["resources"] is not a.resources


def test_allocations_equal_in_value_but_not_in_type_or_order_are_kept_apart():
    ints = Instance.from_record({**_instance("i").to_record(), "resources": {"cpus": 1, "mem": 64, "disk": 0}})
    floats = Instance.from_record({**_instance("f").to_record(), "resources": {"cpus": 1.0, "mem": 64.0, "disk": 0.0}})
    reordered = _instance("r").with_(resources={"mem": 64.0, "cpus": 0.5, "disk": 0.0})
    assert ints.resources is not floats.resources and type(ints.resources["cpus"]) is int
    assert list(reordered.resources) == ["mem", "cpus", "disk"]


def test_the_callers_dict_is_not_the_one_kept():
    mine = {"cpus": 0.25, "mem": 32.0}
    inst = _instance("m", resources=mine)
    mine["cpus"] = 99.0
    assert inst.resources == {"cpus": 0.25, "mem": 32.0}
