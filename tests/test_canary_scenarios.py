"""Canary deployments on a whole scheduler core: real SQLite store, fake backend, fake clock.

A change to an app with `upgradeStrategy.canary` starts the canary instances beside the stable
ones, walks the steps with the clock (weights shown on the app as `canaryTraffic`), and then
either rolls the rest (promoted) or restores the stable version (aborted). A scheduler started
again on the same store resumes the canary at its step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.api.render import render_app
from scheduler.engine.core import Scheduler
from scheduler.errors import Conflict
from scheduler.state.model import Instance

from .fakes import (
    CHECK,
    Core,
    EventLog,
    FakeClock,
    active,
    agent,
    build_scheduler,
    deployed,
    heal_new,
    ids,
    no_deployments,
    pass_checks,
    run_until,
    service,
    shutdown,
    started_core,
    step,
)

AGENTS = [agent(1), agent(2), agent(3)]
STEPS = [{"setWeight": 10}, {"pause": {"seconds": 60}}, {"setWeight": 50}, {"pause": {}}]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with started_core(tmp_path / "state.db", FakeClock(), AGENTS) as started:
        yield started


def canary_app(steps: list[dict[str, Any]] = STEPS, **extra: Any) -> dict[str, Any]:
    strategy = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
                "canary": {"instances": 1, "steps": steps, **extra}}
    return service("/web", 3, healthChecks=[CHECK], upgradeStrategy=strategy)


def split(sched: Scheduler) -> tuple[list[Instance], list[Instance]]:
    """(stable, canary) active instances of /web."""
    config = sched.state.apps["/web"].config_version
    insts = active(sched, "/web")
    return [i for i in insts if i.config_version != config], [i for i in insts if i.config_version == config]


def canary_block(sched: Scheduler, run_id: str) -> dict[str, Any]:
    return sched.state.deployments[run_id].to_json()["canary"]


class _Api:
    def __init__(self, sched: Scheduler) -> None:
        self.view, self.writes, self.pending, self.canary, self.events = (
            sched.view, sched.writes, sched.pending, sched.canary, sched.events)
        self.telemetry = sched.telemetry


def app_json(sched: Scheduler) -> dict[str, Any]:
    return render_app(_Api(sched), sched.state.apps["/web"], {"tasks"})


async def start_canary(core: Core) -> tuple[list[Instance], str]:
    """/web v1 with 3 healthy instances, then a change that starts its canary; the steps have begun."""
    sched = core.sched
    stable = await deployed(sched, canary_app())
    (_, run, _) = sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    for _ in range(4):
        await step(sched)
        heal_new(sched, "/web")
    await step(sched)
    return stable, run.id


async def test_a_canary_runs_beside_the_stable_instances_and_walks_its_steps(core: Core) -> None:
    sched, clock = core.sched, core.clock
    events = EventLog(sched, "canary_step_event", "canary_promoted_event", "deployment_success")
    stable, run_id = await start_canary(core)
    old, new = split(sched)
    assert ids(old) == ids(stable) and len(new) == 1            # stable count unchanged, one canary beside
    block = canary_block(sched, run_id)
    assert block["phase"] == "steps" and block["weight"] == 10 and block["step"] == 1
    traffic = app_json(sched)["canaryTraffic"]
    assert traffic["percent"] == 10 and traffic["canaryTasks"] == [new[0].instance_id]
    assert abs(traffic["canaryShare"] - 10) <= 1
    assert [e["weight"] for e in events.of("canary_step_event")] == [10]

    for _ in range(3):                                           # the pause holds: nothing else moves
        clock.advance(19)
        await step(sched)
    assert canary_block(sched, run_id)["weight"] == 10 and split(sched)[0] == old
    clock.advance(3)
    await step(sched)
    block = canary_block(sched, run_id)
    assert block["weight"] == 50 and block["waitingForPromotion"] is True
    assert app_json(sched)["canaryTraffic"]["percent"] == 50
    clock.advance(3600)                                           # a manual pause waits for a person
    await step(sched)
    assert canary_block(sched, run_id)["waitingForPromotion"] is True and run_id in sched.state.deployments

    sched.canary.promote(run_id, "next")
    assert [e["id"] for e in events.of("canary_promoted_event")] == [run_id]
    assert "canaryTraffic" not in app_json(sched)                # weights cleared for the full roll
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    old, new = split(sched)
    assert old == [] and len(new) == 3 and not ids(new) & ids(stable)
    assert [e["id"] for e in events.of("deployment_success")][-1] == run_id


async def test_promote_full_skips_every_remaining_step(core: Core) -> None:
    sched = core.sched
    stable, run_id = await start_canary(core)
    run = sched.canary.promote(run_id, "full")
    assert run.to_json()["canary"]["phase"] == "promoted"
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert split(sched)[0] == [] and not ids(active(sched, "/web")) & ids(stable)


async def test_abort_kills_the_canary_and_puts_the_stable_version_back(core: Core) -> None:
    sched = core.sched
    events = EventLog(sched, "canary_aborted_event", "deployment_failed")
    v1 = sched.state.apps.get("/web")
    stable, run_id = await start_canary(core)
    _, (canary,) = split(sched)
    sched.canary.abort(run_id, "the checkout page looks wrong")
    assert run_id not in sched.state.deployments
    failed = events.of("deployment_failed")
    assert [e["id"] for e in failed] == [run_id] and "the checkout page looks wrong" in failed[0]["reason"]
    assert [e["reason"] for e in events.of("canary_aborted_event")] == ["the checkout page looks wrong"]
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    record = sched.state.apps["/web"]
    assert "RELEASE" not in record.json.get("env", {})          # the stable definition, as a new version
    assert v1 is None or record.version != v1.version
    assert ids(active(sched, "/web")) == ids(stable)             # the stable instances were kept
    assert canary.instance_id in core.backend.killed
    assert "canaryTraffic" not in app_json(sched)


async def test_a_canary_waits_for_its_instances_to_be_healthy_before_any_step(core: Core) -> None:
    sched = core.sched
    await deployed(sched, canary_app())
    (_, run, _) = sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    for _ in range(3):
        await step(sched)                                        # launched, but no check passed
    assert canary_block(sched, run.id)["phase"] == "starting"
    assert app_json(sched)["canaryTraffic"]["canaryWeight"] == 0  # no traffic before the steps give some
    with pytest.raises(Conflict, match="not all healthy"):
        sched.canary.promote(run.id, "next")
    _, (canary,) = split(sched)
    pass_checks(sched, [canary.instance_id])
    await step(sched)
    assert canary_block(sched, run.id)["weight"] == 10


async def test_without_hAProxy_stats_the_analysis_pauses_and_the_deadline_aborts(core: Core) -> None:
    sched, clock = core.sched, core.clock
    steps = [{"setWeight": 20}, {"pause": {"seconds": 30}}]
    analysis = {"intervalSeconds": 10, "minRequests": 5, "maxErrorRate": 0.05}
    definition = canary_app(steps, analysis=analysis)
    definition["upgradeStrategy"]["progressDeadlineSeconds"] = 120
    events = EventLog(sched, "canary_analysis_event", "canary_aborted_event")
    stable = await deployed(sched, definition)
    (_, run, _) = sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    for _ in range(4):
        await step(sched)
        heal_new(sched, "/web")
    for _ in range(8):
        clock.advance(10)
        await step(sched)
        heal_new(sched, "/web")
    block = canary_block(sched, run.id)
    assert block["weight"] == 20 and block["lastAnalysis"]["verdict"] == "inconclusive"   # 80 s: held, not passed
    verdicts = events.of("canary_analysis_event")
    assert verdicts and all(e["analysis"]["verdict"] == "inconclusive" for e in verdicts)
    for _ in range(6):
        clock.advance(10)
        await step(sched)
    assert run.id not in sched.state.deployments
    assert "no conclusive analysis" in events.of("canary_aborted_event")[0]["reason"]
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert ids(active(sched, "/web")) == ids(stable)


async def test_a_restarted_scheduler_resumes_the_canary_at_its_step(core: Core) -> None:
    sched, clock = core.sched, core.clock
    stable, run_id = await start_canary(core)
    clock.advance(61)
    await step(sched)
    assert canary_block(sched, run_id)["weight"] == 50
    running = dict(core.backend.running)
    await shutdown(sched)

    core.sched, core.backend = build_scheduler(core.db, clock, AGENTS, running=running)
    sched = core.sched
    await sched.start()
    block = canary_block(sched, run_id)
    assert block["weight"] == 50 and block["waitingForPromotion"] is True and block["step"] == 3
    for _ in range(3):
        await step(sched)
        heal_new(sched, "/web")
    old, new = split(sched)
    assert ids(old) == ids(stable) and len(new) == 1              # nothing relaunched, nothing rolled
    assert app_json(sched)["canaryTraffic"]["percent"] == 50
    sched.canary.promote(run_id, "next")
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert split(sched)[0] == [] and len(active(sched, "/web")) == 3


async def test_delete_keeps_marathons_meaning_for_a_canary(core: Core) -> None:
    sched = core.sched
    stable, run_id = await start_canary(core)
    rollback = sched.writes.cancel_deployment(run_id, force=False)
    assert rollback is not None and rollback.canary is None       # the rollback is not itself a canary
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert ids(active(sched, "/web")) == ids(stable)


async def test_a_plain_deployment_shows_no_canary_and_cannot_be_promoted(core: Core) -> None:
    sched = core.sched
    await deployed(sched, service("/plain", 2, healthChecks=[CHECK]))
    (_, run, _) = sched.writes.update_apps([("/plain", {"env": {"RELEASE": "2"}})])
    assert "canary" not in sched.state.deployments[run.id].to_json()
    with pytest.raises(Conflict, match="not a canary deployment"):
        sched.canary.promote(run.id, "full")
    with pytest.raises(Conflict, match="not a canary deployment"):
        sched.canary.abort(run.id)
