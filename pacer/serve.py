"""`pacer serve`: every service in one process on the embedded default.

Wiring only: the scheduler (store, embedded agents, loop, health checks, API), the task
sampler writing metrics, and the autoscaler reading them back and resizing apps through the
scheduler's own HTTP API, exactly as it would from another process. Each long-lived loop is a
named task of one TaskGroup. SIGTERM/SIGINT stop the services but leave tasks running, as a
Mesos agent's tasks outlive their framework; the next start with the same home re-adopts them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from autoscaler.api import build_autoscaler_app
from autoscaler.service import Autoscaler
from haproxy_bridge.options import BridgeOptions
from haproxy_bridge.service import HaproxyBridge
from haproxy_bridge.status_api import build_status_app
from metrics import open_metrics
from metrics.options import MetricsOptions
from scheduler.api import build_api
from pacer_client import PacerClient
from scheduler.engine.sampling import TaskSampler
from scheduler.engine.build import ServeOptions, make_scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacerOptions:
    serve: ServeOptions = field(default_factory=ServeOptions)
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    autoscale_interval: float = 15.0
    autoscaler: bool = True
    bridge: BridgeOptions | None = None       # None: no HAProxy bridge in this process


def _decision_event(publish: Any) -> Any:
    def emit(decision: dict[str, Any]) -> None:
        publish("autoscaler_decision_event",
                **{k: v for k, v in decision.items() if k not in ("eventType", "timestamp")})
    return emit


async def run_pacer(options: PacerOptions) -> None:
    serve = options.serve
    scheduler = make_scheduler(serve)
    await scheduler.start()
    metrics = open_metrics(options.metrics)
    api = build_api(scheduler, leader=f"{serve.host}:{serve.port}")
    client = PacerClient(f"http://{serve.host}:{serve.port}")
    autoscaler = Autoscaler(client, metrics.source, metrics.sink, serve.home.resolve() / "autoscaler",
                            interval=options.autoscale_interval,
                            on_decision=_decision_event(scheduler.events.publish))
    api.add_subapp("/v2/autoscaler", build_autoscaler_app(autoscaler))
    bridge = HaproxyBridge(options.bridge) if options.bridge is not None else None
    if bridge is not None:
        api.add_subapp("/v2/haproxy", build_status_app(bridge))
    runner = web.AppRunner(api, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, serve.host, serve.port).start()
    gc.collect()
    gc.freeze()     # start-up objects never die: keep them out of every later full collection
    log.info("pacer API listening on http://%s:%d (home %s, %d agent(s), metrics %s)",
             serve.host, serve.port, serve.home, serve.agents, metrics.kind)
    print(f"pacer serving on http://{serve.host}:{serve.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services: dict[str, Coroutine[Any, Any, None]] = {
        "scheduler-loop": scheduler.run(),
        "health-checks": scheduler.health.run(),
        "task-sampler": TaskSampler(scheduler.state, metrics.sink, options.metrics.interval,
                                    usages=scheduler.backend.usages).run(),
    }
    if options.autoscaler:
        services["autoscaler"] = autoscaler.run()
    if bridge is not None:
        services["haproxy-bridge"] = _run_bridge(bridge)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro, name=name) for name, coro in services.items()]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        scheduler.events.close()    # ends open event streams so the HTTP server can stop
        await runner.cleanup()
        if bridge is not None:
            await bridge.close()       # stops HAProxy by its pid
        await client.close()
        await scheduler.close()
        await metrics.close()
        scheduler.store.close()


async def _run_bridge(bridge: HaproxyBridge) -> None:
    """The bridge is a guest: if HAProxy cannot start (a port in use, no permission), the
    scheduler keeps serving and the reason is in the log and at /v2/haproxy."""
    try:
        await bridge.start()
    except Exception as exc:
        bridge.state.last_error = f"HAProxy bridge did not start: {exc}"
        log.error("%s", bridge.state.last_error)
        return
    await bridge.run()


async def run_autoscaler(master: str, metrics_options: MetricsOptions, interval: float, state_dir: Any,
                         host: str, port: int) -> None:
    """`pacer autoscaler`: the same loop as a separate process, with its policy API on HOST:PORT."""
    metrics = open_metrics(metrics_options)
    client = PacerClient(master)
    autoscaler = Autoscaler(client, metrics.source, metrics.sink, state_dir, interval=interval)
    app = web.Application()
    app.add_subapp("/v2/autoscaler", build_autoscaler_app(autoscaler))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"pacer autoscaler on http://{host}:{port}/v2/autoscaler, scaling apps of {master}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            task = group.create_task(autoscaler.run(), name="autoscaler")
            await stop.wait()
            task.cancel()
    finally:
        await runner.cleanup()
        await client.close()
        await metrics.close()
