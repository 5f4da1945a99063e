"""Launch backoff per app: Marathon's RateLimiter as values, with `now` passed in.

A failed task delays the next launch of its app. The first failure waits `backoffSeconds`;
each later one multiplies the delay by `backoffFactor`, never beyond `maxLaunchDelaySeconds`
(defaults 1 s, 1.15, 300 s give 1, 1.15, 1.3225, ... 300). A task killed on purpose
(TASK_KILLED) is not a failure; a kill for failed health checks is, and the caller passes it
as TASK_FAILED. The delay is forgotten after `delay + max_delay` without a failure
(Marathon's cleanUpOverdueDelays), on a new config version or restart, and on
`DELETE /v2/queue/{id}/delay`; those last two are the caller's: it simply drops the record.
"""

from __future__ import annotations

from dataclasses import dataclass

# Mesos task states. A failure raises the delay; the rest do not. TASK_LOST raises it as in
# Marathon before 1.4 partition awareness (an agent that vanishes keeps a crash loop slow).
FAILURE_STATES = frozenset({
    "TASK_FAILED", "TASK_FINISHED", "TASK_ERROR", "TASK_LOST", "TASK_GONE", "TASK_DROPPED",
})
NON_FAILURE_STATES = frozenset({
    "TASK_KILLED", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN", "TASK_UNREACHABLE", "TASK_KILLING",
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING",
})


@dataclass(frozen=True)
class Backoff:
    """The current delay of one app and when its next launch may happen (seconds)."""

    delay: float
    next_launch_at: float
    last_failure_at: float


def _check(backoff_seconds: float, factor: float, max_delay: float) -> None:
    if backoff_seconds < 0 or max_delay < 0:
        raise ValueError(f"backoff ({backoff_seconds}) and max delay ({max_delay}) must be >= 0")
    if factor < 1:
        raise ValueError(f"backoff factor must be >= 1, got {factor}")


def record_failure(current: Backoff | None, now: float, backoff_seconds: float, factor: float,
                   max_delay: float) -> Backoff:
    """The backoff after one more failure at `now`."""
    _check(backoff_seconds, factor, max_delay)
    delay = min(backoff_seconds, max_delay) if current is None else min(current.delay * factor, max_delay)
    return Backoff(delay=delay, next_launch_at=now + delay, last_failure_at=now)


def launch_allowed(b: Backoff | None, now: float) -> bool:
    return b is None or now >= b.next_launch_at


def time_left(b: Backoff | None, now: float) -> float:
    """Seconds until a launch is allowed (`/v2/queue` delay.timeLeftSeconds); 0 when allowed."""
    return 0.0 if b is None else max(0.0, b.next_launch_at - now)


def expired(b: Backoff, now: float, max_delay: float) -> bool:
    """No failure for `delay + max_delay` seconds: forget the delay (cleanUpOverdueDelays)."""
    return now > b.last_failure_at + b.delay + max_delay


def counts_as_failure(task_state: str) -> bool:
    """Whether a task ending in this Mesos state raises the app's launch delay."""
    if task_state in FAILURE_STATES:
        return True
    if task_state in NON_FAILURE_STATES:
        return False
    raise ValueError(f"unknown task state {task_state!r}")
