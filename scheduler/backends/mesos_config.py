"""How `pacer serve --master` talks to Mesos: the framework's settings, and where its id is kept.

The defaults are Marathon's where Marathon has the setting (`--failover_timeout` a week,
`--decline_offer_duration` 120 s, `--task_launch_timeout` 300 s).

With `zookeeper` (`--master zk://…`) the masters are found in ZooKeeper at every subscription
(`mesos_discovery`), and `masters` holds only the zk:// URL without its credentials, for what
/v2/info shows as Marathon's `master`. `principal` goes into FrameworkInfo; with `secret` too,
every request to the master carries HTTP basic authentication (Mesos's `--authenticate_http_frameworks`).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from scheduler.backends.mesos_connection import Backoff, MasterSource
from scheduler.backends.mesos_discovery import ZkMasters, ZkMasterWatch

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
    zookeeper: ZkMasters | None = None          # the masters register in ZooKeeper: the leader is read there
    principal: str | None = None                # Marathon's --mesos_authentication_principal
    secret: str | None = field(default=None, repr=False)   # … and the content of --mesos_authentication_secret_file
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

    @property
    def auth(self) -> aiohttp.BasicAuth | None:
        """HTTP basic authentication to the master, when both the principal and the secret are set."""
        return aiohttp.BasicAuth(self.principal, self.secret) if self.principal and self.secret is not None else None

    def discovery(self) -> MasterSource | None:
        """Where each subscription finds its master: ZooKeeper, or (None) the fixed `masters`."""
        return ZkMasterWatch(self.zookeeper) if self.zookeeper is not None else None


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
