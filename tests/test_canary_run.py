"""The pure half of a canary deployment (scheduler/deploy/canary_run.py): which plans run one,
what the canary phase launches and kills, the weights shown to the bridge, and the state that
survives a restart."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app_definitions import parse_app_definition
from app_definitions.strategies import Canary
from scheduler.canary import Check, Verdict, VersionSample, advance, begin, canary_share
from scheduler.deploy.canary_run import CanaryRun, canary_apps, canary_convergence, canary_size, tick, traffic
from scheduler.deploy.plan import build_plan
from scheduler.state.model import FINISHED, RUNNING, Instance

SPEC = Canary.model_validate({"instances": 1, "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}},
                                                        {"setWeight": 50}, {"pause": {}}],
                              "analysis": {"intervalSeconds": 10, "minRequests": 5, "maxErrorRate": 0.02}})


def definition(instances: int = 3, canary: bool = True, **extra: Any) -> Any:
    strategy = {"canary": SPEC.model_dump(by_alias=True)} if canary else {}
    return parse_app_definition({"id": "/web", "cmd": "serve", "instances": instances,
                                 "upgradeStrategy": strategy, **extra})


def inst(n: int, config: str, *, state: str = RUNNING, killing: bool = False) -> Instance:
    return Instance(instance_id=f"web.{n}", app_id="/web", version=config, config_version=config, agent_id="a",
                    host="h", ports=(31000 + n,), service_ports=(), state=state, staged_at=float(n), killing=killing)


def test_only_a_restart_of_an_app_that_runs_and_asks_for_one_is_a_canary() -> None:
    old, new = definition(), definition(env={"RELEASE": "2"})
    assert canary_apps(build_plan({"/web": old}, {"/web": new}, plan_id="p", version="v")) == ["/web"]
    assert canary_apps(build_plan({}, {"/web": new}, plan_id="p", version="v")) == []              # a new app
    scaled = definition(instances=5)
    assert canary_apps(build_plan({"/web": old}, {"/web": scaled}, plan_id="p", version="v")) == []  # scale only
    plain = definition(canary=False, env={"RELEASE": "2"})
    assert canary_apps(build_plan({"/web": old}, {"/web": plain}, plan_id="p", version="v")) == []
    stopped = definition(instances=0, env={"RELEASE": "2"})
    assert canary_apps(build_plan({"/web": old}, {"/web": stopped}, plan_id="p", version="v")) == []


@given(old=st.integers(0, 6), new=st.integers(0, 6), wanted=st.integers(1, 3), serving=st.sets(st.integers(0, 12)))
def test_the_canary_phase_never_touches_a_stable_instance(old: int, new: int, wanted: int, serving: set[int]) -> None:
    insts = [inst(n, "v1") for n in range(old)] + [inst(old + n, "v2") for n in range(new)]
    launch, kill = canary_convergence(wanted, insts, "v2", lambda i: int(i.instance_id.split(".")[1]) in serving)
    assert not {f"web.{n}" for n in range(old)} & set(kill)
    assert new - len(kill) + launch == wanted
    assert launch == 0 or kill == ()


def test_surplus_canaries_go_not_serving_first_then_youngest() -> None:
    insts = [inst(0, "v1"), inst(1, "v2"), inst(2, "v2"), inst(3, "v2")]
    assert canary_convergence(1, insts, "v2", lambda i: i.instance_id != "web.1") == (0, ("web.1", "web.3"))
    done = [inst(1, "v2", state=FINISHED), inst(2, "v2", killing=True)]
    assert canary_convergence(1, done, "v2", lambda i: True) == (1, ())


@given(stable=st.integers(1, 12), canaries=st.integers(1, 3), percent=st.sampled_from([10, 25, 50, 75, 90]))
def test_the_weights_shown_to_the_bridge_give_the_canary_its_share(stable: int, canaries: int, percent: int) -> None:
    insts = [inst(n, "v1") for n in range(stable)] + [inst(stable + n, "v2") for n in range(canaries)]
    state = begin(Canary.model_validate({"steps": [{"setWeight": percent}, {"pause": {}}]}), 0.0).state
    shown = traffic(CanaryRun("/web", state), insts, "v2", lambda i: True)
    assert shown is not None and shown["percent"] == percent and len(shown["canaryTasks"]) == canaries
    share = canary_share(stable, canaries, shown["stableWeight"], shown["canaryWeight"])
    assert share is not None and abs(share - percent) <= 1


def test_no_traffic_reaches_a_canary_before_its_steps_begin_and_none_is_shown_after() -> None:
    insts = [inst(0, "v1"), inst(1, "v1"), inst(2, "v2")]
    waiting = traffic(CanaryRun("/web"), insts, "v2", lambda i: True)
    assert waiting is not None and waiting["canaryWeight"] == 0 and waiting["canaryTasks"] == ["web.2"]
    promoted = advance(begin(SPEC, 0.0).state, SPEC, 1.0, promote="full").state
    assert traffic(CanaryRun("/web", promoted), insts, "v2", lambda i: True) is None


def test_steps_wait_for_every_canary_instance_then_begin() -> None:
    assert tick(CanaryRun("/web"), SPEC, 0, 5.0) == (CanaryRun("/web"), None)
    moved, transition = tick(CanaryRun("/web"), SPEC, 1, 5.0)
    assert transition is not None and moved.state is not None and moved.state.weight == 10
    moved, transition = tick(CanaryRun("/web"), SPEC, 1, 5.0, promote="full")
    assert moved.state is not None and moved.state.phase == "promoted" and not moved.in_steps


VERDICT = Verdict("fail", "canary error rate 20.00% is above maxErrorRate 2.00%",
                  VersionSample(100, 0, 3.0), VersionSample(100, 20, 4.0, cpu=0.5),
                  (Check("maxErrorRate", 0.02, 0.2, "fail"),), "mean", ("maxErrorRate",))


@settings(max_examples=60)
@given(ticks=st.lists(st.tuples(st.floats(0, 200), st.sampled_from([None, "pass", "fail", "inconclusive"]),
                                st.sampled_from([None, None, None, "next"])), max_size=8))
def test_the_stored_canary_is_the_canary(ticks: list[tuple[float, str | None, str | None]]) -> None:
    state = begin(SPEC, 0.0).state
    now = 0.0
    for dt, outcome, promote in ticks:
        now += dt
        verdict = None if outcome is None else Verdict(outcome, outcome, VersionSample(10, 1), VersionSample(12, 0))  # type: ignore[arg-type]
        state = advance(state, SPEC, now, verdict, promote).state  # type: ignore[arg-type]
        run = CanaryRun("/web", state)
        assert CanaryRun.from_record(run.to_record()) == run
    with_figures = CanaryRun("/web", advance(state, SPEC, now + 1, VERDICT).state)
    assert CanaryRun.from_record(with_figures.to_record()) == with_figures
    assert CanaryRun.from_record(CanaryRun("/web").to_record()) == CanaryRun("/web")


BLUE_GREEN = Canary.model_validate({"blueGreen": True, "instances": 1, "steps": [{"pause": {"seconds": 30}}]})


def test_blue_green_starts_a_full_set_and_switches_only_once_all_of_it_is_ready() -> None:
    assert canary_size(BLUE_GREEN, 4) == 4 and canary_size(SPEC, 4) == 1
    assert tick(CanaryRun("/web"), BLUE_GREEN, 3, 5.0, size=4) == (CanaryRun("/web"), None)
    moved, transition = tick(CanaryRun("/web"), BLUE_GREEN, 4, 5.0, promote="full", size=4)
    assert transition is not None and moved.switched and moved.weight == 100 and not moved.in_steps


@given(old=st.integers(0, 8), new=st.integers(1, 8), promote=st.booleans())
def test_blue_green_gives_the_new_set_nothing_before_the_switch_and_everything_after(
        old: int, new: int, promote: bool) -> None:
    insts = [inst(n, "v1") for n in range(old)] + [inst(old + n, "v2") for n in range(new)]
    before = traffic(CanaryRun("/web", begin(BLUE_GREEN, 0.0).state), insts, "v2", lambda i: True)
    assert before is not None and before["percent"] == 0
    assert (before["canaryWeight"], before["stableWeight"]) == ((0, 1) if old else (1, 0))   # never all at 0
    switched = advance(begin(BLUE_GREEN, 0.0).state, BLUE_GREEN, 40.0, promote="full" if promote else None).state
    after = traffic(CanaryRun("/web", switched), insts, "v2", lambda i: True)
    assert after is not None and after["percent"] == 100 and after["canaryShare"] == 100.0
    assert (after["canaryWeight"], after["stableWeight"]) == (1, 0) and len(after["canaryTasks"]) == new
    run = CanaryRun("/web", switched)
    assert CanaryRun.from_record(run.to_record()) == run        # the switch survives a restart


def test_a_record_stored_before_blue_green_existed_loads_as_not_switched() -> None:
    record = CanaryRun("/web", begin(SPEC, 0.0).state).to_record()
    del record["state"]["switched"]
    loaded = CanaryRun.from_record(record)
    assert loaded.state is not None and not loaded.state.switched and not loaded.switched
