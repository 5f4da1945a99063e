"""The Mesos backend against the simulated master, in one event loop: faults, one test each.

The tests play the scheduling loop's part by hand (hold offers, place, `pass_finished`,
`launch`), so each fault can be injected exactly between two steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app_definitions import parse_app_definition
from scheduler.backends import StatusUpdate
from scheduler.backends.mesos import FRAMEWORK_ID_KEY, FrameworkIds, MesosBackend, MesosConfig
from scheduler.backends.mesos_connection import Backoff
from scheduler.backends.mesos_errors import LaunchAborted
from scheduler.state.model import Instance, new_instance_id

from .mesos_sim import AgentSpec, Cluster, SimulatedMaster, text_attribute
from .mesos_sim.agents import SimTask, status_json
from .support import eventually

pytestmark = pytest.mark.timeout(60)

APP = parse_app_definition({"id": "/web", "cmd": "sleep 1000", "cpus": 0.5, "mem": 64,
                            "version": "2024-01-01T00:00:00.000Z", "taskKillGracePeriodSeconds": 7})


@dataclass
class Listener:
    updates: list[StatusUpdate] = field(default_factory=list)
    woken: int = 0

    def on_status(self, update: StatusUpdate) -> None:
        self.updates.append(update)

    def on_offers(self) -> None:
        self.woken += 1

    def states(self, task_id: str) -> list[str]:
        return [u.state for u in self.updates if u.instance_id == task_id]


class Meta:
    """The store's meta table, as `ClusterState` offers it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def meta(self, key: str) -> str | None:
        return self.values.get(key)

    def put_meta(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass
class Env:
    cluster: Cluster
    masters: list[SimulatedMaster]
    meta: Meta
    backends: list[MesosBackend] = field(default_factory=list)

    @property
    def master(self) -> SimulatedMaster:
        return next(m for m in self.masters if m.elected)

    def calls(self, kind: str) -> list[dict[str, Any]]:
        return [c for m in self.masters for c in m.calls if c["type"] == kind]

    def backend(self, listener: Listener, **config: Any) -> MesosBackend:
        options: dict[str, Any] = dict(masters=(self.masters[0].url,), user="nobody", heartbeat_misses=3,
                                       subscribe_timeout=5, reconcile_timeout=2,
                                       backoff=Backoff(first=0.05, cap=0.2))
        options.update(config)
        backend = MesosBackend(MesosConfig(**options), listener, FrameworkIds(self.meta))
        self.backends.append(backend)
        return backend


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    cluster = Cluster()
    for i in range(2):
        cluster.add_agent(AgentSpec(f"agent-{i + 1}", cpus=2, mem=1024, ports=((31000, 31009),),
                                    attributes=(text_attribute("rack", f"r{i + 1}"),)))
    masters = [await SimulatedMaster(cluster, f"master-{i + 1}", heartbeat_interval=0.2,
                                     allocation_interval=0.05).start(elected=i == 0) for i in range(2)]
    masters[1].leader = masters[0]
    environment = Env(cluster, masters, Meta())
    yield environment
    for backend in environment.backends:
        await backend.close()
    for master in masters:
        await master.stop()
    assert [r for m in masters for r in m.rejections] == []     # nothing Pacer sent broke the protos


async def place(backend: MesosBackend, count: int = 1, agent: str | None = None) -> list[Instance]:
    """One scheduling pass that places `count` instances of APP on the first offered agent."""
    offers = await eventually(lambda: [o for o in backend.offers({}) if o.cpus >= 0.5 * count
                                       and (agent is None or o.agent.agent_id == agent)], what="an offer")
    offer = offers[0]
    assert backend.unsupported_reason(APP) is None
    ports = list(range(offer.free_ports[0][0], offer.free_ports[0][0] + count))
    instances = [Instance(new_instance_id(APP.id), APP.id, "v1", "v1", offer.agent.agent_id, offer.agent.hostname,
                          (port,), ()) for port in ports]
    backend.pass_finished(instances)
    return instances


async def launched(env: Env, backend: MesosBackend, count: int = 1) -> list[Instance]:
    instances = await place(backend, count)
    await asyncio.gather(*(backend.launch(i, APP) for i in instances))
    return instances


def sim_task(env: Env, task_id: str) -> SimTask:
    return env.cluster.task(task_id)


async def test_one_accept_launches_a_pass_on_one_agent_and_is_acknowledged(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    instances = await launched(env, backend, 3)
    accepts = env.calls("ACCEPT")
    assert len(accepts) == 1
    infos = accepts[0]["accept"]["operations"][0]["launch"]["task_infos"]
    assert sorted(i["task_id"]["value"] for i in infos) == sorted(i.instance_id for i in instances)
    assert all(r["allocation_info"] == {"role": "*"} for i in infos for r in i["resources"])
    assert {sim_task(env, i.instance_id).state for i in instances} == {"TASK_RUNNING"}
    await eventually(lambda: not env.cluster.unacknowledged(), what="every update acknowledged")
    assert listener.updates == []     # RUNNING is what `launch` returning says, not an update


async def test_stream_dropped_resubscribes_with_the_same_framework_id(env: Env) -> None:
    backend = env.backend(Listener())
    await backend.recover([])
    [inst] = await launched(env, backend)
    framework_id = env.meta.values[FRAMEWORK_ID_KEY]
    env.master.drop_stream(framework_id)
    await eventually(lambda: len(env.calls("SUBSCRIBE")) == 2, what="a second SUBSCRIBE")
    second = env.calls("SUBSCRIBE")[1]
    assert second["framework_id"] == {"value": framework_id}
    assert second["subscribe"]["framework_info"]["id"] == {"value": framework_id}
    reconcile = await eventually(lambda: [c for c in env.calls("RECONCILE") if c["reconcile"].get("tasks")],
                                 what="an explicit reconciliation")
    assert reconcile[-1]["reconcile"]["tasks"] == [{"task_id": {"value": inst.instance_id},
                                                    "agent_id": {"value": inst.agent_id}}]
    await launched(env, backend)       # the new subscription launches
    assert sim_task(env, inst.instance_id).state == "TASK_RUNNING"


async def test_missed_heartbeats_end_the_subscription(env: Env) -> None:
    backend = env.backend(Listener())
    await backend.recover([])
    env.master.heartbeats_paused = True
    await eventually(lambda: len(env.calls("SUBSCRIBE")) >= 2, timeout=5, what="a SUBSCRIBE after the silence")
    framework_id = env.meta.values[FRAMEWORK_ID_KEY]
    assert env.calls("SUBSCRIBE")[1]["framework_id"] == {"value": framework_id}
    env.master.heartbeats_paused = False
    await launched(env, backend)


async def test_offer_rescinded_before_accept_waits_for_the_next_offer(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener, batch_window=5.0)
    await backend.recover([])
    [inst] = await place(backend)
    [offer] = env.master.allocator.offers_on(inst.agent_id)
    env.master.rescind(offer.offer_id)
    await eventually(lambda: backend.book.of_agent(inst.agent_id), what="the agent's next offer")
    await backend.launch(inst, APP)
    accepted = [o["value"] for c in env.calls("ACCEPT") for o in c["accept"]["offer_ids"]]
    assert offer.offer_id not in accepted and len(accepted) == 1
    assert sim_task(env, inst.instance_id).state == "TASK_RUNNING"
    assert listener.updates == []      # no TASK_DROPPED: the dead offer was never used


async def test_duplicate_and_reordered_status_updates_are_harmless(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    [inst] = await launched(env, backend)
    task = sim_task(env, inst.instance_id)
    await eventually(lambda: not env.cluster.unacknowledged(), what="acknowledgements")
    starting = dict(task_status(task, "TASK_STARTING"))
    running = dict(task_status(task, "TASK_RUNNING"))
    framework_id = task.framework_id
    env.master.send_update(framework_id, running)        # a retried delivery
    env.master.send_update(framework_id, starting)       # an old one, late
    env.master.send_update(framework_id, running)
    acks = len(env.calls("ACKNOWLEDGE"))
    await eventually(lambda: len(env.calls("ACKNOWLEDGE")) >= acks + 3, what="each one acknowledged")
    assert listener.updates == []      # none moved the task: nothing reached the scheduler
    env.cluster.finish(inst.instance_id)
    await eventually(lambda: listener.states(inst.instance_id) == ["TASK_FINISHED"], what="the real end")
    env.master.send_update(framework_id, running)        # RUNNING after the end
    await asyncio.sleep(0.2)
    assert listener.states(inst.instance_id) == ["TASK_FINISHED"]


def task_status(task: SimTask, state: str) -> dict[str, Any]:
    return status_json(task, state, source="SOURCE_EXECUTOR")


async def test_master_failover_follows_the_redirect_and_keeps_the_tasks(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    [inst] = await launched(env, backend)
    framework_id = env.meta.values[FRAMEWORK_ID_KEY]
    old, new = env.masters
    old.demote(new)
    new.elect()
    await eventually(lambda: framework_id in new.frameworks and new.frameworks[framework_id].connection,
                     what="the framework on the new leader")
    assert [c["framework_id"] for c in new.calls if c["type"] == "SUBSCRIBE"] == [{"value": framework_id}]
    assert backend.master == new.url
    await eventually(lambda: [c for c in new.calls if c["type"] == "RECONCILE" and c["reconcile"].get("tasks")],
                     what="reconciliation on the new leader")
    [second] = await launched(env, backend)
    assert second.agent_id in env.cluster.agents
    assert listener.states(inst.instance_id) == []
    assert sim_task(env, inst.instance_id).state == "TASK_RUNNING"


async def test_restart_reconciles_remembered_tasks_and_kills_strays(env: Env) -> None:
    first = env.backend(Listener())
    await first.recover([])
    kept, ended, stray = await launched(env, first, 3)
    await first.close()                          # the scheduler dies; its tasks do not
    env.cluster.finish(ended.instance_id)        # one ends while nobody listens
    listener = Listener()
    second = env.backend(listener)
    recovery = await second.recover([kept.with_(state="TASK_RUNNING"), ended.with_(state="TASK_RUNNING")])
    assert env.calls("SUBSCRIBE")[-1]["framework_id"] == {"value": env.meta.values[FRAMEWORK_ID_KEY]}
    assert [i.instance_id for i in recovery.alive] == [kept.instance_id]
    assert [i.instance_id for i in recovery.lost] == [ended.instance_id]
    await eventually(lambda: sim_task(env, stray.instance_id).state == "TASK_KILLED", what="the stray killed")
    assert sim_task(env, kept.instance_id).state == "TASK_RUNNING"


async def test_suppress_when_nothing_waits_and_revive_when_something_new_does(env: Env) -> None:
    backend = env.backend(Listener())
    await backend.recover([])
    await eventually(lambda: backend.offers({}), what="offers")
    backend.pass_finished([])                    # a pass with nothing to place
    await eventually(lambda: [c["type"] for c in env.master.calls][-2:] == ["DECLINE", "SUPPRESS"],
                     what="DECLINE, then SUPPRESS")
    assert backend.offers({}) == []
    backend.unsupported_reason(APP)              # a pass about to place APP
    backend.pass_finished([])
    await eventually(lambda: env.master.calls[-1]["type"] == "REVIVE", what="REVIVE")
    await eventually(lambda: backend.offers({}), what="offers after REVIVE")


async def test_kill_sends_the_grace_period_and_reports_the_end_once(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    [inst] = await launched(env, backend)
    await backend.kill(inst, 7.0)
    [kill] = await eventually(lambda: env.calls("KILL"), what="the KILL")
    assert kill["kill"]["kill_policy"] == {"grace_period": {"nanoseconds": 7_000_000_000}}
    await eventually(lambda: listener.states(inst.instance_id) == ["TASK_KILLED"], what="TASK_KILLED")
    assert sim_task(env, inst.instance_id).statuses[-2:] == ["TASK_KILLING", "TASK_KILLED"]


async def test_a_task_failing_during_launch_aborts_the_launch(env: Env) -> None:
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    env.master.launch_hook = lambda task: (env.cluster.report(task, "TASK_FAILED", "Command exited with status 2"),
                                           True)[1]
    [inst] = await place(backend)
    with pytest.raises(LaunchAborted):
        await backend.launch(inst, APP)
    [update] = listener.updates
    assert (update.state, update.exit_code) == ("TASK_FAILED", 2)


async def test_removed_framework_subscribes_anew(env: Env) -> None:
    env.meta.values[FRAMEWORK_ID_KEY] = "gone-0001"
    env.master.completed.add("gone-0001")
    backend = env.backend(Listener())
    await backend.recover([])
    assert env.meta.values[FRAMEWORK_ID_KEY] not in ("", "gone-0001")
    assert "framework_id" not in env.calls("SUBSCRIBE")[-1]
    assert env.master.refusals == [(200, "Framework has been removed")]


async def test_a_task_killed_while_its_agent_was_unreachable_is_killed_again_when_it_comes_back(env: Env) -> None:
    """What an expunge does: the KILL of a task on a lost agent reaches nobody (the master answers
    TASK_UNREACHABLE); when the agent comes back with the task RUNNING, the backend kills it."""
    listener = Listener()
    backend = env.backend(listener)
    await backend.recover([])
    [inst] = await launched(env, backend)
    env.master.lose_agent(inst.agent_id)
    await eventually(lambda: listener.states(inst.instance_id) == ["TASK_UNREACHABLE"], what="TASK_UNREACHABLE")
    await backend.kill(inst, 7.0)
    await eventually(lambda: len(env.calls("KILL")) == 1, what="the KILL")
    await asyncio.sleep(0.2)
    assert sim_task(env, inst.instance_id).state == "TASK_UNREACHABLE"      # nobody got it
    env.master.agent_back(inst.agent_id)
    await eventually(lambda: sim_task(env, inst.instance_id).state == "TASK_KILLED", what="killed on its return")
    assert len(env.calls("KILL")) == 2
    await eventually(lambda: listener.states(inst.instance_id)[-1] == "TASK_KILLED", what="the end reported")


async def test_a_scheduler_not_surely_leading_holds_no_framework_connection(env: Env) -> None:
    """`--zk`: while this instance may not act (a follower, or a leader whose lease ran out),
    it sends no SUBSCRIBE: one with the framework id would take the framework from the leader."""
    leading = False
    backend = env.backend(Listener(), **{"backoff": Backoff(first=0.05, cap=0.05)})
    backend._may_act = lambda: leading            # as build.py passes the election's `may_act`
    backend.start()
    await asyncio.sleep(1.0)
    assert env.calls("SUBSCRIBE") == []
    leading = True
    await eventually(lambda: env.calls("SUBSCRIBE"), what="a SUBSCRIBE once leading")
