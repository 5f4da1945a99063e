"""A scheduler killed in the middle of a rolling restart, and the one that takes over.

The first core is simply dropped, as `kill -9` would: no `close()`, no last flush, so the store
holds exactly what was committed (app writes and deployment steps at once, instance changes at
the end of each round). The second core opens the same SQLite file with a fake backend that
still runs every task the first one started, as agents outlive their scheduler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scheduler.engine.core import Scheduler
from scheduler.state.model import RUNNING

from .fakes import (
    CHECK,
    EventLog,
    FakeBackend,
    FakeClock,
    active,
    agent,
    build_scheduler,
    deployed,
    heal_new,
    ids,
    max_active,
    min_healthy,
    no_deployments,
    pass_checks,
    run_until,
    service,
    shutdown,
    step,
)

AGENTS = [agent(1), agent(2), agent(3)]
WEB_STRATEGY = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}


@pytest.fixture
async def cores() -> AsyncIterator[list[Scheduler]]:
    """Every core a test builds; the dead ones too get their store connection closed at the end."""
    built: list[Scheduler] = []
    yield built
    for sched in built:
        await shutdown(sched)


async def take_over(db: Path, clock: FakeClock, dead: FakeBackend,
                    cores: list[Scheduler]) -> tuple[Scheduler, FakeBackend, EventLog]:
    """A new core on the dead one's store, its backend still running the dead one's tasks."""
    clock.advance(5)                                   # the supervisor restarts the process
    sched, backend = build_scheduler(db, clock, AGENTS, running=dead.running)
    cores.append(sched)
    events = EventLog(sched)
    await sched.start()
    return sched, backend, events


async def test_a_crash_mid_restart_resumes_the_same_deployment(tmp_path: Path, cores: list[Scheduler]):
    db, clock = tmp_path / "state.db", FakeClock()
    first, first_backend = build_scheduler(db, clock, AGENTS)
    cores.append(first)
    await first.start()
    await deployed(first, service("/db", 2, healthChecks=[CHECK]))
    old_web = await deployed(first, service("/web", 4, healthChecks=[CHECK], dependencies=["/db"],
                                            upgradeStrategy=WEB_STRATEGY))
    (db_v2, web_v2), run, _ = first.writes.update_apps([("/db", {"env": {"RELEASE": "2"}}),
                                                        ("/web", {"env": {"RELEASE": "2"}})])
    assert [[a.app_id for a in s.actions] for s in run.plan.steps] == [["/db"], ["/web"]]

    def web_half_rolled() -> bool:
        rolled = [i for i in active(first, "/web") if i.config_version == web_v2.config_version]
        return first.state.deployments[run.id].step_index == 1 and len(rolled) == 2

    await run_until(first, web_half_rolled, heal=lambda: heal_new(first, "/db"))   # new /web never healthy
    first.writes.create_app(service("/late", 1))          # acknowledged: committed before the answer
    acknowledged = {app_id: record.version for app_id, record in first.state.apps.items()}
    running = dict(first_backend.running)
    assert len(running) == 2 + 2 + 2                       # new /db, two old and two new /web

    second, backend, events = await take_over(db, clock, first_backend, cores)
    resumed = second.state.deployments[run.id]
    assert resumed.step_index == 1 and resumed.plan.affected_app_ids == ("/db", "/web")
    assert {app_id: record.version for app_id, record in second.state.apps.items()} == acknowledged
    assert set(second.state.instances) == set(running)    # every task re-adopted under its own id
    assert all(i.state == RUNNING and not i.killing for i in second.state.instances.values())
    assert backend.strays_killed == []

    pass_checks(second, second.state.instances)           # the new core's probes answer
    floor, ceiling = min_healthy(4, 0.5), max_active(4, 0.5, 0.0)

    def web_within_bounds() -> None:
        assert len(active(second, "/web")) <= ceiling
        assert sum(second.view.healthy(i) is True for i in active(second, "/web")) >= floor

    def heal() -> None:
        for app_id in ("/db", "/web", "/late"):
            heal_new(second, app_id)

    await run_until(second, no_deployments(second), heal=heal, after_pass=web_within_bounds)
    assert not set(backend.launched) & set(running)       # nothing launched twice
    every_launch = first_backend.launched + backend.launched
    assert len(set(every_launch)) == len(every_launch)
    assert len([i for i in backend.launched if i.startswith("web.")]) == 2
    assert set(backend.killed) == ids(old_web) & set(running)
    web, db_instances = active(second, "/web"), active(second, "/db")
    assert len(web) == 4 and all(i.config_version == web_v2.config_version for i in web)
    assert len(db_instances) == 2 and all(i.config_version == db_v2.config_version for i in db_instances)
    assert ids(db_instances) <= set(running)              # /db had finished its step: kept as it was
    assert len(active(second, "/late")) == 1
    assert run.id in {e["id"] for e in events.of("deployment_success")}
    assert not events.of("deployment_failed")


async def test_a_restart_of_the_scheduler_restarts_the_progress_deadline(tmp_path: Path,
                                                                         cores: list[Scheduler]):
    db, clock = tmp_path / "state.db", FakeClock()
    first, first_backend = build_scheduler(db, clock, AGENTS)
    cores.append(first)
    await first.start()
    await deployed(first, service("/web", 2, healthChecks=[CHECK]))
    _, run, _ = first.writes.update_apps([("/web", {
        "env": {"RELEASE": "2"},
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.5,
                            "progressDeadlineSeconds": 60}})])
    await step(first)                                      # one new instance (room for one more)
    clock.advance(50)
    heal_new(first, "/web")
    await step(first)                                      # progress at +50 s: one old killed, one more new
    assert first.state.deployments[run.id].last_progress_at == clock.now()

    clock.advance(15)                                      # + 5 s in take_over: 20 s since the progress
    second, _, events = await take_over(db, clock, first_backend, cores)
    second.loop.round()                                    # the loop's first pass, before any probe answered
    assert not events.of("deployment_failed")
    assert run.id in second.state.deployments
