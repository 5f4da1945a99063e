"""Scenarios on a whole scheduler core: real SQLite store, fake backend, fake clock.

Each scenario drives `sched.loop.round()` by hand and plays the outside world in between
(launches ending, tasks crashing, probes answering, time passing), so every pass can be
checked: the upgrade strategy's bounds after each one, what was launched and killed, the
events a client of /v2/events would have seen. Crash recovery lives in
`test_scenario_crash.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scheduler.errors import NotFound
from scheduler.state.model import FAILED, KILLED, RUNNING, Instance

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
    make_ready,
    max_active,
    min_healthy,
    no_deployments,
    pass_checks,
    run_until,
    serving,
    service,
    settle,
    shutdown,
    started_core,
    step,
)

AGENTS = [agent(1), agent(2), agent(3)]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with started_core(tmp_path / "state.db", FakeClock(), AGENTS) as started:
        yield started


def killed_ids(events: EventLog) -> set[str]:
    """Tasks a /v2/events client saw end as TASK_KILLED."""
    return {e["taskId"] for e in events.of("status_update_event") if e["taskStatus"] == KILLED}


# -- rolling restart under upgradeStrategy -------------------------------------------------

@pytest.mark.parametrize("mhc, moc", [(0.5, 0.5), (0.5, 0.25), (1.0, 0.0), (0.0, 0.0), (1.0, 1.0)])
async def test_rolling_restart_stays_within_the_upgrade_strategy(core: Core, mhc: float, moc: float):
    sched, n = core.sched, 4
    strategy = {"minimumHealthCapacity": mhc, "maximumOverCapacity": moc}
    old = await deployed(sched, service("/web", n, healthChecks=[CHECK], upgradeStrategy=strategy))
    assert serving(sched, "/web") == n
    events = EventLog(sched)
    (record,), run, _ = sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    floor, ceiling = min_healthy(n, mhc), max_active(n, mhc, moc)
    seen: list[tuple[int, int]] = []

    def within_bounds() -> None:
        now_active, now_serving = len(active(sched, "/web")), serving(sched, "/web")
        seen.append((now_active, now_serving))
        assert now_active <= ceiling, seen
        assert now_serving >= floor, seen

    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"), after_pass=within_bounds)
    final = active(sched, "/web")
    assert len(final) == n and not ids(final) & ids(old)
    assert all(i.config_version == record.config_version and i.version == record.version for i in final)
    assert set(sched.state.instances) == ids(final)            # every old instance is gone, not just killing
    assert killed_ids(events) == ids(old) and set(core.backend.killed) == ids(old)
    assert [e["plan"]["id"] for e in events.of("deployment_step_success")] == [run.id]
    assert [e["id"] for e in events.of("deployment_success")] == [run.id]
    started = {e["taskId"] for e in events.of("status_update_event") if e["taskStatus"] == RUNNING}
    assert started == ids(final)
    if mhc == 1.0:
        assert min(s for _, s in seen) == n                    # never a moment below full capacity


async def test_readiness_gates_the_restart(core: Core):
    sched, backend = core.sched, core.backend
    port = {"portDefinitions": [{"port": 0, "name": "http-api"}]}
    (old,) = await deployed(sched, service("/gated", 1, healthChecks=[CHECK], **port))
    update = {"readinessChecks": [{"path": "/ready", "portName": "http-api", "intervalSeconds": 2,
                                   "timeoutSeconds": 1}]}
    (record,), run, _ = sched.writes.update_apps([("/gated", update)])
    for _ in range(3):
        await step(sched)
        heal_new(sched, "/gated")
    new = [i for i in active(sched, "/gated") if i.config_version == record.config_version]
    assert len(new) == 1 and sched.view.healthy(new[0]) is True
    assert old.instance_id in ids(active(sched, "/gated")) and backend.killed == []   # healthy, not ready
    assert run.id in sched.state.deployments

    make_ready(sched, [new[0].instance_id])
    await step(sched)
    assert backend.killed == [old.instance_id]
    await run_until(sched, no_deployments(sched))
    assert ids(active(sched, "/gated")) == {new[0].instance_id}


# -- progress deadline and automatic rollback -----------------------------------------------

async def test_a_stalled_restart_is_rolled_back_at_the_progress_deadline(core: Core):
    sched, backend, clock = core.sched, core.backend, core.clock
    old = await deployed(sched, service("/web", 2, healthChecks=[CHECK]))
    v1 = sched.state.apps["/web"]
    events = EventLog(sched, "deployment_failed", "deployment_step_failure", "deployment_info",
                      "deployment_success")
    broken_check = {**CHECK, "path": "/v2-health", "maxConsecutiveFailures": 0}
    (v2,), run, _ = sched.writes.update_apps([("/web", {
        "env": {"RELEASE": "2"}, "healthChecks": [broken_check],
        "upgradeStrategy": {"progressDeadlineSeconds": 60, "autoRollback": True}})])

    def fail_new_checks() -> None:
        pass_checks(sched, [i.instance_id for i in active(sched, "/web") if i.config_version == v2.config_version],
                    ok=False, cause="HTTP 500 on /v2-health")

    for _ in range(3):
        await step(sched)
        fail_new_checks()
    new = [i for i in active(sched, "/web") if i.config_version == v2.config_version]
    assert len(new) == 2 and ids(old) <= ids(active(sched, "/web"))
    clock.advance(30)
    await step(sched)
    assert run.id in sched.state.deployments and not events.of("deployment_failed")
    launched_before_rollback = list(backend.launched)

    clock.advance(31)                                  # 61 s without progress
    sched.loop.round()
    (failed,) = events.of("deployment_failed")
    assert failed["id"] == run.id
    assert failed["reason"] == "no progress for 60 s; /web: never healthy: HTTP 500 on /v2-health"
    assert [e["plan"]["id"] for e in events.of("deployment_step_failure")] == [run.id]
    rollbacks = [e for e in events.of("deployment_info") if e["plan"]["id"] != run.id]
    assert len(rollbacks) == 1 and set(sched.state.deployments) == {rollbacks[0]["plan"]["id"]}
    current = sched.state.apps["/web"]
    assert current.config_version == v1.config_version and current.version > v2.version
    assert current.definition.health_checks == v1.definition.health_checks and current.definition.env == {}

    await settle(sched)
    await run_until(sched, no_deployments(sched))
    assert [e["id"] for e in events.of("deployment_success")] == [rollbacks[0]["plan"]["id"]]
    assert ids(active(sched, "/web")) == ids(old)              # the old instances were kept, not restarted
    assert backend.launched == launched_before_rollback
    assert set(backend.killed) == ids(new)


# -- backoff ------------------------------------------------------------------------------

async def crash(core: Core, app_id: str, message: str = "exited with status 1") -> None:
    (inst,) = active(core.sched, app_id)
    core.backend.report(inst.instance_id, FAILED, message, exit_code=1)


async def relaunch_after(core: Core, app_id: str, delay: float) -> None:
    """The launch is held, with its reason in the queue, exactly until the delay has passed."""
    sched, launched = core.sched, len(core.backend.launched)
    await step(sched)
    assert sched.state.queue[app_id].message == f"waiting for backoff: {delay:.1f} s left"
    core.clock.advance(delay - 1)
    await step(sched)
    assert sched.state.queue[app_id].message == "waiting for backoff: 1.0 s left"
    assert len(core.backend.launched) == launched and not active(sched, app_id)
    core.clock.advance(1)
    await step(sched)
    assert len(core.backend.launched) == launched + 1 and len(active(sched, app_id)) == 1
    await step(sched)                                  # the pass after the launch finds nothing waiting
    assert app_id not in sched.state.queue and len(core.backend.launched) == launched + 1


async def test_backoff_grows_to_its_cap_and_resets(core: Core):
    sched = core.sched
    await deployed(sched, service("/crashy", 1, backoffSeconds=10, backoffFactor=2, maxLaunchDelaySeconds=35))
    events = EventLog(sched, "status_update_event")
    for delay in (10, 20, 35, 35):
        await crash(core, "/crashy")
        assert sched.state.backoffs["/crashy"].delay == delay
        await relaunch_after(core, "/crashy", delay)
    failures = [e for e in events.of("status_update_event") if e["taskStatus"] == FAILED]
    assert len(failures) == 4 and sched.state.last_failures["/crashy"]["message"] == "exited with status 1"

    # a new config starts over: its first launch is not held, and its first failure waits backoffSeconds
    await crash(core, "/crashy")
    sched.writes.update_apps([("/crashy", {"env": {"FIX": "1"}})])
    assert "/crashy" not in sched.state.backoffs
    core.backend.fail_next_launches(1, "no such executable")
    await step(sched)
    assert sched.state.backoffs["/crashy"].delay == 10
    assert sched.state.last_failures["/crashy"]["message"] == "launch failed: no such executable"
    await relaunch_after(core, "/crashy", 10)
    await run_until(sched, no_deployments(sched))

    # DELETE /v2/queue/{id}/delay: the held launch goes out at once and the next delay starts over
    await crash(core, "/crashy")
    await step(sched)
    assert sched.state.backoffs["/crashy"].delay == 20 and "/crashy" in sched.state.queue
    sched.writes.reset_delay("/crashy")
    launched = len(core.backend.launched)
    await step(sched)
    assert len(core.backend.launched) == launched + 1 and len(active(sched, "/crashy")) == 1
    await crash(core, "/crashy")
    assert sched.state.backoffs["/crashy"].delay == 10


async def test_reset_delay_of_an_app_not_waiting_is_not_found(core: Core):
    await deployed(core.sched, service("/calm", 1))
    with pytest.raises(NotFound):
        core.sched.writes.reset_delay("/calm")


# -- scaling down ---------------------------------------------------------------------------

async def grown(core: Core, app_id: str, sizes: list[int]) -> list[Instance]:
    """Scale the app up one size at a time, ten seconds apart, so its instances differ in age."""
    for size in sizes:
        core.clock.advance(10)
        core.sched.writes.update_apps([(app_id, {"instances": size})])
        await run_until(core.sched, no_deployments(core.sched))
    return active(core.sched, app_id)


@pytest.mark.parametrize("selection, survivor", [("YOUNGEST_FIRST", 0), ("OLDEST_FIRST", 2)])
async def test_scale_down_follows_the_kill_selection(core: Core, selection: str, survivor: int):
    sched = core.sched
    await deployed(sched, service("/pool", 1, killSelection=selection))
    by_age = await grown(core, "/pool", [2, 3])
    assert len({i.staged_at for i in by_age}) == 3
    events = EventLog(sched, "status_update_event", "deployment_success")
    core.backend.hold_kills = True                     # the victims take their grace period to stop
    (_, run, _) = sched.writes.update_apps([("/pool", {"instances": 1})])
    for _ in range(3):
        await step(sched)
    assert run.id in sched.state.deployments           # not done while they still run
    assert sorted(core.backend.held_kills) == sorted(core.backend.killed)     # each asked once
    assert len(core.backend.killed) == 2 and len(core.backend.launched) == 3
    core.backend.release_kills()
    await run_until(sched, no_deployments(sched))
    assert ids(active(sched, "/pool")) == {by_age[survivor].instance_id}
    assert killed_ids(events) == ids(by_age) - {by_age[survivor].instance_id}
    assert [e["id"] for e in events.of("deployment_success")] == [run.id]


async def test_kill_with_scale_lowers_instances_and_kills_exactly_that_one(core: Core):
    sched, backend = core.sched, core.backend
    three = await deployed(sched, service("/pool", 3))
    victim = three[1]
    launched = len(backend.launched)
    killed, run = sched.writes.kill_instances([victim.instance_id], scale=True, wipe=False)
    assert [i.instance_id for i in killed] == [victim.instance_id] and run is not None
    assert sched.state.apps["/pool"].definition.instances == 2
    await run_until(sched, no_deployments(sched))
    for _ in range(2):                                 # later passes do not replace it either
        await step(sched)
    assert ids(active(sched, "/pool")) == ids(three) - {victim.instance_id}
    assert backend.killed == [victim.instance_id] and len(backend.launched) == launched


async def test_kill_without_scale_is_replaced(core: Core):
    sched, backend = core.sched, core.backend
    three = await deployed(sched, service("/pool", 3))
    launched = len(backend.launched)
    _, run = sched.writes.kill_instances([three[0].instance_id], scale=False, wipe=False)
    assert run is None
    await step(sched)
    now = active(sched, "/pool")
    assert len(now) == 3 and three[0].instance_id not in ids(now) and ids(three[1:]) <= ids(now)
    assert backend.killed == [three[0].instance_id] and len(backend.launched) == launched + 1
    assert sched.state.apps["/pool"].definition.instances == 3
    assert "/pool" not in sched.state.backoffs          # a kill asked for is no failure


async def test_each_pass_tells_the_backend_what_it_launched(core: Core):
    """A backend holding pushed offers (Mesos) declines what a pass left unused: it must hear,
    once per pass, exactly which instances the pass placed."""
    sched, backend = core.sched, core.backend
    await deployed(sched, service("/told", 2))
    placed = [set(p) for p in backend.passes_finished if p]
    assert placed == [set(backend.launched)]
    before = len(backend.passes_finished)
    await step(sched)
    assert len(backend.passes_finished) == before + 1 and backend.passes_finished[-1] == ()


async def test_a_routed_task_leaves_the_load_balancer_before_it_is_signalled(tmp_path: Path):
    """TASK_KILLING goes out at once (the bridge drains the server on it); the backend's kill
    follows only after the drain, for apps with HAPROXY_* labels, on scale-down and delete."""
    clock = FakeClock()
    sched, backend = build_scheduler(tmp_path / "state.db", clock, AGENTS, drain_seconds=0.3)
    await sched.start()
    try:
        events = EventLog(sched)
        routed = await deployed(sched, service("/routed", 2, labels={"HAPROXY_0_VHOST": "r.test"},
                                               portDefinitions=[{"port": 0}]))
        plain = await deployed(sched, service("/plain", 1, portDefinitions=[{"port": 0}]))
        sched.writes.update_apps([("/routed", {"instances": 1})])
        sched.writes.delete_app("/plain")
        sched.loop.round()                                      # not `step`: a drain is in flight
        for _ in range(10):
            await asyncio.sleep(0)
        killing = {e["taskId"] for e in events.of("status_update_event") if e["taskStatus"] == "TASK_KILLING"}
        assert set(ids(plain)) <= killing and len(killing & set(ids(routed))) == 1
        assert set(backend.killed) == set(ids(plain))          # the unrouted task went at once
        victim = (killing & set(ids(routed))).pop()
        for _ in range(100):                                   # the drain is real time: 0.3 s
            if victim in backend.killed:
                break
            await asyncio.sleep(0.05)
        assert victim in backend.killed
        await step(sched)
        assert sched.state.instances.get(victim) is None
    finally:
        await shutdown(sched)


async def test_a_deployment_that_moves_to_its_next_step_asks_for_the_next_round_at_once(core: Core):
    """A new app's Start step completes in one pass and its Scale step must start right away:
    waiting for the loop's tick would add a second to every deployment step."""
    sched = core.sched
    sched.writes.create_app(service("/prompt", 1))
    sched.loop.round()                                 # the Start step (held at 0) completes
    assert sched.state.deployments and sched.loop.wake_pending
    await settle(sched)
