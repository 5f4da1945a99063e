"""The usage ledger against the sum from scratch, and the offers it gives against the old way.

The ledger must always answer what `usage_of` over every instance answers; a property test
drives it through random puts and removes, as the scheduler's state does, and compares after
each step (ports as sets, scalars to the float tolerance of a different summing order).
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.backends.agents import OfferCache, compute_offers
from scheduler.state.cluster import ClusterState
from scheduler.state.model import FAILED, KILLED, RUNNING, STAGING, Instance
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.usage import AgentUsage, UsageLedger, usage_of

from .fakes import agent

AGENTS = ("a1", "a2", "a3")


def _instance(iid: str, agent_id: str, *, state: str = RUNNING, killing: bool = False,
              cpus: float = 0.5, mem: float = 64.0, ports: tuple[int, ...] = ()) -> Instance:
    return Instance(iid, "/app", "v1", "v1", agent_id, "127.0.0.1", ports, (), state=state,
                    killing=killing, resources={"cpus": cpus, "mem": mem, "disk": 0.0})


def _same(a: AgentUsage, b: AgentUsage) -> bool:
    return (math.isclose(a.cpus, b.cpus, abs_tol=1e-9) and math.isclose(a.mem, b.mem, abs_tol=1e-9)
            and math.isclose(a.disk, b.disk, abs_tol=1e-9) and a.ports == b.ports)


def test_a_launch_counts_on_its_agent_only() -> None:
    ledger = UsageLedger()
    ledger.update(None, _instance("i1", "a1", state=STAGING, ports=(31000,)))
    ledger.update(None, _instance("i2", "a2", cpus=1.0, mem=128.0))
    assert ledger.usage() == {"a1": AgentUsage(0.5, 64.0, 0.0, frozenset({31000})),
                              "a2": AgentUsage(1.0, 128.0, 0.0, frozenset())}


def test_a_killing_instance_still_holds_and_a_terminal_one_frees() -> None:
    ledger = UsageLedger()
    running = _instance("i1", "a1", ports=(31000,))
    ledger.update(None, running)
    killing = _instance("i1", "a1", killing=True, ports=(31000,))
    ledger.update(running, killing)
    assert ledger.usage()["a1"].ports == frozenset({31000})
    ledger.update(killing, _instance("i1", "a1", state=KILLED, ports=(31000,)))
    assert ledger.usage() == {}


def test_a_removed_instance_frees_its_agent_and_a_state_change_keeps_the_sum() -> None:
    ledger = UsageLedger()
    first, second = _instance("i1", "a1"), _instance("i2", "a1")
    ledger.update(None, first)
    ledger.update(None, second)
    before = ledger.usage()["a1"]
    ledger.update(first, _instance("i1", "a1", state=STAGING))      # same hold, other state
    assert ledger.usage()["a1"] == before
    ledger.update(second, None)
    assert ledger.usage()["a1"] == AgentUsage(0.5, 64.0, 0.0, frozenset())


def test_offers_subtract_each_agents_usage_and_leave_other_agents_whole() -> None:
    agents = [agent(1), agent(2)]
    holders = [_instance("i1", agents[0].agent_id, cpus=1.5, mem=512.0, ports=(agents[0].port_range[0],)),
               _instance("i2", agents[0].agent_id, state=FAILED, cpus=2.0)]   # ended: holds nothing
    offers = compute_offers(agents, usage_of(holders))
    assert (offers[0].cpus, offers[0].mem) == (agents[0].cpus - 1.5, agents[0].mem - 512.0)
    assert agents[0].port_range[0] not in offers[0].free_ports
    assert (offers[1].cpus, offers[1].mem) == (agents[1].cpus, agents[1].mem)


_changes = st.lists(st.tuples(
    st.sampled_from([f"i{n}" for n in range(8)]),
    st.one_of(st.none(), st.tuples(st.sampled_from(AGENTS), st.sampled_from([STAGING, RUNNING, KILLED, FAILED]),
                                   st.booleans(), st.sampled_from([0.1, 0.25, 1.0]),
                                   st.sampled_from([(), (31000,), (31001, 31002)])))),
    max_size=60)


@settings(max_examples=200, deadline=None)
@given(_changes)
def test_the_ledger_always_equals_the_sum_from_scratch(changes: list) -> None:
    ledger = UsageLedger()
    instances: dict[str, Instance] = {}
    for iid, change in changes:
        old = instances.get(iid)
        if change is None:
            instances.pop(iid, None)
            ledger.update(old, None)
        else:
            agent_id, state, killing, cpus, ports = change
            new = _instance(iid, agent_id, state=state, killing=killing, cpus=cpus, ports=ports)
            instances[iid] = new
            ledger.update(old, new)
        expected = usage_of(instances.values())
        got = ledger.usage()
        assert set(got) == set(expected)
        assert all(_same(got[a], expected[a]) for a in expected)


def test_the_cluster_state_keeps_its_ledger_with_its_instances(tmp_path: Path) -> None:
    state = ClusterState(SqliteStore(tmp_path / "state.sqlite"))
    state.put_instance(_instance("i1", "a1", ports=(31000,)))
    state.put_instance(_instance("i2", "a2"))
    state.put_instance(_instance("i1", "a1", killing=True, ports=(31000,)))
    state.put_instance(_instance("i2", "a2", state=FAILED))
    state.put_instance(_instance("i3", "a1", cpus=1.0))
    state.remove_instance("i3")
    assert state.usage.usage() == usage_of(state.instances.values())
    assert set(state.usage.usage()) == {"a1"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(AGENTS), st.sampled_from([0.1, 0.2, 0.3, 1e-3, 7.77]),
                          st.sampled_from([(), (31000,), (31001, 31002)])), min_size=1, max_size=40))
def test_a_sum_kept_by_adding_launches_is_bit_for_bit_a_sum_from_scratch(launches: list) -> None:
    """Launches onto agents already summed are added to the sums; the answer must be exactly,
    not merely nearly, what summing the same holders from scratch gives."""
    ledger = UsageLedger()
    holders: list[Instance] = []
    for n, (agent_id, cpus, ports) in enumerate(launches):
        inst = _instance(f"i{n}", agent_id, cpus=cpus, mem=cpus * 3, ports=ports)
        holders.append(inst)
        ledger.update(None, inst)
        fresh = UsageLedger()
        for held in holders:
            fresh.update(None, held)
        assert ledger.usage() == fresh.usage()


def test_the_offer_cache_answers_compute_offers_and_rebuilds_only_changed_agents() -> None:
    agents = [agent(1), agent(2)]
    ledger = UsageLedger()
    cache = OfferCache()
    first = _instance("i1", agents[0].agent_id, ports=(agents[0].port_range[0],))
    ledger.update(None, first)
    offers = cache.offers(agents, ledger.usage())
    assert offers == compute_offers(agents, ledger.usage())
    assert cache.offers(agents, {})[0].cpus == agents[0].cpus        # the idle offers do not evict
    again = cache.offers(agents, ledger.usage())
    assert again[0] is offers[0] and again[1] is offers[1]
    ledger.update(None, _instance("i2", agents[1].agent_id, cpus=2.0))
    moved = cache.offers(agents, ledger.usage())
    assert moved[0] is offers[0] and moved[1] is not offers[1]
    assert moved == compute_offers(agents, ledger.usage())
    ledger.update(first, None)
    assert cache.offers(agents, ledger.usage()) == compute_offers(agents, ledger.usage())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1), st.integers(0, 30)), max_size=40))
def test_offers_kept_through_launches_and_kills_equal_offers_made_from_scratch(steps: list) -> None:
    """Launches take ports from the last offer by bisection; any port freed builds the offer
    again: either way the offer is the one `compute_offers` makes from the usage."""
    agents = [agent(1), agent(2)]
    ledger, cache = UsageLedger(), OfferCache()
    held: dict[str, Instance] = {}
    for n, (launch, which, offset) in enumerate(steps):
        spec = agents[which]
        if launch or not held:
            inst = _instance(f"i{n}", spec.agent_id, cpus=0.1, ports=(spec.port_range[0] + offset,))
            if any(set(inst.ports) & set(h.ports) for h in held.values() if h.agent_id == spec.agent_id):
                continue
            held[inst.instance_id] = inst
            ledger.update(None, inst)
        else:
            gone = held.pop(sorted(held)[offset % len(held)])
            ledger.update(gone, None)
        assert cache.offers(agents, ledger.usage()) == compute_offers(agents, ledger.usage())
