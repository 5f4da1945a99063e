"""Which instances a scale-down kills."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.decide.constraints import AgentView, ConstraintSpec
from scheduler.decide.kill_selection import InstanceView, select_instances_to_kill

RACK_SPREAD = (ConstraintSpec("rack", "GROUP_BY", "3"),)


def inst(iid: str, staged_at: float, rack: str | None = None, healthy: bool | None = True,
         running: bool = True, host: str | None = None) -> InstanceView:
    attrs = {"rack": rack} if rack else {}
    host = host or f"host-{iid}"
    return InstanceView(iid, staged_at, AgentView(f"id-{host}", host, attrs), healthy, running)


def test_youngest_and_oldest_first() -> None:
    instances = [inst("a", 10), inst("b", 30), inst("c", 20)]
    assert select_instances_to_kill(instances, 2, "YOUNGEST_FIRST", []) == ["b", "c"]
    assert select_instances_to_kill(instances, 2, "OLDEST_FIRST", []) == ["a", "c"]


def test_staging_then_unhealthy_then_unknown_then_by_age() -> None:
    instances = [inst("healthy-young", 50), inst("unknown", 10, healthy=None), inst("unhealthy", 5, healthy=False),
                 inst("staging", 1, running=False, healthy=None), inst("healthy-old", 0)]
    assert select_instances_to_kill(instances, 5, "YOUNGEST_FIRST", []) == [
        "staging", "unhealthy", "unknown", "healthy-young", "healthy-old"]


def test_count_bounds() -> None:
    instances = [inst("a", 1), inst("b", 2)]
    assert select_instances_to_kill(instances, 0, "YOUNGEST_FIRST", []) == []
    assert sorted(select_instances_to_kill(instances, 5, "YOUNGEST_FIRST", [])) == ["a", "b"]
    assert select_instances_to_kill([], 3, "OLDEST_FIRST", []) == []
    with pytest.raises(ValueError):
        select_instances_to_kill(instances, -1, "YOUNGEST_FIRST", [])
    with pytest.raises(ValueError):
        select_instances_to_kill(instances, 1, "RANDOM", [])
    with pytest.raises(ValueError):
        select_instances_to_kill([inst("a", 1), inst("a", 2)], 1, "OLDEST_FIRST", [])


def test_group_by_kills_from_the_most_populated_rack() -> None:
    instances = [inst("a1", 1, "a"), inst("a2", 2, "a"), inst("a3", 3, "a"), inst("a4", 4, "a"),
                 inst("b1", 5, "b"), inst("b2", 6, "b"), inst("c1", 7, "c")]
    # youngest overall is c1, but rack a holds 4 of 7
    assert select_instances_to_kill(instances, 2, "YOUNGEST_FIRST", RACK_SPREAD) == ["a4", "a3"]
    killed = select_instances_to_kill(instances, 4, "YOUNGEST_FIRST", RACK_SPREAD)
    left = Counter(i.agent.attributes["rack"] for i in instances if i.instance_id not in killed)
    assert left == {"a": 1, "b": 1, "c": 1}


def test_group_by_ties_fall_back_to_priority() -> None:
    instances = [inst("a1", 1, "a"), inst("a2", 9, "a"), inst("b1", 2, "b", running=False), inst("b2", 3, "b")]
    assert select_instances_to_kill(instances, 1, "YOUNGEST_FIRST", RACK_SPREAD) == ["b1"]


def test_other_constraints_do_not_steer_kills() -> None:
    instances = [inst("a1", 1, "a"), inst("a2", 2, "a"), inst("b1", 3, "b")]
    assert select_instances_to_kill(instances, 1, "YOUNGEST_FIRST", [ConstraintSpec("rack", "MAX_PER", "2")]) == ["b1"]


def test_group_by_hostname_and_missing_attribute_group() -> None:
    instances = [inst("x1", 1, host="h1"), inst("x2", 2, host="h1"), inst("y1", 3, host="h2")]
    assert select_instances_to_kill(instances, 1, "YOUNGEST_FIRST", [ConstraintSpec("hostname", "GROUP_BY")]) == ["x2"]
    instances = [inst("n1", 1), inst("n2", 2), inst("r1", 3, "a")]  # n1, n2 lack the rack: one group
    assert select_instances_to_kill(instances, 1, "YOUNGEST_FIRST", RACK_SPREAD) == ["n2"]


INSTANCES = st.lists(
    st.builds(inst, st.text("abcdef", min_size=1, max_size=3), st.floats(0, 100), st.sampled_from(["a", "b", "c", None]),
              st.sampled_from([True, False, None]), st.booleans()),
    max_size=12, unique_by=lambda i: i.instance_id)


def spread(instances: list[InstanceView]) -> int:
    sizes = Counter(i.agent.attributes.get("rack") for i in instances).values()
    return max(sizes) - min(sizes) if sizes else 0


@settings(max_examples=300, deadline=None)
@given(INSTANCES, st.integers(0, 15), st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST"]), st.booleans())
def test_properties(instances: list[InstanceView], count: int, selection: str, grouped: bool) -> None:
    constraints = RACK_SPREAD if grouped else ()
    killed = select_instances_to_kill(instances, count, selection, constraints)
    assert len(killed) == min(count, len(instances)) == len(set(killed))
    assert set(killed) <= {i.instance_id for i in instances}
    assert select_instances_to_kill(list(reversed(instances)), count, selection, constraints) == killed
    if grouped:
        left = [i for i in instances if i.instance_id not in killed]
        assert spread(left) <= max(spread(instances), 1)
