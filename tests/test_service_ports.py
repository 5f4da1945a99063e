"""Service port assignment: unique across apps, stable for the app that holds them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.decide.service_ports import ServicePortConflict, ServicePortsExhausted, assign_service_ports


@pytest.mark.parametrize("requested, used, expected", [
    ([0], {}, (10000,)),
    ([0, 0, 0], {}, (10000, 10001, 10002)),
    ([0, 0], {10000: "/other", 10002: "/other"}, (10001, 10003)),
    ([10001, 0], {}, (10001, 10000)),
    ([0, 10000], {}, (10001, 10000)),                    # a fixed port later in the list is reserved first
    ([10000, 0], {10000: "/web", 10001: "/web"}, (10000, 10001)),  # own ports count as free
    ([0], {10000: "/web"}, (10000,)),
    ([80, 0], {80: "/web"}, (80, 10000)),                 # outside the range is fine when chosen
    ([], {}, ()),
])
def test_assignment_table(requested: list[int], used: dict[int, str], expected: tuple[int, ...]) -> None:
    assert assign_service_ports(requested, used, "/web") == expected


def test_conflict_names_port_and_owner() -> None:
    with pytest.raises(ServicePortConflict) as info:
        assign_service_ports([0, 10005], {10005: "/db"}, "/web")
    assert info.value.port == 10005 and info.value.owner == "/db"
    assert "10005" in str(info.value) and "/db" in str(info.value)


def test_exhausted_range_message() -> None:
    used = {p: "/other" for p in range(10000, 10010)}
    with pytest.raises(ServicePortsExhausted, match=r"^All ports in the range \[10000-10010\) are already in use$"):
        assign_service_ports([0], used, "/web", port_range=(10000, 10010))
    with pytest.raises(ServicePortsExhausted, match=r"\[10000-20000\)"):
        assign_service_ports([0], {p: "/o" for p in range(10000, 20000)}, "/web")
    with pytest.raises(ServicePortsExhausted):  # the assignment itself uses up the range
        assign_service_ports([0, 0, 0], {}, "/web", port_range=(19998, 20000))


@pytest.mark.parametrize("requested", [[80, 80], [-1], [70000]])
def test_invalid_requests(requested: list[int]) -> None:
    with pytest.raises(ValueError):
        assign_service_ports(requested, {}, "/web")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 10001, 10003, 10007]), max_size=6, unique_by=lambda p: p or object()),
       st.dictionaries(st.integers(10000, 10012), st.sampled_from(["/web", "/a", "/b"]), max_size=10))
def test_properties(requested: list[int], used: dict[int, str]) -> None:
    try:
        ports = assign_service_ports(requested, used, "/web", port_range=(10000, 10010))
    except ServicePortConflict as exc:
        assert used[exc.port] != "/web" and exc.port in requested
        return
    except ServicePortsExhausted:
        return
    assert len(ports) == len(requested) == len(set(ports))
    for asked, got in zip(requested, ports):
        assert asked in (0, got)
        assert used.get(got, "/web") == "/web"
        if asked == 0:
            assert 10000 <= got < 10010
