"""A simulated Mesos master: `POST /api/v1/scheduler` over real HTTP on 127.0.0.1.

It answers as Mesos 1.x does (`src/master/http.cpp` `Master::Http::scheduler`, `master.cpp`):
SUBSCRIBE opens a 200 response whose body is a RecordIO stream of JSON events and whose
`Mesos-Stream-Id` header every later call must repeat; other calls are answered 202, or 400 /
403 / 415 / 406 with Mesos's messages. A master that does not lead answers 307 with a
protocol-relative `Location` of the leader (or 503 when there is none).

Stricter than Mesos on purpose: a call that does not fit the v1 protos (see `protocol.py`) is a
400 naming the field, and is kept in `rejections` so a test can assert there were none.

Task bookkeeping follows the master: ACCEPT with offers that are gone (rescinded, declined,
of another agent) turns every launch into TASK_DROPPED (REASON_INVALID_OFFERS); a task that
asks for more than the offers hold, repeats a live task id or has neither command nor executor
is TASK_ERROR; KILL of an unknown task answers as explicit reconciliation does; RECONCILE
answers the six cases of `Master::reconcile`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .agents import Allocator, Cluster, Json, Offer, Quantity, SimAgent, SimTask
from .protocol import ProtocolError, recordio, validate

log = logging.getLogger(__name__)

DEFAULT_REFUSE_SECONDS = 5.0      # Filters.refuse_seconds [default = 5.0]
DEFAULT_KILL_GRACE = 3.0
MAX_RETRY = 600.0                 # STATUS_UPDATE_RETRY_INTERVAL_MAX


@dataclass
class Connection:
    """One SUBSCRIBE response: its stream id and the events waiting to be written to it."""

    stream_id: str
    queue: asyncio.Queue[Json | None] = field(default_factory=asyncio.Queue)
    request: web.Request | None = None

    def send(self, event: Json) -> None:
        self.queue.put_nowait(event)

    def close(self, abrupt: bool = False) -> None:
        self.queue.put_nowait(None)
        if abrupt and self.request is not None and self.request.transport is not None:
            self.request.transport.close()


@dataclass
class Framework:
    framework_id: str
    info: Json
    role: str
    capabilities: frozenset[str]
    connection: Connection | None = None
    failover: asyncio.TimerHandle | None = None

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities


class CallError(Exception):
    """A refused call. `violation`: the call itself is wrong (the protos, Mesos's validation), as
    opposed to refused for the master's state (an unknown framework, an old stream id), which a
    correct scheduler also meets, in races with failovers."""

    def __init__(self, status: int, message: str, violation: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.violation = violation


class SimulatedMaster:
    def __init__(self, cluster: Cluster, name: str = "master-1", *, heartbeat_interval: float = 15.0,
                 allocation_interval: float = 1.0, update_retry: float = 10.0, start_delay: float = 0.02,
                 run_delay: float = 0.02, term_delay: float = 0.02, keep_calls: bool = True,
                 credentials: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.credentials = credentials               # principal -> secret: HTTP basic authentication required
        self.unauthorized = 0                        # requests answered 401
        self.master_id = f"{cluster.cluster_id}-{name}-{uuid.uuid4().hex[:6]}"
        self.heartbeat_interval = heartbeat_interval
        self.allocation_interval = allocation_interval
        self.update_retry = update_retry
        self.start_delay, self.run_delay, self.term_delay = start_delay, run_delay, term_delay
        self.allocator = Allocator(cluster, self.master_id)
        self.frameworks: dict[str, Framework] = {}
        self.completed: set[str] = set()
        self.elected = False
        self.leader: SimulatedMaster | None = None
        self.heartbeats_paused = False
        self.keep_calls = keep_calls                  # False for a benchmark: count the calls, keep none
        self.calls: list[Json] = []                   # every call accepted, in order
        # every well-formed call, accepted or not: (when, type, Mesos-Stream-Id, a SUBSCRIBE's webui_url)
        self.attempts: list[tuple[float, str, str | None, str | None]] = []
        self.call_counts: Counter[str] = Counter()    # calls accepted, by type
        self.last_call_at: dict[str, float] = {}      # time.monotonic() of the last accepted call of each type
        self.rejections: list[tuple[int, str]] = []   # calls that were wrong in themselves: (status, message)
        self.refusals: list[tuple[int, str]] = []     # calls refused for the master's state (races)
        self.launch_hook: Callable[[SimTask], None] | None = None
        self.kill_hook: Callable[[SimTask, Json], bool] | None = None   # True: it handles the KILL (executor_agent)
        self._framework_seq = itertools.count()
        self._runner: web.AppRunner | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0, elected: bool = True) -> "SimulatedMaster":
        app = web.Application()
        app.router.add_route("*", "/api/v1/scheduler", self._scheduler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if elected:
            self.elect()
        return self

    def elect(self) -> None:
        """Become the leader: deliver the agents' updates and run the offer cycle."""
        self.elected, self.leader = True, self
        self.cluster.sink = self._deliver
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._allocate_forever(), name="sim-allocator"),
                       loop.create_task(self._retry_forever(), name="sim-update-retry"),
                       loop.create_task(self._heartbeat_forever(), name="sim-heartbeats")]

    def demote(self, leader: "SimulatedMaster | None") -> None:
        """Lose leadership (a failover): every stream ends, offers and frameworks are forgotten,
        and calls are redirected to `leader` from now on."""
        self.elected, self.leader = False, leader
        for loop_task in self._loops:
            loop_task.cancel()
        self._loops = []
        for fw in self.frameworks.values():
            if fw.connection is not None:
                fw.connection.close(abrupt=True)
                fw.connection = None
            if fw.failover is not None:
                fw.failover.cancel()
        self.frameworks.clear()
        self.allocator = Allocator(self.cluster, self.master_id)

    async def stop(self) -> None:
        self.demote(None)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- HTTP -------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str, violation: bool = True) -> web.Response:
        (self.rejections if violation else self.refusals).append((status, message))
        log.warning("simulated master refused a call (%d): %s", status, message)
        return web.Response(status=status, text=message)

    def _authenticated(self, request: web.Request) -> str | None:
        """The principal of a valid `Authorization: Basic` header (libprocess's basic authenticator
        runs before the endpoint, on every master, leading or not); None if missing or wrong."""
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            principal, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return None
        ok = scheme == "Basic" and self.credentials is not None and self.credentials.get(principal) == secret
        return principal if ok else None

    async def _scheduler(self, request: web.Request) -> web.StreamResponse:
        principal = None
        if self.credentials is not None:
            principal = self._authenticated(request)
            if principal is None:
                self.unauthorized += 1
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="mesos"'})
        if not self.elected:
            if self.leader is None:
                return web.Response(status=503, text="No leader elected")
            raise web.HTTPTemporaryRedirect(f"//127.0.0.1:{self.leader.port}{request.rel_url}")
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"}, text="Expecting one of { 'POST' }")
        content_type = request.headers.get("Content-Type")
        if content_type is None:
            return self._refuse(400, "Expecting 'Content-Type' to be present")
        if content_type != "application/json":
            return self._refuse(415, "Expecting 'Content-Type' of application/json (this simulator speaks "
                                     "JSON only)")
        try:
            call = json.loads(await request.read())
        except ValueError as exc:
            return self._refuse(400, f"Failed to parse body into JSON: {exc}")
        try:
            validate("Call", call)
        except ProtocolError as exc:
            return self._refuse(400, f"Failed to convert JSON into Call protobuf: {exc}")
        webui = call.get("subscribe", {}).get("framework_info", {}).get("webui_url")
        self.attempts.append((time.monotonic(), call.get("type", ""), request.headers.get("Mesos-Stream-Id"), webui))
        try:
            self._check_call(call)
            info_principal = call.get("subscribe", {}).get("framework_info", {}).get("principal")
            if principal is not None and info_principal is not None and info_principal != principal:
                raise CallError(400, f"Authenticated principal '{principal}' does not match principal "
                                     f"'{info_principal}' set in `FrameworkInfo`")
            if call["type"] == "SUBSCRIBE":
                return await self._subscribe(request, call)
            framework = self._caller(request, call)
            self._record(call)
            self._dispatch(framework, call)
        except CallError as exc:
            return self._refuse(exc.status, str(exc), exc.violation)
        return web.Response(status=202)

    def _record(self, call: Json) -> None:
        kind = call["type"]
        self.call_counts[kind] += 1
        self.last_call_at[kind] = time.monotonic()
        if self.keep_calls:
            self.calls.append(call)

    @staticmethod
    def _check_call(call: Json) -> None:
        """`validation::scheduler::call::validate`."""
        kind = call.get("type")
        if kind is None:
            raise CallError(400, "Failed to validate scheduler::Call: Expecting 'type' to be present")
        if kind == "SUBSCRIBE":
            if "subscribe" not in call:
                raise CallError(400, "Failed to validate scheduler::Call: Expecting 'subscribe' to be present")
            info_id = call["subscribe"]["framework_info"].get("id")
            if info_id != call.get("framework_id"):
                raise CallError(400, "Failed to validate scheduler::Call: 'framework_id' differs from "
                                     "'subscribe.framework_info.id'")
            return
        if "framework_id" not in call:
            raise CallError(400, "Failed to validate scheduler::Call: Expecting 'framework_id' to be present")
        needs = {"ACCEPT": "accept", "DECLINE": "decline", "KILL": "kill", "SHUTDOWN": "shutdown",
                 "ACKNOWLEDGE": "acknowledge", "RECONCILE": "reconcile"}
        member = needs.get(kind)
        if member is not None and member not in call:
            raise CallError(400, f"Failed to validate scheduler::Call: Expecting '{member}' to be present")
        if kind == "ACKNOWLEDGE":
            raw = base64.b64decode(call["acknowledge"]["uuid"])
            if len(raw) != 16:
                raise CallError(400, f"Failed to validate scheduler::Call: Invalid UUID of {len(raw)} bytes")
        if kind not in ("TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "SUPPRESS", "KILL", "SHUTDOWN", "ACKNOWLEDGE",
                        "RECONCILE"):
            raise CallError(501, f"the simulator does not implement {kind}")

    def _caller(self, request: web.Request, call: Json) -> Framework:
        framework = self.frameworks.get(call["framework_id"]["value"])
        if framework is None:
            raise CallError(400, "Framework cannot be found", violation=False)
        if framework.connection is None:
            raise CallError(403, "Framework is not subscribed", violation=False)
        stream_id = request.headers.get("Mesos-Stream-Id")
        if stream_id is None:
            raise CallError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.connection.stream_id:
            raise CallError(400, f"The stream ID '{stream_id}' included in this request didn't match the stream "
                                 f"ID currently associated with framework ID {framework.framework_id}",
                            violation=False)
        return framework

    # -- SUBSCRIBE ----------------------------------------------------------------------------
    @staticmethod
    def _framework_error(info: Json) -> str | None:
        """`validation::framework::validate` (roles) and the removed-framework check."""
        capabilities = {c.get("type") for c in info.get("capabilities", [])}
        if "MULTI_ROLE" in capabilities:
            if "role" in info:
                return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
            roles = info.get("roles", [])
            if len(set(roles)) != len(roles):
                return f"'FrameworkInfo.roles' contains duplicate items: {sorted(roles)}"
        elif info.get("roles"):
            return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
        return None

    async def _subscribe(self, request: web.Request, call: Json) -> web.StreamResponse:
        accept = request.headers.get("Accept", "*/*")
        if "application/json" not in accept and "*/*" not in accept:
            raise CallError(406, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")
        if "Mesos-Stream-Id" in request.headers:
            raise CallError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
        self._record(call)
        info = call["subscribe"]["framework_info"]
        connection = Connection(stream_id=str(uuid.uuid4()), request=request)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Mesos-Stream-Id": connection.stream_id})
        response.enable_chunked_encoding()
        await response.prepare(request)
        error = self._framework_error(info)
        framework_id = info.get("id", {}).get("value")
        if error is None and framework_id in self.completed:
            error = "Framework has been removed"
        if error is not None:
            (self.refusals if error == "Framework has been removed" else self.rejections).append((200, error))
            await response.write(recordio(json.dumps({"type": "ERROR", "error": {"message": error}}).encode()))
            await response.write_eof()
            return response
        framework = self._admit(info, connection, call["subscribe"].get("suppressed_roles", []))
        connection.send({"type": "SUBSCRIBED", "subscribed": {
            "framework_id": {"value": framework.framework_id},
            "heartbeat_interval_seconds": self.heartbeat_interval, "master_info": self._master_info()}})
        for task in self.cluster.tasks_of(framework.framework_id):
            self._deliver(task)
        try:
            await self._write_events(response, connection)
        finally:
            if framework.connection is connection:
                self._disconnected(framework)
        return response

    def _admit(self, info: Json, connection: Connection, suppressed_roles: list[str]) -> Framework:
        framework_id = info.get("id", {}).get("value") or f"{self.master_id}-{next(self._framework_seq):04d}"
        capabilities = frozenset(c.get("type", "UNKNOWN") for c in info.get("capabilities", []))
        roles = info.get("roles", []) if "MULTI_ROLE" in capabilities else [info.get("role", "*")]
        framework = self.frameworks.get(framework_id)
        if framework is not None and framework.connection is not None:   # failover: the old stream ends
            framework.connection.send({"type": "ERROR", "error": {"message": "Framework failed over"}})
            framework.connection.close()
        if framework is not None and framework.failover is not None:
            framework.failover.cancel()
        framework = Framework(framework_id, info, roles[0] if roles else "*", capabilities, connection)
        self.frameworks[framework_id] = framework
        self._rescind_all(framework_id, notify=False)
        self.allocator.add_framework(framework_id, framework.role, suppressed=bool(suppressed_roles))
        return framework

    def _disconnected(self, framework: Framework) -> None:
        """The stream ended: offers go back, and the framework has `failover_timeout` to return."""
        framework.connection = None
        self._rescind_all(framework.framework_id, notify=False)
        timeout = float(framework.info.get("failover_timeout", 0.0))
        framework.failover = asyncio.get_running_loop().call_later(
            timeout, self._remove_framework, framework.framework_id)

    async def _write_events(self, response: web.StreamResponse, connection: Connection) -> None:
        """Write events as they come; what queued up meanwhile goes out in one write, as a busy
        master's stream carries many records per packet."""
        while True:
            events = [await connection.queue.get()]
            while not connection.queue.empty() and events[-1] is not None:
                events.append(connection.queue.get_nowait())
            ended = events[-1] is None
            frames = []
            for event in events[:-1] if ended else events:
                assert event is not None
                validate("Event", event)     # the simulator holds itself to the protos too
                frames.append(recordio(json.dumps(event).encode()))
            try:
                if frames:
                    await response.write(b"".join(frames))
            except (ConnectionError, RuntimeError):
                return
            if ended:
                return

    def _master_info(self) -> Json:
        return {"id": self.master_id, "ip": 16777343, "port": self.port, "hostname": "127.0.0.1",
                "version": "1.11.0", "address": {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": self.port}}

    # -- calls --------------------------------------------------------------------------------
    def _dispatch(self, framework: Framework, call: Json) -> None:
        kind = call["type"]
        now = time.monotonic()
        if kind == "TEARDOWN":
            self._remove_framework(framework.framework_id)
        elif kind == "ACCEPT":
            self._accept(framework, call["accept"], now)
        elif kind == "DECLINE":
            decline = call["decline"]
            seconds = decline.get("filters", {}).get("refuse_seconds", DEFAULT_REFUSE_SECONDS)
            for offer_id in decline.get("offer_ids", []):
                offer = self.allocator.offers.get(offer_id["value"])
                if offer is not None and offer.framework_id == framework.framework_id:
                    self.allocator.take_offer(offer.offer_id)
                    self.allocator.refuse(framework.framework_id, offer.agent_id, offer.quantity, seconds, now)
        elif kind == "REVIVE":
            self.allocator.revive(framework.framework_id)
            asyncio.get_running_loop().call_soon(self.allocate)
        elif kind == "SUPPRESS":
            self.allocator.suppress(framework.framework_id)
        elif kind == "KILL":
            self._kill(framework, call["kill"])
        elif kind == "ACKNOWLEDGE":
            ack = call["acknowledge"]
            self.cluster.acknowledge(framework.framework_id, ack["task_id"]["value"], ack["uuid"])
        elif kind == "RECONCILE":
            self._reconcile(framework, call["reconcile"].get("tasks", []))

    def _accept(self, framework: Framework, accept: Json, now: float) -> None:
        offer_ids = [o["value"] for o in accept.get("offer_ids", [])]
        offers = [self.allocator.offers.get(i) for i in offer_ids]
        problem = None
        if not offer_ids:
            problem = "No offers specified"
        for offer_id, offer in zip(offer_ids, offers):
            if offer is None or offer.framework_id != framework.framework_id:
                problem = problem or f"Offer {offer_id} is no longer valid"
        valid = [o for o in offers if o is not None and o.framework_id == framework.framework_id]
        if problem is None and len({o.agent_id for o in valid}) > 1:
            problem = "Aggregated offers must belong to one single agent"
        for offer in valid:
            self.allocator.take_offer(offer.offer_id)
        launches = [t for op in accept.get("operations", []) if op.get("type") == "LAUNCH"
                    for t in op.get("launch", {}).get("task_infos", [])]
        if problem is not None:
            dropped = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
            for info in launches:
                self._master_update(framework, info["task_id"]["value"], info["agent_id"]["value"], dropped,
                                    f"Task launched with invalid offers: {problem}", "REASON_INVALID_OFFERS")
            return
        pool = Quantity()
        for offer in valid:
            pool = pool.plus(offer.quantity)
        agent = self.cluster.agents[valid[0].agent_id]
        started = []
        for info in launches:
            error = self._task_error(framework, info, agent, pool, valid[0].role)
            if error is not None:
                self._master_update(framework, info["task_id"]["value"], info["agent_id"]["value"], "TASK_ERROR",
                                    error, "REASON_TASK_INVALID")
                continue
            used = Quantity.of(info.get("resources", []))
            pool = pool.minus(used)
            task = self._launch(framework, info, used)
            if task is not None:
                started.append(task)
        if started:
            self._spawn(self._progress(started))
        seconds = accept.get("filters", {}).get("refuse_seconds", DEFAULT_REFUSE_SECONDS)
        self.allocator.refuse(framework.framework_id, agent.agent_id, pool, seconds, now)

    def _task_error(self, framework: Framework, info: Json, agent: SimAgent, pool: Quantity, role: str) -> str | None:
        task_id = info["task_id"]["value"]
        existing = self.cluster.tasks.get((framework.framework_id, task_id))
        if existing is not None and not existing.terminal:
            return f"Task has duplicate ID: {task_id}"
        if info["agent_id"]["value"] != agent.agent_id:
            return f"Task uses agent {info['agent_id']['value']} but the offers are of {agent.agent_id}"
        if ("command" in info) == ("executor" in info):
            return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        for res in info.get("resources", []):
            allocated = res.get("allocation_info", {}).get("role")
            if "MULTI_ROLE" in framework.capabilities and allocated != role:
                return (f"Resource {res['name']} has allocation role {allocated!r}, the offers are allocated "
                        f"to {role!r}")
        if not pool.contains(Quantity.of(info.get("resources", []))):
            return "Task uses more resources than available in the offers"
        return None

    def _launch(self, framework: Framework, info: Json, used: Quantity) -> SimTask | None:
        """The task, staged on its agent; returned unless the launch hook holds it back."""
        grace_ns = info.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
        task = SimTask(framework.framework_id, info["task_id"]["value"], info["agent_id"]["value"], info, used,
                       grace=grace_ns / 1e9 if grace_ns is not None else DEFAULT_KILL_GRACE)
        task.statuses.append(task.state)
        self.cluster.add_task(task)
        hold = False
        if self.launch_hook is not None:
            hold = bool(self.launch_hook(task))
        return None if hold else task

    async def _progress(self, tasks: list[SimTask]) -> None:
        """The tasks of one ACCEPT start together, as one agent's executors would: one timer for
        all of them instead of one per task."""
        await asyncio.sleep(self.start_delay)
        for task in tasks:
            if task.state == "TASK_STAGING":
                self.cluster.report(task, "TASK_STARTING")
        await asyncio.sleep(self.run_delay)
        for task in tasks:
            if task.state == "TASK_STARTING":
                self.cluster.report(task, "TASK_RUNNING")
        await asyncio.sleep(self.run_delay)
        for task in tasks:                   # the first health check, past its delay (not simulated)
            self.cluster.check_health(task)

    def _kill(self, framework: Framework, kill: Json) -> None:
        task_id = kill["task_id"]["value"]
        task = self.cluster.tasks.get((framework.framework_id, task_id))
        if task is None or task.terminal:   # Mesos: "unknown; performing reconciliation"
            self._reconcile(framework, [{"task_id": kill["task_id"], **({"agent_id": kill["agent_id"]}
                                                                         if "agent_id" in kill else {})}])
            return
        if self.cluster.agents[task.agent_id].state != "ACTIVE":
            # Mesos keeps such a task among the unreachable ones, which KILL does not find: it
            # answers as explicit reconciliation does (TASK_UNREACHABLE), and kills nothing.
            self._reconcile(framework, [{"task_id": kill["task_id"], "agent_id": {"value": task.agent_id}}])
            return
        if self.kill_hook is not None and self.kill_hook(task, kill):
            return
        grace_ns = kill.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
        grace = grace_ns / 1e9 if grace_ns is not None else task.grace
        if task.state == "TASK_STAGING":
            self.cluster.report(task, "TASK_KILLED", "Killed before delivery to the executor",
                                "REASON_TASK_KILLED_DURING_LAUNCH", source="SOURCE_AGENT")
            return
        if "TASK_KILLING_STATE" in framework.capabilities and task.state != "TASK_KILLING":
            self.cluster.report(task, "TASK_KILLING")
        delay = self.term_delay if task.obeys_sigterm else grace
        self._spawn(self._die(task, min(delay, grace)))

    async def _die(self, task: SimTask, after: float) -> None:
        await asyncio.sleep(after)
        self.cluster.report(task, "TASK_KILLED", "Command terminated with signal Terminated")

    def _reconcile(self, framework: Framework, wanted: list[Json]) -> None:
        """`Master::reconcile`: implicit (every known task) or explicit (the six cases)."""
        # the master keeps a task until its terminal update is acknowledged
        known = {t.task_id: t for t in self.cluster.tasks_of(framework.framework_id) if not t.terminal or t.pending}
        if not wanted:
            for task in known.values():
                self._master_update(framework, task.task_id, task.agent_id, task.state,
                                    "Reconciliation: Latest task state", "REASON_RECONCILIATION")
            return
        for item in wanted:
            task_id = item["task_id"]["value"]
            agent_id = item.get("agent_id", {}).get("value")
            task = known.get(task_id)
            if task is not None:
                self._master_update(framework, task_id, task.agent_id, task.state,
                                    "Reconciliation: Latest task state", "REASON_RECONCILIATION",
                                    unreachable_since=self.cluster.agents[task.agent_id].unreachable_since
                                    if task.state == "TASK_UNREACHABLE" else None)
                continue
            agent = self.cluster.agents.get(agent_id) if agent_id else None
            if agent is not None and agent.state == "ACTIVE":
                state, message = "TASK_GONE", "Reconciliation: Task is unknown to the agent"
            elif agent is not None and agent.state == "UNREACHABLE":
                state, message = "TASK_UNREACHABLE", "Reconciliation: Task is unreachable"
            elif agent is not None:
                state, message = "TASK_GONE_BY_OPERATOR", "Reconciliation: Task is gone"
            else:
                state, message = "TASK_UNKNOWN", "Reconciliation: Task is unknown"
            if not framework.partition_aware:
                state = "TASK_LOST"
            self._master_update(framework, task_id, agent_id, state, message, "REASON_RECONCILIATION")

    def _remove_framework(self, framework_id: str) -> None:
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        self.completed.add(framework_id)
        if framework.connection is not None:
            framework.connection.close()
        self.allocator.remove_framework(framework_id)
        for task in self.cluster.tasks_of(framework_id):
            if not task.terminal:
                task.state = "TASK_KILLED"
                task.pending.clear()

    # -- events -------------------------------------------------------------------------------
    def _send(self, framework_id: str, event: Json) -> bool:
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.connection is None:
            return False
        framework.connection.send(event)
        return True

    def _master_update(self, framework: Framework, task_id: str, agent_id: str | None, state: str, message: str,
                       reason: str, unreachable_since: float | None = None) -> None:
        """An update the master makes up itself: no uuid, nothing to acknowledge."""
        status: Json = {"task_id": {"value": task_id}, "state": state, "source": "SOURCE_MASTER",
                        "message": message, "reason": reason, "timestamp": time.time()}
        if agent_id:
            status["agent_id"] = {"value": agent_id}
        if unreachable_since is not None:
            status["unreachable_time"] = {"nanoseconds": int(unreachable_since * 1e9)}
        self._send(framework.framework_id, {"type": "UPDATE", "update": {"status": status}})

    def _deliver(self, task: SimTask) -> None:
        """Send the oldest unacknowledged update of `task`, if its framework and agent are there."""
        if not task.pending or self.cluster.agents[task.agent_id].state != "ACTIVE":
            return
        if self._send(task.framework_id, {"type": "UPDATE", "update": {"status": task.pending[0]}}):
            task.last_sent = time.monotonic()

    def allocate(self) -> None:
        if not self.elected:
            return
        connected = [f.framework_id for f in self.frameworks.values() if f.connection is not None]
        for framework_id, offers in self.allocator.allocate(connected, time.monotonic()).items():
            self._send(framework_id, {"type": "OFFERS", "offers": {"offers": [o.json for o in offers]}})

    def _rescind_all(self, framework_id: str, notify: bool) -> None:
        for offer in [o for o in self.allocator.offers.values() if o.framework_id == framework_id]:
            self._rescind(offer, notify)

    def _rescind(self, offer: Offer, notify: bool = True) -> None:
        self.allocator.take_offer(offer.offer_id)
        if notify:
            self._send(offer.framework_id, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.offer_id}}})

    async def _allocate_forever(self) -> None:
        while True:
            self.allocate()
            await asyncio.sleep(self.allocation_interval)

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.update_retry / 2))
            now = time.monotonic()
            for task in list(self.cluster.tasks.values()):
                # the agent's status update manager: 10 s, doubling up to 10 minutes
                if task.pending and now - task.last_sent >= min(self.update_retry * 2 ** task.resends, MAX_RETRY):
                    task.resends += 1
                    self._deliver(task)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self.heartbeats_paused:
                for framework in self.frameworks.values():
                    self._send(framework.framework_id, {"type": "HEARTBEAT"})

    # -- what a test makes happen ---------------------------------------------------------------
    def rescind(self, offer_id: str) -> None:
        offer = self.allocator.offers.get(offer_id)
        if offer is not None:
            self._rescind(offer)

    def drop_stream(self, framework_id: str) -> None:
        """Cut the subscription's connection, as a network failure would."""
        framework = self.frameworks.get(framework_id)
        if framework is not None and framework.connection is not None:
            framework.connection.close(abrupt=True)

    def send_update(self, framework_id: str, status: Json) -> None:
        """Send any `TaskStatus` (a duplicate, an old one replayed out of order)."""
        self._send(framework_id, {"type": "UPDATE", "update": {"status": status}})

    def lose_agent(self, agent_id: str) -> None:
        """The agent stops answering: its tasks are TASK_UNREACHABLE, its offers rescinded."""
        agent = self.cluster.agents[agent_id]
        agent.state, agent.unreachable_since = "UNREACHABLE", time.time()
        for offer in self.allocator.offers_on(agent_id):
            self._rescind(offer)
        for task in self.cluster.tasks_of(agent_id=agent_id):
            if task.terminal:
                continue
            task.state = "TASK_UNREACHABLE"
            task.statuses.append(task.state)
            framework = self.frameworks.get(task.framework_id)
            if framework is not None:
                state = "TASK_UNREACHABLE" if framework.partition_aware else "TASK_LOST"
                self._master_update(framework, task.task_id, agent_id, state, f"Agent {agent_id} is unreachable",
                                    "REASON_AGENT_REMOVED", unreachable_since=agent.unreachable_since)

    def agent_gone(self, agent_id: str) -> None:
        """An operator marks the agent gone: its tasks end as TASK_GONE_BY_OPERATOR."""
        agent = self.cluster.agents[agent_id]
        agent.state = "GONE"
        for offer in self.allocator.offers_on(agent_id):
            self._rescind(offer)
        for task in self.cluster.tasks_of(agent_id=agent_id):
            if task.terminal:
                continue
            task.state, task.pending = "TASK_GONE_BY_OPERATOR", type(task.pending)()
            framework = self.frameworks.get(task.framework_id)
            if framework is not None:
                self._master_update(framework, task.task_id, agent_id, task.state,
                                    f"Agent {agent_id} was marked gone", "REASON_AGENT_REMOVED_BY_OPERATOR")
        for framework in self.frameworks.values():
            self._send(framework.framework_id, {"type": "FAILURE", "failure": {"agent_id": {"value": agent_id}}})

    def agent_back(self, agent_id: str) -> None:
        """An unreachable agent re-registers: its tasks are running again."""
        agent = self.cluster.agents[agent_id]
        agent.state, agent.unreachable_since = "ACTIVE", None
        for task in self.cluster.tasks_of(agent_id=agent_id):
            if task.state != "TASK_UNREACHABLE":
                continue
            task.state = "TASK_RUNNING"
            task.statuses.append(task.state)
            framework = self.frameworks.get(task.framework_id)
            if framework is not None:
                self._master_update(framework, task.task_id, agent_id, "TASK_RUNNING",
                                    f"Agent {agent_id} re-registered", "REASON_AGENT_REREGISTERED")
            self._deliver(task)
