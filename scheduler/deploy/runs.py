"""A running deployment: which step it is on, and whether it still makes progress.

The plan (what to do) comes from `plan.build_plan`; this module keeps the little state a
running plan needs and decides, purely, when a step is complete and when a deployment has
stalled. Marathon waited forever; Pacer fails a deployment that makes no progress for
`upgradeStrategy.progressDeadlineSeconds` and names the cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app_definitions import parse_app_definition

from scheduler.deploy.canary_run import CanaryRun, canary_spec
from scheduler.deploy.plan import DeploymentAction, DeploymentPlan, DeploymentStep


@dataclass(frozen=True)
class DeploymentRun:
    """A plan being carried out; a value: the engine replaces it as it moves on."""

    plan: DeploymentPlan
    started_at: float
    last_progress_at: float
    step_index: int = 0
    progress_marker: tuple[int, int] = (0, 0)
    canaries: tuple[CanaryRun, ...] = ()    # one per canary app, by app id: each runs its own steps (canary_run.py)

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def canary(self) -> CanaryRun | None:
        """The first canary (by app id), or None: the one-canary view of a deployment."""
        return self.canaries[0] if self.canaries else None

    def canary_of(self, app_id: str) -> CanaryRun | None:
        return next((c for c in self.canaries if c.app_id == app_id), None)

    def with_canary(self, canary: CanaryRun) -> DeploymentRun:
        """This run with the canary of ``canary.app_id`` replaced (the others as they are)."""
        return replace(self, canaries=tuple(canary if c.app_id == canary.app_id else c for c in self.canaries))

    @property
    def finished(self) -> bool:
        return self.step_index >= len(self.plan.steps)

    def current_actions(self) -> tuple[DeploymentAction, ...]:
        return () if self.finished else self.plan.steps[self.step_index].actions

    def action_for(self, app_id: str) -> DeploymentAction | None:
        return next((a for a in self.current_actions() if a.app_id == app_id), None)

    def waits_for_step(self, app_id: str) -> bool:
        """The app has an action in a later step: leave it alone until its turn."""
        return any(a.app_id == app_id for step in self.plan.steps[self.step_index + 1:] for a in step.actions) \
            and self.action_for(app_id) is None

    def to_json(self, readiness: Mapping[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        body = self.plan.to_json()
        body["currentActions"] = [{"action": a.action, "app": a.app_id,
                                   "readinessCheckResults": (readiness or {}).get(a.app_id, [])}
                                  for a in self.current_actions()]
        body["currentStep"] = min(self.step_index + 1, len(self.plan.steps))
        body["totalSteps"] = len(self.plan.steps)
        if self.canaries:
            # `canaries`: one block per canary app; `canary`: the first, as a one-canary deployment shows it
            blocks = [c.to_json(canary_spec(self.plan, c.app_id)) for c in self.canaries]
            body["canary"] = blocks[0]
            body["canaries"] = blocks
        return body


def run_record(run: DeploymentRun) -> dict[str, Any]:
    """A running deployment as stored JSON: its steps, where it is, and the affected apps'
    original and target definitions (what a rollback and the deadline need)."""
    plan = run.plan
    affected = set(plan.affected_app_ids)
    # one canary is stored as before there could be several, so an earlier Pacer still reads it
    extra: dict[str, Any] = {}
    if len(run.canaries) == 1:
        extra = {"canary": run.canaries[0].to_record()}
    elif run.canaries:
        extra = {"canaries": [c.to_record() for c in run.canaries]}
    return {**extra,
        "id": plan.id, "version": plan.version, "step_index": run.step_index,
        "started_at": run.started_at, "last_progress_at": run.last_progress_at,
        "steps": [[[a.action, a.app_id, a.scale_to] for a in step.actions] for step in plan.steps],
        "original": {a: d.to_json() for a, d in plan.original.items() if a in affected},
        "target": {a: d.to_json() for a, d in plan.target.items() if a in affected},
    }


def run_from_record(record: Mapping[str, Any]) -> DeploymentRun:
    """Inverse of `run_record`: the deployment resumes at the step it had reached."""
    plan = DeploymentPlan(
        id=record["id"], version=record["version"],
        original={a: parse_app_definition(d) for a, d in record["original"].items()},
        target={a: parse_app_definition(d) for a, d in record["target"].items()},
        steps=tuple(DeploymentStep(tuple(DeploymentAction(action, app_id, scale_to)
                                         for action, app_id, scale_to in step)) for step in record["steps"]))
    stored = record.get("canaries") or ([record["canary"]] if record.get("canary") is not None else [])
    return DeploymentRun(plan=plan, started_at=record["started_at"], last_progress_at=record["last_progress_at"],
                         step_index=record["step_index"],
                         canaries=tuple(sorted((CanaryRun.from_record(c) for c in stored), key=lambda c: c.app_id)))


def progress_deadline(plan: DeploymentPlan) -> float:
    """Smallest non-zero progressDeadlineSeconds of the target apps; 0 means wait forever."""
    targets = [plan.target[a] for a in plan.affected_app_ids if a in plan.target]
    deadlines = [app.upgrade_strategy.progress_deadline_seconds for app in targets
                 if app.upgrade_strategy.progress_deadline_seconds]
    return float(min(deadlines)) if deadlines else 0.0


def auto_rollback(plan: DeploymentPlan) -> bool:
    return any(plan.target[a].upgrade_strategy.auto_rollback for a in plan.affected_app_ids if a in plan.target)


def stalled(run: DeploymentRun, now: float) -> bool:
    deadline = progress_deadline(run.plan)
    return deadline > 0 and now - run.last_progress_at > deadline


def stall_reason(app_ids: Sequence[str], last_failures: Mapping[str, Mapping[str, Any]],
                 health_causes: Mapping[str, str | None], queue_reasons: Mapping[str, str | None],
                 deadline: float) -> str:
    """One sentence naming why no new instance became healthy: crash loop, failing checks, or no offer."""
    parts = []
    for app_id in app_ids:
        if app_id in last_failures:
            failure = last_failures[app_id]
            parts.append(f"{app_id}: tasks keep failing ({failure.get('state')}: {failure.get('message')})")
        elif queue_reasons.get(app_id):
            parts.append(f"{app_id}: cannot be placed: {queue_reasons[app_id]}")
        elif health_causes.get(app_id):
            parts.append(f"{app_id}: never healthy: {health_causes[app_id]}")
        else:
            parts.append(f"{app_id}: no new instance became healthy and ready")
    return f"no progress for {deadline:g} s; " + "; ".join(parts)
