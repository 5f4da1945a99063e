"""Which pending deployments start now, which end, and why: a pure function of the clock.

`pending_verdicts(pending, current_versions, now)` looks at every open pending deployment and
says, for each one that must change, what happens to it:

* ``expire``  — it waits for an approval whose time ran out (checked first: an expired
  approval never starts anything, even when its start time has come);
* ``applied`` — every app already runs the version it puts in place: it was started, and the
  scheduler stopped between storing the apps and replacing the pending record (the start is
  two commits), so it is only forgotten;
* ``refuse``  — its time has come, but an app changed since it was submitted (its version is
  not the one the change was based on): no silent overwrite, the reason names the app and
  both versions;
* ``start``   — its time has come (or it had none and its approval is in), nothing changed.

A deployment still waiting (its time, or its approval) gets no verdict. Nothing here reads
a clock or the state: the engine passes both in and acts on the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from scheduler.deploy.pending import PendingDeployment
from scheduler.state.clock import iso_timestamp

Action = Literal["start", "refuse", "expire", "applied"]


@dataclass(frozen=True)
class PendingVerdict:
    pending: PendingDeployment
    action: Action
    reason: str = ""


def _changed(p: PendingDeployment, current: Mapping[str, str]) -> list[str]:
    """One phrase per app that is no longer what the change was based on."""
    out = []
    for app_id in p.app_ids:
        was, now = p.based_on.get(app_id), current.get(app_id)
        if was == now:
            continue
        if was is None:
            out.append(f"{app_id} was created (version {now}) after this deployment was submitted")
        elif now is None:
            out.append(f"{app_id} was deleted after this deployment was submitted (it was based on version {was})")
        else:
            out.append(f"{app_id} changed to version {now} after this deployment was submitted "
                       f"(it was based on version {was})")
    return out


def verdict_for(p: PendingDeployment, current: Mapping[str, str], now: float) -> PendingVerdict | None:
    """The verdict on one pending deployment, or None while it waits."""
    if not p.open:
        return None
    approval = p.approval
    if approval is not None and not approval.granted:
        if now >= approval.expires_at:
            return PendingVerdict(p, "expire", f"approval expired at {iso_timestamp(approval.expires_at)}: nobody "
                                               "with the approver role approved it in time; submit it again")
        return None
    if p.scheduled_at is not None and now < p.scheduled_at:
        return None
    if p.app_ids and all(current.get(a) == p.version for a in p.app_ids):
        return PendingVerdict(p, "applied")
    changed = _changed(p, current)
    if changed:
        return PendingVerdict(p, "refuse", "refused at its start time: " + "; ".join(changed)
                              + "; submit it again against the current version")
    return PendingVerdict(p, "start")


def pending_verdicts(pending: Iterable[PendingDeployment], current: Mapping[str, str],
                     now: float) -> list[PendingVerdict]:
    """Verdicts for every pending deployment that must change now, earliest start first
    (so two cutovers of one app due in the same pass start in the order they were due)."""
    verdicts = [v for p in pending if (v := verdict_for(p, current, now)) is not None]
    return sorted(verdicts, key=lambda v: (v.pending.scheduled_at or v.pending.created_at, v.pending.created_at))


__all__ = ["Action", "PendingVerdict", "pending_verdicts", "verdict_for"]
