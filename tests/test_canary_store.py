"""A canary deployment's state survives the store, SQLite and ZooKeeper alike: what a restarted
or newly elected scheduler loads is the canary at the step, weight and verdict it had reached."""

from __future__ import annotations

from app_definitions import parse_app_definition
from scheduler.canary import Verdict, VersionSample, advance, begin
from scheduler.deploy.canary_run import CanaryRun, canary_spec
from scheduler.deploy.plan import build_plan
from scheduler.deploy.runs import DeploymentRun, run_from_record, run_record
from scheduler.state.store import PutDeployment

from .test_zk_store import StoreCase, case, zk_client, zk_root  # noqa: F401  (fixtures)

STRATEGY = {"canary": {"instances": 1, "steps": [{"setWeight": 20}, {"pause": {"seconds": 60}}],
                       "analysis": {"intervalSeconds": 10, "minRequests": 5, "maxErrorRate": 0.02}}}


def test_a_canary_run_round_trips_through_both_stores(case: StoreCase) -> None:  # noqa: F811
    old = parse_app_definition({"id": "/web", "cmd": "serve", "instances": 2, "upgradeStrategy": STRATEGY})
    new = parse_app_definition({"id": "/web", "cmd": "serve v2", "instances": 2, "upgradeStrategy": STRATEGY})
    plan = build_plan({"/web": old}, {"/web": new}, plan_id="d-1", version="2026-01-01T00:00:00.000Z")
    spec = canary_spec(plan, "/web")
    assert spec is not None
    verdict = Verdict("inconclusive", "the canary served 2 requests", VersionSample(9, 0, 2.0), VersionSample(2, 0))
    state = advance(begin(spec, 100.0).state, spec, 110.0, verdict).state
    run = DeploymentRun(plan=plan, started_at=90.0, last_progress_at=110.0, canaries=(CanaryRun("/web", state),))
    record = run_record(run)
    assert record["canary"]["app"] == "/web" and "canaries" not in record   # one canary: stored as it always was
    case.store.commit([PutDeployment(run.id, record)], case.valid_fence)
    (loaded,) = [run_from_record(r) for r in case.store.load().deployments]
    assert loaded.canaries == run.canaries and loaded.to_json()["canary"]["weight"] == 20
    assert loaded.to_json()["canary"]["lastAnalysis"]["reason"] == "the canary served 2 requests"
    assert loaded.to_json()["canaries"] == [loaded.to_json()["canary"]]


def test_several_canaries_of_one_deployment_round_trip_through_both_stores(case: StoreCase) -> None:  # noqa: F811
    def app(app_id: str, cmd: str) -> object:
        return parse_app_definition({"id": app_id, "cmd": cmd, "instances": 2, "upgradeStrategy": STRATEGY})
    plan = build_plan({"/shop/api": app("/shop/api", "a"), "/shop/web": app("/shop/web", "w")},
                      {"/shop/api": app("/shop/api", "a2"), "/shop/web": app("/shop/web", "w2")},
                      plan_id="d-2", version="2026-01-01T00:00:00.000Z")
    spec = canary_spec(plan, "/shop/web")
    assert spec is not None
    run = DeploymentRun(plan=plan, started_at=90.0, last_progress_at=110.0,
                        canaries=(CanaryRun("/shop/api"), CanaryRun("/shop/web", begin(spec, 100.0).state)))
    case.store.commit([PutDeployment(run.id, run_record(run))], case.valid_fence)
    (loaded,) = [run_from_record(r) for r in case.store.load().deployments]
    assert loaded.canaries == run.canaries
    blocks = loaded.to_json()["canaries"]
    assert [(b["app"], b["phase"], b["weight"]) for b in blocks] == [("/shop/api", "starting", 0),
                                                                     ("/shop/web", "steps", 20)]
    assert loaded.to_json()["canary"] == blocks[0]
