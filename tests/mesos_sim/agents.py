"""Simulated agents, the tasks they run, and the offer cycle of one master.

`Cluster` is the part of a Mesos cluster that outlives any one master: the agents, the tasks on
them and the status updates their executors have not yet had acknowledged (an agent retries
those until the framework acknowledges them, whichever master leads). `Allocator` is what a
master keeps and loses with itself: outstanding offers, decline filters and suppression, and
the periodic cycle that turns free agent resources into offers.

Tasks are not processes. A launched task moves STAGING → STARTING → RUNNING on timers, a kill
ends it after its grace period (or sooner, as a process that obeys SIGTERM would), and a test
ends it whenever it likes (`finish`, `fail`). Status updates carry a uuid and are delivered one
at a time per task, the next only after the previous was acknowledged, as Mesos's status update
manager does.
"""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EPSILON = 1e-6
SCALAR_NAMES = ("cpus", "mem", "disk", "gpus")
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"})

Json = dict[str, Any]
Ranges = tuple[tuple[int, int], ...]


# -- resource quantities -------------------------------------------------------------------

def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((begin, end))
    return tuple(out)


def _subtract(ranges: Ranges, taken: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for begin, end in ranges:
        pieces = [(begin, end)]
        for t_begin, t_end in taken:
            next_pieces = []
            for b, e in pieces:
                if t_end < b or t_begin > e:
                    next_pieces.append((b, e))
                    continue
                if b < t_begin:
                    next_pieces.append((b, t_begin - 1))
                if t_end < e:
                    next_pieces.append((t_end + 1, e))
            pieces = next_pieces
        out.extend(pieces)
    return _merge(out)


def _covers(ranges: Ranges, wanted: Ranges) -> bool:
    return not _subtract(wanted, ranges)


@dataclass(frozen=True)
class Quantity:
    """Some of an agent's resources: scalars by name, and port ranges."""

    scalars: Mapping[str, float] = field(default_factory=dict)
    ports: Ranges = ()

    @classmethod
    def of(cls, resources: Sequence[Json]) -> "Quantity":
        """The sum of Mesos `Resource` JSON entries (any roles, any reservations)."""
        scalars: dict[str, float] = {}
        ports: list[tuple[int, int]] = []
        for res in resources:
            if res.get("type") == "SCALAR":
                scalars[res["name"]] = scalars.get(res["name"], 0.0) + float(res["scalar"]["value"])
            elif res.get("type") == "RANGES" and res["name"] == "ports":
                ports.extend((int(r["begin"]), int(r["end"])) for r in res["ranges"].get("range", []))
        return cls(scalars, _merge(ports))

    def plus(self, other: "Quantity") -> "Quantity":
        names = set(self.scalars) | set(other.scalars)
        return Quantity({n: self.scalars.get(n, 0.0) + other.scalars.get(n, 0.0) for n in names},
                        _merge(self.ports + other.ports))

    def minus(self, other: "Quantity") -> "Quantity":
        names = set(self.scalars) | set(other.scalars)
        return Quantity({n: max(0.0, self.scalars.get(n, 0.0) - other.scalars.get(n, 0.0)) for n in names},
                        _subtract(self.ports, other.ports))

    def contains(self, other: "Quantity") -> bool:
        return (all(self.scalars.get(n, 0.0) + EPSILON >= v for n, v in other.scalars.items())
                and _covers(self.ports, other.ports))

    def offerable(self) -> bool:
        """Worth an offer: Mesos's allocator offers nothing without some cpus or mem."""
        return self.scalars.get("cpus", 0.0) > 0.01 or self.scalars.get("mem", 0.0) > 32

    def resources(self, role: str) -> list[Json]:
        """As Mesos `Resource` JSON allocated to `role` (unreserved)."""
        out: list[Json] = []
        for name in SCALAR_NAMES:
            value = round(self.scalars.get(name, 0.0), 3)
            if value > 0:
                out.append({"name": name, "type": "SCALAR", "scalar": {"value": value},
                            "allocation_info": {"role": role}})
        if self.ports:
            out.append({"name": "ports", "type": "RANGES",
                        "ranges": {"range": [{"begin": b, "end": e} for b, e in self.ports]},
                        "allocation_info": {"role": role}})
        return out


# -- agents and tasks --------------------------------------------------------------------

def text_attribute(name: str, value: str) -> Json:
    return {"name": name, "type": "TEXT", "text": {"value": value}}


def scalar_attribute(name: str, value: float) -> Json:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def ranges_attribute(name: str, ranges: Sequence[tuple[int, int]]) -> Json:
    return {"name": name, "type": "RANGES", "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]}}


def set_attribute(name: str, items: Sequence[str]) -> Json:
    return {"name": name, "type": "SET", "set": {"item": list(items)}}


@dataclass(frozen=True)
class AgentSpec:
    hostname: str
    cpus: float = 4.0
    mem: float = 4096.0
    disk: float = 10000.0
    gpus: int = 0
    ports: Ranges = ((31000, 32000),)
    attributes: tuple[Json, ...] = ()

    @property
    def total(self) -> Quantity:
        return Quantity({"cpus": self.cpus, "mem": self.mem, "disk": self.disk, "gpus": float(self.gpus)},
                        _merge(self.ports))


@dataclass
class SimAgent:
    agent_id: str
    spec: AgentSpec
    state: str = "ACTIVE"            # ACTIVE, UNREACHABLE, GONE
    unreachable_since: float | None = None


@dataclass
class SimTask:
    framework_id: str
    task_id: str
    agent_id: str
    info: Json
    used: Quantity
    state: str = "TASK_STAGING"
    grace: float = 3.0
    obeys_sigterm: bool = True
    pending: deque[Json] = field(default_factory=deque)   # reliable updates awaiting an ACKNOWLEDGE
    last_sent: float = 0.0
    resends: int = 0                                      # of the oldest pending update (its retry backoff)
    statuses: list[str] = field(default_factory=list)     # every state the task went through
    healthy: bool | None = None                           # the last health verdict reported

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def new_uuid() -> str:
    """A status update uuid as the JSON mapping carries it: 16 bytes, base64."""
    return base64.b64encode(uuid.uuid4().bytes).decode()


def status_json(task: SimTask, state: str, *, source: str, message: str = "", reason: str | None = None,
                reliable: bool = True, unreachable_since: float | None = None, update_uuid: str | None = None,
                data: str | None = None, healthy: bool | None = None) -> Json:
    """A `TaskStatus`. Reliable updates (from the agent or executor) carry a uuid and must be
    acknowledged; the master's own (reconciliation, invalid offers, agent removal) do not."""
    status: Json = {"task_id": {"value": task.task_id}, "state": state, "source": source,
                    "agent_id": {"value": task.agent_id}, "timestamp": time.time()}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if reliable:
        status["uuid"] = update_uuid or new_uuid()    # an executor's update keeps the executor's uuid
    if data is not None:
        status["data"] = data
    if healthy is not None:
        status["healthy"] = healthy
    if unreachable_since is not None:
        status["unreachable_time"] = {"nanoseconds": int(unreachable_since * 1e9)}
    return status


UpdateSink = Callable[[SimTask], None]


class Cluster:
    """Agents and their tasks: what survives a master failover."""

    def __init__(self, cluster_id: str = "sim") -> None:
        self.cluster_id = cluster_id
        self.agents: dict[str, SimAgent] = {}
        self.tasks: dict[tuple[str, str], SimTask] = {}     # by (framework id, task id); add with `add_task`
        self._on_agent: dict[str, dict[tuple[str, str], SimTask]] = {}
        self._first_key: dict[str, tuple[str, str]] = {}    # task id -> the first key it was launched under
        self._agent_seq = itertools.count(1)
        self.sink: UpdateSink | None = None      # the leading master delivers reliable updates
        self.on_acknowledged: Callable[[SimTask, str], None] | None = None   # `executor_agent` tells the executor
        self.healthy_if: Callable[[SimTask], bool] = lambda task: True   # a task's Mesos health check verdict

    def add_agent(self, spec: AgentSpec) -> SimAgent:
        agent = SimAgent(f"{self.cluster_id}-S{next(self._agent_seq)}", spec)
        self.agents[agent.agent_id] = agent
        return agent

    def add_task(self, task: SimTask) -> None:
        """A launched task (replacing an ended one of the same id). Indexed by agent and id, so a
        cluster of thousands of agents and a hundred thousand tasks answers in constant time."""
        key = (task.framework_id, task.task_id)
        previous = self.tasks.get(key)
        if previous is not None:
            self._on_agent.get(previous.agent_id, {}).pop(key, None)
        self.tasks[key] = task
        self._on_agent.setdefault(task.agent_id, {})[key] = task
        self._first_key.setdefault(task.task_id, key)

    def agent_by_hostname(self, hostname: str) -> SimAgent:
        return next(a for a in self.agents.values() if a.spec.hostname == hostname)

    def tasks_of(self, framework_id: str | None = None, agent_id: str | None = None) -> list[SimTask]:
        pool = self.tasks.values() if agent_id is None else self._on_agent.get(agent_id, {}).values()
        return [t for t in pool if framework_id is None or t.framework_id == framework_id]

    def task(self, task_id: str) -> SimTask:
        return self.tasks[self._first_key[task_id]]

    def used(self, agent_id: str) -> Quantity:
        total = Quantity()
        for task in self._on_agent.get(agent_id, {}).values():
            if not task.terminal:
                total = total.plus(task.used)
        return total

    def free(self, agent_id: str) -> Quantity:
        agent = self.agents[agent_id]
        return agent.spec.total.minus(self.used(agent_id))

    # -- what executors report (reliable updates) -------------------------------------
    def report(self, task: SimTask, state: str, message: str = "", reason: str | None = None,
               source: str = "SOURCE_EXECUTOR", update_uuid: str | None = None, data: str | None = None,
               healthy: bool | None = None) -> None:
        """The task changed state on its agent: queue the reliable update for delivery."""
        if task.terminal:
            return
        task.state = state
        task.statuses.append(state)
        task.pending.append(status_json(task, state, source=source, message=message, reason=reason,
                                        update_uuid=update_uuid, data=data, healthy=healthy))
        if len(task.pending) == 1 and self.sink is not None:
            self.sink(task)

    def acknowledge(self, framework_id: str, task_id: str, update_uuid: str) -> bool:
        """The framework acknowledged an update; the next one of that task may go out."""
        task = self.tasks.get((framework_id, task_id))
        if task is None or not task.pending or task.pending[0].get("uuid") != update_uuid:
            return False
        task.pending.popleft()
        task.resends = 0
        if self.on_acknowledged is not None:
            self.on_acknowledged(task, update_uuid)
        if task.pending and self.sink is not None:
            self.sink(task)
        return True

    def unacknowledged(self) -> list[tuple[str, str]]:
        return [(t.task_id, u["state"]) for t in self.tasks.values() for u in t.pending]

    # -- what a test makes happen -----------------------------------------------------
    def check_health(self, task: SimTask) -> None:
        """The executor ran the task's Mesos health check: a TASK_RUNNING update that carries the
        verdict (`healthy_if`), as Mesos sends one each time the verdict changes."""
        if task.state != "TASK_RUNNING" or "health_check" not in task.info:
            return
        healthy = self.healthy_if(task)
        if healthy != task.healthy:
            task.healthy = healthy
            self.report(task, "TASK_RUNNING", reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", healthy=healthy)

    def finish(self, task_id: str) -> None:
        self.report(self.task(task_id), "TASK_FINISHED", "Command exited with status 0")

    def fail(self, task_id: str, status: int = 1) -> None:
        self.report(self.task(task_id), "TASK_FAILED", f"Command exited with status {status}",
                    "REASON_COMMAND_EXECUTOR_FAILED")

    def running(self, framework_id: str | None = None) -> list[SimTask]:
        return [t for t in self.tasks_of(framework_id) if t.state == "TASK_RUNNING"]


# -- the offer cycle ---------------------------------------------------------------------

@dataclass
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    quantity: Quantity
    json: Json


@dataclass
class Refusal:
    """A DECLINE (or the unused part of an ACCEPT) filters what was refused until `until`."""

    refused: Quantity
    until: float


@dataclass
class FrameworkAllocation:
    framework_id: str
    role: str
    suppressed: bool = False
    filters: dict[str, Refusal] = field(default_factory=dict)   # by agent id


class Allocator:
    """One master's offers: who holds which, what is filtered, what is suppressed."""

    def __init__(self, cluster: Cluster, master_id: str) -> None:
        self.cluster = cluster
        self.master_id = master_id
        self.frameworks: dict[str, FrameworkAllocation] = {}
        self.offers: dict[str, Offer] = {}      # read it; change it with `add_offer` and `take_offer`
        self._on_agent: dict[str, dict[str, Offer]] = {}
        self._offer_seq = itertools.count(1)

    def add_offer(self, offer: Offer) -> None:
        self.offers[offer.offer_id] = offer
        self._on_agent.setdefault(offer.agent_id, {})[offer.offer_id] = offer

    def take_offer(self, offer_id: str) -> Offer | None:
        """The offer, no longer outstanding (accepted, declined, rescinded); None if it was not."""
        offer = self.offers.pop(offer_id, None)
        if offer is not None:
            self._on_agent[offer.agent_id].pop(offer_id, None)
        return offer

    def add_framework(self, framework_id: str, role: str, suppressed: bool = False) -> None:
        self.frameworks[framework_id] = FrameworkAllocation(framework_id, role, suppressed)

    def remove_framework(self, framework_id: str) -> list[Offer]:
        self.frameworks.pop(framework_id, None)
        mine = [o.offer_id for o in self.offers.values() if o.framework_id == framework_id]
        return [o for o in map(self.take_offer, mine) if o is not None]

    def outstanding(self, agent_id: str) -> Quantity:
        total = Quantity()
        for offer in self._on_agent.get(agent_id, {}).values():
            total = total.plus(offer.quantity)
        return total

    def allocate(self, connected: Iterable[str], now: float) -> dict[str, list[Offer]]:
        """New offers, by framework: every active agent's free resources nobody holds yet."""
        made: dict[str, list[Offer]] = {}
        for framework_id in connected:
            alloc = self.frameworks.get(framework_id)
            if alloc is None or alloc.suppressed:
                continue
            for agent in self.cluster.agents.values():
                if agent.state != "ACTIVE":
                    continue
                free = self.cluster.free(agent.agent_id).minus(self.outstanding(agent.agent_id))
                if not free.offerable():
                    continue
                refusal = alloc.filters.get(agent.agent_id)
                if refusal is not None:
                    if refusal.until > now and refusal.refused.contains(free):
                        continue
                    del alloc.filters[agent.agent_id]
                offer = self._offer(framework_id, agent, alloc.role, free)
                self.add_offer(offer)
                made.setdefault(framework_id, []).append(offer)
        return made

    def _offer(self, framework_id: str, agent: SimAgent, role: str, free: Quantity) -> Offer:
        offer_id = f"{self.master_id}-O{next(self._offer_seq)}"
        body: Json = {"id": {"value": offer_id}, "framework_id": {"value": framework_id},
                      "agent_id": {"value": agent.agent_id}, "hostname": agent.spec.hostname,
                      "resources": free.resources(role), "attributes": [dict(a) for a in agent.spec.attributes],
                      "allocation_info": {"role": role}}
        return Offer(offer_id, framework_id, agent.agent_id, role, free, body)

    def refuse(self, framework_id: str, agent_id: str, refused: Quantity, seconds: float, now: float) -> None:
        alloc = self.frameworks.get(framework_id)
        if alloc is None or seconds <= 0:
            return
        previous = alloc.filters.get(agent_id)
        if previous is not None and previous.until > now:
            refused = refused.plus(previous.refused)
        alloc.filters[agent_id] = Refusal(refused, now + seconds)

    def revive(self, framework_id: str) -> None:
        alloc = self.frameworks.get(framework_id)
        if alloc is not None:
            alloc.filters.clear()
            alloc.suppressed = False

    def suppress(self, framework_id: str) -> None:
        alloc = self.frameworks.get(framework_id)
        if alloc is not None:
            alloc.suppressed = True

    def offers_on(self, agent_id: str) -> list[Offer]:
        return list(self._on_agent.get(agent_id, {}).values())
