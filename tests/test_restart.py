"""Rolling restart math (scheduler.decide.restart): Marathon's tables, then the stepper's invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.decide.restart import (
    InstanceState,
    RestartStep,
    RestartStrategy,
    capacity_bounds,
    next_restart_step,
    restart_strategy,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- restart_strategy: Marathon's computeRestartStrategy -------------------------------------

# (instances, mHC, mOC, healthy, resident, current_count) -> (min_healthy, max_capacity, kill_immediately)
STRATEGY_TABLE = [
    # RestartStrategyTest.scala
    pytest.param(1, 0.5, 0.0, 1, True, 1, (1, 1, 1), id="resident-1-instance"),
    pytest.param(1, 0.5, 0.0, 0, True, 1, (1, 1, 0), id="resident-1-instance-none-healthy"),
    pytest.param(5, 0.5, 0.0, 5, True, 5, (3, 5, 2), id="resident-5-instances"),
    pytest.param(5, 1.0, 0.0, 7, True, 7, (5, 5, 3), id="resident-over-capacity"),
    pytest.param(5, 1.0, 0.0, 3, True, 5, (5, 5, 0), id="resident-under-capacity"),
    pytest.param(5, 1.0, 0.0, 5, True, 5, (5, 5, 1), id="resident-at-capacity"),
    pytest.param(1, 0.5, 0.0, 1, False, 1, (1, 2, 0), id="normal-1-instance-plus-one"),
    pytest.param(1, 0.5, 0.0, 0, False, 0, (1, 1, 0), id="normal-1-instance-none-running"),
    pytest.param(2, 0.5, 0.0, 2, False, 2, (1, 2, 1), id="normal-kill-one-immediately"),
    pytest.param(10, 0.1, 0.0, 1, False, 1, (1, 10, 0), id="fewer-running-than-min-health"),
    pytest.param(10, 0.1, 1.0, 10, False, 10, (1, 20, 9), id="max-over-capacity-1"),
    pytest.param(10, 1.0, 1.0, 10, False, 10, (10, 20, 0), id="min-health-1-over-capacity-1"),
    # documented examples (deployments.md, reference §3)
    pytest.param(3, 1.0, 1.0, 3, False, 3, (3, 6, 0), id="defaults-start-all-new-first"),
    pytest.param(3, 0.0, 1.0, 3, False, 3, (0, 6, 3), id="min-health-0-kill-all-first"),
    pytest.param(3, 0.7, 1.0, 3, False, 3, (3, 6, 0), id="docs-n3-mhc0.7-keeps-3"),
    pytest.param(3, 1.0, 0.0, 3, False, 3, (3, 4, 0), id="1-0-plus-one-over-capacity"),
    pytest.param(3, 1.0, 0.0, 2, False, 3, (3, 3, 0), id="1-0-no-plus-one-when-not-all-healthy"),
    pytest.param(4, 0.5, 0.0, 4, False, 4, (2, 4, 2), id="half-0"),
    pytest.param(4, 0.5, 0.25, 4, False, 4, (2, 5, 2), id="issue-example-4-instances"),
    pytest.param(2, 0.5, 0.0, 2, True, 2, (1, 2, 1), id="resident-default-strategy"),
    pytest.param(3, 1.0, 1.0, 5, False, 5, (3, 6, 2), id="extras-killed"),
    pytest.param(3, 1.0, 1.0, 2, False, 5, (3, 6, 2), id="extras-killed-even-if-unhealthy"),
    # exact decimal arithmetic (binary floats would say 56 and 114)
    pytest.param(100, 0.55, 0.15, 100, False, 100, (55, 115, 45), id="exact-decimals"),
]


@pytest.mark.parametrize("n, mhc, moc, healthy, resident, current, expected", STRATEGY_TABLE)
def test_restart_strategy_table(n, mhc, moc, healthy, resident, current, expected):
    strategy = restart_strategy(n, mhc, moc, healthy, resident, current_count=current)
    assert strategy == RestartStrategy(*expected)


def test_restart_strategy_without_current_count_ignores_extras():
    assert restart_strategy(3, 1.0, 1.0, 2) == RestartStrategy(3, 6, 0)


@pytest.mark.parametrize("args", [(-1, 1.0, 1.0, 0), (1, 1.5, 1.0, 0), (1, 1.0, -0.1, 0), (1, 1.0, 1.0, -1)])
def test_restart_strategy_rejects_nonsense(args):
    with pytest.raises(ValueError):
        restart_strategy(*args)


@pytest.mark.parametrize("n, params, resident, expected", [
    (3, (1.0, 1.0), False, (3, 6)),
    (3, (1.0, 0.0), False, (3, 4)),     # +1 whatever the health
    (1, (0.5, 0.0), True, (0, 1)),      # resident: keep one fewer instead
    (5, (0.5, 0.0), True, (3, 5)),
    (0, (1.0, 1.0), False, (0, 1)),
    (0, (1.0, 0.0), True, (0, 0)),
])
def test_capacity_bounds(n, params, resident, expected):
    assert capacity_bounds(n, params, resident=resident) == expected


# --- next_restart_step: tables ---------------------------------------------------------------

def old(i: int, healthy: bool = True, staged: float | None = None) -> InstanceState:
    return InstanceState(f"old-{i}", False, healthy, True, True, float(i) if staged is None else staged)


def new(i: int, ready: bool = True, healthy: bool | None = None, staged: float | None = None) -> InstanceState:
    return InstanceState(f"new-{i}", True, ready if healthy is None else healthy, ready, True,
                         100.0 + i if staged is None else staged)


def test_defaults_launch_all_new_then_kill_one_old_per_ready_new():
    olds = [old(0), old(1), old(2)]
    assert next_restart_step(3, (1.0, 1.0), olds, started_new=0) == RestartStep(3, (), False)
    waiting = olds + [new(0, ready=False), new(1, ready=False), new(2, ready=False)]
    assert next_restart_step(3, (1.0, 1.0), waiting, started_new=0) == RestartStep(0, (), False)
    one_ready = olds + [new(0), new(1, ready=False), new(2, ready=False)]
    assert next_restart_step(3, (1.0, 1.0), one_ready, started_new=0) == RestartStep(0, ("old-0",), False)


def test_min_health_zero_kills_everything_first():
    step = next_restart_step(3, (0.0, 1.0), [old(2), old(0), old(1)], started_new=0)
    assert step == RestartStep(3, ("old-0", "old-1", "old-2"), False)


def test_docs_example_keeps_three_of_three():
    step = next_restart_step(3, (0.7, 0.0), [old(0), old(1), old(2)], started_new=0)
    assert step == RestartStep(1, (), False)   # keep ceil(2.1) = 3, +1 over capacity to start


def test_one_zero_uses_one_instance_of_over_capacity():
    olds = [old(0), old(1), old(2)]
    assert next_restart_step(3, (1.0, 0.0), olds, started_new=0) == RestartStep(1, (), False)
    assert next_restart_step(3, (1.0, 0.0), olds + [new(0, ready=False)], started_new=0) == RestartStep(0, (), False)
    # the new one is healthy and ready: one old goes, which leaves room for the next new one
    assert next_restart_step(3, (1.0, 0.0), olds + [new(0)], started_new=0) == RestartStep(1, ("old-0",), False)


def test_one_zero_plus_one_even_when_an_old_instance_is_unhealthy():
    # Marathon stalls here: no +1 because not all are healthy, so no room to launch
    olds = [old(0), old(1, healthy=False), old(2)]
    assert next_restart_step(3, (1.0, 0.0), olds, started_new=0) == RestartStep(1, (), False)
    # the first new one ready: the unhealthy old one goes first
    step = next_restart_step(3, (1.0, 0.0), olds + [new(0)], started_new=0)
    assert step == RestartStep(1, ("old-1",), False)


def test_half_zero():
    olds = [old(i) for i in range(4)]
    assert next_restart_step(4, (0.5, 0.0), olds, started_new=0) == RestartStep(2, ("old-0", "old-1"), False)


def test_issue_example_never_below_two_or_above_five():
    olds = [old(i) for i in range(4)]
    step = next_restart_step(4, (0.5, 0.25), olds, started_new=0)
    assert step == RestartStep(3, ("old-0", "old-1"), False)


def test_resident_single_instance_is_stopped_before_its_replacement_starts():
    step = next_restart_step(1, (0.5, 0.0), [old(0)], started_new=0, resident=True)
    assert step == RestartStep(1, ("old-0",), False)


def test_resident_five_instances():
    step = next_restart_step(5, (0.5, 0.0), [old(i) for i in range(5)], started_new=0, resident=True)
    assert step == RestartStep(2, ("old-0", "old-1"), False)


def test_unhealthy_old_instances_are_killed_first_then_oldest():
    olds = [old(0, staged=5.0), old(1, healthy=False, staged=9.0), old(2, staged=1.0)]
    assert next_restart_step(3, (0.34, 1.0), olds, started_new=0).kill == ("old-1",)
    assert next_restart_step(3, (0.0, 1.0), olds, started_new=0).kill == ("old-1", "old-2", "old-0")


def test_new_instance_healthy_but_not_ready_frees_nothing():
    olds = [old(0), old(1)]
    step = next_restart_step(2, (1.0, 1.0), olds + [new(0, ready=False, healthy=True), new(1, ready=False)],
                             started_new=0)
    assert step == RestartStep(0, (), False)


def test_failed_new_instance_is_replaced():
    failed = replace(new(0, ready=False), active=False)
    step = next_restart_step(2, (1.0, 1.0), [old(0), old(1), failed, new(1, ready=False)], started_new=0)
    assert step == RestartStep(1, (), False)


def test_pending_launches_count_as_new_instances():
    assert next_restart_step(3, (1.0, 1.0), [old(0), old(1), old(2)], started_new=3) == RestartStep(0, (), False)
    assert next_restart_step(3, (1.0, 1.0), [old(0), old(1), old(2)], started_new=2) == RestartStep(1, (), False)


def test_old_instances_being_killed_do_not_count():
    dying = replace(old(0), active=False)
    step = next_restart_step(2, (1.0, 0.0), [dying, old(1), new(0)], started_new=0)
    assert step == RestartStep(1, (), False)   # old-1 + new-0 are the 2 that must stay


def test_more_old_instances_than_the_target_are_cut_down():
    step = next_restart_step(2, (1.0, 0.0), [old(i) for i in range(5)], started_new=0)
    assert step == RestartStep(1, ("old-0", "old-1", "old-2"), False)


def test_surplus_new_instances_are_killed_not_ready_first_then_youngest():
    news = [new(0), new(1, ready=False), new(2), new(3)]
    step = next_restart_step(2, (1.0, 1.0), news, started_new=0)
    assert step == RestartStep(0, ("new-1", "new-3"), False)


def test_done_only_when_all_new_are_healthy_and_ready_and_no_old_is_active():
    assert next_restart_step(2, (1.0, 1.0), [new(0), new(1)], started_new=0) == RestartStep(0, (), True)
    assert not next_restart_step(2, (1.0, 1.0), [new(0), new(1, ready=False)], started_new=0).done
    assert not next_restart_step(2, (1.0, 1.0), [new(0), new(1)], started_new=1).done
    last_old = next_restart_step(2, (1.0, 1.0), [old(0), new(0), new(1)], started_new=0)
    assert last_old == RestartStep(0, ("old-0",), False)
    gone = replace(old(0), active=False)
    assert next_restart_step(2, (1.0, 1.0), [gone, new(0), new(1)], started_new=0).done


def test_restart_to_zero_instances_kills_everything_and_finishes():
    step = next_restart_step(0, (1.0, 1.0), [old(0), old(1)], started_new=0)
    assert step == RestartStep(0, ("old-0", "old-1"), False)
    assert next_restart_step(0, (1.0, 1.0), [], started_new=0) == RestartStep(0, (), True)


def test_bad_arguments():
    with pytest.raises(ValueError):
        next_restart_step(1, (1.0, 1.0), [old(0), old(0)], started_new=0)
    with pytest.raises(ValueError):
        next_restart_step(1, (1.0, 1.0), [], started_new=-1)


# --- next_restart_step: properties over random histories ------------------------------------

FRACTIONS = st.sampled_from([0.0, 0.1, 0.25, 0.34, 0.5, 0.7, 0.75, 0.9, 1.0])
EVENTS = st.lists(st.tuples(st.sampled_from(["ready", "healthy", "fail_new", "old_dies", "old_sick", "new_sick"]),
                            st.integers(0, 20)), max_size=40)


def _serving(instances: dict[str, InstanceState]) -> int:
    return sum(1 for i in instances.values() if i.active and i.healthy and (i.ready or not i.is_new))


def _active(instances: dict[str, InstanceState]) -> int:
    return sum(1 for i in instances.values() if i.active)


class Simulation:
    """Applies each step as a driver would; launched instances appear at once, not ready."""

    def __init__(self, n: int, params: tuple[float, float], resident: bool, olds: list[bool]) -> None:
        self.n, self.params, self.resident = n, params, resident
        self.keep, self.max_capacity = capacity_bounds(n, params, resident=resident)
        self.instances = {f"old-{k}": InstanceState(f"old-{k}", False, h, True, True, float(k))
                          for k, h in enumerate(olds)}
        self.clock = float(len(olds))
        self.launched = 0

    def step(self) -> RestartStep:
        decision = next_restart_step(self.n, self.params, list(self.instances.values()), started_new=0,
                                     resident=self.resident)
        before = _serving(self.instances)
        for victim in decision.kill:
            assert self.instances[victim].active
            self.instances[victim] = replace(self.instances[victim], active=False)
        assert _serving(self.instances) >= min(before, self.keep), "our kills took us below minHealthy"
        killed_healthy_old = any(not self.instances[v].is_new and self.instances[v].healthy for v in decision.kill)
        if killed_healthy_old:
            assert not any(not i.is_new and i.active and not i.healthy for i in self.instances.values()), \
                "a healthy old instance died before an unhealthy one"
        for _ in range(decision.launch):
            self.clock += 1
            name = f"new-{self.launched}"
            self.launched += 1
            self.instances[name] = InstanceState(name, True, False, False, True, self.clock)
        assert _active(self.instances) <= self.max_capacity, "more than maxCapacity active"
        again = next_restart_step(self.n, self.params, list(self.instances.values()), started_new=0,
                                  resident=self.resident)
        assert again.kill == () and again.launch == 0, "a step applied is a fixpoint"
        return decision

    def pick(self, index: int, wanted) -> str | None:
        ids = sorted(k for k, i in self.instances.items() if i.active and wanted(i))
        return ids[index % len(ids)] if ids else None

    def apply(self, kind: str, index: int) -> None:
        if kind == "ready":
            target = self.pick(index, lambda i: i.is_new and not i.ready)
            changes = {"healthy": True, "ready": True}
        elif kind == "healthy":   # healthy, readiness check not passed yet
            target = self.pick(index, lambda i: i.is_new and not i.healthy)
            changes = {"healthy": True}
        elif kind == "fail_new":
            target = self.pick(index, lambda i: i.is_new)
            changes = {"active": False}
        elif kind == "old_dies":
            target = self.pick(index, lambda i: not i.is_new)
            changes = {"active": False}
        elif kind == "old_sick":
            target = self.pick(index, lambda i: not i.is_new and i.healthy)
            changes = {"healthy": False}
        else:
            target = self.pick(index, lambda i: i.is_new and i.ready)
            changes = {"healthy": False}
        if target is not None:
            self.instances[target] = replace(self.instances[target], **changes)


@SETTINGS
@given(n=st.integers(0, 8), mhc=FRACTIONS, moc=FRACTIONS, resident=st.booleans(),
       olds=st.lists(st.booleans(), max_size=10), events=EVENTS)
def test_rolling_restart_invariants_and_termination(n, mhc, moc, resident, olds, events):
    sim = Simulation(n, (mhc, moc), resident, olds)
    for kind, index in events:
        sim.step()
        sim.apply(kind, index)
    # from now on every new instance becomes healthy and ready: the restart must finish
    for _ in range(3 * n + len(olds) + 5):
        if sim.step().done:
            break
        for name, inst in list(sim.instances.items()):
            if inst.is_new and inst.active:
                sim.instances[name] = replace(inst, healthy=True, ready=True)
    else:
        pytest.fail("restart did not finish")
    active = [i for i in sim.instances.values() if i.active]
    assert len(active) == n and all(i.is_new and i.healthy and i.ready for i in active)


@SETTINGS
@given(n=st.integers(1, 8), mhc=FRACTIONS, moc=FRACTIONS, olds=st.lists(st.booleans(), min_size=1, max_size=10))
def test_first_step_matches_marathon_ignition(n, mhc, moc, olds):
    """From all-old instances, the first kills are Marathon's nrToKillImmediately when the +1 rule agrees."""
    instances = [InstanceState(f"old-{k}", False, h, True, True, float(k)) for k, h in enumerate(olds)]
    strategy = restart_strategy(n, mhc, moc, sum(olds), current_count=len(olds))
    step = next_restart_step(n, (mhc, moc), instances, started_new=0)
    healthy_killed = sum(1 for v in step.kill if instances[int(v.split("-")[1])].healthy)
    if all(olds):
        assert len(step.kill) == strategy.kill_immediately
    assert healthy_killed <= strategy.kill_immediately


@SETTINGS
@given(n=st.integers(0, 6), mhc=FRACTIONS, moc=FRACTIONS, resident=st.booleans(),
       flags=st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()), max_size=12),
       pending=st.integers(0, 3))
def test_step_is_deterministic_and_order_independent(n, mhc, moc, resident, flags, pending):
    instances = [InstanceState(f"i-{k}", is_new, healthy, ready, active, float(k % 4))
                 for k, (is_new, healthy, ready, active) in enumerate(flags)]
    forward = next_restart_step(n, (mhc, moc), instances, started_new=pending, resident=resident)
    backward = next_restart_step(n, (mhc, moc), instances[::-1], started_new=pending, resident=resident)
    assert forward == backward
    assert forward.launch >= 0 and len(set(forward.kill)) == len(forward.kill)
    assert not (forward.done and (forward.kill or forward.launch))
