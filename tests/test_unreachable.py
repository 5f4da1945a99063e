"""`unreachableStrategy` as tables: when an unreachable instance still counts, is replaced, is
expunged, and what happens when it comes back.

The rules are pure (`decide/unreachable.py`, the status verdict, the pass), so most cases state
the instance, the strategy and the time, and check the answer; the last ones run the engine on
the fake backend and fake clock, where the expunge and the kill of a late comer are carried out.
A fault test against the simulated Mesos master is in `test_mesos_serve.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from app_definitions import UnreachableStrategy, parse_app_definition

from scheduler.decide import unreachable
from scheduler.decide.scheduling import decide
from scheduler.decide.status import judge_status
from scheduler.engine.core import Scheduler
from scheduler.state.model import RUNNING, STAGING, UNREACHABLE, Instance

from .fakes import FakeBackend, FakeClock, active, agent, build_scheduler, deployed, service, shutdown, step
from .test_decide import NOW, app, inst, view

WAIT = UnreachableStrategy(inactive_after_seconds=300, expunge_after_seconds=600)
AT_ONCE = UnreachableStrategy(inactive_after_seconds=0, expunge_after_seconds=0)
NEVER = UnreachableStrategy.disabled()
STRATEGY_JSON = {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}


def lost(record: Any, n: int, seconds_ago: float | None, **fields: Any) -> Instance:
    """Instance `n`, unreachable for `seconds_ago` seconds (None: since an unknown time)."""
    since = None if seconds_ago is None else NOW - seconds_ago
    return inst(record, n, **fields).with_(state=UNREACHABLE, unreachable_since=since)


# -- the rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, seconds_ago, counts, inactive, expunged", [
    (WAIT, 0, True, False, False),
    (WAIT, 299, True, False, False),
    (WAIT, 300, False, True, False),          # inactive: replaced from now on
    (WAIT, 599, False, True, False),
    (WAIT, 600, False, True, True),           # and forgotten
    (AT_ONCE, 0, False, True, True),          # Marathon's default: at once
    (NEVER, 10**6, True, False, False),       # "disabled": never given up
    (WAIT, None, True, False, False),         # since when unknown: counts from now
])
def test_an_unreachable_instance_counts_until_its_strategy_gives_it_up(
        strategy: UnreachableStrategy, seconds_ago: float | None, counts: bool, inactive: bool, expunged: bool):
    web = app("/web", instances=2)
    instance = lost(web, 1, seconds_ago)
    assert unreachable.counts(instance, strategy, NOW) is counts
    assert unreachable.inactive(instance, strategy, NOW) is inactive
    assert unreachable.expunged(instance, strategy, NOW) is expunged


@pytest.mark.parametrize("state, killing, counts", [
    (RUNNING, False, True), (STAGING, False, True), (RUNNING, True, False), (UNREACHABLE, True, False),
    ("TASK_KILLING", False, False),
])
def test_reachable_instances_count_as_before(state: str, killing: bool, counts: bool):
    instance = inst(app("/web"), 1, state=state, killing=killing).with_(unreachable_since=NOW - 1)
    assert unreachable.counts(instance, WAIT, NOW) is counts


# -- status updates ------------------------------------------------------------------------

def _app(**fields: Any) -> Any:
    return parse_app_definition({"id": "/web", "cmd": "serve", "cpus": 0.1, "mem": 16, **fields})


@pytest.mark.parametrize("before, update, seconds_ago, since, returned", [
    (RUNNING, UNREACHABLE, None, NOW, False),                      # becomes unreachable now
    (UNREACHABLE, UNREACHABLE, 100, NOW - 100, False),             # a repeat keeps the first time
    (UNREACHABLE, RUNNING, 100, None, False),                      # back before it was replaced
    (UNREACHABLE, RUNNING, 300, None, True),                       # back after it was replaced
    (UNREACHABLE, "TASK_STARTING", 450, None, True),
    (RUNNING, RUNNING, None, None, False),
])
def test_the_status_verdict_notes_when_an_instance_was_unreachable(before: str, update: str,
                                                                   seconds_ago: float | None, since: float | None,
                                                                   returned: bool):
    definition = _app(unreachableStrategy=STRATEGY_JSON)
    record = app("/web")
    instance = inst(record, 1).with_(state=before,
                                     unreachable_since=None if seconds_ago is None else NOW - seconds_ago)
    verdict = judge_status(instance, update, "", definition, None, NOW)
    assert verdict.instance is not None and verdict.backoff is None and verdict.failure is None
    assert (verdict.instance.state, verdict.instance.unreachable_since, verdict.instance.returned_inactive) == \
        (update, since, returned)


def test_a_disabled_strategy_never_marks_a_returning_instance_replaced():
    instance = inst(app("/web"), 1).with_(state=UNREACHABLE, unreachable_since=NOW - 10**6)
    verdict = judge_status(instance, RUNNING, "", _app(unreachableStrategy="disabled"), None, NOW)
    assert verdict.instance is not None and not verdict.instance.returned_inactive


# -- the pass -------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds_ago, launched, expunged", [
    (10, 0, ()),                 # still counted: nothing in its place
    (300, 1, ()),                # inactive: a replacement
    (599, 1, ()),
    (600, 1, ("web.instance-2._app.1",)),      # expunged, and replaced
])
def test_the_pass_replaces_after_inactive_and_expunges_after_expunge(seconds_ago: float, launched: int,
                                                                    expunged: tuple[str, ...]):
    web = app("/web", instances=2, unreachableStrategy=STRATEGY_JSON)
    p = decide(view([web], [inst(web, 1), lost(web, 2, seconds_ago, agent_n=2)]), NOW)
    assert (len(p.launches), p.expunged, p.kills) == (launched, expunged, ())


def test_with_marathons_default_an_unreachable_instance_is_replaced_and_expunged_in_one_pass():
    web = app("/web", instances=2)                     # unreachableStrategy {0, 0}
    p = decide(view([web], [inst(web, 1), lost(web, 2, 0, agent_n=2)]), NOW)
    assert (len(p.launches), p.expunged) == (1, ("web.instance-2._app.1",))


def test_a_disabled_strategy_keeps_the_instance_and_launches_nothing():
    web = app("/web", instances=2, unreachableStrategy="disabled")
    p = decide(view([web], [inst(web, 1), lost(web, 2, 10**6, agent_n=2)]), NOW)
    assert (p.launches, p.expunged, p.kills) == ((), (), ())


def test_the_instance_that_came_back_after_its_replacement_is_the_one_killed():
    web = app("/web", instances=2, unreachableStrategy=STRATEGY_JSON)    # YOUNGEST_FIRST would pick n=3
    back = inst(web, 1).with_(returned_inactive=True)
    p = decide(view([web], [back, inst(web, 2), inst(web, 3, agent_n=2)]), NOW)
    assert [k.instance_id for k in p.kills] == [back.instance_id] and p.launches == ()


def test_an_instance_back_with_no_surplus_is_kept():
    web = app("/web", instances=2, unreachableStrategy=STRATEGY_JSON)
    back = inst(web, 1).with_(returned_inactive=True)
    p = decide(view([web], [back, inst(web, 2)]), NOW)
    assert (p.kills, p.launches) == ((), ())


def test_scale_down_counts_an_unreachable_instance_that_still_counts():
    web = app("/web", instances=1, unreachableStrategy=STRATEGY_JSON)
    p = decide(view([web], [inst(web, 1), lost(web, 2, 10, agent_n=2)]), NOW)
    assert len(p.kills) == 1 and p.launches == ()


# -- the engine carries it out --------------------------------------------------------------

@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Scheduler, FakeBackend, FakeClock]]:
    clock = FakeClock()
    sched, backend = build_scheduler(tmp_path / "state.db", clock, [agent(1), agent(2)])
    await sched.start()
    yield sched, backend, clock
    await shutdown(sched)


async def _rounds(sched: Scheduler, clock: FakeClock, seconds: float) -> None:
    """Time passes; the loop's full pass runs (it covers apps nothing touched)."""
    clock.advance(seconds)
    sched.loop.run_pass(None)
    sched.state.flush()
    await step(sched)


