"""Placement at the size of a Mesos cluster: the quick paths choose exactly what the plain scan did.

Without constraints `place_tasks` sorts the agents once and re-ranks only the one it used (a
heap); with constraints it narrows the candidates key by key instead of sorting them; a pass
holds its offers in an `OfferTable` that apps consume one after the other. Each must choose,
instance by instance, what the one-at-a-time scan over every agent chose on plain lists: the
scan is written out here (`_Pool`, `_feasible`, and the `np.lexsort` ranking) and compared on
random clusters with ties, full agents, fixed and random ports, and instances already placed.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from scheduler.decide.constraints import AgentView, ConstraintSpec
from scheduler.decide.placement import (
    AgentOffer,
    DuplicateAgentOffer,
    OfferTable,
    Placement,
    TaskRequest,
    _choose,
    _feasible,
    _Pool,
    _seeded_u64,
    consume_offers,
    place_tasks,
)


def _lexsort_choice(pool: _Pool, candidates: np.ndarray, strategy: str) -> int:
    """The ranking as it was written first: one `np.lexsort`, the last key primary."""
    load = np.zeros(len(candidates), dtype=np.int64)
    for tally in pool.group_by:
        load += tally.load()[candidates]
    if strategy == "spread":
        keys = (pool.tiebreak[candidates], -pool.mem[candidates], pool.instances[candidates], load)
    else:
        keys = (pool.tiebreak[candidates], pool.cpus[candidates], pool.mem[candidates], load)
    return int(candidates[np.lexsort(keys)[0]])


def scan(request: TaskRequest, count: int, offers: list[AgentOffer], placed: list[AgentView], seed: int,
         strategy: str) -> list[Placement]:
    pool = _Pool(request, offers, placed, seed)
    rng = np.random.default_rng(_seeded_u64(seed, request.app_id))
    out = []
    for _ in range(count):
        candidates = np.flatnonzero(_feasible(pool, request))
        if len(candidates) == 0:
            break
        i = _lexsort_choice(pool, candidates, strategy)
        out.append(Placement(pool.offers[i].agent.agent_id, pool.take(i, request, rng)))
    return out


def cluster(rng: random.Random, n: int) -> list[AgentOffer]:
    offers = []
    for i in range(n):
        low = 31000 + 50 * i
        ports = ((low, low + rng.choice((0, 2, 10))),) if rng.random() < 0.9 else ()
        offers.append(AgentOffer(AgentView(f"agent-{i}", f"host-{i}", {"rack": f"r{i % 3}"}),
                                 cpus=rng.choice((0.0, 0.5, 1.0, 2.0)), mem=rng.choice((0.0, 256.0, 512.0, 1024.0)),
                                 disk=rng.choice((0.0, 1000.0)), free_ports=ports))
    return offers


def request(rng: random.Random, constraints: tuple[ConstraintSpec, ...] = ()) -> TaskRequest:
    ports = rng.choice(((), (0,), (0, 0), (31000,)))
    return TaskRequest(app_id="/web", cpus=rng.choice((0.1, 0.5)), mem=rng.choice((32.0, 128.0)), disk=0.0, gpus=0,
                       host_ports=ports, constraints=constraints, target_instances=12)


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
@pytest.mark.parametrize("case", range(60))
def test_unconstrained_placement_chooses_what_the_scan_chose(case: int, strategy: str) -> None:
    rng = random.Random(case)
    offers = cluster(rng, rng.randint(1, 40))
    req = request(rng)
    placed = [o.agent for o in rng.sample(offers, k=min(len(offers), rng.randint(0, 5)))]
    count = rng.randint(1, 60)
    result = place_tasks(req, count, offers, placed, seed=case, strategy=strategy)  # type: ignore[arg-type]
    assert list(result.placements) == scan(req, count, offers, placed, case, strategy)
    if len(result.placements) < count:
        assert result.message                    # the shortfall is explained, as before


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
@pytest.mark.parametrize("case", range(40))
def test_narrowing_key_by_key_chooses_what_the_sort_chose(case: int, strategy: str) -> None:
    rng = random.Random(1000 + case)
    offers = cluster(rng, rng.randint(2, 30))
    constraints = rng.choice(((), (ConstraintSpec("rack", "GROUP_BY"),), (ConstraintSpec("hostname", "MAX_PER", "2"),)))
    req = request(rng, constraints)
    pool = _Pool(req, offers, [o.agent for o in offers[:3]], case)
    for _ in range(15):
        candidates = np.flatnonzero(_feasible(pool, req))
        if len(candidates) == 0:
            break
        chosen = _choose(pool, candidates, strategy)  # type: ignore[arg-type]
        assert chosen == _lexsort_choice(pool, candidates, strategy)
        pool.take(chosen, req, np.random.default_rng(case))


def test_consuming_by_position_leaves_what_consuming_by_scan_left() -> None:
    rng = random.Random(7)
    offers = cluster(rng, 30)
    req = request(rng)
    result = place_tasks(req, 20, offers, [], seed=3)
    index = {o.agent.agent_id: i for i, o in enumerate(offers)}
    assert consume_offers(offers, req, result.placements, index=index) == consume_offers(offers, req,
                                                                                           result.placements)


def test_an_offer_keeps_its_ports_merged_and_counted() -> None:
    offer = AgentOffer(AgentView("a", "h", {}), 1.0, 1.0, 0.0,
                       free_ports=((31005, 31009), (31000, 31004), (31020, 31020)))
    assert offer.merged_ports == ((31000, 31009), (31020, 31020)) and offer.port_count == 11


@pytest.mark.parametrize("case", range(20))
def test_a_pass_placing_app_after_app_on_a_table_chooses_what_it_did_on_lists(case: int) -> None:
    rng = random.Random(2000 + case)
    offers = cluster(rng, rng.randint(1, 30))
    table = OfferTable(offers)
    for app in range(4):
        constraints = rng.choice(((), (ConstraintSpec("rack", "GROUP_BY"),), (ConstraintSpec("hostname", "UNIQUE"),)))
        req = request(rng, constraints)
        placed = [o.agent for o in rng.sample(offers, k=min(len(offers), rng.randint(0, 3)))]
        count = rng.randint(1, 15)
        on_list = place_tasks(req, count, offers, placed, seed=case + app)
        on_table = place_tasks(req, count, table, placed, seed=case + app)
        assert on_table == on_list
        offers = consume_offers(offers, req, on_list.placements)
        before = list(table)
        table = table.consumed(req, on_table.placements)
        assert list(table) == offers
        assert all(a is b for a, b in zip(before, table) if a == b)   # untouched offers are shared


def test_a_table_refuses_two_offers_of_one_agent() -> None:
    offer = AgentOffer(AgentView("a", "h", {}), 1.0, 1.0, 0.0)
    with pytest.raises(DuplicateAgentOffer):
        OfferTable([offer, offer])


# -- the two shortcuts a pass of ten thousand agents takes, against their plain forms -----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scheduler.decide.placement import _lex_first, _merge, without_ports, subtract_ports  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=6),
       st.lists(st.integers(-2, 75), max_size=12))
def test_splitting_merged_ranges_by_bisection_is_subtracting(raw: list[tuple[int, int]], ports: list[int]) -> None:
    merged = tuple(_merge([(lo, lo + width) for lo, width in raw]))
    left, removed = without_ports(merged, sorted(ports))
    assert left == subtract_ports(merged, ports)
    assert removed == sum(hi - lo + 1 for lo, hi in merged) - sum(hi - lo + 1 for lo, hi in left)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 60), st.integers(0, 70), st.integers(0, 2**32), st.booleans())
def test_the_first_k_by_partition_are_the_first_k_of_the_sort(n: int, k: int, seed: int, subset: bool) -> None:
    rng = np.random.default_rng(seed)
    keys = (rng.integers(0, 3, n), -rng.choice([0.0, 256.0, 512.0], n), rng.integers(0, 4, n).astype(np.uint64))
    candidates = np.flatnonzero(rng.random(n) < 0.7) if subset else np.arange(n)
    full = candidates[np.lexsort(tuple(key[candidates] for key in reversed(keys)))]
    assert _lex_first(candidates, keys, k).tolist() == full[:k].tolist()
