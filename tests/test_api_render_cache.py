"""The API's render cache answers what a fresh render answers, before and after every change.

A whole scheduler core (real SQLite store, fake backend and clock, tests/fakes.py) is taken
through the changes an app's JSON shows: launches, health verdicts, a deployment, a kill, a
task failure, a new definition. After each, the cached bytes must parse to exactly what
`render_app` / `render_task` build from scratch, and they must be the same bytes as before
whenever nothing changed (the cache is used, not bypassed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scheduler.api.render import render_app, render_task
from scheduler.api.render_cache import RenderCache
from scheduler.engine.core import Scheduler
from scheduler.state.model import FAILED

from .fakes import CHECK, FakeBackend, FakeClock, agent, build_scheduler, pass_checks, service, shutdown, step

EMBEDS = [set(), {"tasks"}, {"lastTaskFailure"}, {"tasks", "lastTaskFailure"}]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[tuple[Scheduler, FakeBackend, FakeClock]]:
    clock = FakeClock()
    sched, backend = build_scheduler(tmp_path / "state.db", clock, [agent(1), agent(2)])
    await sched.start()
    yield sched, backend, clock
    await shutdown(sched)


def assert_fresh(sched: Scheduler, cache: RenderCache) -> dict[str, bytes]:
    """Every app (each embed) and every task from the cache equals a render from scratch."""
    seen = {}
    for record in sched.view.apps.values():
        for embed in EMBEDS:
            data = cache.app(record, embed)
            assert json.loads(data) == render_app(sched, record, embed), (record.app_id, embed)
            seen[f"{record.app_id} {sorted(embed)}"] = data
    insts = sorted(sched.view.instances.values(), key=lambda i: i.instance_id)
    assert json.loads(cache.tasks(insts)) == [render_task(i, sched) for i in insts]
    listing = cache.apps(sorted(sched.view.apps.values(), key=lambda r: r.app_id), {"tasks"})
    assert json.loads(listing) == [render_app(sched, r, {"tasks"})
                                   for r in sorted(sched.view.apps.values(), key=lambda r: r.app_id)]
    return seen


async def test_cached_json_follows_every_change(core):
    sched, backend, clock = core
    cache = RenderCache(sched)
    sched.writes.create_app(service("/web", 2, healthChecks=[CHECK], labels={"team": "ä"}))
    sched.writes.create_app(service("/db", 1))
    first = assert_fresh(sched, cache)                 # waiting: a deployment, no task yet
    for _ in range(3):
        clock.advance(1.0)
        await step(sched)
    assert len(sched.state.instances) == 3
    launched = assert_fresh(sched, cache)
    assert launched != first
    assert assert_fresh(sched, cache) == launched       # nothing changed: the very same bytes

    web = [i.instance_id for i in sched.state.instances_of("/web")]
    clock.advance(1.0)
    pass_checks(sched, web)                             # health records replaced
    healthy = assert_fresh(sched, cache)
    assert healthy["/web ['tasks']"] != launched["/web ['tasks']"]
    assert healthy["/db ['tasks']"] == launched["/db ['tasks']"]

    clock.advance(1.0)
    await step(sched)                                   # the deployments finish
    assert not sched.state.deployments
    assert_fresh(sched, cache)

    (db,) = sched.state.instances_of("/db")
    backend.report(db.instance_id, FAILED, "boom", exit_code=3)     # a failure: lastTaskFailure
    assert_fresh(sched, cache)
    clock.advance(1.0)
    await step(sched)                                   # replaced
    assert_fresh(sched, cache)

    sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])   # a new record and a deployment
    assert_fresh(sched, cache)
    clock.advance(1.0)
    await step(sched)
    assert_fresh(sched, cache)
    sched.writes.delete_app("/db")
    clock.advance(1.0)
    await step(sched)
    assert_fresh(sched, cache)
