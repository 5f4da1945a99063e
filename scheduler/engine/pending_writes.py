"""The write path of pending deployments: scheduled cutovers and changes held for approval.

Submitting validates exactly as an immediate write does (`AppWrites.prepare_*`: the same 422s
and 409s), plans against the current apps (for display), and stores a `PendingDeployment`
— nothing else changes until it starts. Each scheduling round calls `start_due(now)`, which
asks the pure `decide.cutover.pending_verdicts` and carries the verdicts out: a due change is
started through `AppWrites.deploy_changes` under the same deployment id (its running record
replaces the pending one in the store), a change whose apps moved on is refused and kept
visible as failed with the reason, an approval that ran out ends it. Every step is an event
on /v2/events, carrying a ``plan`` with ``affectedApps`` so the event filter of a secured
Pacer shows it only to those who may view the apps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from app_definitions import ValidationFailed

from scheduler.decide.cutover import PendingVerdict, pending_verdicts
from scheduler.deploy.pending import ApprovalNeed, PendingDeployment, parse_at
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.tasks import EventPublisher
from scheduler.engine.writes import AppWrites
from scheduler.errors import AppLocked, Conflict, Forbidden, InvalidRequest, NotFound, SchedulerError
from scheduler.state.apps import AppRecord
from scheduler.state.clock import Clock, iso_timestamp
from scheduler.state.cluster import ClusterState

log = logging.getLogger(__name__)

MAX_ENDED = 100
"""Ended pending deployments (refused, rejected, expired) kept listed for their reason; past
this many the oldest are forgotten, so a stream of refusals cannot grow the store forever."""


class PendingWrites:
    def __init__(self, state: ClusterState, writes: AppWrites, events: EventPublisher, clock: Clock,
                 wake: Callable[[], None]) -> None:
        self.state = state
        self._writes = writes
        self.events = events
        self._clock = clock
        self._wake = wake

    # -- submitting ---------------------------------------------------------------------
    def submit(self, records: list[AppRecord], *, at: str | None, author: str | None = None,
               approval: ApprovalNeed | None = None) -> PendingDeployment:
        """Store prepared records as one pending deployment starting at `at` (ISO 8601 with an
        offset; None: as soon as its approval is in). 422 naming `at` when it is past."""
        now = self._clock.now()
        scheduled_at, text = parse_at(at, now) if at is not None else (None, None)
        changes: dict[str, AppRecord | None] = {r.app_id: r for r in records}
        pending_id = str(uuid.uuid4())
        plan = self._writes.plan_changes(changes, pending_id)
        current = self.state.apps
        pending = PendingDeployment(
            id=pending_id, version=plan.version, targets={r.app_id: r.json for r in records},
            based_on={r.app_id: (current[r.app_id].version if r.app_id in current else None) for r in records},
            steps=[s.to_json() for s in plan.steps], created_at=now, scheduled_at=scheduled_at,
            scheduled_text=text, author=author, approval=None if approval is None else approval.held_from(now))
        self.state.save_pending(pending)
        if scheduled_at is not None:
            self.events.publish("deployment_scheduled", id=pending.id, scheduledAt=text,
                                plan=pending.plan_json(), status=pending.status)
        if pending.approval is not None:
            self.events.publish("deployment_awaiting_approval", id=pending.id, plan=pending.plan_json(),
                                author=author, approval=pending.approval.to_json())
        self._wake()
        return pending

    # -- changing one ---------------------------------------------------------------------
    def get(self, pending_id: str) -> PendingDeployment:
        pending = self.state.pending.get(pending_id)
        if pending is None:
            raise NotFound(f"DeploymentPlan {pending_id} does not exist")
        return pending

    def _open(self, pending_id: str, doing: str) -> PendingDeployment:
        pending = self.get(pending_id)
        if not pending.open:
            raise Conflict(f"deployment {pending_id} cannot be {doing}: it already ended ({pending.failure}); "
                           f"DELETE /v2/deployments/{pending_id} removes it")
        return pending

    def cancel(self, pending_id: str, user: str | None = None) -> PendingDeployment:
        """DELETE /v2/deployments/{id} of a pending one: forgotten, nothing had changed yet. An
        ended one (refused, rejected, expired) is removed from the list the same way."""
        pending = self.get(pending_id)
        self.state.forget_pending(pending_id)
        if pending.open:
            self.events.publish("deployment_scheduled_cancelled", id=pending_id, plan=pending.plan_json(),
                                reason="canceled by request", user=user)
        return pending

    def move(self, pending_id: str, body: Any) -> PendingDeployment:
        """PUT /v2/deployments/{id} with ``{"scheduledAt": ...}``: a new start time."""
        if not isinstance(body, dict) or set(body) != {"scheduledAt"}:
            raise ValidationFailed([("/scheduledAt", "the body must be {\"scheduledAt\": \"<ISO 8601 time with an "
                                                     "offset>\"}; only the start time of a scheduled deployment "
                                                     "can be changed")])
        pending = self._open(pending_id, "moved")
        if pending.scheduled_at is None:
            raise InvalidRequest(f"deployment {pending_id} has no start time (it starts once approved); submit "
                                 "it again with ?at= to schedule it")
        at, text = parse_at(body["scheduledAt"], self._clock.now(), field_name="scheduledAt")
        moved = pending.moved(at, text)
        self.state.save_pending(moved)
        self.events.publish("deployment_scheduled_moved", id=pending_id, scheduledAt=text,
                            previousScheduledAt=pending.scheduled_text, plan=moved.plan_json())
        self._wake()
        return moved

    def approve(self, pending_id: str, user: str, comment: str | None) -> PendingDeployment:
        """The approval of `user` (who holds `approver` on its apps: checked by the API's gate)."""
        pending = self._open(pending_id, "approved")
        if pending.approval is None:
            raise InvalidRequest(f"deployment {pending_id} does not need an approval")
        if pending.approval.granted:
            raise Conflict(f"deployment {pending_id} was already approved by {pending.approval.approved_by}")
        if pending.author is not None and user == pending.author:
            raise Forbidden(f"user '{user}' submitted deployment {pending_id} and cannot approve it: another user "
                            "with the approver role on " + ", ".join(pending.app_ids) + " must")
        approved = pending.approved(user, comment, self._clock.now())
        self.state.save_pending(approved)
        self.events.publish("deployment_approved", id=pending_id, plan=approved.plan_json(), user=user,
                            comment=comment, author=pending.author)
        self._wake()
        return approved

    def reject(self, pending_id: str, user: str, comment: str | None) -> PendingDeployment:
        pending = self._open(pending_id, "rejected")
        if pending.approval is None:
            raise InvalidRequest(f"deployment {pending_id} does not need an approval; DELETE it to cancel it")
        reason = f"rejected by {user}" + (f": {comment}" if comment else "")
        ended = pending.failed(reason, self._clock.now(), rejected_by=user)
        self.state.save_pending(ended)
        self._prune_ended()
        self.events.publish("deployment_rejected", id=pending_id, plan=ended.plan_json(), user=user,
                            comment=comment, reason=reason, author=pending.author)
        return ended

    # -- each round -------------------------------------------------------------------------
    def start_due(self, now: float) -> list[PendingVerdict]:
        """Carry out what `pending_verdicts` says for this instant; returns the verdicts acted on."""
        if not self.state.pending:
            return []
        current = {app_id: record.version for app_id, record in self.state.apps.items()}
        acted = []
        for verdict in pending_verdicts(self.state.pending.values(), current, now):
            try:
                if self._act(verdict, now):
                    acted.append(verdict)
            except SchedulerError as exc:        # a store error: the next round tries again
                log.warning("pending deployment %s: %s", verdict.pending.id, exc)
            current = {app_id: record.version for app_id, record in self.state.apps.items()}
        return acted

    def _act(self, verdict: PendingVerdict, now: float) -> bool:
        pending = verdict.pending
        if verdict.action == "applied":
            self.state.forget_pending(pending.id, delete_record=pending.id not in self.state.deployments)
            return True
        if verdict.action in ("refuse", "expire"):
            self._end(pending, verdict.reason, now, "deployment_scheduled_refused" if verdict.action == "refuse"
                      else "deployment_approval_expired")
            return True
        try:
            changes: dict[str, AppRecord | None] = {a: AppRecord.from_json(dict(d))
                                                    for a, d in pending.targets.items()}
            self._refuse_taken_ports(changes)
            run = self._writes.deploy_changes(changes, plan_id=pending.id)
        except AppLocked as exc:
            log.info("scheduled deployment %s waits: its apps are locked by %s", pending.id,
                     ", ".join(exc.deployment_ids))
            return False
        except (ValidationFailed, Conflict) as exc:
            self._end(pending, f"refused at its start time: {exc}", now, "deployment_scheduled_refused")
            return True
        self._started(pending, run)
        return True

    def _refuse_taken_ports(self, changes: dict[str, AppRecord | None]) -> None:
        """Service ports were assigned at submit; another app may have taken one since."""
        taken = {port: rec.app_id for rec in self.state.apps.values() if rec.app_id not in changes
                 for port in rec.service_ports if port}
        for record in changes.values():
            for port in record.service_ports if record is not None else ():
                if port in taken:
                    raise Conflict(f"service port {port} of {record.app_id} is now used by {taken[port]}")

    def _prune_ended(self) -> None:
        ended = sorted((p for p in self.state.pending.values() if not p.open), key=lambda p: (p.ended_at or 0.0, p.id))
        for old in ended[:max(0, len(ended) - MAX_ENDED)]:
            self.state.forget_pending(old.id)

    def _started(self, pending: PendingDeployment, run: DeploymentRun) -> None:
        # a plan with steps has replaced the pending record under the same id; an empty one did not
        self.state.forget_pending(pending.id, delete_record=run.id not in self.state.deployments)
        self.events.publish("deployment_scheduled_started", id=pending.id, plan=run.plan.to_json(),
                            scheduledAt=pending.scheduled_text,
                            approvedBy=pending.approval.approved_by if pending.approval else None)

    def _end(self, pending: PendingDeployment, reason: str, now: float, event: str) -> None:
        ended = pending.failed(reason, now)
        self.state.save_pending(ended)
        self._prune_ended()
        log.warning("deployment %s ended before it started: %s", pending.id, reason)
        self.events.publish(event, id=pending.id, plan=ended.plan_json(), reason=reason,
                            scheduledAt=pending.scheduled_text, endedAt=iso_timestamp(now))
        self.events.publish("deployment_failed", id=pending.id, plan=ended.plan_json(), reason=reason)


__all__ = ["PendingWrites"]
