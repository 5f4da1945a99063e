"""Placement: feasibility checks, ranking, ports, reasons, determinism, speed."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.decide.constraints import AgentView, ConstraintSpec, constraint_satisfied
from scheduler.decide.placement import (
    AgentOffer,
    DuplicateAgentOffer,
    Fit,
    TaskRequest,
    check_offer,
    consume_offers,
    place_tasks,
    reject_reason_names,
)


def offer(host: str, cpus: float = 4, mem: float = 4096, disk: float = 10000, gpus: int = 0,
          ports: tuple[tuple[int, int], ...] = ((31000, 31999),), networks: frozenset[str] = frozenset(),
          **attrs: str) -> AgentOffer:
    return AgentOffer(agent=AgentView(f"id-{host}", host, attrs), cpus=cpus, mem=mem, disk=disk, gpus=gpus,
                      free_ports=ports, networks=networks)


def request(cpus: float = 1, mem: float = 128, disk: float = 0, gpus: int = 0, host_ports: tuple[int, ...] = (),
            constraints: tuple[ConstraintSpec, ...] = (), target: int = 10,
            networks: tuple[str, ...] = ()) -> TaskRequest:
    return TaskRequest(app_id="/web", cpus=cpus, mem=mem, disk=disk, gpus=gpus, host_ports=host_ports,
                       constraints=constraints, target_instances=target, required_networks=networks)


def hosts(result_placements: tuple, offers: list[AgentOffer]) -> list[str]:
    by_id = {o.agent.agent_id: o.agent.hostname for o in offers}
    return [by_id[p.agent_id] for p in result_placements]


UNIQUE_HOST = ConstraintSpec("hostname", "UNIQUE", None)


def test_reason_vocabulary() -> None:
    assert reject_reason_names() == (
        "NoMatchingNetwork", "InsufficientCpus", "InsufficientMemory", "InsufficientDisk",
        "InsufficientGpus", "InsufficientPorts", "UnfulfilledConstraint")


# -- resources -------------------------------------------------------------------------------------

def test_resources_are_consumed_as_instances_are_placed() -> None:
    offers = [offer("h1", cpus=2, mem=1024), offer("h2", cpus=1, mem=1024)]
    result = place_tasks(request(cpus=1, mem=256), 5, offers, [])
    assert len(result.placements) == 3
    assert Counter(hosts(result.placements, offers)) == {"h1": 2, "h2": 1}
    assert result.rejections == {"InsufficientCpus": 2}
    assert result.message == "no agent has enough cpus (needs 1, largest free 0)"


def test_memory_message_names_need_and_largest_free() -> None:
    offers = [offer("h1", mem=1024), offer("h2", mem=512)]
    result = place_tasks(request(mem=2048), 1, offers, [])
    assert result.placements == ()
    assert result.rejections == {"InsufficientMemory": 2}
    assert result.message == "no agent has enough mem (needs 2048 MB, largest free 1024 MB)"


@pytest.mark.parametrize("kwargs, reason, text", [
    ({"disk": 500}, "InsufficientDisk", "no agent has enough disk (needs 500 MB, largest free 100 MB)"),
    ({"gpus": 1}, "InsufficientGpus", "no agent has enough gpus (needs 1, largest free 0)"),
    ({"cpus": 8.5}, "InsufficientCpus", "no agent has enough cpus (needs 8.5, largest free 4)"),
])
def test_each_resource_has_its_reason(kwargs: dict, reason: str, text: str) -> None:
    offers = [offer("h1", disk=100), offer("h2", disk=50)]
    result = place_tasks(request(**kwargs), 1, offers, [])
    assert result.rejections == {reason: 2}
    assert result.message == text


def test_float_resources_do_not_lose_the_last_slot() -> None:
    result = place_tasks(request(cpus=0.1, mem=0.1), 3, [offer("h1", cpus=0.3, mem=0.3)], [])
    assert len(result.placements) == 3


def test_gpus_are_consumed() -> None:
    offers = [offer("h1", gpus=2), offer("h2")]
    result = place_tasks(request(gpus=1), 3, offers, [])
    assert hosts(result.placements, offers) == ["h1", "h1"]
    assert result.rejections == {"InsufficientGpus": 2}


# -- ports -----------------------------------------------------------------------------------------

def test_exact_host_port_only_where_free_and_once_per_agent() -> None:
    offers = [offer("h1", ports=((8000, 8100),)), offer("h2", ports=((9000, 9100),)),
              offer("h3", ports=((8080, 8080), (31000, 31010)))]
    result = place_tasks(request(host_ports=(8080, 0)), 3, offers, [])
    assert sorted(hosts(result.placements, offers)) == ["h1", "h3"]
    for p in result.placements:
        assert p.host_ports[0] == 8080
    by_host = dict(zip(hosts(result.placements, offers), result.placements))
    assert 31000 <= by_host["h3"].host_ports[1] <= 31010
    assert 8000 <= by_host["h1"].host_ports[1] <= 8100 and by_host["h1"].host_ports[1] != 8080
    assert result.rejections == {"InsufficientPorts": 3}
    assert result.message == "no agent has host port 8080 free"


def test_random_ports_are_distinct_within_ranges_and_exhaust() -> None:
    offers = [offer("h1", ports=((5000, 5002), (6000, 6002)))]
    result = place_tasks(request(cpus=0, mem=0, host_ports=(0, 0)), 5, offers, [])
    assert len(result.placements) == 3
    used = [port for p in result.placements for port in p.host_ports]
    assert sorted(used) == [5000, 5001, 5002, 6000, 6001, 6002]
    assert result.rejections == {"InsufficientPorts": 1}
    assert result.message == "no agent has enough free host ports (needs 2, most free 0)"


def test_overlapping_and_unsorted_ranges_are_merged() -> None:
    offers = [offer("h1", ports=((7005, 7009), (7000, 7006)))]
    result = place_tasks(request(cpus=0, mem=0, host_ports=(0,)), 20, offers, [])
    assert sorted(p.host_ports[0] for p in result.placements) == list(range(7000, 7010))


def test_duplicate_fixed_host_port_is_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        place_tasks(request(host_ports=(80, 80)), 1, [offer("h1")], [])


# -- networks --------------------------------------------------------------------------------------

def test_required_network() -> None:
    offers = [offer("h1"), offer("h2", networks=frozenset({"other"}))]
    result = place_tasks(request(networks=("calico-net",)), 1, offers, [])
    assert result.rejections == {"NoMatchingNetwork": 2}
    assert result.message == "no agent has container network 'calico-net'"
    offers.append(offer("h3", networks=frozenset({"calico-net", "other"})))
    assert hosts(place_tasks(request(networks=("calico-net",)), 1, offers, []).placements, offers) == ["h3"]


# -- constraints -----------------------------------------------------------------------------------

def test_unique_hostname_across_agents() -> None:
    offers = [offer("h1"), offer("h2"), offer("h3")]
    result = place_tasks(request(constraints=(UNIQUE_HOST,)), 5, offers, [])
    assert sorted(hosts(result.placements, offers)) == ["h1", "h2", "h3"]
    assert result.rejections == {"UnfulfilledConstraint": 3}
    assert result.message == "constraint [hostname, UNIQUE] unmet on all 3 agents"


def test_already_placed_instances_count() -> None:
    offers = [offer("h1"), offer("h2")]
    result = place_tasks(request(constraints=(UNIQUE_HOST,)), 2, offers, [offers[0].agent])
    assert hosts(result.placements, offers) == ["h2"]
    assert result.message == "constraint [hostname, UNIQUE] unmet on all 2 agents"


def test_max_per_rack() -> None:
    offers = [offer(f"h{i}", rack="ab"[i % 2]) for i in range(6)]
    result = place_tasks(request(constraints=(ConstraintSpec("rack", "MAX_PER", "2"),)), 6, offers, [])
    assert len(result.placements) == 4
    assert Counter(o.agent.attributes["rack"] for o in offers for p in result.placements
                   if p.agent_id == o.agent.agent_id) == {"a": 2, "b": 2}


@pytest.mark.parametrize("value", ["3", None])
def test_group_by_spreads_evenly_over_three_racks(value: str | None) -> None:
    offers = ([offer(f"a{i}", rack="a") for i in range(5)] + [offer("b0", rack="b")]
              + [offer(f"c{i}", rack="c") for i in range(2)])
    c = ConstraintSpec("rack", "GROUP_BY", value)
    result = place_tasks(request(constraints=(c,), target=6), 6, offers, [])
    rack = {o.agent.agent_id: o.agent.attributes["rack"] for o in offers}
    assert Counter(rack[p.agent_id] for p in result.placements) == {"a": 2, "b": 2, "c": 2}


def test_single_agent_constraint_message() -> None:
    result = place_tasks(request(constraints=(ConstraintSpec("rack", "CLUSTER", "z"),)), 1,
                         [offer("h1", rack="a")], [])
    assert result.message == "constraint [rack, CLUSTER, z] unmet on the only agent"


def test_mixed_reasons_count_each_agent_once_by_first_failed_check() -> None:
    offers = [offer("h1", mem=64), offer("h2", rack="a"), offer("h3", rack="b", cpus=0)]
    c = ConstraintSpec("rack", "CLUSTER", "b")
    result = place_tasks(request(mem=128, constraints=(c,)), 1, offers, [])
    assert result.placements == ()
    assert result.rejections == {"InsufficientCpus": 1, "InsufficientMemory": 1, "UnfulfilledConstraint": 1}
    assert result.message == (
        "no agent fits (3 agents): 1 lack enough cpus (needs 1, largest free 0); "
        "1 lack enough mem (needs 128 MB, largest free 64 MB); 1 fail constraint [rack, CLUSTER, b]")


def test_several_failing_constraints_are_listed() -> None:
    offers = [offer("h1", rack="a"), offer("h2", rack="b")]
    cs = (ConstraintSpec("rack", "IS", "b"), ConstraintSpec("hostname", "LIKE", "h1"))
    result = place_tasks(request(constraints=cs), 1, offers, [])
    assert result.message == "constraints unmet on all 2 agents: [rack, IS, b] on 1, [hostname, LIKE, h1] on 1"


def test_no_offers() -> None:
    result = place_tasks(request(), 2, [], [])
    assert result.placements == () and result.rejections == {} and result.message == "no agent offers resources"


def test_all_placed_has_no_message() -> None:
    result = place_tasks(request(), 2, [offer("h1")], [])
    assert len(result.placements) == 2 and result.rejections == {} and result.message is None


def test_zero_count_and_bad_arguments() -> None:
    assert place_tasks(request(), 0, [offer("h1")], []).placements == ()
    with pytest.raises(ValueError):
        place_tasks(request(), -1, [offer("h1")], [])
    with pytest.raises(ValueError):
        place_tasks(request(), 1, [offer("h1")], [], strategy="random")  # type: ignore[arg-type]
    with pytest.raises(DuplicateAgentOffer):
        place_tasks(request(), 1, [offer("h1"), offer("h1")], [])


# -- ranking and determinism -----------------------------------------------------------------------

def test_spread_prefers_fewest_instances_then_most_free_memory() -> None:
    offers = [offer("h1", mem=1000), offer("h2", mem=3000), offer("h3", mem=2000)]
    result = place_tasks(request(mem=100), 3, offers, [])
    assert hosts(result.placements, offers) == ["h2", "h3", "h1"]
    existing = [offers[1].agent, offers[2].agent]
    assert hosts(place_tasks(request(mem=100), 1, offers, existing).placements, offers) == ["h1"]


def test_binpack_fills_the_tightest_agent_first() -> None:
    offers = [offer("h1", mem=1000), offer("h2", mem=3000), offer("h3", mem=2000)]
    result = place_tasks(request(mem=400), 3, offers, [], strategy="binpack")
    assert hosts(result.placements, offers) == ["h1", "h1", "h3"]


def test_same_seed_same_answer_whatever_the_offer_order() -> None:
    offers = [offer(f"h{i}") for i in range(20)]
    req = request(host_ports=(0, 0), mem=1)
    first = place_tasks(req, 10, offers, [], seed=42)
    shuffled = offers[:]
    random.Random(1).shuffle(shuffled)
    assert place_tasks(req, 10, shuffled, [], seed=42) == first
    assert place_tasks(req, 10, offers, [], seed=43) != first


def test_inputs_are_not_mutated() -> None:
    offers = [offer("h1"), offer("h2")]
    placed = [offers[0].agent]
    before = (list(offers), list(placed))
    place_tasks(request(constraints=(UNIQUE_HOST,)), 2, offers, placed)
    assert (offers, placed) == before


def test_check_offer_explains_one_agent() -> None:
    assert check_offer(request(), offer("h1")) == Fit(True)
    fit = check_offer(request(mem=8192), offer("h1"))
    assert (fit.ok, fit.reason) == (False, "InsufficientMemory")
    assert fit.message == "no agent has enough mem (needs 8192 MB, largest free 4096 MB)"
    placed_here = [offer("h1").agent]
    assert check_offer(request(constraints=(UNIQUE_HOST,)), offer("h1"), placed_here).reason == "UnfulfilledConstraint"


def test_thousand_agents_two_hundred_instances_spread_evenly_over_racks() -> None:
    offers = [offer(f"h{i}", cpus=16, mem=65536, rack=f"r{i % 10}") for i in range(1000)]
    req = request(cpus=0.5, mem=512, host_ports=(0, 0), target=200,
                  constraints=(UNIQUE_HOST, ConstraintSpec("rack", "GROUP_BY", "10")))
    result = place_tasks(req, 200, offers, [])
    assert len(result.placements) == 200
    racks = [int(p.agent_id.removeprefix("id-h")) % 10 for p in result.placements]
    assert all(racks.count(r) == 20 for r in range(10))


# -- properties ------------------------------------------------------------------------------------

RACKS = st.sampled_from(["a", "b", "c", None])


@st.composite
def offers_strategy(draw: st.DrawFn) -> list[AgentOffer]:
    n = draw(st.integers(1, 6))  # no offers and count 0: unit tests above
    result = []
    for i in range(n):
        rack = draw(RACKS)
        base = draw(st.integers(1000, 1004))
        ranges = tuple((b, b + draw(st.integers(0, 5))) for b in
                       draw(st.lists(st.sampled_from([base, base + 2, base + 8]), min_size=1, max_size=3)))
        result.append(AgentOffer(
            agent=AgentView(f"id{i}", f"h{i % 4}", {"rack": rack} if rack else {}),
            cpus=draw(st.sampled_from([4, 4, 2.5, 1, 0.3, 0])), mem=draw(st.sampled_from([4000, 4000, 1000, 256, 100, 0])),
            disk=draw(st.sampled_from([500, 500, 500, 50, 0])), gpus=draw(st.integers(0, 2)), free_ports=ranges,
            networks=draw(st.sampled_from([frozenset({"n1"}), frozenset({"n1", "n2"}), frozenset()]))))
    return result


CONSTRAINTS = st.lists(st.one_of(
    st.builds(ConstraintSpec, st.sampled_from(["hostname", "rack"]), st.sampled_from(["UNIQUE", "CLUSTER"]),
              st.just(None)),
    st.builds(ConstraintSpec, st.sampled_from(["hostname", "rack"]), st.sampled_from(["GROUP_BY", "MAX_PER"]),
              st.sampled_from(["1", "2", "3"])),
    st.builds(ConstraintSpec, st.just("rack"), st.just("GROUP_BY"), st.just(None)),
    st.builds(ConstraintSpec, st.just("rack"), st.sampled_from(["LIKE", "UNLIKE", "IS"]), st.sampled_from(["a", "a|b"])),
), max_size=2)


def _fits(req: TaskRequest, o: AgentOffer, used: dict, ports: set[int], placed: list[AgentView]) -> bool:
    """Scalar reference of feasibility, independent of the numpy implementation."""
    free = {p for b, e in o.free_ports for p in range(b, e + 1)} - ports
    fixed = [p for p in req.host_ports if p > 0]
    return (set(req.required_networks) <= o.networks
            and o.cpus - used["cpus"] + 1e-9 >= req.cpus and o.mem - used["mem"] + 1e-9 >= req.mem
            and o.disk - used["disk"] + 1e-9 >= req.disk and o.gpus - used["gpus"] >= req.gpus
            and len(free) >= len(req.host_ports) and all(p in free for p in fixed)
            and all(constraint_satisfied(c, o.agent, placed, req.target_instances) for c in req.constraints))


@settings(max_examples=300, deadline=None)
@given(offers_strategy(), CONSTRAINTS,
       st.lists(st.sampled_from([0, 0, 1001, 1003]), max_size=3, unique_by=lambda p: p or object()),
       st.sampled_from([0.3, 1, 0]), st.sampled_from([100, 0]), st.sampled_from([0, 0, 0, 1]), st.integers(1, 8),
       st.integers(0, 3), st.sampled_from([(), (), ("n1",)]), st.sampled_from(["spread", "binpack"]))
def test_placement_properties(offers: list[AgentOffer], constraints: list[ConstraintSpec], host_ports: list[int],
                              cpus: float, mem: float, gpus: int, count: int, seed: int,
                              networks: tuple[str, ...], strategy: str) -> None:
    req = TaskRequest("/p", cpus, mem, 10, gpus, tuple(host_ports), tuple(constraints), max(count, 1), networks)
    placed: list[AgentView] = [offers[0].agent] if offers and seed == 3 else []
    result = place_tasks(req, count, offers, placed, seed=seed, strategy=strategy)  # type: ignore[arg-type]
    assert len(result.placements) <= count
    by_id = {o.agent.agent_id: o for o in offers}
    used = {i: {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0} for i in by_id}
    ports: dict[str, set[int]] = {i: set() for i in by_id}
    so_far = list(placed)
    for p in result.placements:
        o = by_id[p.agent_id]
        assert _fits(req, o, used[p.agent_id], ports[p.agent_id], so_far)
        for c in constraints:  # every placement satisfies every constraint given the earlier ones
            assert constraint_satisfied(c, o.agent, so_far, req.target_instances)
        free = {q for b, e in o.free_ports for q in range(b, e + 1)}
        assert len(p.host_ports) == len(host_ports)
        for wanted, got in zip(host_ports, p.host_ports):
            assert got in free and got not in ports[p.agent_id]  # never the same host port twice
            assert wanted in (0, got)
            ports[p.agent_id].add(got)
        for key, amount in (("cpus", cpus), ("mem", mem), ("disk", 10), ("gpus", gpus)):
            used[p.agent_id][key] += amount
        so_far.append(o.agent)
    for i, o in by_id.items():  # never over-commits
        assert used[i]["cpus"] <= o.cpus + 1e-6 and used[i]["mem"] <= o.mem + 1e-6
        assert used[i]["disk"] <= o.disk + 1e-6 and used[i]["gpus"] <= o.gpus
    if len(result.placements) < count:  # stopped only because nothing fits any more
        assert result.message
        assert not any(_fits(req, o, used[i], ports[i], so_far) for i, o in by_id.items())
        assert sum(result.rejections.values()) == len(offers)
        assert set(result.rejections) <= set(reject_reason_names())
    else:
        assert result.message is None and result.rejections == {}


def test_consume_offers_subtracts_resources_and_ports_of_placements() -> None:
    offers = [offer("h1", cpus=4, mem=4096), offer("h2", cpus=4, mem=4096)]
    req = request(cpus=1, mem=1000, host_ports=(0,))
    result = place_tasks(req, 3, offers, [])
    left = consume_offers(offers, req, result.placements)
    used = {o.agent.agent_id: 0 for o in offers}
    for p in result.placements:
        used[p.agent_id] += 1
    for before, after in zip(offers, left):
        n = used[before.agent.agent_id]
        assert after.cpus == before.cpus - n and after.mem == before.mem - 1000 * n
        taken = [port for p in result.placements if p.agent_id == before.agent.agent_id for port in p.host_ports]
        free = {port for lo, hi in after.free_ports for port in range(lo, hi + 1)}
        assert not free & set(taken) and len(free) == 1000 - n
    # placing again on what is left never reuses a port
    again = place_tasks(req, 2, left, [])
    all_ports = [(p.agent_id, port) for p in (*result.placements, *again.placements) for port in p.host_ports]
    assert len(set(all_ports)) == len(all_ports)
