"""What one refresh did to HAProxy, as values (pure).

A refresh ends in exactly one outcome, and callers (the status view, the history, benchmarks,
tests) match on its type rather than on a string, so a new outcome is a type error wherever it
is not handled yet. Durations are kept unrounded; the status view rounds them for display.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .plan import RuntimePlan


@dataclass(frozen=True, slots=True)
class ServerChanges:
    """How many servers one Runtime API update touched."""

    added: int
    moved: int
    revived: int
    draining: int

    @classmethod
    def of(cls, plan: RuntimePlan) -> ServerChanges:
        return cls(added=len(plan.add), moved=len(plan.move), revived=len(plan.revive), draining=len(plan.drain))


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The rendered configuration is the one HAProxy runs, or one that already failed to load
    (`held`): retrying that on every event would only repeat the failure until the apps change
    or a full resync."""

    held: bool = False


@dataclass(frozen=True, slots=True)
class ServersUpdated:
    """Only servers changed, and the Runtime API applied them: no reload, no new worker."""

    runtime_seconds: float
    servers: ServerChanges


@dataclass(frozen=True, slots=True)
class ReloadDeferred:
    """A reload is needed but came too soon after the last one; it follows in
    `reload_in_seconds`. The server part of the change (`servers`) went through at once, because
    a new instance missing while the old one is killed is an outage."""

    reload_in_seconds: float
    servers: ServerChanges | None


@dataclass(frozen=True, slots=True)
class Started:
    """HAProxy was not running; it was started on the new configuration."""


@dataclass(frozen=True, slots=True)
class Reloaded:
    """A seamless reload through the master: `worker_pid` took over the listeners."""

    worker_pid: int | None
    reload_seconds: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """No configuration passed `haproxy -c`, even with the offending apps left out; the last
    good one stays loaded."""

    error: str


@dataclass(frozen=True, slots=True)
class ReloadFailed:
    """The configuration passed `haproxy -c` but HAProxy refused it at reload; the last good
    file was put back and the old worker keeps serving."""

    error: str


Outcome = Unchanged | ServersUpdated | ReloadDeferred | Started | Reloaded | Rejected | ReloadFailed


@dataclass(frozen=True, slots=True)
class Update:
    """One refresh as the status page lists it: its outcome, how long it took, what asked for it."""

    outcome: Outcome
    seconds: float
    reasons: tuple[str, ...]
    at: float                   # epoch seconds


__all__ = ["Outcome", "Rejected", "ReloadDeferred", "ReloadFailed", "Reloaded", "ServerChanges", "ServersUpdated",
           "Started", "Unchanged", "Update"]


@dataclass
class ReloadResult:
    """How one reload of HAProxy went: the new worker's pid when it came up."""

    ok: bool
    message: str
    seconds: float
    worker_pid: int | None = None
    at: float = field(default_factory=time.time)
