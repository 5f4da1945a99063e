"""The life of a Pacer process: run its services until a signal, then stop them in a bounded order.

`pacer serve`, `pacer autoscaler` and `pacer haproxy-bridge` share it: what a start-up has
started is recorded in `Started` as it goes, so a stop (after a signal, a failed service or
a start-up cut short) stops exactly that, step by step within `pacer.shutdown`'s deadlines,
and closes the store last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from haproxy_bridge.service import HaproxyBridge
from metrics import MetricsBackend
from pacer.ha import REJOIN_EXIT, HaNode, LeadershipLost, Rejoin
from pacer.shutdown import Step, StopSignals, run_steps, stop_tasks, until_stopped
from pacer_client import PacerClient
from scheduler.auth.audit import AuditLog
from scheduler.engine.core import Scheduler

log = logging.getLogger(__name__)

SERVICES_SECONDS = 2.0
HTTP_SECONDS = 2.5
BRIDGE_SECONDS = 2.5
SCHEDULER_SECONDS = 2.0
METRICS_SECONDS = 1.0
CLIENT_SECONDS = 0.5


@dataclass
class Started:
    """What a run has started so far: its shutdown stops exactly these."""

    scheduler: Scheduler | None = None
    metrics: MetricsBackend | None = None
    client: PacerClient | None = None
    runner: web.AppRunner | None = None
    bridge: HaproxyBridge | None = None
    ha: HaNode | None = None
    audit: AuditLog | None = None
    services: dict[str, Coroutine[Any, Any, None]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def run_until_stopped(start: Callable[[Started], Coroutine[Any, Any, None]]) -> int:
    """The life of a service process: start, run the services until SIGTERM/SIGINT, stop.

    Returns 0 after a stop (a signal during start-up included), 1 when a service failed on
    its own. Raises `StartupError`, once whatever had started is stopped again, when the
    process cannot start as configured.
    """
    signals = StopSignals(asyncio.get_running_loop())
    signals.install()
    started = Started()
    try:
        if not await until_stopped(start(started), signals.stop):
            return 0
        return await _serve(started, signals.stop)
    finally:
        await _stop(started)


async def _serve(started: Started, stop: asyncio.Event) -> int:
    """Run the services until `stop`: 0 then, 1 when a service raised first.

    A service that returns (the bridge giving up as a guest, a one-off check) is done; one
    that raises stops Pacer, since a scheduler without its loop must not keep answering.
    """
    started.tasks = [asyncio.create_task(coro, name=name) for name, coro in started.services.items()]
    started.services = {}
    stopped = asyncio.ensure_future(stop.wait())
    pending: set[asyncio.Future[Any]] = {stopped, *started.tasks}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                return 0
            if any(_failed(task) for task in done):
                return REJOIN_EXIT if any(isinstance(t.exception(), Rejoin) for t in done if not t.cancelled()) \
                    else 1
    finally:
        stopped.cancel()


def _failed(task: asyncio.Future[Any]) -> bool:
    """Whether a service that ended raised; if so, it is logged with its traceback (a bug)."""
    if task.cancelled() or task.exception() is None:
        return False
    exc = task.exception()
    if isinstance(exc, LeadershipLost):       # an expected end of a leader's term, not a bug
        log.warning("%s", exc)
        return True
    name = task.get_name() if isinstance(task, asyncio.Task) else "a service"
    log.error("service %s failed: %s; stopping", name, exc, exc_info=exc)
    return True


async def _stop(started: Started) -> None:
    """Stop what was started within the shutdown deadline; the tasks keep running.

    The store is flushed and closed last, whatever happened before: it is synchronous and
    quick, and it keeps the instance records of the last moments (pids of fresh launches).
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    for coro in started.services.values():   # built, never started: start-up was cut short
        coro.close()
    unfinished = await run_steps(_shutdown_steps(started))
    _close_store(started.scheduler, started.ha)
    level = logging.INFO if started.tasks else logging.DEBUG
    log.log(level, "stopped in %.1f s%s%s", loop.time() - began,
            f" ({', '.join(unfinished)} left behind)" if unfinished else "",
            "; tasks keep running, the next start re-adopts them" if started.scheduler is not None else "")


def _shutdown_steps(started: Started) -> list[Step]:
    """In order: no new passes, then no new launches (a burst of them keeps the event loop
    busy), then the HTTP server (answering until then), HAProxy, and the rest."""
    steps = []
    if started.tasks:
        steps.append(Step("services", lambda: stop_tasks(started.tasks), SERVICES_SECONDS))
    if started.scheduler is not None:
        steps.append(Step("launches and kills in flight", started.scheduler.close, SCHEDULER_SECONDS,
                          expired=_kills_resent))
    if started.runner is not None:
        steps.append(Step("HTTP server and event streams", lambda: _stop_http(started), HTTP_SECONDS))
    if started.bridge is not None:
        bridge = started.bridge
        steps.append(Step("HAProxy bridge", bridge.close, BRIDGE_SECONDS, expired=lambda: _kill_haproxy(bridge)))
    if started.metrics is not None:
        steps.append(Step("metrics", started.metrics.close, METRICS_SECONDS))
    if started.client is not None:
        steps.append(Step("API client", started.client.close, CLIENT_SECONDS))
    if started.audit is not None:
        audit = started.audit
        steps.append(Step("audit log", lambda: asyncio.to_thread(audit.close), CLIENT_SECONDS))
    return steps


async def _stop_http(started: Started) -> None:
    """End the event streams, stop listening, let open requests end (`HTTP_GRACE_SECONDS`)."""
    if started.scheduler is not None:
        started.scheduler.events.close()
    assert started.runner is not None
    await started.runner.cleanup()


def _kill_haproxy(bridge: HaproxyBridge) -> None:
    """HAProxy must not outlive the bridge: SIGKILL its master (its workers exit with it)."""
    pid = bridge.process.pid
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
        log.warning("HAProxy master %d killed: it did not stop in time", pid)
    except ProcessLookupError:
        pass


def _kills_resent() -> None:
    log.info("kills still in flight are sent again at the next start (their tasks are marked as being killed)")


def _close_store(scheduler: Scheduler | None, ha: HaNode | None = None) -> None:
    """Flush and close the store; with `--zk`, leave the election too (a successor leads at once)."""
    try:
        if scheduler is not None and (ha is None or ha.serving):
            scheduler.state.drain()
    except Exception as exc:  # a full disk, a lost leadership: what was acknowledged is committed already
        log.warning("shutdown: last instance records not written: %s", exc)
    finally:
        if scheduler is not None:
            scheduler.state.close()
        if ha is not None:
            ha.close()
        elif scheduler is not None:
            scheduler.store.close()


__all__ = ["Started", "run_until_stopped"]
