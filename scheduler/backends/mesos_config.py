"""How `pacer serve --master` talks to Mesos: the framework's settings, and where its id is kept.

The defaults are Marathon's where Marathon has the setting (`--failover_timeout` a week,
`--decline_offer_duration` 120 s, `--task_launch_timeout` 300 s).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.backends.mesos_connection import Backoff

FRAMEWORK_ID_KEY = "mesos-framework-id"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):      # no name for this uid (a bare container)
        return "nobody"


@dataclass(frozen=True)
class MesosConfig:
    """`masters`: base URLs (`http://host:5050`); any of them will do, the leader is found by redirect."""

    masters: tuple[str, ...]
    framework_name: str = "pacer"
    role: str = "*"
    user: str = field(default_factory=_current_user)  # what the tasks run as
    failover_timeout: float = 7 * 24 * 3600.0   # Marathon's default: a week to come back before Mesos kills the tasks
    webui_url: str | None = None
    refuse_seconds: float = 120.0               # Marathon's --decline_offer_duration
    heartbeat_misses: int = 5
    subscribe_timeout: float = 20.0             # start-up waits this long for the master, then goes on
    reconcile_timeout: float = 10.0
    reconciliation_interval: float = 600.0
    launch_timeout: float = 300.0               # Marathon's --task_launch_timeout
    batch_window: float = 0.05
    launch_concurrency: int = 1_000_000         # launches awaiting TASK_RUNNING at once: each is a future here
    parallel_lanes: int = 32                    # ACCEPT and ACKNOWLEDGE calls in flight at once (they need no order)
    offer_wait: float = 30.0
    backoff: Backoff = Backoff()


class MetaStore(Protocol):
    """What `FrameworkIds` needs of the scheduler's state (`ClusterState`): small durable values."""

    def meta(self, key: str) -> str | None: ...
    def put_meta(self, key: str, value: str) -> None: ...


class FrameworkIds:
    """The framework id, kept in the scheduler's store once bound to it (memory until then)."""

    def __init__(self, store: MetaStore | None = None) -> None:
        self._store = store
        self._value: str | None = None

    def bind(self, store: MetaStore) -> None:
        self._store = store

    def load(self) -> str | None:
        if self._store is not None:
            return self._store.meta(FRAMEWORK_ID_KEY) or None
        return self._value

    def save(self, framework_id: str | None) -> None:
        self._value = framework_id
        if self._store is not None and self._store.meta(FRAMEWORK_ID_KEY) != (framework_id or ""):
            self._store.put_meta(FRAMEWORK_ID_KEY, framework_id or "")
