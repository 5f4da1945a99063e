"""Deployments that wait: a cutover scheduled for a later time, or a change held for approval.

A `PendingDeployment` is a value: the new app definitions (validated and finalised when they
were submitted), the version of each app they were based on, when they may start
(`scheduled_at`, None: as soon as nothing else holds them), who submitted them and, when the
auth file asks for one, the approval they wait for. It is stored with the running deployments
(the Store's deployments collection, told apart by ``"kind": "pending"``), so it survives a
`kill -9` and, with ZooKeeper, a change of leader, exactly as a running deployment does.

Pure: no clock, no I/O. `parse_at` turns the `at` the user wrote into an instant and refuses
one without an offset or already past; `to_json` is its row in ``GET /v2/deployments``:
Marathon's deployment fields (so Marathon clients still parse the list) plus Pacer's
``status`` and ``scheduledAt`` and, when held, ``approval``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from app_definitions import ValidationFailed

from scheduler.state.clock import iso_timestamp

PENDING_KIND = "pending"
"""The ``kind`` of a pending deployment's stored record (running deployments have none)."""

Status = Literal["scheduled", "awaiting approval", "failed"]


@dataclass(frozen=True)
class ApprovalNeed:
    """What the auth file asks of a change (its `[[approval]]` rules that match its apps):
    approval within `expiry_seconds` by one of `approvers`."""

    paths: tuple[str, ...]
    expiry_seconds: float
    approvers: tuple[str, ...] = ()

    def held_from(self, now: float) -> "Approval":
        return Approval(paths=self.paths, expires_at=now + self.expiry_seconds, approvers=self.approvers)


@dataclass(frozen=True)
class Approval:
    """What a held deployment waits for: an approver other than its author, before `expires_at`."""

    paths: tuple[str, ...]                 # the approval patterns of the auth file it matched
    expires_at: float
    approvers: tuple[str, ...] = ()        # who may approve it (known when it was submitted)
    approved_by: str | None = None
    approved_at: float | None = None
    comment: str | None = None

    @property
    def granted(self) -> bool:
        return self.approved_by is not None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"paths": list(self.paths), "expiresAt": iso_timestamp(self.expires_at),
                                "approvers": list(self.approvers)}
        if self.approved_by is not None:
            body.update(approvedBy=self.approved_by, comment=self.comment)
            if self.approved_at is not None:
                body["approvedAt"] = iso_timestamp(self.approved_at)
        return body

    def to_record(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "expires_at": self.expires_at, "approvers": list(self.approvers),
                "approved_by": self.approved_by, "approved_at": self.approved_at, "comment": self.comment}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> "Approval":
        return cls(paths=tuple(data["paths"]), expires_at=float(data["expires_at"]),
                   approvers=tuple(data.get("approvers", ())), approved_by=data.get("approved_by"),
                   approved_at=data.get("approved_at"), comment=data.get("comment"))


