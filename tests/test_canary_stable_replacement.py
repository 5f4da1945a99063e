"""The declared count serves throughout a canary: a stable (old-config) instance that ends during
the canary phase is replaced by an instance of the stable definition, under the usual backoff,
and the HAProxy weights come back to what they were; a canary instance that ends is replaced by
a canary. Blue/green keeps its old set whole until the switch the same way.

Pure half: `stable_replacements` (scheduler/deploy/canary_run.py) and the launches `decide`
returns; whole-core half on the scenario fakes (real SQLite store, fake backend, fake clock).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app_definitions import parse_app_definition
from scheduler.decide.backoff import Backoff
from scheduler.decide.scheduling import decide
from scheduler.deploy.canary_run import CanaryRun, StableVersion, stable_replacements
from scheduler.state.model import FAILED, FINISHED, RUNNING, Instance

from .fakes import EventLog, active, heal_new, ids, no_deployments, pass_checks, run_until, step
from .test_canary_blue_green import start as start_blue_green
from .test_canary_scenarios import Core, app_json, canary_block, core, split, start_canary  # noqa: F401 (fixture)
from .test_decide import NOW, deployment, upgrade, view
from .test_decide import app as decide_app
from .test_decide import inst as decide_inst

V1 = "2026-01-01T00:00:00.000Z"
V2 = "2026-01-02T00:00:00.000Z"


def stable_definition(instances: int = 3, **extra: Any) -> Any:
    return parse_app_definition({"id": "/web", "cmd": "serve", "instances": instances, "version": V1,
                                 "versionInfo": {"lastScalingAt": V1, "lastConfigChangeAt": V1}, **extra})


def inst(n: int, config: str, *, state: str = RUNNING, killing: bool = False) -> Instance:
    return Instance(instance_id=f"web.{n}", app_id="/web", version=config, config_version=config, agent_id="a",
                    host="h", ports=(31000 + n,), service_ports=(), state=state, staged_at=float(n), killing=killing)


# -- pure ---------------------------------------------------------------------------------

@given(declared=st.integers(0, 6), old=st.integers(0, 8), old_gone=st.integers(0, 3), new=st.integers(0, 4))
def test_stable_instances_are_topped_up_to_the_declared_count_and_never_past_it(
        declared: int, old: int, old_gone: int, new: int) -> None:
    insts = ([inst(n, V1) for n in range(old)]
             + [inst(100 + n, V1, state=FINISHED) for n in range(old_gone)]
             + [inst(200 + n, V1, killing=True) for n in range(old_gone)]
             + [inst(300 + n, V2) for n in range(new)])
    version, missing = stable_replacements(stable_definition(declared), insts, V2)
    assert missing == max(0, declared - old)                     # ended and killing ones do not count
    assert (version is None) == (missing == 0)


def test_the_replacement_is_the_stable_version_with_its_own_config_identity() -> None:
    stable = stable_definition(3)
    version, missing = stable_replacements(stable, [inst(0, V1), inst(1, V2)], V2)
    assert missing == 2 and version == StableVersion(stable, V1, V1)
    older = [inst(0, "2025-12-01T00:00:00.000Z"), inst(1, V1)]  # an older stable config still counts as stable
    assert stable_replacements(stable_definition(2), older, V2) == (None, 0)


def test_without_a_stable_version_nothing_is_launched() -> None:
    unstored = parse_app_definition({"id": "/web", "cmd": "serve", "instances": 3})
    assert stable_replacements(unstored, [], V2) == (None, 0)
    assert stable_replacements(None, [], V2) == (None, 0)


CANARY_STRATEGY = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
                   "canary": {"instances": 1, "steps": [{"setWeight": 10}, {"pause": {}}]}}


def test_the_pass_launches_the_stable_version_for_a_dead_stable_instance_and_the_new_one_for_the_canary() -> None:
    v1 = decide_app("/web", instances=3, upgradeStrategy=CANARY_STRATEGY)
    v2 = upgrade(v1, env={"RELEASE": "2"})
    run = replace(deployment([v1], [v2]), canaries=(CanaryRun("/web"),))
    insts = [decide_inst(v2, 1, config=v1), decide_inst(v2, 2, config=v1, agent_n=2)]   # a third stable one died
    p = decide(view([v2], insts, deployments=[run]), NOW)
    stable = [launch for launch in p.launches if launch.stable is not None]
    canary = [launch for launch in p.launches if launch.stable is None]
    assert len(stable) == 1 and len(canary) == 1 and not p.kills
    assert stable[0].stable is not None
    assert (stable[0].stable.version, stable[0].stable.config_version) == (v1.version, v1.config_version)
    assert stable[0].stable.definition == run.plan.original["/web"]
    queued = p.queue["/web"]
    assert queued is not None and queued.count == 2 and queued.message is None

    held = Backoff(delay=8.0, next_launch_at=NOW + 5, last_failure_at=NOW - 3)         # backoff as for any launch
    p = decide(view([v2], insts, deployments=[run], backoffs={"/web": held}), NOW)
    queued = p.queue["/web"]
    assert not p.launches and queued is not None and queued.count == 2
    assert "waiting for backoff" in (queued.message or "")

    whole = insts + [decide_inst(v2, 3, config=v1), decide_inst(v2, 4, agent_n=2)]   # 3 stable, 1 canary
    assert decide(view([v2], whole, deployments=[run]), NOW).launches == ()


# -- whole core ---------------------------------------------------------------------------

def _weights(sched: Any) -> tuple[int, int, int]:
    traffic = app_json(sched)["canaryTraffic"]
    return traffic["percent"], traffic["canaryWeight"], traffic["stableWeight"]


async def test_a_stable_instance_that_dies_mid_canary_is_replaced_by_the_stable_version(core: Core) -> None:
    sched, clock, backend = core.sched, core.clock, core.backend
    stable, run_id = await start_canary(core)
    old, (canary,) = split(sched)
    weights = _weights(sched)
    victim = old[0]
    backend.report(victim.instance_id, FAILED, "segfault")
    await step(sched)
    assert len(split(sched)[0]) == 2                              # backoff holds the replacement
    assert "waiting for backoff" in (sched.state.queue["/web"].message or "")
    assert _weights(sched) != weights                              # 2 stable servers share the rest meanwhile
    clock.advance(5)                                               # past the backoff, inside the 60 s pause
    await step(sched)
    old_now, new_now = split(sched)
    assert len(old_now) == 3 and new_now == [canary]              # the canary was not doubled
    (replacement,) = [i for i in old_now if i.instance_id not in ids(stable)]
    assert (replacement.config_version, replacement.version) == (victim.config_version, victim.version)
    assert replacement.instance_id in backend.launched
    pass_checks(sched, [replacement.instance_id])                  # the stable version's checks judge it
    await step(sched)
    assert sched.view.healthy(replacement) is True
    assert _weights(sched) == weights                              # 3 stable : 1 canary at 10% again
    block = canary_block(sched, run_id)
    assert block["phase"] == "steps" and block["weight"] == 10 and block["step"] == 1

    sched.canary.promote(run_id, "full")                           # the full roll replaces it like any stable one
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    old_end, new_end = split(sched)
    assert old_end == [] and len(new_end) == 3


async def test_a_canary_instance_that_dies_is_replaced_by_a_canary(core: Core) -> None:
    sched, clock, backend = core.sched, core.clock, core.backend
    stable, run_id = await start_canary(core)
    _, (canary,) = split(sched)
    backend.report(canary.instance_id, FAILED, "segfault")
    clock.advance(5)
    await step(sched)
    old, new = split(sched)
    assert ids(old) == ids(stable) and len(new) == 1 and new[0].instance_id != canary.instance_id
    assert new[0].config_version == sched.state.apps["/web"].config_version


async def test_an_abort_after_a_replacement_keeps_the_replacement(core: Core) -> None:
    sched, clock, backend = core.sched, core.clock, core.backend
    stable, run_id = await start_canary(core)
    old, _ = split(sched)
    backend.report(old[1].instance_id, FAILED, "segfault")
    clock.advance(5)
    await step(sched)
    kept = ids(split(sched)[0])
    assert len(kept) == 3
    sched.canary.abort(run_id, "bad release")
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"))
    assert ids(active(sched, "/web")) == kept                      # the stable version is the app's again


async def test_blue_green_keeps_the_old_set_whole_until_the_switch(core: Core) -> None:
    sched, clock, backend = core.sched, core.clock, core.backend
    events = EventLog(sched, "canary_promoted_event")
    stable, run_id = await start_blue_green(core)
    old, new = split(sched)
    assert len(old) == 3 and len(new) == 3
    backend.report(old[0].instance_id, FINISHED, "exited")
    clock.advance(5)
    await step(sched)
    old_now, new_now = split(sched)
    assert len(old_now) == 3 and ids(new_now) == ids(new)
    (replacement,) = [i for i in old_now if i.instance_id not in stable]
    assert replacement.config_version == old[0].config_version
    assert canary_block(sched, run_id)["phase"] == "starting" and not events.of("canary_promoted_event")
    heal_new(sched, "/web")
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, "/web"), max_rounds=20,
                    after_pass=lambda: clock.advance(5))
    assert split(sched)[0] == [] and len(split(sched)[1]) == 3
