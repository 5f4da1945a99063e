"""Scheduled cutovers and approval gates on a whole scheduler core: real SQLite store, fake
backend, fake clock (the end-to-end tests with a real `pacer serve` are in
test_scheduled_deployments_e2e.py). The pure parts (`parse_at`, the verdicts) are at the
bottom, with property tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app_definitions import ValidationFailed
from scheduler.decide.cutover import pending_verdicts, verdict_for
from scheduler.deploy.pending import Approval, ApprovalNeed, PendingDeployment, parse_at
from scheduler.engine.core import Scheduler
from scheduler.errors import Conflict, Forbidden, NotFound

from .fakes import Core, EventLog, FakeClock, agent, build_scheduler, deployed, service, shutdown, started_core, step

AGENTS = [agent(1), agent(2)]
# 2026-12-05T17:59:58Z: Saturday in UTC, already 01:59:58 on Sunday 6 December in UTC+8
BEFORE_CUTOVER = datetime(2026, 12, 5, 17, 59, 58, tzinfo=timezone.utc).timestamp()
CUTOVER_AT = "2026-12-06T02:00:00+08:00"


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with started_core(tmp_path / "state.db", FakeClock(BEFORE_CUTOVER - 3600), AGENTS) as started:
        yield started


def release(sched: Scheduler, app_id: str, env: str) -> list:
    """The records a PUT of a new `RELEASE` would store (validated, finalised, not stored)."""
    return [r for r, _ in sched.writes.prepare_updates([(app_id, {"env": {"RELEASE": env}})])]


async def at_cutover(core: Core) -> None:
    core.clock._now = BEFORE_CUTOVER
    await step(core.sched)


# -- scheduled cutovers ---------------------------------------------------------------------

async def test_cutover_starts_at_its_time_across_a_day_and_time_zone_boundary(core: Core):
    sched = core.sched
    await deployed(sched, service("/shop", 2))
    before = sched.state.apps["/shop"].version
    events = EventLog(sched)
    pending = sched.pending.submit(release(sched, "/shop", "2"), at=CUTOVER_AT, author="alice")
    assert pending.status == "scheduled" and pending.scheduled_text == CUTOVER_AT
    assert pending.scheduled_at == datetime(2026, 12, 5, 18, 0, tzinfo=timezone.utc).timestamp()
    assert [e["id"] for e in events.of("deployment_scheduled")] == [pending.id]
    await at_cutover(core)                       # 01:59:58 local, 17:59:58 UTC: not yet
    core.clock.advance(1.999)
    await step(sched)
    assert sched.state.apps["/shop"].version == before and pending.id in sched.state.pending
    core.clock.advance(0.001)                    # 02:00:00 in UTC+8, the previous day in UTC
    await step(sched)
    assert sched.state.apps["/shop"].version == pending.version
    assert sched.state.apps["/shop"].definition.env["RELEASE"] == "2"
    assert pending.id in sched.state.deployments and pending.id not in sched.state.pending
    started = events.of("deployment_scheduled_started")
    assert [e["id"] for e in started] == [pending.id] and started[0]["plan"]["affectedApps"] == ["/shop"]
    assert [e["plan"]["id"] for e in events.of("deployment_info")] == [pending.id]


async def test_a_pending_cutover_survives_a_restart_and_starts_after_it(core: Core, tmp_path: Path):
    sched = core.sched
    await deployed(sched, service("/shop", 1))
    pending = sched.pending.submit(release(sched, "/shop", "2"), at=CUTOVER_AT)
    await shutdown(sched)
    restarted, _ = build_scheduler(core.db, core.clock, AGENTS, running=core.backend.running)
    await restarted.start()
    core.sched = restarted
    assert restarted.state.pending[pending.id].to_record() == pending.to_record()
    await at_cutover(core)
    core.clock.advance(2)
    await step(restarted)
    assert restarted.state.apps["/shop"].version == pending.version
    assert pending.id in restarted.state.deployments


async def test_a_change_to_the_app_since_submission_is_refused_at_start_time(core: Core):
    sched = core.sched
    await deployed(sched, service("/shop", 1))
    pending = sched.pending.submit(release(sched, "/shop", "2"), at=CUTOVER_AT)
    (changed,), _, _ = sched.writes.update_apps([("/shop", {"env": {"RELEASE": "hotfix"}})])
    events = EventLog(sched)
    core.clock._now = BEFORE_CUTOVER + 2
    await step(sched)
    assert sched.state.apps["/shop"].version == changed.version          # no silent overwrite
    ended = sched.state.pending[pending.id]
    assert ended.status == "failed" and changed.version in (ended.failure or "")
    assert "/shop changed to version" in (ended.failure or "")
    refused = events.of("deployment_scheduled_refused")
    assert [e["id"] for e in refused] == [pending.id] and refused[0]["reason"] == ended.failure
    assert pending.id in [e["id"] for e in events.of("deployment_failed")]
    # it stays visible (and stored) until removed
    await step(sched)
    assert sched.state.pending[pending.id].status == "failed"
    sched.pending.cancel(pending.id)
    assert pending.id not in sched.state.pending and not sched.store.load().deployments


async def test_cancel_and_move_before_the_start(core: Core):
    sched = core.sched
    await deployed(sched, service("/shop", 1))
    events = EventLog(sched)
    first = sched.pending.submit(release(sched, "/shop", "2"), at=CUTOVER_AT)
    sched.pending.cancel(first.id)
    assert [e["id"] for e in events.of("deployment_scheduled_cancelled")] == [first.id]
    second = sched.pending.submit(release(sched, "/shop", "3"), at=CUTOVER_AT)
    later = "2026-12-06T03:00:00+08:00"
    moved = sched.pending.move(second.id, {"scheduledAt": later})
    assert moved.scheduled_text == later and events.of("deployment_scheduled_moved")[0]["scheduledAt"] == later
    with pytest.raises(ValidationFailed) as past:
        sched.pending.move(second.id, {"scheduledAt": "2020-01-01T00:00:00Z"})
    assert past.value.to_body()["details"][0]["path"] == "/scheduledAt"
    await at_cutover(core)
    core.clock.advance(60)
    await step(sched)
    assert sched.state.apps["/shop"].definition.env.get("RELEASE") is None     # not yet: moved an hour on
    core.clock.advance(3600)
    await step(sched)
    assert sched.state.apps["/shop"].definition.env["RELEASE"] == "3"
    with pytest.raises(NotFound):
        sched.pending.cancel(first.id)


async def test_a_new_app_scheduled_then_created_by_someone_else_is_refused(core: Core):
    sched = core.sched
    record = sched.writes.prepare_create(service("/later", 1))
    pending = sched.pending.submit([record], at=CUTOVER_AT)
    sched.writes.create_app(service("/later", 2))
    core.clock._now = BEFORE_CUTOVER + 5
    await step(sched)
    assert sched.state.apps["/later"].definition.instances == 2
    assert "was created" in (sched.state.pending[pending.id].failure or "")


async def test_a_service_port_taken_since_submission_refuses_the_start(core: Core):
    sched = core.sched
    ports = {"portDefinitions": [{"port": 10500}]}
    pending = sched.pending.submit([sched.writes.prepare_create(service("/later", 1, **ports))], at=CUTOVER_AT)
    sched.writes.create_app(service("/other", 1, **ports))
    core.clock._now = BEFORE_CUTOVER + 5
    await step(sched)
    assert "/later" not in sched.state.apps
    assert "service port 10500 of /later is now used by /other" in (sched.state.pending[pending.id].failure or "")


async def test_a_start_interrupted_between_its_two_writes_is_not_refused_after_restart(core: Core):
    """The apps were stored, then the process died before the pending record was replaced."""
    sched = core.sched
    await deployed(sched, service("/shop", 1))
    pending = sched.pending.submit(release(sched, "/shop", "2"), at=CUTOVER_AT)
    from scheduler.state.apps import AppRecord
    sched.state.commit_apps({a: AppRecord.from_json(dict(d)) for a, d in pending.targets.items()})
    await shutdown(sched)
    restarted, _ = build_scheduler(core.db, core.clock, AGENTS, running=core.backend.running)
    await restarted.start()
    core.sched = restarted
    events = EventLog(restarted)
    core.clock._now = BEFORE_CUTOVER + 2
    await step(restarted)
    assert pending.id not in restarted.state.pending
    assert not events.of("deployment_scheduled_refused")
    assert restarted.state.apps["/shop"].version == pending.version


async def test_submitting_validates_now(core: Core):
    sched = core.sched
    with pytest.raises(ValidationFailed):
        sched.writes.prepare_create({"id": "/bad", "cmd": "x", "instances": -1})
    await deployed(sched, service("/shop", 1))
    with pytest.raises(Conflict):
        sched.writes.prepare_create(service("/shop", 1))
    with pytest.raises(ValidationFailed) as past:
        sched.pending.submit(release(sched, "/shop", "2"), at="2026-12-05T10:00:00+08:00")
    assert past.value.to_body()["details"][0]["path"] == "/at"
    assert not sched.state.pending and not sched.store.load().deployments


async def test_only_the_newest_ended_deployments_stay_listed(core: Core, monkeypatch: pytest.MonkeyPatch):
    from scheduler.engine import pending_writes
    monkeypatch.setattr(pending_writes, "MAX_ENDED", 2)
    sched = core.sched
    await deployed(sched, service("/prod/shop", 1))
    ids = []
    for n in range(3):
        held = sched.pending.submit(release(sched, "/prod/shop", str(n)), at=None, author="alice", approval=NEED)
        core.clock.advance(1)
        sched.pending.reject(held.id, "carol", None)
        ids.append(held.id)
    assert sorted(sched.state.pending) == sorted(ids[1:])
    assert len(sched.store.load().deployments) == 2


# -- approval gates -------------------------------------------------------------------------

NEED = ApprovalNeed(paths=("/prod/**",), expiry_seconds=24 * 3600, approvers=("carol",))


async def test_a_held_change_starts_once_another_user_approves_it(core: Core):
    sched = core.sched
    await deployed(sched, service("/prod/shop", 1))
    events = EventLog(sched)
    held = sched.pending.submit(release(sched, "/prod/shop", "2"), at=None, author="alice", approval=NEED)
    assert held.status == "awaiting approval"
    assert events.of("deployment_awaiting_approval")[0]["approval"]["approvers"] == ["carol"]
    core.clock.advance(3600)
    await step(sched)
    assert held.id in sched.state.pending                    # nothing without the approval
    with pytest.raises(Forbidden) as own:
        sched.pending.approve(held.id, "alice", "looks good")
    assert "alice" in own.value.message and "cannot approve" in own.value.message
    approved = sched.pending.approve(held.id, "carol", "ship it")
    assert approved.approval is not None and approved.approval.approved_by == "carol"
    assert events.of("deployment_approved")[0]["comment"] == "ship it"
    await step(sched)
    assert sched.state.apps["/prod/shop"].definition.env["RELEASE"] == "2"
    assert events.of("deployment_scheduled_started")[0]["approvedBy"] == "carol"


async def test_an_approved_scheduled_change_still_waits_for_its_time(core: Core):
    sched = core.sched
    await deployed(sched, service("/prod/shop", 1))
    held = sched.pending.submit(release(sched, "/prod/shop", "2"), at=CUTOVER_AT, author="alice", approval=NEED)
    sched.pending.approve(held.id, "carol", None)
    await step(sched)
    assert sched.state.pending[held.id].status == "scheduled"
    await at_cutover(core)
    core.clock.advance(2)
    await step(sched)
    assert sched.state.apps["/prod/shop"].version == held.version


async def test_rejection_and_expiry_end_a_held_change_with_the_reason(core: Core):
    sched = core.sched
    await deployed(sched, service("/prod/shop", 1))
    events = EventLog(sched)
    rejected = sched.pending.submit(release(sched, "/prod/shop", "2"), at=None, author="alice", approval=NEED)
    sched.pending.reject(rejected.id, "carol", "not during the sale")
    ended = sched.state.pending[rejected.id]
    assert ended.status == "failed" and ended.failure == "rejected by carol: not during the sale"
    assert events.of("deployment_rejected")[0]["reason"] == ended.failure
    with pytest.raises(Conflict):
        sched.pending.approve(rejected.id, "carol", None)
    expiring = sched.pending.submit(release(sched, "/prod/shop", "3"), at=None, author="alice", approval=NEED)
    core.clock.advance(24 * 3600 - 1)
    await step(sched)
    assert sched.state.pending[expiring.id].status == "awaiting approval"
    core.clock.advance(1)
    await step(sched)
    expired = sched.state.pending[expiring.id]
    assert expired.status == "failed" and "approval expired" in (expired.failure or "")
    assert [e["id"] for e in events.of("deployment_approval_expired")] == [expiring.id]
    assert sched.state.apps["/prod/shop"].definition.env.get("RELEASE") is None


# -- pure parts -----------------------------------------------------------------------------

def test_parse_at_wants_an_offset_and_a_future_time():
    now = BEFORE_CUTOVER
    assert parse_at(CUTOVER_AT, now) == (now + 2, CUTOVER_AT)
    assert parse_at("2026-12-05T18:00:00Z", now)[0] == now + 2
    for bad, words in [("2026-12-06T02:00:00", "no UTC offset"), ("tomorrow", "not an ISO 8601"),
                       ("2026-12-05T17:00:00Z", "in the past"), ("", "must be an ISO 8601")]:
        with pytest.raises(ValidationFailed) as exc:
            parse_at(bad, now)
        detail = exc.value.to_body()["details"][0]
        assert detail["path"] == "/at" and words in detail["errors"][0], (bad, detail)


def _pending(at: float | None, based_on: str | None = "v1", approval: Approval | None = None) -> PendingDeployment:
    return PendingDeployment(id="d", version="v2", targets={"/a": {}}, based_on={"/a": based_on}, steps=[],
                             created_at=0.0, scheduled_at=at, approval=approval)


@given(at=st.floats(1.0, 1e9), now=st.floats(0.0, 2e9))
def test_a_cutover_starts_exactly_when_its_time_has_come(at: float, now: float):
    verdict = verdict_for(_pending(at), {"/a": "v1"}, now)
    assert (verdict is not None and verdict.action == "start") == (now >= at)


@given(current=st.sampled_from([None, "v0", "v3"]), now=st.floats(10.0, 1e9))
def test_a_cutover_whose_app_moved_on_is_refused_never_started(current: str | None, now: float):
    verdict = verdict_for(_pending(5.0), {} if current is None else {"/a": current}, now)
    assert verdict is not None and verdict.action == "refuse" and "/a" in verdict.reason


def test_verdicts_for_applied_expired_and_waiting_changes():
    waiting = Approval(paths=("/a",), expires_at=100.0)
    assert verdict_for(_pending(None, approval=waiting), {"/a": "v1"}, 99.0) is None
    expired = verdict_for(_pending(None, approval=waiting), {"/a": "v1"}, 100.0)
    assert expired is not None and expired.action == "expire"
    assert verdict_for(_pending(5.0), {"/a": "v2"}, 6.0).action == "applied"    # type: ignore[union-attr]
    ordered = pending_verdicts([_pending(9.0), _pending(5.0)], {"/a": "v1"}, 10.0)
    assert [v.pending.scheduled_at for v in ordered] == [5.0, 9.0]
