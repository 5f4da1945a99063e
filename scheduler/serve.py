"""`pacer serve`: the whole system in one process on the embedded default.

Wiring only: the store, the embedded agents, the scheduler loop and the HTTP API, run as named
tasks of one TaskGroup. SIGTERM/SIGINT stop the scheduler but leave tasks running, as a Mesos
agent's tasks outlive their framework; the next `pacer serve` with the same home re-adopts them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .api import build_api
from .backends.local import LocalBackend, build_agents, detected_resources
from .core import Scheduler
from .store import StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    home: Path = Path("var/pacer")
    agents: int = 1
    resources: dict[str, float] = field(default_factory=dict)   # overrides of detected cpus/mem/disk
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # "*" or agent id -> attrs
    networks: tuple[str, ...] = ()


def make_scheduler(options: ServeOptions) -> Scheduler:
    home = options.home.resolve()
    store = StateStore(home / "state.sqlite")
    resources = {**detected_resources(home), **options.resources}
    agents = build_agents(options.agents, resources, options.attributes.get("*", {}), options.networks)
    agents = [a if a.agent_id not in options.attributes else
              type(a)(**{**a.__dict__, "attributes": {**a.attributes, **options.attributes[a.agent_id]}})
              for a in agents]
    scheduler = Scheduler(store, lambda on_status: LocalBackend(agents, home, on_status))
    framework_id = store.get_meta("framework-id")
    if framework_id is None:
        framework_id = str(uuid.uuid4())
        store.put_meta("framework-id", framework_id)
    scheduler.framework_id = framework_id
    return scheduler


async def serve(options: ServeOptions) -> None:
    scheduler = make_scheduler(options)
    await scheduler.start()
    api = build_api(scheduler, leader=f"{options.host}:{options.port}")
    runner = web.AppRunner(api, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    log.info("pacer API listening on http://%s:%d (home %s, %d agent(s))",
             options.host, options.port, options.home, options.agents)
    print(f"pacer serving on http://{options.host}:{options.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            services = [group.create_task(scheduler.run(), name="scheduler-loop"),
                        group.create_task(scheduler.health.run(), name="health-checks")]
            await stop.wait()
            for task in services:
                task.cancel()
    finally:
        scheduler.events.close()    # ends open event streams so the HTTP server can stop
        await runner.cleanup()
        await scheduler.close()
        scheduler.store.close()