@dataclass(frozen=True)
class PendingDeployment:
    """A change stored now and started later (see the module docstring)."""

    id: str
    version: str
    targets: Mapping[str, Mapping[str, Any]]      # app id -> the finalised definition it puts in place
    based_on: Mapping[str, str | None]            # app id -> its version when submitted (None: did not exist)
    steps: Sequence[Mapping[str, Any]]            # the plan's steps as planned at submit (for display)
    created_at: float
    scheduled_at: float | None = None
    scheduled_text: str | None = None             # `at` as the user wrote it (their offset kept)
    author: str | None = None
    approval: Approval | None = None
    failure: str | None = None                    # why it was refused, rejected or expired
    ended_at: float | None = None
    rejected_by: str | None = None

    @property
    def app_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.targets))

    @property
    def status(self) -> Status:
        if self.failure is not None:
            return "failed"
        if self.approval is not None and not self.approval.granted:
            return "awaiting approval"
        return "scheduled"

    @property
    def open(self) -> bool:
        """Still to start (not ended by a refusal, rejection or expiry)."""
        return self.failure is None

    def failed(self, reason: str, now: float, *, rejected_by: str | None = None) -> "PendingDeployment":
        return replace(self, failure=reason, ended_at=now, rejected_by=rejected_by)

    def moved(self, at: float, text: str) -> "PendingDeployment":
        return replace(self, scheduled_at=at, scheduled_text=text)

    def approved(self, user: str, comment: str | None, now: float) -> "PendingDeployment":
        assert self.approval is not None
        return replace(self, approval=replace(self.approval, approved_by=user, approved_at=now, comment=comment))

    # -- GET /v2/deployments ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "version": self.version, "affectedApps": list(self.app_ids), "affectedPods": [],
            "steps": [dict(s) for s in self.steps], "currentActions": [], "currentStep": 0,
            "totalSteps": len(self.steps), "status": self.status,
        }
        if self.scheduled_at is not None:
            body["scheduledAt"] = self.scheduled_text or iso_timestamp(self.scheduled_at)
        if self.author is not None:
            body["author"] = self.author
        if self.approval is not None:
            body["approval"] = self.approval.to_json()
        if self.failure is not None:
            body["reason"] = self.failure
            if self.rejected_by is not None:
                body["rejectedBy"] = self.rejected_by
        return body

    def plan_json(self) -> dict[str, Any]:
        """The ``plan`` of its events: what /v2/events filters by (``affectedApps``)."""
        return {"id": self.id, "version": self.version, "affectedApps": list(self.app_ids), "affectedPods": [],
                "steps": [dict(s) for s in self.steps], "totalSteps": len(self.steps)}

    # -- the stored record ---------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {"kind": PENDING_KIND, "id": self.id, "version": self.version,
                "targets": {a: dict(d) for a, d in self.targets.items()}, "based_on": dict(self.based_on),
                "steps": [dict(s) for s in self.steps], "created_at": self.created_at,
                "scheduled_at": self.scheduled_at, "scheduled_text": self.scheduled_text, "author": self.author,
                "approval": None if self.approval is None else self.approval.to_record(),
                "failure": self.failure, "ended_at": self.ended_at, "rejected_by": self.rejected_by}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> "PendingDeployment":
        approval = data.get("approval")
        return cls(id=data["id"], version=data["version"], targets=dict(data["targets"]),
                   based_on=dict(data["based_on"]), steps=list(data.get("steps", ())),
                   created_at=float(data["created_at"]), scheduled_at=data.get("scheduled_at"),
                   scheduled_text=data.get("scheduled_text"), author=data.get("author"),
                   approval=None if approval is None else Approval.from_record(approval),
                   failure=data.get("failure"), ended_at=data.get("ended_at"), rejected_by=data.get("rejected_by"))


def is_pending_record(record: Mapping[str, Any]) -> bool:
    return record.get("kind") == PENDING_KIND


def parse_at(text: Any, now: float, *, field_name: str = "at") -> tuple[float, str]:
    """(instant, text as given) of a start time; `ValidationFailed` at ``/<field_name>`` when it
    is not ISO 8601, has no offset, or is not in the future."""
    path = f"/{field_name}"
    example = "2026-12-06T02:00:00+08:00"
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed([(path, f"'{field_name}' must be an ISO 8601 time with an offset, e.g. {example}")])
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ValidationFailed([(path, f"'{field_name}' is not an ISO 8601 time: '{raw}'; write it like "
                                       f"{example}")]) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationFailed([(path, f"'{field_name}' {raw} has no UTC offset; add one (e.g. {example} or "
                                       "...Z for UTC) so the time cannot be read in the wrong zone")])
    at = moment.timestamp()
    if at <= now:
        raise ValidationFailed([(path, f"'{field_name}' {raw} is in the past (it is now {iso_timestamp(now)}); "
                                       "give a future time, or deploy without it to start now")])
    return at, raw


__all__ = ["Approval", "ApprovalNeed", "PENDING_KIND", "PendingDeployment", "Status", "is_pending_record", "parse_at"]
