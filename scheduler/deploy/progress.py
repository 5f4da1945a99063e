"""Moving a running deployment along, decided purely from what one pass observed.

A step is complete when every app of it reached its action's goal; the deployment then moves
to the next step (one step per pass, so each step is judged against its own actions). A
deployment makes progress when it moves to a later step or when more new instances are
healthy and ready than before; one that makes none for its progress deadline has stalled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scheduler.state.clock import parse_timestamp
from scheduler.deploy.runs import DeploymentRun, auto_rollback, progress_deadline, stall_reason, stalled


@dataclass(frozen=True)
class RunVerdict:
    run: DeploymentRun            # the run with its step and progress marker moved on
    advanced: bool                # it moved to the next step in this pass
    finished: bool
    failure: str | None = None    # why it stalled: it is to be failed (and maybe rolled back)
    rollback: bool = False


@dataclass(frozen=True)
class StallEvidence:
    """What names the cause when a deployment stalls."""

    last_failures: Mapping[str, Mapping[str, Any]]
    health_causes: Mapping[str, str | None]
    queue_reasons: Mapping[str, str | None]


def judge_run(run: DeploymentRun, *, step_done: bool, new_healthy: Callable[[DeploymentRun], int], now: float,
              evidence: StallEvidence) -> RunVerdict:
    advanced = False
    if not run.finished and step_done:
        run = replace(run, step_index=run.step_index + 1)
        advanced = True
    if run.finished:
        return RunVerdict(run, advanced, True)
    marker = (run.step_index, new_healthy(run))
    if any(c.state is not None and c.in_steps for c in run.canaries):
        # the steps run on their own clock (pauses, analysis); `advance` applies the deadline to them
        return RunVerdict(replace(run, last_progress_at=now), advanced, False)
    if marker > run.progress_marker:
        return RunVerdict(replace(run, progress_marker=marker, last_progress_at=now), advanced, False)
    if stalled(run, now):
        apps = [a.app_id for a in run.current_actions()]
        reason = stall_reason(apps, evidence.last_failures, evidence.health_causes, evidence.queue_reasons,
                              progress_deadline(run.plan))
        return RunVerdict(run, advanced, False, failure=reason, rollback=auto_rollback(run.plan))
    return RunVerdict(run, advanced, False)


def failures_since(last_failures: Mapping[str, Mapping[str, Any]], started_at: float) -> dict[str, Mapping[str, Any]]:
    """Task failures that happened during this deployment (older ones name no cause of it)."""
    return {a: f for a, f in last_failures.items() if parse_timestamp(f["timestamp"]) >= started_at}


def apps_of(runs: Sequence[DeploymentRun]) -> set[str]:
    return {a for run in runs for a in run.plan.affected_app_ids}
