"""The scheduler's domain errors. They say what went wrong, not how to answer it over HTTP:
`scheduler.api.errors` maps them to Marathon's status codes and bodies::

    SchedulerError
    +-- NotFound            an app, task, version or deployment that does not exist
    +-- Conflict            the change contradicts state (id exists, service port taken)
    |   +-- AppLocked       a deployment holds one of the apps (the caller may force)
    +-- InvalidRequest      a request that cannot mean anything (scale and wipe together)
    +-- Forbidden           allowed in general, not this time (an author approving their own change)
    +-- StoreError          the durable store could not be read or written
        +-- StoreFull       no space left where the store lives (deletions still go through)
        +-- FencedOut       this writer no longer holds the store's fence (another leads)
        +-- StoreUnavailable the store cannot be reached now (ZooKeeper down); retry later
    +-- InvalidOption       a command-line option that cannot mean anything (a bad --zk URL)
"""

from __future__ import annotations

from collections.abc import Sequence


class SchedulerError(Exception):
    """Root of the scheduler's own errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(SchedulerError):
    pass


class Conflict(SchedulerError):
    pass


class AppLocked(Conflict):
    """The apps are part of running deployments; nothing was changed."""

    def __init__(self, deployment_ids: Sequence[str]) -> None:
        super().__init__(f"locked by deployment(s) {', '.join(deployment_ids)}")
        self.deployment_ids = tuple(deployment_ids)


class InvalidRequest(SchedulerError):
    pass


class Forbidden(SchedulerError):
    """The caller is known and may not do this one thing (approve their own change); 403."""


class StoreError(SchedulerError):
    """The store failed; the change it carried was not acknowledged."""


class StoreFull(StoreError):
    """The disk holding the store is full; the change was not stored."""


class FencedOut(StoreError):
    """A write was refused because the writer's fence no longer matches the store's."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (ZooKeeper down or partitioned away); the change was not
    acknowledged. The API answers 503: reads from memory keep working, writes resume by
    themselves once the store is back."""


class InvalidOption(SchedulerError, ValueError):
    """A command-line option (`--zk`) that cannot mean anything; `message` names the option."""


def app_not_found(app_id: str) -> NotFound:
    return NotFound(f"App '{app_id}' does not exist")
