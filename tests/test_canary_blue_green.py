"""Blue/green releases on a whole scheduler core (real SQLite store, fake backend, fake clock).

`"canary": {"blueGreen": true}` starts the app's `instances` of the new version beside the old
set, gives it no traffic until the whole set is healthy and the steps run, then switches every
request to it in one step (weights new 1, old 0) and kills the old set; an abort before the
switch kills the new set instead.
"""

from __future__ import annotations

from typing import Any

from .fakes import (
    CHECK,
    EventLog,
    active,
    build_scheduler,
    deployed,
    heal_new,
    ids,
    no_deployments,
    pass_checks,
    run_until,
    service,
    shutdown,
    step,
)
from .test_canary_scenarios import AGENTS, Core, app_json, canary_block, core, split  # noqa: F401 (fixture)


def blue_green_app(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    canary = {"blueGreen": True, "steps": [{"pause": {"seconds": 30}}] if steps is None else steps, **extra}
    strategy = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1, "canary": canary}
    return service("/web", 3, healthChecks=[CHECK], upgradeStrategy=strategy)


async def start(core: Core, steps: list[dict[str, Any]] | None = None) -> tuple[set[str], str]:
    """/web v1 on 3 healthy instances, then a change: the new set is launched, not yet healthy."""
    sched = core.sched
    stable = ids(await deployed(sched, blue_green_app(steps)))
    (_, run, _) = sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    for _ in range(3):
        await step(sched)
    return stable, run.id


async def test_the_new_set_gets_no_traffic_until_the_switch_then_all_of_it_and_the_old_set_goes(core: Core) -> None:
    sched, clock = core.sched, core.clock
    events = EventLog(sched, "canary_promoted_event", "deployment_success")
    stable, run_id = await start(core)
    old, new = split(sched)
    assert ids(old) == stable and len(new) == 3                  # a full second set beside the old one
    pass_checks(sched, [new[0].instance_id, new[1].instance_id])
    await step(sched)
    assert canary_block(sched, run_id)["phase"] == "starting"    # two of three healthy: no switch
    traffic = app_json(sched)["canaryTraffic"]
    assert (traffic["percent"], traffic["canaryWeight"], traffic["stableWeight"]) == (0, 0, 1)
    heal_new(sched, "/web")
    await step(sched)
    block = canary_block(sched, run_id)
    assert block["phase"] == "steps" and block["blueGreen"] is True and block["switched"] is False
    clock.advance(29)
    await step(sched)
    assert app_json(sched)["canaryTraffic"]["percent"] == 0
    assert all(not i.killing for i in split(sched)[0]) and len(split(sched)[0]) == 3   # nothing old killed yet

    clock.advance(2)
    await step(sched)
    (promoted,) = events.of("canary_promoted_event")
    assert promoted["id"] == run_id and promoted["blueGreen"] is True and promoted["weight"] == 100
    traffic = app_json(sched)["canaryTraffic"]
    assert (traffic["percent"], traffic["canaryWeight"], traffic["stableWeight"]) == (100, 1, 0)
    assert sorted(traffic["canaryTasks"]) == sorted(ids(new))
    assert canary_block(sched, run_id)["switched"] is True
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    old, now = split(sched)
    assert old == [] and ids(now) == ids(new)                    # the switched set is the app: nothing relaunched
    assert stable <= set(core.backend.killed)
    assert "canaryTraffic" not in app_json(sched)                 # weights cleared once the old set is gone
    assert [e["id"] for e in events.of("deployment_success")][-1] == run_id


async def test_an_abort_before_the_switch_kills_the_new_set_and_keeps_the_old(core: Core) -> None:
    sched = core.sched
    events = EventLog(sched, "canary_aborted_event", "deployment_failed")
    stable, run_id = await start(core)
    heal_new(sched, "/web")
    await step(sched)
    _, new = split(sched)
    sched.canary.abort(run_id, "the new checkout looks wrong")
    assert [e["reason"] for e in events.of("canary_aborted_event")] == ["the new checkout looks wrong"]
    assert [e["id"] for e in events.of("deployment_failed")] == [run_id]
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert ids(active(sched, "/web")) == stable
    assert ids(new) <= set(core.backend.killed)
    assert "RELEASE" not in sched.state.apps["/web"].json.get("env", {})
    assert "canaryTraffic" not in app_json(sched)


async def test_a_measured_share_then_a_switch_by_request_resumes_after_a_restart(core: Core) -> None:
    """A setWeight step sends a share to the whole new set (to measure it); a restarted
    scheduler keeps the full set and the step; a promote switches."""
    sched, clock = core.sched, core.clock
    stable, run_id = await start(core, [{"setWeight": 20}, {"pause": {}}])
    heal_new(sched, "/web")
    await step(sched)
    traffic = app_json(sched)["canaryTraffic"]
    assert traffic["percent"] == 20 and len(traffic["canaryTasks"]) == 3 and abs(traffic["canaryShare"] - 20) <= 1
    running = dict(core.backend.running)
    await shutdown(sched)
    core.sched, core.backend = build_scheduler(core.db, clock, AGENTS, running=running)
    sched = core.sched
    await sched.start()
    for _ in range(3):
        await step(sched)
        heal_new(sched, "/web")
    old, new = split(sched)
    assert ids(old) == stable and len(new) == 3 and canary_block(sched, run_id)["waitingForPromotion"] is True
    sched.canary.promote(run_id, "next")
    assert app_json(sched)["canaryTraffic"]["percent"] == 100
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert split(sched)[0] == [] and ids(active(sched, "/web")) == ids(new)
