"""Several canary apps in one deployment (a group written whole): each canary walks its own steps,
analysis and weights, its app rolls the rest when its own canary is promoted, and the abort of any
one fails the whole deployment and rolls every app of it back, the reason naming the app.

Pure half: the per-app state inside a `DeploymentRun` (advance one, the others untouched; stored
and loaded; the deadline held while one steps). Whole-core half on the scenario fakes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app_definitions import parse_app_definition
from app_definitions.strategies import Canary
from pacer.deploy import _status_line
from scheduler.canary import Verdict, VersionSample
from scheduler.deploy.canary_run import CanaryRun, canary_apps, tick
from scheduler.deploy.plan import build_plan
from scheduler.deploy.progress import StallEvidence, judge_run
from scheduler.deploy.runs import DeploymentRun, run_from_record, run_record

from .fakes import CHECK, EventLog, active, deployed, heal_new, ids, no_deployments, run_until, service, step
from .test_canary_scenarios import Core, core  # noqa: F401 (fixture)

FAST = Canary.model_validate({"instances": 1, "steps": [{"setWeight": 20}, {"pause": {"seconds": 30}}],
                              "analysis": {"intervalSeconds": 10, "minRequests": 5, "maxErrorRate": 0.05,
                                           "failureLimit": 2}})
SLOW = Canary.model_validate({"instances": 1, "steps": [{"setWeight": 10}, {"pause": {"seconds": 60}},
                                                        {"setWeight": 50}, {"pause": {}}]})
APPS = ("/shop/api", "/shop/web")


def definition(app_id: str, spec: Canary, **extra: Any) -> Any:
    return parse_app_definition({"id": app_id, "cmd": "serve", "instances": 3, "upgradeStrategy": {
        "canary": spec.model_dump(by_alias=True), "progressDeadlineSeconds": 600}, **extra})


def two_canary_plan() -> Any:
    original = {"/shop/api": definition("/shop/api", FAST), "/shop/web": definition("/shop/web", SLOW)}
    target = {a: definition(a, FAST if a == "/shop/api" else SLOW, env={"RELEASE": "2"}) for a in APPS}
    return build_plan(original, target, plan_id="d", version="2026-01-01T00:00:00.000Z")


def verdict(outcome: str) -> Verdict:
    return Verdict(outcome, f"interval {outcome}", VersionSample(100, 0), VersionSample(100, 0))  # type: ignore[arg-type]


# -- pure ---------------------------------------------------------------------------------

def test_a_plan_changing_two_canary_apps_runs_two_canaries() -> None:
    assert canary_apps(two_canary_plan()) == list(APPS)


TICK = st.tuples(st.sampled_from(APPS), st.floats(0, 40), st.sampled_from([None, "pass", "fail", "inconclusive"]),
                 st.sampled_from([None, None, None, "next", "full"]))


@settings(max_examples=60)
@given(ticks=st.lists(TICK, max_size=12))
def test_each_canary_advances_on_its_own_and_the_run_stores_them_all(
        ticks: list[tuple[str, float, str | None, str | None]]) -> None:
    """Ticking the canaries of one run in any interleaving gives each the states it would have
    had alone; the stored run loads back with every canary where it was."""
    plan = two_canary_plan()
    specs = {"/shop/api": FAST, "/shop/web": SLOW}
    run = DeploymentRun(plan=plan, started_at=0.0, last_progress_at=0.0, canaries=tuple(CanaryRun(a) for a in APPS))
    alone = {a: CanaryRun(a) for a in APPS}
    now = 0.0
    for app_id, dt, outcome, promote in ticks:
        now += dt
        given_verdict = None if outcome is None else verdict(outcome)
        current = run.canary_of(app_id)
        assert current is not None
        moved, _ = tick(current, specs[app_id], 1, now, given_verdict, promote)  # type: ignore[arg-type]
        others = [c for c in run.canaries if c.app_id != app_id]
        run = run.with_canary(moved)
        assert [c for c in run.canaries if c.app_id != app_id] == others        # the others untouched
        alone[app_id], _ = tick(alone[app_id], specs[app_id], 1, now, given_verdict, promote)  # type: ignore[arg-type]
        assert run.canaries == tuple(alone[a] for a in APPS)
        loaded = run_from_record(run_record(run))
        assert loaded.canaries == run.canaries
        assert [b["app"] for b in loaded.to_json()["canaries"]] == list(APPS)


def test_a_run_stored_with_one_canary_before_several_existed_loads() -> None:
    plan = two_canary_plan()
    run = DeploymentRun(plan=plan, started_at=0.0, last_progress_at=0.0, canaries=(CanaryRun("/shop/web"),))
    record = run_record(run)
    assert set(record) >= {"canary"} and "canaries" not in record
    loaded = run_from_record(record)
    assert loaded.canaries == (CanaryRun("/shop/web"),) and loaded.canary == CanaryRun("/shop/web")
    assert run_from_record({k: v for k, v in record.items() if k != "canary"}).canaries == ()


def test_the_progress_deadline_is_held_while_any_canary_steps() -> None:
    plan = two_canary_plan()
    stepping = tick(CanaryRun("/shop/web"), SLOW, 1, 0.0)[0]
    run = DeploymentRun(plan=plan, started_at=0.0, last_progress_at=0.0,
                        canaries=(CanaryRun("/shop/api"), stepping))
    evidence = StallEvidence({}, {}, {})
    held = judge_run(run, step_done=False, new_healthy=lambda r: 0, now=10_000.0, evidence=evidence)
    assert held.failure is None and held.run.last_progress_at == 10_000.0
    starting = DeploymentRun(plan=plan, started_at=0.0, last_progress_at=0.0,
                             canaries=(CanaryRun("/shop/api"), CanaryRun("/shop/web")))
    stalled = judge_run(starting, step_done=False, new_healthy=lambda r: 0, now=10_000.0, evidence=evidence)
    assert stalled.failure is not None                  # no canary began: instances that never start do stall


def test_pacer_deploy_prints_a_line_per_canary_app() -> None:
    plan = two_canary_plan()
    run = DeploymentRun(plan=plan, started_at=0.0, last_progress_at=0.0,
                        canaries=(CanaryRun("/shop/api"), tick(CanaryRun("/shop/web"), SLOW, 1, 0.0)[0]))
    row = run.to_json()
    assert _status_line("/shop/web", row, {}) == "  /shop/web: canary step 1/4 at 10%"
    assert _status_line("/shop", row, {}).splitlines() == [
        "  /shop/api: canary: starting 1 instance(s) beside the stable ones", "  /shop/web: canary step 1/4 at 10%"]
    one = {k: v for k, v in row.items() if k != "canaries"}           # a row from a Pacer with one canary per deployment
    assert _status_line("/shop", one, {}) == "  /shop: canary: starting 1 instance(s) beside the stable ones"


# -- whole core ---------------------------------------------------------------------------

def canary_app(app_id: str, spec: Canary) -> dict[str, Any]:
    strategy = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": spec.model_dump(by_alias=True,
                                                                                                exclude_none=True)}
    return service(app_id, 2, healthChecks=[CHECK], upgradeStrategy=strategy)


def heal_all(sched: Any) -> None:
    for app_id in APPS:
        heal_new(sched, app_id)


def split(sched: Any, app_id: str) -> tuple[set[str], set[str]]:
    config = sched.state.apps[app_id].config_version
    insts = active(sched, app_id)
    return ids(i for i in insts if i.config_version != config), ids(i for i in insts if i.config_version == config)


async def start_both(core: Core, api: Canary, web: Canary) -> tuple[dict[str, set[str]], str]:
    """Both apps v1 on 2 healthy instances each, then one write changing both: two canaries begin."""
    sched = core.sched
    stable = {"/shop/api": ids(await deployed(sched, canary_app("/shop/api", api))),
              "/shop/web": ids(await deployed(sched, canary_app("/shop/web", web)))}
    (_, run, _) = sched.writes.update_apps([(a, {"env": {"RELEASE": "2"}}) for a in APPS])
    assert [c.app_id for c in sched.state.deployments[run.id].canaries] == list(APPS)
    for _ in range(4):
        await step(sched)
        heal_all(sched)
    await step(sched)
    return stable, run.id


def blocks(sched: Any, run_id: str) -> dict[str, dict[str, Any]]:
    return {b["app"]: b for b in sched.state.deployments[run_id].to_json()["canaries"]}


async def test_two_canaries_step_on_their_own_and_each_app_rolls_when_its_canary_is_promoted(core: Core) -> None:
    sched, clock = core.sched, core.clock
    sched.canary.analyse = lambda run, canary, now: verdict("pass")
    events = EventLog(sched, "canary_step_event", "canary_promoted_event", "deployment_success")
    stable, run_id = await start_both(core, FAST, SLOW)
    shown = blocks(sched, run_id)
    assert (shown["/shop/api"]["weight"], shown["/shop/web"]["weight"]) == (20, 10)
    for app_id in APPS:
        old, new = split(sched, app_id)
        assert old == stable[app_id] and len(new) == 1
    for _ in range(4):                                   # /shop/api's 30 s pause passes its analysis
        clock.advance(10)
        await step(sched)
        heal_all(sched)
    promoted = [e["appId"] for e in events.of("canary_promoted_event")]
    assert promoted == ["/shop/api"]
    shown = blocks(sched, run_id)
    assert shown["/shop/api"]["phase"] == "promoted" and shown["/shop/web"]["phase"] == "steps"
    await run_until(sched, lambda: not split(sched, "/shop/api")[0], heal=lambda: heal_all(sched))
    assert len(split(sched, "/shop/api")[1]) == 2                          # /shop/api rolled in full
    assert split(sched, "/shop/web")[0] == stable["/shop/web"]             # /shop/web still at its step
    assert run_id in sched.state.deployments and blocks(sched, run_id)["/shop/web"]["phase"] == "steps"

    clock.advance(61)
    await step(sched)
    assert blocks(sched, run_id)["/shop/web"]["waitingForPromotion"] is True
    sched.canary.promote(run_id, "next", "/shop/web")
    await run_until(sched, no_deployments(sched), heal=lambda: heal_all(sched))
    assert [e["appId"] for e in events.of("canary_promoted_event")] == ["/shop/api", "/shop/web"]
    assert [e["id"] for e in events.of("deployment_success")][-1] == run_id
    for app_id in APPS:
        old, new = split(sched, app_id)
        assert not old and len(new) == 2 and not new & stable[app_id]


async def test_one_canary_failing_its_analysis_rolls_the_whole_deployment_back(core: Core) -> None:
    sched, clock = core.sched, core.clock
    outcomes = {"/shop/api": "pass", "/shop/web": "fail"}
    sched.canary.analyse = lambda run, canary, now: verdict(outcomes[canary.app_id])
    events = EventLog(sched, "canary_promoted_event", "canary_aborted_event", "deployment_failed")
    slower_to_fail = FAST.model_copy(update={"steps": SLOW.steps,
                                             "analysis": FAST.analysis.model_copy(update={"failure_limit": 4})})
    analysed = {"/shop/api": FAST, "/shop/web": slower_to_fail}   # api passes at 30 s, web fails at 40 s
    stable, run_id = await start_both(core, *analysed.values())
    for _ in range(4):
        clock.advance(10)
        await step(sched)
        heal_all(sched)
    assert run_id not in sched.state.deployments
    assert [e["appId"] for e in events.of("canary_promoted_event")] == ["/shop/api"]   # it had passed
    (failed,) = events.of("deployment_failed")
    assert failed["id"] == run_id and "/shop/web" in failed["reason"] and "failureLimit" in failed["reason"]
    aborted = {e["appId"]: e["reason"] for e in events.of("canary_aborted_event")}
    assert set(aborted) == {"/shop/web"} and "failureLimit" in aborted["/shop/web"]
    await run_until(sched, no_deployments(sched), heal=lambda: heal_all(sched))
    for app_id in APPS:
        assert "RELEASE" not in sched.state.apps[app_id].json.get("env", {})      # both back on v1
        assert not split(sched, app_id)[0]                                        # every instance runs it
    assert ids(active(sched, "/shop/web")) == stable["/shop/web"]                 # web's stable ones kept
    assert len(active(sched, "/shop/api")) == 2


async def test_a_person_aborting_one_canary_aborts_the_other_with_the_deployment(core: Core) -> None:
    sched = core.sched
    events = EventLog(sched, "canary_aborted_event", "deployment_failed")
    stable, run_id = await start_both(core, SLOW, SLOW)
    sched.canary.abort(run_id, "checkout broken", "/shop/web")
    aborted = {e["appId"]: e["reason"] for e in events.of("canary_aborted_event")}
    assert aborted["/shop/web"] == "checkout broken"
    assert "/shop/web" in aborted["/shop/api"] and "rolled back" in aborted["/shop/api"]
    assert events.of("deployment_failed")[0]["reason"] == "canary of /shop/web aborted: checkout broken"
    await run_until(sched, no_deployments(sched), heal=lambda: heal_all(sched))
    for app_id in APPS:
        assert ids(active(sched, app_id)) == stable[app_id]


async def test_promote_without_an_app_moves_every_canary(core: Core) -> None:
    sched = core.sched
    stable, run_id = await start_both(core, SLOW, SLOW)
    run = sched.canary.promote(run_id, "next")
    assert {b["app"]: b["weight"] for b in run.to_json()["canaries"]} == {"/shop/api": 50, "/shop/web": 50}
    run = sched.canary.promote(run_id, "full")
    assert [b["phase"] for b in run.to_json()["canaries"]] == ["promoted", "promoted"]
    await run_until(sched, no_deployments(sched), heal=lambda: heal_all(sched))
    for app_id in APPS:
        assert not split(sched, app_id)[0] and not ids(active(sched, app_id)) & stable[app_id]


async def test_an_abort_without_an_app_aborts_every_canary_still_stepping(core: Core) -> None:
    sched = core.sched
    events = EventLog(sched, "canary_aborted_event", "deployment_failed")
    stable, run_id = await start_both(core, SLOW, SLOW)
    sched.canary.promote(run_id, "full", "/shop/api")                 # past its steps: rolls its rest
    sched.canary.abort(run_id, "release pulled")
    assert {e["appId"]: e["reason"] for e in events.of("canary_aborted_event")} == {"/shop/web": "release pulled"}
    assert events.of("deployment_failed")[0]["reason"] == "canary of /shop/web aborted: release pulled"
    await run_until(sched, no_deployments(sched), heal=lambda: heal_all(sched))
    for app_id in APPS:
        assert not split(sched, app_id)[0] and "RELEASE" not in sched.state.apps[app_id].json.get("env", {})