async def test_the_engine_replaces_then_expunges_and_kills_the_task(engine: tuple[Scheduler, FakeBackend, FakeClock]):
    sched, backend, clock = engine
    old = await deployed(sched, service("/web", 2, unreachableStrategy=STRATEGY_JSON))
    victim = old[0].instance_id
    backend.report(victim, UNREACHABLE, "agent lost")
    assert sched.state.instances[victim].unreachable_since == clock.now()
    await _rounds(sched, clock, 299)
    assert len(sched.state.instances) == 2 and backend.launched == [i.instance_id for i in old]
    await _rounds(sched, clock, 1)
    replacements = [i for i in active(sched, "/web") if i.instance_id not in {o.instance_id for o in old}]
    assert len(replacements) == 1 and victim in sched.state.instances
    await _rounds(sched, clock, 300)
    assert victim not in sched.state.instances and victim in backend.killed        # expunged, its task killed
    assert {i.instance_id for i in active(sched, "/web")} == {old[1].instance_id, replacements[0].instance_id}
    backend.report(victim, RUNNING)                     # a late comer: nobody knows it any more
    await _rounds(sched, clock, 1)
    assert len(active(sched, "/web")) == 2 and victim not in sched.state.instances


async def test_the_engine_kills_the_instance_that_came_back_not_its_replacement(
        engine: tuple[Scheduler, FakeBackend, FakeClock]):
    sched, backend, clock = engine
    old = await deployed(sched, service("/web", 2, unreachableStrategy=STRATEGY_JSON))
    victim = old[1].instance_id                          # the youngest: YOUNGEST_FIRST alone would keep it
    backend.report(victim, UNREACHABLE, "agent lost")
    await _rounds(sched, clock, 300)
    [replacement] = [i for i in active(sched, "/web") if i.instance_id not in {o.instance_id for o in old}]
    backend.running[victim] = old[1]
    backend.report(victim, RUNNING, "agent re-registered")
    assert sched.state.instances[victim].returned_inactive
    await _rounds(sched, clock, 1)
    assert victim in backend.killed and replacement.instance_id not in backend.killed
    assert sched.state.instances.get(victim) is None or sched.state.instances[victim].killing
    assert {i.instance_id for i in active(sched, "/web")} == {old[0].instance_id, replacement.instance_id}
    assert backend.killed == [victim]
