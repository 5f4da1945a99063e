"""Building the embedded scheduler: its store, its agents and their Docker engine.

`pacer.serve` runs what this builds next to the other services; tests build it in-process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from executor.sandboxes import DiskPolicy
from executor.task_logs import LogPolicy
from scheduler.backends.local import DEFAULT_PIDS_MAX, LocalBackend, build_agents, detected_resources
from scheduler.engine.core import Scheduler
from scheduler.engine.tasks import DEFAULT_DRAIN_SECONDS
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.store import Fence, Store

if TYPE_CHECKING:   # the Mesos backend (and kazoo under it) loads with `--master` only
    from scheduler.backends.mesos import MesosConfig

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
    docker_host: str | None = None   # None: detect (see resolve_docker_host); "none" or "": no Docker
    cpu_quota: bool = False          # process tasks' cpus as a hard CFS quota too, not only as shares
    pids_max: int = DEFAULT_PIDS_MAX  # processes per process task (0: unlimited); needs cgroups
    kill_drain_seconds: float = DEFAULT_DRAIN_SECONDS   # HAProxy-routed tasks: time to leave the LB before a kill
    mesos: MesosConfig | None = None  # a Mesos master runs the tasks instead of the embedded agents
    task_log_max_bytes: int = LogPolicy.max_bytes  # process tasks' stdout/stderr: size of one file...
    task_log_files: int = LogPolicy.files          # ...and files kept per stream (apps may lower both)
    min_free_disk_mb: float = DiskPolicy.min_free_mb  # launches wait while less is free under the home
    sandbox_gc_delay: float = DiskPolicy.gc_delay     # seconds an ended task's sandbox is kept (less when full)
    sandbox_gc_keep: int = DiskPolicy.keep_per_app    # newest ended sandboxes always kept per app
    disk_watch_interval: float = DiskPolicy.watch_interval  # seconds between sandbox collections


DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
NO_DOCKER = frozenset({"", "none", "off"})


def _socket_answers(path: Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
        return True
    except OSError:
        return False


def resolve_docker_host(option: str | None, environ: Mapping[str, str],
                        default_socket: Path = DEFAULT_DOCKER_SOCKET) -> str | None:
    """The Docker engine DOCKER apps run on, or None for none.

    An explicit `--docker-host` wins (`none` disables Docker); else `$DOCKER_HOST` (taken as
    given: if it does not answer, DOCKER apps wait in the queue saying so); else the default
    socket if something accepts connections on it; else no Docker.
    """
    if option is not None:
        return None if option.strip().lower() in NO_DOCKER else option.strip()
    from_env = environ.get("DOCKER_HOST", "").strip()
    if from_env:
        return None if from_env.lower() in NO_DOCKER else from_env
    if _socket_answers(default_socket):
        return f"unix://{default_socket}"
    return None


@dataclass(frozen=True)
class SharedState:
    """State shared by several schedulers (`--zk`): their store, and what the election says
    this one may do (the fence its writes carry, whether it may launch and kill)."""

    store: Store
    fence: Callable[[], Fence | None]
    may_act: Callable[[], bool]


def make_scheduler(options: ServeOptions, shared: SharedState | None = None) -> Scheduler:
    home = options.home.resolve()
    if shared is not None:
        if options.mesos is None:
            raise ValueError("a shared store needs a Mesos master: the embedded agents' tasks are this machine's")
        return _mesos_scheduler(options, options.mesos, shared.store, shared)
    store = SqliteStore(home / "state.sqlite")
    if options.mesos is not None:
        return _mesos_scheduler(options, options.mesos, store)
    resources = {**detected_resources(home), **options.resources}
    agents = build_agents(options.agents, resources, options.attributes.get("*", {}), options.networks)
    agents = [a if a.agent_id not in options.attributes else
              type(a)(**{**a.__dict__, "attributes": {**a.attributes, **options.attributes[a.agent_id]}})
              for a in agents]
    docker_host = resolve_docker_host(options.docker_host, os.environ)
    logs = LogPolicy(options.task_log_max_bytes, options.task_log_files)
    disk = DiskPolicy(min_free_mb=options.min_free_disk_mb, gc_delay=options.sandbox_gc_delay,
                      keep_per_app=options.sandbox_gc_keep, watch_interval=options.disk_watch_interval)
    return Scheduler(store, lambda listener: LocalBackend(agents, home, listener.on_status, docker_host=docker_host,
                                                          cpu_quota=options.cpu_quota, pids_max=options.pids_max,
                                                          logs=logs, disk=disk),
                     drain_seconds=options.kill_drain_seconds, write_behind=True)


def _mesos_scheduler(options: ServeOptions, config: MesosConfig, store: Store,
                     shared: SharedState | None = None) -> Scheduler:
    """A framework on the Mesos master(s) of `config`; the framework id lives in the store."""
    from scheduler.backends.mesos import FrameworkIds, MesosBackend

    if options.agents != 1 or options.resources or options.attributes or options.networks:
        log.warning("--master is set: the embedded-agent flags (--agents, --agent-resources, --attribute, --network) "
                    "do nothing; the Mesos agents offer what they have")
    if config.webui_url is None:
        config = dataclasses.replace(config, webui_url=f"http://{options.host}:{options.port}")
    ids = FrameworkIds()
    may_act = shared.may_act if shared is not None else (lambda: True)
    scheduler = Scheduler(store, lambda listener: MesosBackend(config, listener, ids, may_act=may_act),
                          drain_seconds=options.kill_drain_seconds,
                          fence=shared.fence if shared is not None else None,
                          may_act=may_act, write_behind=True)
    ids.bind(scheduler.state)
    return scheduler
