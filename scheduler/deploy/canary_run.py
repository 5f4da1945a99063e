"""A canary deployment's own state beside its plan, and the pure decisions that move it.

A write that changes an app whose ``upgradeStrategy.canary`` is set (and that needs new
instances) runs as a canary: the plan's ``RestartApplication`` for that app is held in a
*canary phase* while ``scheduler.canary.steps.advance`` walks the steps. During it:

* the app keeps every stable (old-config) instance, and ``canary.instances`` new-config
  instances run beside them (:func:`canary_convergence`); nothing old is killed, and a stable
  instance that ends is replaced by one of the stable definition (:func:`stable_replacements`:
  the plan keeps it as ``original``), so the app's declared count serves throughout;
* once the canary instances are all healthy and ready, the steps begin
  (:func:`tick`); each ``setWeight`` moves HAProxy traffic through the per-server weights
  the API shows on the app (:func:`traffic`);
* ``StartFullRoll`` ends the phase: the usual rolling restart takes over under
  ``minimumHealthCapacity``/``maximumOverCapacity`` and the weights are cleared;
  ``Abort`` makes the engine fail the deployment and roll the app back.

Blue/green (``canary.blueGreen``) is the same phase with a full new set: the app's
``instances`` of the new version start beside the old ones (:func:`canary_size`), get no
traffic until the steps give some (weight 0), and ``SwitchOver`` ends the phase by sending
all traffic to the new set in one step. The weights then stay at new 100% / old 0
(:func:`traffic`) while the usual restart, which finds the whole new set serving, drains
and kills the old set at once; they are cleared when the deployment ends.

The state is a value stored with the run (:meth:`CanaryRun.to_record`), so a restarted
scheduler resumes the canary at its step. A deployment may hold several canary apps (a group
written whole): each has its own ``CanaryRun`` and walks its own steps, analysis and weights;
its app rolls the rest when its own canary is promoted, and the abort of any one of them fails
and rolls back the whole deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from app_definitions import AppDefinition
from app_definitions.strategies import Canary

from scheduler.canary import CanaryState, Check, Transition, Verdict, VersionSample, advance, begin, canary_weights
from scheduler.canary.steps import Promote
from scheduler.deploy.plan import DeploymentPlan
from scheduler.state.model import Instance

__all__ = ["CanaryRun", "StableVersion", "canary_apps", "canary_convergence", "canary_size", "canary_spec",
           "stable_replacements", "tick", "traffic"]


@dataclass(frozen=True)
class StableVersion:
    """The version a stable replacement is launched as: the definition, its version and its
    config identity (``lastConfigChangeAt``), which keeps it out of the canary's count and weight."""

    definition: AppDefinition = field(hash=False)     # a pydantic model holds dicts: hashed by its versions
    version: str
    config_version: str


@dataclass(frozen=True)
class CanaryRun:
    """The canary of one app of a deployment; ``state`` is None until its instances are healthy and ready."""

    app_id: str
    state: CanaryState | None = None

    @property
    def in_steps(self) -> bool:
        """The canary phase holds the app's restart (not yet promoted to the full roll, not aborted)."""
        return self.state is None or self.state.phase == "steps"

    @property
    def switched(self) -> bool:
        """A blue/green release past its switch: all traffic to the new set until the old set is gone."""
        return self.state is not None and self.state.phase == "promoted" and self.state.switched

    @property
    def weight(self) -> int:
        if self.switched:
            return 100
        return 0 if self.state is None or not self.in_steps else self.state.weight

    def to_json(self, spec: Canary | None) -> dict[str, Any]:
        """The ``canary`` block of a ``/v2/deployments`` row."""
        if self.state is None or spec is None:
            return {"app": self.app_id, "phase": "starting", "step": 0, "steps": len(spec.steps) if spec else 0,
                    "weight": 0, "instances": spec.instances if spec else 0}
        return {"app": self.app_id, **self.state.to_json(spec), "weight": self.weight}

    def to_record(self) -> dict[str, Any]:
        state = None
        if self.state is not None:
            state = {f.name: getattr(self.state, f.name) for f in fields(CanaryState) if f.name != "last_verdict"}
            state["last_verdict"] = None if self.state.last_verdict is None else self.state.last_verdict.to_json()
        return {"app": self.app_id, "state": state}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CanaryRun:
        raw = record.get("state")
        if raw is None:
            return cls(record["app"])
        known = {f.name for f in fields(CanaryState)}
        values = {k: v for k, v in raw.items() if k in known and k != "last_verdict"}
        verdict = raw.get("last_verdict")
        return cls(record["app"], CanaryState(**values,
                                              last_verdict=None if verdict is None else verdict_from_json(verdict)))


def _sample(data: Mapping[str, Any]) -> VersionSample:
    return VersionSample(data.get("requests"), data.get("errors"), data.get("latencyMs"), data.get("cpu"),
                         data.get("memoryBytes"))


def verdict_from_json(data: Mapping[str, Any]) -> Verdict:
    """Inverse of ``Verdict.to_json`` (the stored last verdict of a resumed canary)."""
    checks = tuple(Check(c["name"], c["limit"], c.get("value"), c["outcome"]) for c in data.get("checks", ()))
    return Verdict(data["verdict"], data["reason"], _sample(data.get("stable", {})), _sample(data.get("canary", {})),
                   checks, data.get("latencyKind", "p95"), tuple(c.name for c in checks if c.outcome == "fail"))


