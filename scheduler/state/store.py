"""The `Store` seam: what the scheduler keeps durably, free of any storage engine.

State is a few kinds of records: app versions (the current one of each app, plus history),
instances, deployments, backoff, and small metadata (the framework id). Deployments are the
running ones and the pending ones (a scheduled cutover, a change held for approval: records
with ``"kind": "pending"``, see `scheduler.deploy.pending`), in one collection and one id
space, so a pending deployment that starts is replaced by its running record in one write. A change is
a list of `Write`s committed as one transaction: all of it is durable, or none of it. A store
for several schedulers (ZooKeeper) also needs to refuse a deposed leader's late writes, so a
commit may carry a `Fence`: it goes through only while the store still holds the fence's
value, and fails with `FencedOut` otherwise.

Implementations: `SqliteStore` (one machine). Each must keep the contract that anything
`commit` returned from survives `kill -9` of the process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scheduler.state.model import Instance

MAX_VERSIONS_PER_APP = 50


@dataclass(frozen=True)
class PutAppVersion:
    """A new version of an app, which becomes its current one (older ones are history)."""

    app_id: str
    version: str
    definition: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteApp:
    """Forget the app, its history and its backoff, as Marathon does on DELETE."""

    app_id: str


@dataclass(frozen=True)
class PutInstance:
    instance: Instance


@dataclass(frozen=True)
class DeleteInstance:
    instance_id: str


@dataclass(frozen=True)
class PutDeployment:
    deployment_id: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteDeployment:
    deployment_id: str


@dataclass(frozen=True)
class PutBackoff:
    """An app's launch backoff; None clears it."""

    app_id: str
    record: Mapping[str, float] | None


@dataclass(frozen=True)
class PutMeta:
    key: str
    value: str


Write = (PutAppVersion | DeleteApp | PutInstance | DeleteInstance | PutDeployment | DeleteDeployment
         | PutBackoff | PutMeta)


@dataclass(frozen=True)
class Fence:
    """Commit only while metadata `key` still holds `value` (the writer's leadership token)."""

    key: str
    value: str


@dataclass(frozen=True)
class StoredState:
    """Everything a scheduler loads when it starts or takes over."""

    apps: Sequence[tuple[str, str, Mapping[str, Any]]] = ()      # (app id, current version, definition)
    instances: Sequence[Instance] = ()
    deployments: Sequence[Mapping[str, Any]] = ()
    backoffs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)


class Store(Protocol):
    location: str     # where the state lives, for operators (a path, a ZooKeeper URL)

    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        """Make every write durable in one transaction; raises StoreError (FencedOut) instead."""

    def load(self) -> StoredState:
        """The whole current state."""

    def app_versions(self, app_id: str) -> list[str]:
        """Stored versions of an app, newest first."""

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        """One stored version of an app's definition."""

    def close(self) -> None:
        """Release the store; later calls fail."""
