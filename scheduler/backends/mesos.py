"""The Mesos backend: Pacer as a framework on an Apache Mesos cluster (the v1 scheduler HTTP API).

Mesos runs the agents and isolates the tasks; Pacer decides. The master pushes offers; the
backend holds them and returns them from `offers` (one `AgentOffer` per agent), the pure
placement chooses, `pass_finished` hands each used agent's offers to one ACCEPT and declines the
rest for `refuse_seconds`, and `launch` returns once the master reports the task TASK_RUNNING
(the scheduler marks an instance running when `launch` returns, as with the embedded agents).

Offers are only wanted while something waits: the backend SUPPRESSes when a pass finds nothing
to launch and REVIVEs when something new waits. It learns what waits from `unsupported_reason`,
which a pass asks for exactly the apps it is about to place (see `scheduler/decide/scheduling.py`);
an explicit hint from the engine (the apps a pass wants to place) would not depend on that detail.

Status updates become the scheduler's through `BackendListener.on_status` (duplicates and
regressions filtered out), and are acknowledged when they carry a uuid. After every
(re-)subscription, every task the backend knows is reconciled explicitly, and all the
framework's tasks implicitly: a task nobody remembers (a launch that outlived a crash of
`pacer serve`) is killed.

The framework id the master assigns is kept in the scheduler's store (`FrameworkIds`), so a
restarted `pacer serve` subscribes as the same framework and finds its tasks running.

A task whose agent stops answering is TASK_UNREACHABLE; the scheduler decides under the app's
`unreachableStrategy` when to replace and when to forget it. A KILL for it reaches nobody (the
master answers with the task's state), so a task killed meanwhile is killed again when it
reports from its returning agent.

At scale (ten thousand agents, a hundred thousand tasks) the backend keeps its offers indexed
by agent, sends a pass's ACCEPTs side by side (a KILL waits for its task's ACCEPT), builds each
ACCEPT's TaskInfos only when it is sent, and makes its calls on a pipelined connection
(`mesos_http`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from functools import partial
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app_definitions import AppDefinition
from executor import ResourceUsage
from executor.sandbox_files import FileChunk, FileMissing, OpenedFile

from scheduler.backends import BackendInfo, BackendListener, Recovery, StatusUpdate
from scheduler.backends.mesos_client import MesosClient
from scheduler.backends.mesos_config import FRAMEWORK_ID_KEY, FrameworkIds, MesosConfig, MetaStore
from scheduler.backends.mesos_connection import FrameworkConnection, LazyCall
from scheduler.backends.mesos_errors import LaunchAborted
from scheduler.backends.mesos_launches import RUNNING, Attempt, Launcher
from scheduler.backends.mesos_offers import HeldOffer, OfferBook
from scheduler.backends.mesos_tasks import (
    MESOS_CHECKS,
    acknowledge_call,
    kill_policy,
    status_update,
    supersedes,
    unsupported,
)
from scheduler.decide.placement import AgentOffer
from scheduler.state.model import RUNNING as TASK_RUNNING
from scheduler.state.model import TERMINAL_STATES, UNREACHABLE, Instance
from scheduler.state.usage import AgentUsage

log = logging.getLogger(__name__)

CAPABILITIES = ("MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE")
ENDED_MEMORY = 10_000
Json = dict[str, Any]


@dataclass
class Track:
    """A task this backend launched or recovered, until it ends."""

    agent_id: str
    state: str | None
    attempt: Attempt | None = None


class MesosBackend:
    def __init__(self, config: MesosConfig, listener: BackendListener, framework_ids: FrameworkIds | None = None,
                 *, client: MesosClient | None = None, may_act: Callable[[], bool] = lambda: True) -> None:
        self.config = config
        self._may_act = may_act
        self.launch_concurrency = config.launch_concurrency
        self._listener = listener
        self._ids = framework_ids or FrameworkIds()
        self._client = client or MesosClient(config.masters, auth=config.auth)
        self.connection: FrameworkConnection | None = None
        self.master: str | None = None
        self.book = OfferBook()
        self._tracks: dict[str, Track] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._launcher = Launcher(self, config.batch_window, config.offer_wait)
        self._kills: dict[str, float] = {}
        self._demand: set[tuple[str, str]] = set()
        self._last_demand: set[tuple[str, str]] = set()
        self.suppressed = False
        self._subscribed = asyncio.Event()
        self._answers: dict[str, str] | None = None     # reconciliation answers while recovering
        self._unreachable_since: dict[str, float] = {}   # … and since when a task is unreachable
        self._awaiting: set[str] = set()
        self._answered = asyncio.Event()
        self.strays_killed = 0
        self._periodic: asyncio.Task[None] | None = None

    # -- the subscription ---------------------------------------------------------------------
    def start(self) -> None:
        if self.connection is not None:
            return
        self.connection = FrameworkConnection(self._client, self._subscribe_call, self,
                                              framework_id=self._ids.load(),
                                              heartbeat_misses=self.config.heartbeat_misses,
                                              backoff=self.config.backoff, discovery=self.config.discovery(),
                                              parallel_lanes=self.config.parallel_lanes,
                                              may_subscribe=self._may_act)
        self.connection.start()
        self._periodic = asyncio.get_running_loop().create_task(self._reconcile_forever(), name="mesos-reconcile")

    def _subscribe_call(self, framework_id: str | None) -> Json:
        cfg = self.config
        info: Json = {"user": cfg.user, "name": cfg.framework_name, "roles": [cfg.role],
                      "failover_timeout": cfg.failover_timeout, "checkpoint": True,
                      "capabilities": [{"type": c} for c in CAPABILITIES]}
        info.update({k: v for k, v in (("webui_url", cfg.webui_url), ("principal", cfg.principal)) if v})
        call: Json = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if framework_id:
            info["id"] = {"value": framework_id}
            call["framework_id"] = {"value": framework_id}
        return call

    def on_subscribed(self, framework_id: str, master: str) -> None:
        self._ids.save(framework_id)
        self.master = master
        self.suppressed = False
        self._last_demand = set()
        self._reconcile()
        for task_id, grace in self._kills.items():
            track = self._tracks.get(task_id)
            if track is not None:
                self._send_kill(task_id, track.agent_id, grace)
        self._subscribed.set()
        self._listener.on_offers()   # a pass now will REVIVE if anything waits

    def on_disconnected(self, reason: str) -> None:
        self._subscribed.clear()
        self.book.take_all()          # offers die with their subscription
        self._launcher.abandon_all()

    def on_refused(self, message: str) -> None:
        if "removed" in message and self.connection is not None:
            log.error("the Mesos master says framework %s has been removed (%s): its tasks are gone; subscribing "
                      "as a new framework", self.connection.framework_id, message)
            self.connection.framework_id = None
            self._ids.save(None)

    def on_event(self, event: Json) -> None:
        kind = event.get("type")
        if kind == "OFFERS":
            agents = [self.book.add(offer).agent.agent_id for offer in event.get("offers", {}).get("offers", [])]
            self._launcher.serve_waits(agents)
            self._listener.on_offers()
        elif kind == "RESCIND":
            offer_id = event["rescind"]["offer_id"]["value"]
            if self.book.remove(offer_id) is None:
                self._launcher.rescinded(offer_id)
        elif kind == "UPDATE":
            self._on_update(event["update"]["status"])
        elif kind == "FAILURE" and "executor_id" not in event.get("failure", {}):
            agent = event.get("failure", {}).get("agent_id", {}).get("value")
            if agent:
                log.warning("Mesos agent %s was removed", agent)
                self.book.forget_agent(agent)

    def _call(self, call: Json | LazyCall) -> None:
        if self.connection is not None and self.connection.live:
            self.connection.send(call)

    def _reconcile(self) -> None:
        """Ask for every task the master should know (not launches whose ACCEPT has not left: it
        would answer TASK_GONE for them), then for all of the framework's (strays show up)."""
        known = [{"task_id": {"value": t}, "agent_id": {"value": track.agent_id}} for t, track in self._tracks.items()
                 if track.attempt is None or (track.attempt.sent and not track.attempt.in_flight)]
        if known:
            self._call({"type": "RECONCILE", "reconcile": {"tasks": known}})
        self._call({"type": "RECONCILE", "reconcile": {}})

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconciliation_interval)
            self._reconcile()

    # -- offers -------------------------------------------------------------------------------
    def offers(self, usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
        return self.book.agent_offers(also=set(usage))

    # Mesos runs the MESOS_* and COMMAND checks and reports them in status updates; Pacer probes
    # HTTP/TCP checks itself, at the task's agent
    runs_checks = frozenset(MESOS_CHECKS)

    @staticmethod
    def probe_host(inst: Instance) -> str:
        return inst.host

    def unsupported_reason(self, app: AppDefinition) -> str | None:
        self._demand.add((app.id, str(app.version)))    # a pass asks this only of apps it is about to place
        return unsupported(app)

    def pass_finished(self, launched: Sequence[Instance]) -> None:
        self._launcher.open_batches(launched)
        unused = self.book.take_all()
        if unused:
            self.decline(unused, self.config.refuse_seconds)
        self._steer(bool(launched))

    def _steer(self, launched: bool) -> None:
        """REVIVE when something new waits (it clears the decline filters), SUPPRESS when nothing does."""
        demand, self._demand = self._demand, set()
        fresh = demand - self._last_demand
        self._last_demand = demand
        waiting = bool(demand) or launched or self._launcher.busy
        if fresh or (waiting and self.suppressed):
            self._revive()
        elif not waiting and not self.suppressed and self.generation() is not None:
            self._call({"type": "SUPPRESS", "suppress": {"roles": [self.config.role]}})
            self.suppressed = True

    def _revive(self) -> None:
        self._call({"type": "REVIVE", "revive": {"roles": [self.config.role]}})
        self.suppressed = False

    # -- what the launcher needs (LaunchHost) ------------------------------------------------------
    def generation(self) -> int | None:
        conn = self.connection
        return conn.generation if conn is not None and conn.live else None

    def submit(self, call: LazyCall, generation: int) -> asyncio.Future[None]:
        assert self.connection is not None
        return self.connection.call(call, generation)

    def decline(self, offers: Sequence[HeldOffer], seconds: float) -> None:
        self._call({"type": "DECLINE", "decline": {"offer_ids": [{"value": o.offer_id} for o in offers],
                                                   "filters": {"refuse_seconds": seconds}}})

    def want_offers(self) -> None:
        if self.suppressed:
            self._revive()

    # -- launches -------------------------------------------------------------------------------
    async def launch(self, instance: Instance, app: AppDefinition) -> Instance:
        """Returns once the task is TASK_RUNNING; raises LaunchAborted if it ends or never starts."""
        loop = asyncio.get_running_loop()
        task_id = instance.instance_id
        attempt = Attempt(instance, app, loop.create_future())
        track = self._tracks.setdefault(task_id, Track(instance.agent_id, None))
        track.attempt = attempt
        deadline = loop.time() + self.config.offer_wait
        try:
            while True:
                await self._launcher.place(attempt, deadline)
                try:
                    async with asyncio.timeout(self.config.launch_timeout):
                        result = await asyncio.shield(attempt.outcome)
                except TimeoutError:
                    self._send_kill(task_id, instance.agent_id, 0.0)
                    raise LaunchAborted(f"no TASK_RUNNING within {self.config.launch_timeout:.0f} s") from None
                if result == RUNNING:
                    return instance
                attempt.outcome = loop.create_future()   # RETRY: its ACCEPT never left
        except LaunchAborted:
            if not attempt.sent and self._tracks.get(task_id) is track:
                self._forget(task_id)
            raise
        finally:
            if track.attempt is attempt:
                track.attempt = None

    # -- kills --------------------------------------------------------------------------------
    async def kill(self, instance: Instance, grace_seconds: float) -> None:
        task_id = instance.instance_id
        if self._launcher.cancel(task_id):
            self._listener.on_status(StatusUpdate(task_id, "TASK_KILLED", "killed before it was launched"))
            return
        track = self._tracks.get(task_id)
        if track is None:
            self._send_kill(task_id, instance.agent_id, grace_seconds)
            self._listener.on_status(StatusUpdate(task_id, "TASK_KILLED", "task was not running"))
            return
        self._kills[task_id] = grace_seconds
        self._send_kill(task_id, track.agent_id, grace_seconds)

    def _send_kill(self, task_id: str, agent_id: str, grace: float) -> None:
        """KILL, once the master knows the task: ACCEPTs go out side by side with other calls, so
        a KILL waits for its task's ACCEPT to be answered (else the master would not know the
        task yet, and the ACCEPT would start it after the KILL)."""
        track = self._tracks.get(task_id)
        accepting = track.attempt.accepting if track is not None and track.attempt is not None else None
        if accepting is not None and not accepting.done():
            accepting.add_done_callback(lambda _: self._send_kill(task_id, agent_id, grace))
            return
        self._call({"type": "KILL", "kill": {"task_id": {"value": task_id}, "agent_id": {"value": agent_id},
                                             "kill_policy": kill_policy(grace)}})

    # -- status updates -------------------------------------------------------------------------
    def _on_update(self, status: Json) -> None:
        task_id, state = status["task_id"]["value"], status["state"]
        agent = status.get("agent_id", {}).get("value")
        if self._answers is not None and task_id in self._awaiting and self._answers.get(task_id) not in \
                TERMINAL_STATES and (status.get("reason") == "REASON_RECONCILIATION" or state in TERMINAL_STATES):
            self._answers[task_id] = state      # the master's latest word, not a retried older update
            unreachable_ns = status.get("unreachable_time", {}).get("nanoseconds")
            if unreachable_ns is not None:
                self._unreachable_since[task_id] = unreachable_ns / 1e9
            if len(self._answers) >= len(self._awaiting):
                self._answered.set()
        self._handle(task_id, state, agent, status)
        if status.get("uuid") and agent:
            # queued compactly: a busy cluster has a hundred thousand of them waiting behind ACCEPTs
            self._call(LazyCall("ACKNOWLEDGE", partial(acknowledge_call, agent, task_id, status["uuid"])))

    def _handle(self, task_id: str, state: str, agent: str | None, status: Json) -> None:
        track = self._tracks.get(task_id)
        if track is None:
            if task_id not in self._ended and state not in TERMINAL_STATES and agent:
                log.warning("killing task %s (%s on agent %s): no instance of this scheduler owns it",
                            task_id, state, agent)
                self.strays_killed += 1
                self._ended[task_id] = None
                self._send_kill(task_id, agent, 0.0)
            return
        if state == track.state == TASK_RUNNING and "healthy" in status:
            self._listener.on_status(status_update(status))    # a verdict of Mesos's health check
            return
        if not supersedes(track.state, state):
            return
        if track.state == UNREACHABLE and task_id in self._kills and state not in TERMINAL_STATES:
            # Its agent is back, and the task with it; the KILL sent while it was unreachable
            # reached nobody (a master answers it with the task's state), so it goes again.
            log.info("task %s came back after it was killed (or expunged) while unreachable; killing it", task_id)
            self._send_kill(task_id, track.agent_id, self._kills[task_id])
        track.state = state
        attempt = track.attempt
        if attempt is not None and not attempt.outcome.done():
            if state in ("TASK_STAGING", "TASK_STARTING"):
                return                              # the launch is still under way
            if state == TASK_RUNNING:
                attempt.settle(RUNNING)             # the scheduler marks it running when `launch` returns
                return
            if state in TERMINAL_STATES:
                attempt.settle(LaunchAborted(f"{state}: {status.get('message', '')}"))
            else:
                attempt.settle(RUNNING)             # UNREACHABLE, KILLING: the update below says where it is
        if not (state == "TASK_KILLING" and task_id in self._kills):   # the scheduler announced its own kill
            self._listener.on_status(status_update(status))
        if state in TERMINAL_STATES:
            self._forget(task_id)

    def _forget(self, task_id: str) -> None:
        self._tracks.pop(task_id, None)
        self._kills.pop(task_id, None)
        self._ended[task_id] = None
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    # -- recovery -------------------------------------------------------------------------------
    async def recover(self, instances: Sequence[Instance]) -> Recovery:
        for inst in instances:
            self._tracks[inst.instance_id] = Track(inst.agent_id, inst.state)
        self._answers = {}
        self._unreachable_since = {}
        self._awaiting = {inst.instance_id for inst in instances}
        self._answered.clear()
        if not instances:
            self._answered.set()
        self.start()
        try:
            async with asyncio.timeout(self.config.subscribe_timeout):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning("no Mesos master answered within %.0f s; keeping the %d remembered tasks until one does",
                        self.config.subscribe_timeout, len(instances))
            self._answers = None
            return Recovery(alive=tuple(instances), lost=(), orphans_killed=0)
        try:
            async with asyncio.timeout(self.config.reconcile_timeout):
                await self._answered.wait()
        except TimeoutError:
            log.warning("reconciliation answered %d of %d tasks; the others are kept until it does",
                        len(self._answers), len(instances))
        answers, self._answers = self._answers, None
        alive, lost = [], []
        for inst in instances:
            state = answers.get(inst.instance_id)
            if state in TERMINAL_STATES:
                lost.append(inst)
            elif state == UNREACHABLE:    # since when the master says (its unreachableStrategy counts from then)
                since = inst.unreachable_since or self._unreachable_since.get(inst.instance_id) or time.time()
                alive.append(inst.with_(state=state, unreachable_since=since))
            else:
                alive.append(inst)
        return Recovery(alive=tuple(alive), lost=tuple(lost), orphans_killed=self.strays_killed)

    # -- the rest of ClusterBackend ---------------------------------------------------------------
    async def usages(self) -> Mapping[str, ResourceUsage]:
        """Mesos keeps task usage on the agents (`/monitor/statistics`), which this backend does not read."""
        return {}

    def describe(self) -> list[dict[str, object]]:
        held = {o.agent.agent_id: o for o in self.book.agent_offers()}
        out: list[dict[str, object]] = []
        for agent in self.book.agents.values():
            offer = held.get(agent.agent_id)
            out.append({"id": agent.agent_id, "hostname": agent.hostname, "attributes": dict(agent.attributes),
                        "offered": {"cpus": offer.cpus, "mem": offer.mem, "disk": offer.disk} if offer else {}})
        return out

    async def read_task_file(self, instance: Instance, name: str, offset: int, length: int) -> FileChunk | FileMissing:
        return _on_the_agent(instance, name)

    async def open_task_file(self, instance: Instance, name: str) -> OpenedFile | FileMissing:
        return _on_the_agent(instance, name)

    def backend_info(self) -> BackendInfo:
        cfg = self.config
        return BackendInfo(master=",".join(cfg.masters), framework_id=self._ids.load(), role=cfg.role, user=cfg.user,
                           framework_name=cfg.framework_name, failover_timeout=cfg.failover_timeout,
                           leader=self.master, reconciliation_interval=cfg.reconciliation_interval,
                           launch_timeout=cfg.launch_timeout)

    async def close(self) -> None:
        if self._periodic is not None:
            self._periodic.cancel()
            await asyncio.gather(self._periodic, return_exceptions=True)
        if self.connection is not None:
            await self.connection.close()
        else:
            await self._client.close()


def _on_the_agent(instance: Instance, name: str) -> FileMissing:
    """A task's sandbox is on the Mesos agent that runs it, which serves it (``/files/read``)."""
    return FileMissing(f"task {instance.instance_id} runs on the Mesos agent {instance.host}: its sandbox file "
                       f"'{name}' is read on that agent (its /files/read, or the Mesos UI)")


__all__ = ["FRAMEWORK_ID_KEY", "FrameworkIds", "MesosBackend", "MesosConfig", "MetaStore"]
