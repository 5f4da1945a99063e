"""Constraint semantics (Marathon 1.10 Constraints.scala), operator by operator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.decide.constraints import (
    AgentView,
    ConstraintSpec,
    ConstraintValueError,
    FieldTally,
    constraint_mask,
    constraint_satisfied,
    constraint_value,
    format_scalar,
)


def agent(host: str, **attrs: str) -> AgentView:
    return AgentView(agent_id=f"id-{host}", hostname=host, attributes=attrs)


def on_racks(*racks: str | None) -> list[AgentView]:
    """One placed instance per entry, each on its own host; None = the host has no rack."""
    return [agent(f"p{i}", **({"rack": r} if r is not None else {})) for i, r in enumerate(racks)]


A, B, C = agent("h1", rack="a"), agent("h2", rack="b"), agent("h3", rack="c")
BARE = agent("h9")  # no attributes at all


def sat(field: str, op: str, value: str | None, candidate: AgentView, placed: list[AgentView],
        target: int = 3) -> bool:
    return constraint_satisfied(ConstraintSpec(field, op, value), candidate, placed, target)


# -- fields -------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, expected", [
    ("hostname", "h1"), ("@hostname", "h1"), ("rack", "a"), ("missing", None),
    ("@region", "eu"), ("@zone", "eu-1"),
])
def test_constraint_value(field: str, expected: str | None) -> None:
    view = AgentView("x", "h1", {"rack": "a", "region": "eu", "@zone": "eu-1", "zone": "other"})
    assert constraint_value(view, field) == expected


@pytest.mark.parametrize("value, text", [
    (1.0005, "1"), (1.00051, "1.001"), (1.1005, "1.101"), (2.5, "2.5"), (2.0, "2"), (3, "3"),
    (0.0004, "0"), (12345.6789, "12345.679"),
])
def test_format_scalar_matches_java_decimal_format(value: float, text: str) -> None:
    assert format_scalar(value) == text


def test_str_is_marathon_shape() -> None:
    assert str(ConstraintSpec("hostname", "UNIQUE", None)) == "[hostname, UNIQUE]"
    assert str(ConstraintSpec("rack", "CLUSTER", "a")) == "[rack, CLUSTER, a]"


# -- operator tables: (field, op, value, candidate, placed, target, expected) ---------------------

TABLE = [
    # UNIQUE
    ("hostname", "UNIQUE", None, A, [], 3, True),
    ("hostname", "UNIQUE", None, A, [A], 3, False),
    ("hostname", "UNIQUE", None, B, [A], 3, True),
    ("@hostname", "UNIQUE", None, A, [A], 3, False),
    ("rack", "UNIQUE", None, A, on_racks("a"), 3, False),
    ("rack", "UNIQUE", None, A, on_racks("b", None), 3, True),
    ("rack", "UNIQUE", None, BARE, [], 3, False),            # lacks the attribute
    ("rack", "UNIQUE", None, BARE, on_racks(None), 3, False),
    # CLUSTER with a value
    ("rack", "CLUSTER", "a", A, [], 3, True),
    ("rack", "CLUSTER", "a", B, [], 3, False),
    ("rack", "CLUSTER", "a", BARE, [], 3, False),
    ("hostname", "CLUSTER", "h1", A, [B], 3, True),          # only the value counts
    # CLUSTER without a value: the first placed instance sets it
    ("rack", "CLUSTER", None, A, [], 3, True),
    ("rack", "CLUSTER", None, BARE, [], 3, False),
    ("rack", "CLUSTER", None, A, on_racks("a"), 3, True),
    ("rack", "CLUSTER", None, B, on_racks("a"), 3, False),
    ("rack", "CLUSTER", None, A, on_racks("a", "b"), 3, True),
    ("rack", "CLUSTER", None, A, on_racks(None), 3, False),
    ("hostname", "CLUSTER", "", A, [A], 3, True),
    ("hostname", "CLUSTER", "", B, [A], 3, False),
    # LIKE / UNLIKE: full-match regex; a missing attribute matches UNLIKE only
    ("hostname", "LIKE", "h[12]", A, [], 3, True),
    ("hostname", "LIKE", "h[12]", C, [], 3, False),
    ("hostname", "LIKE", "h", A, [], 3, False),              # full match, not search
    ("hostname", "LIKE", ".*1", A, [], 3, True),
    ("rack", "LIKE", "a|b", B, [], 3, True),
    ("rack", "LIKE", "a|b", BARE, [], 3, False),
    ("rack", "LIKE", "", A, [], 3, False),                   # value required
    ("hostname", "UNLIKE", "h[12]", A, [], 3, False),
    ("hostname", "UNLIKE", "h[12]", C, [], 3, True),
    ("hostname", "UNLIKE", "h", A, [], 3, True),
    ("rack", "UNLIKE", "a", BARE, [], 3, True),
    ("rack", "UNLIKE", "a", A, [], 3, False),
    ("rack", "UNLIKE", "", A, [], 3, False),
    # MAX_PER
    ("rack", "MAX_PER", "2", A, on_racks("a"), 3, True),
    ("rack", "MAX_PER", "2", A, on_racks("a", "a"), 3, False),
    ("rack", "MAX_PER", "2", B, on_racks("a", "a"), 3, True),
    ("rack", "MAX_PER", "1", BARE, [], 3, False),
    ("hostname", "MAX_PER", "1", A, [A], 3, False),
    ("rack", "MAX_PER", "0", A, [], 3, False),
    # IS: exact; scalar values formatted like attributes
    ("rack", "IS", "a", A, [], 3, True),
    ("rack", "IS", "b", A, [], 3, False),
    ("rack", "IS", "a", BARE, [], 3, False),
    ("gen", "IS", "1.50", agent("x", gen="1.5"), [], 3, True),
    ("gen", "IS", "2.0", agent("x", gen="2"), [], 3, True),
    ("gen", "IS", "2", agent("x", gen="2.5"), [], 3, False),
    ("hostname", "IS", "h1", A, [], 3, True),
    # GROUP_BY with a value: 6 over 3 racks = 2 each
    ("rack", "GROUP_BY", "3", A, [], 6, True),
    ("rack", "GROUP_BY", "3", A, on_racks("a"), 6, True),
    ("rack", "GROUP_BY", "3", A, on_racks("a", "a"), 6, False),
    ("rack", "GROUP_BY", "3", C, on_racks("a", "a", "b"), 6, True),
    ("rack", "GROUP_BY", "3", agent("x", rack="d"), on_racks("a", "b", "c"), 6, False),  # 3 groups used
    ("rack", "GROUP_BY", "3", agent("x", rack="d"), on_racks("a", "b"), 6, True),
    ("rack", "GROUP_BY", "3", BARE, [], 6, False),
    # 7 over 3: 2 each plus one remainder, which the first group to get there consumes
    ("rack", "GROUP_BY", "3", A, on_racks("a", "a", "b", "b", "c", "c"), 7, True),
    ("rack", "GROUP_BY", "3", B, on_racks("a", "a", "a", "b", "b", "c"), 7, False),
    ("rack", "GROUP_BY", "3", C, on_racks("a", "a", "a", "b", "b", "c"), 7, True),
    # placed instances lacking the attribute form a group of their own
    ("rack", "GROUP_BY", "2", A, on_racks(None, "b"), 4, False),
    # GROUP_BY without a value: a new value, or a value of a least-populated group
    ("rack", "GROUP_BY", None, A, [], 3, True),
    ("rack", "GROUP_BY", None, A, on_racks("a"), 3, True),
    ("rack", "GROUP_BY", None, B, on_racks("a"), 3, True),
    ("rack", "GROUP_BY", None, A, on_racks("a", "a", "b"), 3, False),
    ("rack", "GROUP_BY", None, B, on_racks("a", "a", "b"), 3, True),
    ("rack", "GROUP_BY", None, C, on_racks("a", "a", "b"), 3, True),
    ("rack", "GROUP_BY", None, BARE, [], 3, False),
    ("hostname", "GROUP_BY", None, A, [A, B], 3, True),
    ("hostname", "GROUP_BY", None, A, [A, A, B], 3, False),
    ("rack", "GROUP_BY", "0", A, on_racks("a", "a", "b"), 3, False),  # 0 = no value
    ("rack", "GROUP_BY", "0", B, on_racks("a", "a", "b"), 3, True),
]


@pytest.mark.parametrize("field, op, value, candidate, placed, target, expected", TABLE)
def test_operator_table(field: str, op: str, value: str | None, candidate: AgentView,
                        placed: list[AgentView], target: int, expected: bool) -> None:
    c = ConstraintSpec(field, op, value)
    assert constraint_satisfied(c, candidate, placed, target) is expected
    # the vectorised evaluator gives the same answer
    tally = FieldTally(field, [candidate], placed)
    assert bool(constraint_mask(c, tally, target)[0]) is expected


@pytest.mark.parametrize("op", ["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "MAX_PER", "IS"])
def test_missing_attribute_matches_only_unlike(op: str) -> None:
    value = {"LIKE": ".*", "MAX_PER": "5", "IS": "a"}.get(op)
    assert sat("rack", op, value, BARE, []) is False
    assert sat("rack", "UNLIKE", "a", BARE, []) is True


def greedy(c: ConstraintSpec, agents: list[AgentView], count: int) -> list[AgentView]:
    """Place `count` instances, each on the first agent (in list order) that satisfies `c`."""
    placed: list[AgentView] = []
    for _ in range(count):
        fit = next((a for a in agents if constraint_satisfied(c, a, placed, count)), None)
        if fit is None:
            break
        placed.append(fit)
    return placed


def test_group_by_spreads_over_three_racks_even_when_offers_favour_one() -> None:
    agents = [agent(f"a{i}", rack="a") for i in range(5)] + [agent("b0", rack="b"), agent("c0", rack="c")]
    placed = greedy(ConstraintSpec("rack", "GROUP_BY", "3"), agents, 6)
    assert sorted(p.attributes["rack"] for p in placed) == ["a", "a", "b", "b", "c", "c"]


def test_group_by_with_remainder_and_new_groups_refused() -> None:
    agents = [agent(f"{r}{i}", rack=r) for r in "abcd" for i in range(3)]
    placed = greedy(ConstraintSpec("rack", "GROUP_BY", "3"), agents, 7)
    racks = sorted(p.attributes["rack"] for p in placed)
    assert racks == ["a", "a", "a", "b", "b", "c", "c"]  # rack d is never used


def test_unique_hostname_places_one_per_host() -> None:
    placed = greedy(ConstraintSpec("hostname", "UNIQUE"), [A, A, B, C, C], 5)
    assert [p.hostname for p in placed] == ["h1", "h2", "h3"]


@pytest.mark.parametrize("spec, message", [
    (ConstraintSpec("rack", "MAX_PER", None), "MAX_PER requires an integer value"),
    (ConstraintSpec("rack", "MAX_PER", "x"), "integer"),
    (ConstraintSpec("rack", "GROUP_BY", "two"), "integer"),
    (ConstraintSpec("rack", "LIKE", "(unclosed"), "invalid regular expression"),
    (ConstraintSpec("rack", "IN", "a"), "unknown constraint operator"),
])
def test_invalid_constraints_are_programmer_errors(spec: ConstraintSpec, message: str) -> None:
    placed = on_racks("a")
    with pytest.raises(ConstraintValueError, match=message):
        constraint_satisfied(spec, A, placed, 3)
    with pytest.raises(ConstraintValueError, match=message):
        constraint_mask(spec, FieldTally("rack", [A], placed), 3)


def test_agent_view_is_hashable_with_dict_attributes() -> None:
    assert len({A, agent("h1", rack="a"), B}) == 2


# -- the vectorised evaluator equals the reference on random states --------------------------------

values = st.sampled_from(["a", "b", "c", "d", None])
views = st.builds(lambda host, rack: agent(host, **({"rack": rack} if rack else {})),
                  st.sampled_from(["h1", "h2", "h3", "h4"]), values)
specs = st.one_of(
    st.builds(ConstraintSpec, st.sampled_from(["rack", "hostname"]),
              st.sampled_from(["UNIQUE", "CLUSTER", "GROUP_BY"]), st.just(None)),
    st.builds(ConstraintSpec, st.sampled_from(["rack", "hostname"]), st.sampled_from(["GROUP_BY", "MAX_PER"]),
              st.sampled_from(["1", "2", "3"])),
    st.builds(ConstraintSpec, st.just("rack"), st.sampled_from(["LIKE", "UNLIKE", "IS", "CLUSTER"]),
              st.sampled_from(["a", "a|b", "[cd]", "b"])),
)


@settings(max_examples=300, deadline=None)
@given(specs, st.lists(views, min_size=1, max_size=8), st.lists(views, max_size=6),
       st.lists(st.integers(0, 7), max_size=6), st.integers(1, 12))
def test_mask_equals_reference(c: ConstraintSpec, agents: list[AgentView], placed: list[AgentView],
                               later: list[int], target: int) -> None:
    tally = FieldTally(c.field, agents, placed)
    placed = list(placed)
    for index in (i % len(agents) for i in later):  # the incremental path placement uses
        tally.add_agent(index)
        placed.append(agents[index])
    mask = constraint_mask(c, tally, target)
    assert list(mask) == [constraint_satisfied(c, a, placed, target) for a in agents]
