"""Building the embedded scheduler: its store, its agents and their Docker engine.

`pacer.serve` runs what this builds next to the other services; tests build it in-process.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.backends.local import LocalBackend, build_agents, detected_resources
from scheduler.engine.core import Scheduler
from scheduler.engine.tasks import DEFAULT_DRAIN_SECONDS
from scheduler.state.sqlite_store import SqliteStore

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
    kill_drain_seconds: float = DEFAULT_DRAIN_SECONDS   # HAProxy-routed tasks: time to leave the LB before a kill


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


def make_scheduler(options: ServeOptions) -> Scheduler:
    home = options.home.resolve()
    store = SqliteStore(home / "state.sqlite")
    resources = {**detected_resources(home), **options.resources}
    agents = build_agents(options.agents, resources, options.attributes.get("*", {}), options.networks)
    agents = [a if a.agent_id not in options.attributes else
              type(a)(**{**a.__dict__, "attributes": {**a.attributes, **options.attributes[a.agent_id]}})
              for a in agents]
    docker_host = resolve_docker_host(options.docker_host, os.environ)
    return Scheduler(store, lambda listener: LocalBackend(agents, home, listener.on_status, docker_host=docker_host),
                     drain_seconds=options.kill_drain_seconds)
