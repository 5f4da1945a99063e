"""Fakes and helpers for in-process scenario tests of the scheduler core.

The core talks to the outside world through three seams: a `Clock`, a `ClusterBackend` and a
`Store`. Scenario tests keep the real `SqliteStore` (crash safety is part of what they check)
and replace the other two: `FakeClock` only moves when a test advances it, and `FakeBackend`
runs nothing, so every launch, kill and task ending happens exactly when the test says so.
Health is played the same way: tests call the checker's `record_verdict` / `record_readiness`
instead of running probes. The result is a scheduler whose every pass can be inspected.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from app_definitions import AppDefinition
from executor import ResourceUsage
from executor.sandbox_files import FileChunk, FileMissing, OpenedFile

from scheduler.backends import DEFAULT_LAUNCH_CONCURRENCY, BackendInfo, Recovery, StatusCallback, StatusUpdate
from scheduler.backends.agents import AgentSpec, compute_offers
from scheduler.decide.placement import AgentOffer
from scheduler.engine.core import Scheduler
from scheduler.engine.events import Subscription
from scheduler.state.model import KILLED, RUNNING, STAGING, TERMINAL_STATES, Instance
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.usage import AgentUsage

T0 = 1_700_000_000.0      # a realistic epoch: versions and failure timestamps render as real dates


class FakeClock:
    """Time that moves only when the test says so; every decision of the core reads it."""

    def __init__(self, start: float = T0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds


def agent(n: int, *, cpus: float = 4.0, mem: float = 4096.0, disk: float = 10_000.0,
          attributes: Mapping[str, str] | None = None) -> AgentSpec:
    """Agent `agent-<n>` with 100 host ports of its own (disjoint from every other agent's)."""
    lo = 31000 + 100 * (n - 1)
    return AgentSpec(agent_id=f"agent-{n}", hostname=f"host-{n}", cpus=cpus, mem=mem, disk=disk,
                     port_range=(lo, lo + 99), attributes=dict(attributes or {}))


@dataclass
class FakeBackend:
    """A `ClusterBackend` that runs nothing and records everything.

    `launch` answers at once (or raises when a failure was queued with `fail_next_launches`);
    `kill` reports TASK_KILLED at once, or keeps the kill in `held_kills` until
    `release_kills` while `hold_kills` is set; `report` plays any task state (a crash, an
    exit). `running` is what the fake "runs": a scheduler started on a new fake built with
    an old fake's `running` finds those tasks alive, as real agents outlive their scheduler.
    """

    agents: Sequence[AgentSpec]
    on_status: StatusCallback
    running: dict[str, Instance] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)     # app id -> why no agent can run it
    hold_kills: bool = False
    launched: list[str] = field(default_factory=list)            # instance ids, in launch order
    killed: list[str] = field(default_factory=list)              # instance ids, in kill order
    held_kills: dict[str, Instance] = field(default_factory=dict)
    strays_killed: list[str] = field(default_factory=list)
    passes_finished: list[tuple[str, ...]] = field(default_factory=list)   # what each pass launched
    info: BackendInfo = field(default_factory=BackendInfo)                  # what /v2/info shows of it
    launch_concurrency: int = DEFAULT_LAUNCH_CONCURRENCY
    _failures: list[str] = field(default_factory=list)
    _next_pid: int = 1000

    # -- ClusterBackend ---------------------------------------------------------------
    def offers(self, usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
        return compute_offers(self.agents, usage)

    def pass_finished(self, launched: Sequence[Instance]) -> None:
        self.passes_finished.append(tuple(i.instance_id for i in launched))

    def unsupported_reason(self, app: AppDefinition) -> str | None:
        return self.unsupported.get(app.id)

    async def launch(self, instance: Instance, app: AppDefinition) -> Instance:
        if self._failures:
            raise RuntimeError(self._failures.pop(0))
        self.launched.append(instance.instance_id)
        self._next_pid += 1
        started = instance.with_(pid=self._next_pid)
        self.running[instance.instance_id] = started
        return started

    async def kill(self, instance: Instance, grace_seconds: float) -> None:
        self.killed.append(instance.instance_id)
        if self.hold_kills:
            self.held_kills[instance.instance_id] = instance
            return
        self.report(instance.instance_id, KILLED)

    async def recover(self, instances: Sequence[Instance]) -> Recovery:
        remembered = {i.instance_id for i in instances}
        strays = [iid for iid in self.running if iid not in remembered]
        for iid in strays:
            del self.running[iid]
        self.strays_killed.extend(strays)
        return Recovery(alive=tuple(i for i in instances if i.instance_id in self.running),
                        lost=tuple(i for i in instances if i.instance_id not in self.running),
                        orphans_killed=len(strays))

    async def usages(self) -> Mapping[str, ResourceUsage]:
        return {}

    def describe(self) -> list[dict[str, object]]:
        return []

    def backend_info(self) -> BackendInfo:
        return self.info

    async def read_task_file(self, instance: Instance, name: str, offset: int, length: int) -> FileChunk | FileMissing:
        return FileMissing("the fake backend keeps no sandboxes")

    async def open_task_file(self, instance: Instance, name: str) -> OpenedFile | FileMissing:
        return FileMissing("the fake backend keeps no sandboxes")

    async def close(self) -> None:
        return None

    # -- test controls ------------------------------------------------------------------
    def fail_next_launches(self, count: int, message: str = "cannot start") -> None:
        """The next `count` launches raise (the core reports them as TASK_FAILED)."""
        self._failures.extend([message] * count)

    def report(self, instance_id: str, state: str, message: str = "", exit_code: int | None = None) -> None:
        """Play a status update from the agent, e.g. a crash (TASK_FAILED) or an exit (TASK_FINISHED)."""
        if state in TERMINAL_STATES:
            self.running.pop(instance_id, None)
        self.on_status(StatusUpdate(instance_id, state, message, exit_code))

    def release_kills(self, ids: Iterable[str] | None = None) -> None:
        """Let held kills end (all of them by default): each reports TASK_KILLED."""
        for iid in list(self.held_kills if ids is None else ids):
            del self.held_kills[iid]
            self.report(iid, KILLED)


def build_scheduler(db: Path, clock: FakeClock, agents: Sequence[AgentSpec], *,
                    running: Mapping[str, Instance] | None = None,
                    drain_seconds: float = 0.0) -> tuple[Scheduler, FakeBackend]:
    """A scheduler on a real SQLite store at `db` and a fresh fake backend (running `running`).
    Kills of HAProxy-routed tasks are not delayed unless `drain_seconds` says so."""
    sched = Scheduler(SqliteStore(db),
                      lambda listener: FakeBackend(agents, listener.on_status, running=dict(running or {})), clock=clock,
                      drain_seconds=drain_seconds)
    backend = sched.backend
    assert isinstance(backend, FakeBackend)
    return sched, backend


async def shutdown(sched: Scheduler) -> None:
    """A clean stop: what `pacer serve` does on SIGTERM, plus closing the store's connection."""
    await sched.close()
    sched.store.close()


@dataclass
class Core:
    """One started scheduler with the fakes a scenario plays the world through. A test that
    restarts the scheduler on the same store (`db`) puts the new one in `sched`/`backend`, so
    the fixture's teardown stops the one that is running at the end."""

    sched: Scheduler
    backend: FakeBackend
    clock: FakeClock
    db: Path


@asynccontextmanager
async def started_core(db: Path, clock: FakeClock, agents: Sequence[AgentSpec]) -> AsyncIterator[Core]:
    """The body of a scenario module's `core` fixture: a started scheduler on a fresh SQLite
    file at `db`, shut down cleanly afterwards (each module picks its own clock and agents)."""
    sched, backend = build_scheduler(db, clock, agents)
    await sched.start()
    core = Core(sched, backend, clock, db)
    try:
        yield core
    finally:
        await shutdown(core.sched)


# -- driving the loop --------------------------------------------------------------------

def _busy(sched: Scheduler, backend: FakeBackend) -> bool:
    """Launches still staging, or kills neither ended nor deliberately held by the test."""
    return any(i.state == STAGING or (i.killing and i.instance_id not in backend.held_kills)
               for i in sched.state.instances.values())


async def settle(sched: Scheduler) -> None:
    """Let the launch and kill tasks a pass spawned run to their end (they never block on a fake)."""
    backend = sched.backend
    assert isinstance(backend, FakeBackend)
    for _ in range(100):
        await asyncio.sleep(0)
        if not _busy(sched, backend):
            return
    raise AssertionError("launches or kills still in flight after 100 yields")


async def step(sched: Scheduler) -> None:
    """One scheduling round (pass plus store flush), then let what it started finish."""
    sched.loop.round()
    await settle(sched)


def pass_checks(sched: Scheduler, instance_ids: Iterable[str], *, ok: bool = True, cause: str | None = None) -> None:
    """Play every health check of each instance's version answering `ok`."""
    for iid in instance_ids:
        inst = sched.state.instances.get(iid)
        if inst is None:
            continue
        for index in range(len(sched.state.health_checks_of(inst))):
            sched.health.record_verdict(iid, index, ok=ok, cause=cause)


def unjudged(sched: Scheduler, app_id: str, *, config: str | None = None) -> list[str]:
    """Running, not killing, instances of the app (optionally of one config) with no verdict yet."""
    return [i.instance_id for i in sched.state.instances_of(app_id)
            if i.state == RUNNING and not i.killing and i.instance_id not in sched.health.records
            and (config is None or i.config_version == config)]


def make_ready(sched: Scheduler, instance_ids: Iterable[str]) -> None:
    """Play each instance's readiness check answering 200."""
    for iid in instance_ids:
        inst = sched.state.instances[iid]
        sched.health.record_readiness(inst, {"name": "readinessCheck", "taskId": iid, "ready": True,
                                             "lastResponse": None})


async def run_until(sched: Scheduler, done: Callable[[], bool], *, heal: Callable[[], None] | None = None,
                    after_pass: Callable[[], None] | None = None, max_rounds: int = 40) -> int:
    """Rounds until `done()`: `heal` plays the probes after each round, `after_pass` checks invariants
    right after the pass (before any launch ended) and again once everything settled."""
    for n in range(1, max_rounds + 1):
        sched.loop.round()
        if after_pass is not None:
            after_pass()
        await settle(sched)
        if heal is not None:
            heal()
        if after_pass is not None:
            after_pass()
        if done():
            return n
    raise AssertionError(f"not done after {max_rounds} rounds: deployments {list(sched.state.deployments)}")


def no_deployments(sched: Scheduler) -> Callable[[], bool]:
    """`done` for `run_until`: every deployment finished (or failed)."""
    return lambda: not sched.state.deployments


# -- apps and their instances -------------------------------------------------------------

CHECK: dict[str, Any] = {"protocol": "HTTP", "path": "/health", "gracePeriodSeconds": 0, "intervalSeconds": 5,
                         "maxConsecutiveFailures": 3}


def service(app_id: str, instances: int, **extra: Any) -> dict[str, Any]:
    """A small app definition: half a cpu, so three 4-cpu agents hold any scenario with room to spare."""
    return {"id": app_id, "cmd": "serve", "instances": instances, "cpus": 0.5, "mem": 64, **extra}


def heal_new(sched: Scheduler, app_id: str) -> None:
    """The probes of every running instance of the app's current config answer 200."""
    config = sched.state.apps[app_id].config_version
    pass_checks(sched, unjudged(sched, app_id, config=config))


async def deployed(sched: Scheduler, definition: dict[str, Any]) -> list[Instance]:
    """Create the app and run until its deployment finished with every instance healthy."""
    app_id = definition["id"]
    sched.writes.create_app(definition)
    await run_until(sched, no_deployments(sched), heal=lambda: heal_new(sched, app_id))
    return active(sched, app_id)


def active(sched: Scheduler, app_id: str) -> list[Instance]:
    """The app's instances that count toward `instances` (not killing, not ended), oldest first."""
    return sorted((i for i in sched.state.instances_of(app_id) if i.active), key=lambda i: i.staged_at)


def ids(instances: Iterable[Instance]) -> set[str]:
    return {i.instance_id for i in instances}


def serving(sched: Scheduler, app_id: str) -> int:
    """Healthy old instances plus healthy-and-ready new ones: what a load balancer may route to."""
    record = sched.state.apps[app_id]
    gated = bool(record.definition.readiness_checks)
    count = 0
    for inst in active(sched, app_id):
        new = inst.config_version == record.config_version
        ready = not (new and gated) or bool((sched.view.readiness(inst.instance_id) or {}).get("ready"))
        count += inst.state == RUNNING and sched.view.healthy(inst) is True and ready
    return count


# -- events ------------------------------------------------------------------------------

class EventLog:
    """Everything published to one subscription, parsed; subscribe before acting."""

    def __init__(self, sched: Scheduler, *types: str) -> None:
        self._sub: Subscription = sched.events.subscribe(types or None, "test")
        self.events: list[dict[str, Any]] = []

    def take(self) -> list[dict[str, Any]]:
        while not self._sub.queue.empty():
            event = self._sub.queue.get_nowait()
            assert event is not None, "the bus dropped this subscriber"
            self.events.append(json.loads(event.data))
        return self.events

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.take() if e["eventType"] == event_type]


# -- restart bounds, computed independently of the core -----------------------------------

def _exact(x: float) -> Fraction:
    return Fraction(str(x))


def min_healthy(instances: int, minimum_health_capacity: float) -> int:
    """ceil(n × minimumHealthCapacity) on the decimal the user wrote."""
    return math.ceil(instances * _exact(minimum_health_capacity))


def max_active(instances: int, minimum_health_capacity: float, maximum_over_capacity: float) -> int:
    """floor(n × (1 + maximumOverCapacity)), plus Marathon's one instance of over-capacity when
    that equals minHealthy (otherwise a {1, 0} restart could never start)."""
    cap = math.floor(instances * (1 + _exact(maximum_over_capacity)))
    return cap + 1 if cap == min_healthy(instances, minimum_health_capacity) else cap