def canary_spec(plan: DeploymentPlan, app_id: str) -> Canary | None:
    target = plan.target.get(app_id)
    return None if target is None else target.upgrade_strategy.canary


def canary_apps(plan: DeploymentPlan) -> list[str]:
    """Apps of ``plan`` that roll as a canary: restarted apps that had instances, keep some, and ask for one."""
    out = []
    for step in plan.steps:
        for action in step.actions:
            if action.action != "RestartApplication":
                continue
            original, target = plan.original.get(action.app_id), plan.target.get(action.app_id)
            if original is None or target is None or target.upgrade_strategy.canary is None:
                continue
            if original.instances > 0 and target.instances > 0:
                out.append(action.app_id)
    return out


def canary_size(spec: Canary, app_instances: int) -> int:
    """New-version instances the phase runs beside the old ones: a blue/green release starts a full set."""
    return max(1, app_instances) if spec.blue_green else spec.instances


def canary_convergence(canary_instances: int, insts: Sequence[Instance], config_version: str,
                       serving: Callable[[Instance], bool]) -> tuple[int, tuple[str, ...]]:
    """``(launch, kill)`` during the canary phase: ``canary_instances`` new-config instances, old ones untouched.

    ``canary_instances`` is :func:`canary_size`. Surplus new instances go first if not serving,
    then youngest. Stable instances are :func:`stable_replacements`' business.
    """
    new = [i for i in insts if i.active and i.config_version == config_version]
    surplus = max(0, len(new) - canary_instances)
    victims = sorted(new, key=lambda i: (serving(i), -i.staged_at, i.instance_id))[:surplus]
    return max(0, canary_instances - len(new)), tuple(i.instance_id for i in victims)


def stable_replacements(stable: AppDefinition | None, insts: Sequence[Instance], config_version: str
                        ) -> tuple[StableVersion | None, int]:
    """The stable version and how many of its instances to launch during the canary phase.

    ``stable`` is the app's definition before the deployment (``plan.original``): the stable
    instances were launched from it, so a replacement is too, under its own version and config
    identity (the new definition would make it a second canary). Every active instance not of
    the new config counts as stable; they are kept at the stable definition's ``instances``,
    the count the app declared before the change: the canary runs *beside* production, never
    in place of a part of it that died. ``(None, 0)`` when there is nothing to launch, or the
    stable definition carries no version (never stored: nothing to launch it as).
    """
    if stable is None or stable.version is None or stable.version_info is None:
        return None, 0
    old = sum(1 for i in insts if i.active and i.config_version != config_version)
    missing = max(0, stable.instances - old)
    if missing == 0:
        return None, 0
    return StableVersion(stable, stable.version, stable.version_info.last_config_change_at), missing


def tick(canary: CanaryRun, spec: Canary, ready_new: int, now: float, verdict: Verdict | None = None,
         promote: Promote | None = None, *, progress_deadline_seconds: float = 0.0, size: int | None = None
         ) -> tuple[CanaryRun, Transition | None]:
    """The canary one pass later. Before its instances (``size``, :func:`canary_size`; default
    ``spec.instances``) are all healthy and ready (``ready_new``) nothing moves and a promote is
    refused by the caller: a blue/green switch never sends traffic to a partly started set.
    Then ``begin`` and ``advance`` decide."""
    if canary.state is None:
        if ready_new < (spec.instances if size is None else size):
            return canary, None
        started = begin(spec, now)
        if promote is None:
            return CanaryRun(canary.app_id, started.state), started
        canary = CanaryRun(canary.app_id, started.state)
        then = advance(started.state, spec, now, None, promote, progress_deadline_seconds=progress_deadline_seconds)
        return CanaryRun(canary.app_id, then.state), Transition(
            then.state, started.actions + then.actions, started.entered + then.entered, then.judged, then.by_person)
    transition = advance(canary.state, spec, now, verdict, promote, progress_deadline_seconds=progress_deadline_seconds)
    return CanaryRun(canary.app_id, transition.state), transition


def traffic(canary: CanaryRun, insts: Sequence[Instance], config_version: str,
            routable: Callable[[Instance], bool]) -> dict[str, Any] | None:
    """The app's ``canaryTraffic`` field: the weight of each version's HAProxy servers, or None.

    Shown for the whole canary phase (weight 0 until the first ``setWeight``: a canary instance
    that became healthy gets no traffic before the steps give it some), and for a blue/green
    release past its switch (new 100%, old 0, until the deployment ends: the old set drains
    with no traffic instead of getting its share back). The weights come from the counts of
    routable instances of each version (``weights.canary_weights``); the HAProxy bridge gives
    ``canaryWeight`` to the servers of the listed ``canaryTasks`` and ``stableWeight`` to the others.
    """
    if not canary.in_steps and not canary.switched:
        return None
    percent = canary.weight
    live = [i for i in insts if i.active and routable(i)]
    new = sorted(i.instance_id for i in live if i.config_version == config_version)
    stable = len(live) - len(new)
    weights = canary_weights(stable, len(new), percent)
    return {"percent": percent, "canaryTasks": new, "canaryWeight": weights.canary,
            "stableWeight": weights.stable, "canaryShare": weights.canary_percent}
