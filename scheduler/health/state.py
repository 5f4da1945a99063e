"""Health-check bookkeeping, Marathon's HealthCheckActor rules as a pure function.

`record_check` takes one check outcome and returns the new record plus what follows from it
(did `alive` flip, does the failure count, must the task be killed). The checker does the
probing and acts on the answer; nothing here reads the clock or touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass

MARATHON_LEVEL = frozenset({"HTTP", "HTTPS", "TCP"})


@dataclass(frozen=True)
class HealthRecord:
    instance_id: str
    alive: bool = False
    consecutive_failures: int = 0
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None


@dataclass(frozen=True)
class CheckPolicy:
    protocol: str
    grace_period_seconds: float
    max_consecutive_failures: int
    ignore_http_1xx: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    record: HealthRecord
    flipped: bool           # `alive` changed: publish health_status_changed_event
    counted_failure: bool   # publish failed_health_check_event
    kill: bool              # past maxConsecutiveFailures: kill and replace the task

    @property
    def changes_health(self) -> bool:
        """Whether what the scheduler decides on (alive, failing and why, kill) changed; a
        success after a success only moves `last_success`."""
        return self.flipped or self.counted_failure or self.kill


def should_kill(policy: CheckPolicy, consecutive_failures: int) -> bool:
    """Marathon-level checks: 0 means never kill. Mesos-level: kill at >= max (0 kills at once)."""
    if policy.protocol in MARATHON_LEVEL:
        return policy.max_consecutive_failures > 0 and consecutive_failures >= policy.max_consecutive_failures
    return consecutive_failures >= policy.max_consecutive_failures


def record_check(record: HealthRecord, policy: CheckPolicy, *, ok: bool | None, status: int | None = None,
                 cause: str | None = None, now: float, started_at: float) -> CheckOutcome:
    """Fold one probe result into the record.

    ok=None means "no verdict" (a 1xx answer with ignoreHttp1xx): nothing changes. Failures
    inside the grace period are ignored until the first success, so slow starters are not
    killed while booting.
    """
    if ok is None or (status is not None and 100 <= status < 200 and policy.ignore_http_1xx):
        return CheckOutcome(record, flipped=False, counted_failure=False, kill=False)
    if ok:   # records are built directly: `dataclasses.replace` costs more than the rest of a verdict
        new = HealthRecord(record.instance_id, True, 0,
                           record.first_success if record.first_success is not None else now, now,
                           record.last_failure, record.last_failure_cause)
        return CheckOutcome(new, not record.alive, False, False)
    in_grace = record.first_success is None and now - started_at < policy.grace_period_seconds
    if in_grace:
        return CheckOutcome(record, flipped=False, counted_failure=False, kill=False)
    failures = record.consecutive_failures + 1
    new = HealthRecord(record.instance_id, False, failures, record.first_success, record.last_success, now, cause)
    return CheckOutcome(new, flipped=record.alive, counted_failure=True, kill=should_kill(policy, failures))


def instance_health(records: list[HealthRecord] | None, has_checks: bool) -> bool | None:
    """Healthy when every check is alive; None when the app has no checks or nothing is known yet."""
    if not has_checks:
        return None
    if not records:
        return None
    if any(r.last_success is None and r.last_failure is None for r in records):
        return None if all(r.last_success is None and r.last_failure is None for r in records) else False
    return all(r.alive for r in records)
