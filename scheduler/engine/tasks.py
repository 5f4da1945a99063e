"""`TaskRunner`: starts and kills tasks through the backend and records how they end.

It is the only place that calls the backend for a task: launches run concurrently under the
backend's bound (`launch_concurrency`: the embedded agents fork, so a large deployment must not
open thousands of launches at once; a Mesos master takes a pass's launches in a few messages);
a kill marks the instance as killing first (it stops counting toward `instances` at once) and
publishes TASK_KILLING. Status updates from the backend are judged by the pure
`judge_status` and written to the state here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from app_definitions import AppDefinition

from scheduler.backends import BackendListener, ClusterBackend, StatusUpdate
from scheduler.decide.status import judge_status
from scheduler.state.clock import Clock
from scheduler.state.cluster import ClusterState
from scheduler.state.model import RUNNING, STAGING, TERMINAL_STATES, Instance, condition_of
from scheduler.telemetry import Telemetry

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 3.0
DEFAULT_DRAIN_SECONDS = 2.0
HAPROXY_LABEL_PREFIX = "HAPROXY_"


def routed_by_haproxy(app: AppDefinition | None) -> bool:
    """Apps with marathon-lb labels get traffic through the HAProxy bridge."""
    return app is not None and any(key.startswith(HAPROXY_LABEL_PREFIX) for key in app.labels)


class EventPublisher(Protocol):
    def publish(self, event_type: str, **fields: Any) -> None: ...


class TaskKiller(Protocol):
    """What the write path and the health checker need to end a task."""

    def kill(self, inst: Instance, reason: str = "") -> None: ...


class TaskRunner:
    def __init__(self, state: ClusterState, backend_factory: Callable[[BackendListener], ClusterBackend],
                 events: EventPublisher, clock: Clock, *, on_change: Callable[[], None],
                 on_ended: Callable[[str], None], drain_seconds: float = DEFAULT_DRAIN_SECONDS,
                 may_act: Callable[[], bool] = lambda: True,
                 on_health: Callable[[str, bool], None] = lambda instance_id, healthy: None,
                 telemetry: Telemetry | None = None) -> None:
        self._state = state
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._on_health = on_health      # a health verdict the backend reported (Mesos-run checks)
        self._may_act = may_act          # False while another instance may lead: no launch, no kill
        self.backend = backend_factory(self)
        self._events = events
        self._clock = clock
        self._on_change = on_change      # wakes the scheduling loop
        self._on_ended = on_ended        # an instance ended: forget its health records
        self._drain_seconds = drain_seconds
        self._slots = asyncio.Semaphore(self.backend.launch_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- bookkeeping of background work -------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.close()

    def _grace(self, inst: Instance) -> float:
        record = self._state.apps.get(inst.app_id)
        return record.definition.task_kill_grace_seconds if record is not None else DEFAULT_GRACE_SECONDS

    # -- kills and launches -------------------------------------------------------------
    def kill(self, inst: Instance, reason: str = "") -> None:
        """Stop counting the instance at once; signal it after it had time to leave HAProxy.

        TASK_KILLING takes a routed task out of the load balancer (the bridge drains it),
        but the bridge needs a moment to hear of it: signalling at once would cut responses
        in flight. A running task of a routed app therefore gets its `drain_seconds` before
        the backend kills it; anything else is killed at once."""
        if inst.killing:
            return
        self._state.put_instance(inst.with_(killing=True, kill_reason=reason))
        self.publish_status(inst, "TASK_KILLING")
        self._spawn(self._kill_after(inst, self._drain_delay(inst)))

    def expunge(self, inst: Instance) -> None:
        """Forget an unreachable instance its app's strategy gave up, and have the backend kill
        its task should its agent ever come back (the replacement runs by now)."""
        log.warning("task %s of %s was unreachable since %s: expunged (unreachableStrategy)", inst.instance_id,
                    inst.app_id, inst.unreachable_since)
        self._state.remove_instance(inst.instance_id)
        self._on_ended(inst.instance_id)
        self._spawn(self._kill_after(inst, 0.0))

    def drain_for(self, app: AppDefinition) -> float:
        """The drain a new instance of `app` gets, decided at launch (the app may be gone by
        the time the instance is killed)."""
        return self._drain_seconds if routed_by_haproxy(app) else 0.0

    @staticmethod
    def _drain_delay(inst: Instance) -> float:
        return inst.drain_seconds if inst.state == RUNNING and inst.ports else 0.0

    async def _kill_after(self, inst: Instance, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if not self._may_act():
            log.warning("not killing task %s: this instance is not (or no longer surely) the leader", inst.instance_id)
            return
        self._telemetry.count_kill()
        await self.backend.kill(inst, self._grace(inst))

    def rekill(self, inst: Instance) -> None:
        """A kill that died with an earlier run of the scheduler: ask the backend again."""
        self._spawn(self._kill_after(inst, 0.0))

    def launch(self, inst: Instance, app: AppDefinition) -> None:
        """Record the new instance (STAGING) and start it in the background."""
        self._state.put_instance(inst)
        self._spawn(self._start(inst, app))

    async def _start(self, inst: Instance, app: AppDefinition) -> None:
        async with self._slots:
            # A process launch forks inline and never waits: without this yield every launch of
            # a pass ran in one turn of the event loop (2,000 launches held the API and SIGTERM
            # for ~30 s); with it, at most `launch_concurrency` run between two polls for I/O.
            await asyncio.sleep(0)
            if self._state.instances.get(inst.instance_id) is None:
                return
            if not self._may_act():
                log.warning("not launching task %s: this instance is not (or no longer surely) the leader",
                            inst.instance_id)
                return
            self._telemetry.count_launch()
            try:
                launched = await self.backend.launch(inst, app)
            except Exception as exc:  # launch failures are task failures, never scheduler crashes
                self._telemetry.count_launch_failure()
                self.on_status(StatusUpdate(inst.instance_id, "TASK_FAILED", f"launch failed: {exc}"))
                return
            current = self._state.instances.get(inst.instance_id)
            if current is None or current.state != STAGING:
                return
            running = launched.with_(state=RUNNING, started_at=self._clock.now(), killing=current.killing)
            self._state.put_instance(running)
            self.publish_status(running, RUNNING)
            self._on_change()

    # -- what the backend tells us ------------------------------------------------------
    def on_offers(self) -> None:
        self._state.note_capacity()
        self._on_change()

    def publish_status(self, inst: Instance, state: str, message: str = "") -> None:
        self._events.publish(
            "status_update_event", slaveId=inst.agent_id, taskId=inst.instance_id, taskStatus=state,
            message=message, appId=inst.app_id, host=inst.host,
            ipAddresses=[{"ipAddress": "127.0.0.1", "protocol": "IPv4"}],
            ports=list(inst.ports), version=inst.version)
        self._events.publish(
            "instance_changed_event", instanceId=inst.instance_id, condition=condition_of(state),
            runSpecId=inst.app_id, agentId=inst.agent_id, host=inst.host, runSpecVersion=inst.version)

    def on_status(self, update: StatusUpdate) -> None:
        inst = self._state.instances.get(update.instance_id)
        if inst is None:
            return
        self.publish_status(inst, update.state, update.message)
        record = self._state.apps.get(inst.app_id)
        now = self._clock.now()
        verdict = judge_status(inst, update.state, update.message,
                               record.definition if record is not None else None,
                               self._state.backoffs.get(inst.app_id), now)
        if verdict.instance is not None:
            self._state.put_instance(verdict.instance)
            if update.healthy is not None and update.state == RUNNING:
                self._on_health(inst.instance_id, update.healthy)
            return
        if update.state in TERMINAL_STATES:
            self._state.remove_instance(inst.instance_id)
            self._on_ended(inst.instance_id)
        if verdict.backoff is not None:
            self._state.set_backoff(inst.app_id, verdict.backoff, must_persist=False)
        if verdict.failure is not None:
            self._state.record_failure(inst.app_id, verdict.failure)
            log.info("task %s of %s ended: %s %s", inst.instance_id, inst.app_id, verdict.failure["state"],
                     verdict.failure["message"])
        self._on_change()
