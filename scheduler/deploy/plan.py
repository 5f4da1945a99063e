"""Deployment plans: the steps that take the apps from ``original`` to ``target``, as a value.

Marathon's ``DeploymentPlan.apply``, made deterministic. A plan is computed once, stored,
shown by ``GET /v2/deployments`` and executed step by step by a separate driver; nothing
here acts. The steps:

1. ``StopApplication`` for every app that is gone from the target;
2. ``StartApplication`` (scale to 0) for every new app;
3. then the new and changed apps in dependency order: apps grouped by the length of their
   longest dependency path in the target (apps depending on nothing first), one step per
   length. A new app gets ``ScaleApplication(instances)``; a changed app gets
   ``RestartApplication`` when the change needs new instances (``is_upgrade``) or a restart
   was asked for, ``ScaleApplication`` when only ``instances`` changed or it is scaled to
   0 (Marathon: stopping needs no rolling restart); unchanged apps get nothing.

Actions inside a step may run concurrently; steps run one after another. Empty steps are
dropped. Inside a step, actions are sorted by app id, so equal inputs give equal plans and
a plan rebuilt from stored ``original``/``target`` after a crash is the same plan.

A dependency names an app or a group (every app beneath it), absolute or relative to the
app's group. A cycle is a 422 (:class:`DependencyCycle`). A dependency naming nothing is
accepted, as in Marathon, and ignored for ordering until it exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from app_definitions import AppDefinition, ValidationFailed, is_upgrade, parent_of
from app_definitions.path_id import path_id_violations

__all__ = [
    "ActionName",
    "DependencyCycle",
    "DeploymentAction",
    "DeploymentPlan",
    "DeploymentStep",
    "build_plan",
    "conflicting_deployments",
    "dependency_graph",
    "dependency_levels",
]

ActionName = Literal["StartApplication", "StopApplication", "ScaleApplication", "RestartApplication"]
_EMPTY: Mapping[str, Sequence[str]] = MappingProxyType({})


@dataclass(frozen=True)
class DeploymentAction:
    """One thing to do to one app; ``scale_to`` for Start (0) and Scale, else None."""

    action: ActionName
    app_id: str
    scale_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Marathon's ``{"action": ..., "app": ...}``."""
        return {"action": self.action, "app": self.app_id}


@dataclass(frozen=True)
class DeploymentStep:
    """Actions that may run at the same time; the step is over when all of them are."""

    actions: tuple[DeploymentAction, ...]

    def to_json(self) -> dict[str, Any]:
        return {"actions": [a.to_json() for a in self.actions]}


@dataclass(frozen=True)
class DeploymentPlan:
    """From ``original`` to ``target`` (app id -> definition) in ``steps``.

    The mappings are read-only copies; they stay with the plan so a cancelled deployment
    can be reverted and a stored one rebuilt.
    """

    id: str
    version: str
    original: Mapping[str, AppDefinition] = field(hash=False)
    target: Mapping[str, AppDefinition] = field(hash=False)
    steps: tuple[DeploymentStep, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "original", MappingProxyType(dict(self.original)))
        object.__setattr__(self, "target", MappingProxyType(dict(self.target)))
        object.__setattr__(self, "steps", tuple(self.steps))

    @cached_property
    def affected_app_ids(self) -> tuple[str, ...]:
        """Every app some action touches, sorted: what this deployment locks. Computed once:
        every pass asks each running deployment, and the plan never changes."""
        return tuple(sorted({a.app_id for step in self.steps for a in step.actions}))

    @property
    def is_empty(self) -> bool:
        return not self.steps

    def to_json(self) -> dict[str, Any]:
        """``GET /v2/deployments`` shape without the live fields (currentActions, currentStep)."""
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": list(self.affected_app_ids),
            "affectedPods": [],
            "steps": [step.to_json() for step in self.steps],
            "totalSteps": len(self.steps),
        }

    def revert(self, new_id: str, version: str, *,
               group_dependencies: Mapping[str, Sequence[str]] = _EMPTY) -> DeploymentPlan:
        """The plan from ``target`` back to ``original``: the rollback of a cancelled deployment.

        Apps this plan restarts are restarted back even when their definition did not
        change (a ``POST /restart``): some of their instances may already be new. Never
        fails on a dependency that no longer exists: a rollback must always be possible.
        """
        restarted = frozenset(a.app_id for step in self.steps for a in step.actions
                              if a.action == "RestartApplication")
        return _build(self.target, self.original, new_id, version, restarted, group_dependencies)


class DependencyCycle(ValidationFailed):
    """The target's dependency graph has a cycle (422 at ``/dependencies``, naming the apps)."""

    def __init__(self, cycles: Sequence[Sequence[str]]) -> None:
        self.cycles = [tuple(c) for c in cycles]
        super().__init__(("/dependencies", "Dependency graph has cyclic dependencies: " + " -> ".join([*c, c[0]]))
                         for c in self.cycles)


def _under(group: str, app_ids: Iterable[str]) -> list[str]:
    prefix = group.rstrip("/") + "/"
    return [a for a in app_ids if a.startswith(prefix)]


def dependency_graph(target: Mapping[str, AppDefinition],
                     group_dependencies: Mapping[str, Sequence[str]] = _EMPTY,
                     roots: Iterable[str] | None = None,
                     ) -> tuple[dict[str, frozenset[str]], dict[str, list[str]]]:
    """``(app id -> app ids it depends on, app id -> canonical dependencies naming nothing)``.

    A dependency naming a group stands for every app beneath it (Marathon's
    ``applicationDependencies``). ``group_dependencies`` (group id -> ids) make every app
    beneath the group depend on what they name; those naming nothing are ignored, since
    Pacer's groups come and go with their apps.

    ``roots``: only the apps reachable from these through dependencies (None: every app). A
    write changes a few apps of thousands, and their order needs only what they depend on,
    directly or not: the graph of the whole target cost milliseconds per write at 1,000 apps.
    """
    ids = sorted(target)
    edges: dict[str, frozenset[str]] = {}
    missing: dict[str, list[str]] = {}

    def canonical(raw: str, base: str) -> str:
        return path_id_violations(raw, base, within_parent=False)[0] or raw

    def resolve(dep: str) -> list[str]:
        return [dep] if dep in target else _under(dep, ids)

    def depends_on(app_id: str) -> frozenset[str]:
        found: set[str] = set()
        for raw in target[app_id].dependencies:
            dep = canonical(raw, parent_of(app_id))
            resolved = resolve(dep)
            if resolved:
                found.update(resolved)
            else:
                missing.setdefault(app_id, []).append(dep)
        for group, deps in sorted(group_dependencies.items()):
            if app_id == group or app_id.startswith(group.rstrip("/") + "/"):
                for raw in deps:
                    found.update(resolve(canonical(raw, group)))
        return frozenset(found)

    todo = ids if roots is None else sorted(r for r in set(roots) if r in target)
    while todo:
        app_id = todo.pop()
        if app_id not in edges:
            edges[app_id] = deps = depends_on(app_id)
            todo.extend(d for d in deps if d not in edges)
    return dict(sorted(edges.items())), missing


def _find_cycles(edges: Mapping[str, frozenset[str]], nodes: set[str]) -> list[list[str]]:
    """Distinct cycles among ``nodes``, each of which depends on another of ``nodes``."""
    cycles: list[list[str]] = []
    covered: set[str] = set()
    for start in sorted(nodes):
        if start in covered:
            continue
        walk: list[str] = []
        seen: dict[str, int] = {}
        node = start
        while node not in seen and node not in covered:
            seen[node] = len(walk)
            walk.append(node)
            node = min(d for d in edges[node] if d in nodes)
        if node in seen:
            cycles.append(walk[seen[node]:])
        covered.update(walk)
    return cycles


def dependency_levels(edges: Mapping[str, frozenset[str]]) -> dict[str, int]:
    """Length of the longest dependency path from each app (1 = depends on nothing).

    Raises :class:`DependencyCycle` naming every cycle found.
    """
    dependents: dict[str, list[str]] = {a: [] for a in edges}
    waiting = {a: len(d) for a, d in edges.items()}
    for app_id, deps in edges.items():
        for dep in deps:
            dependents[dep].append(app_id)
    ready = [a for a, n in waiting.items() if n == 0]
    level = {a: 1 for a in ready}
    while ready:
        dep = ready.pop()
        for app_id in dependents[dep]:
            level[app_id] = max(level.get(app_id, 1), level[dep] + 1)
            waiting[app_id] -= 1
            if waiting[app_id] == 0:
                ready.append(app_id)
    stuck = {a for a, n in waiting.items() if n > 0}
    if stuck:  # every stuck app waits on another stuck app: following them must loop
        raise DependencyCycle(_find_cycles(edges, stuck))
    return level


def _action(old: AppDefinition | None, new: AppDefinition, restart: bool) -> DeploymentAction | None:
    if old is None:
        return DeploymentAction("ScaleApplication", new.id, new.instances)
    if old is new and not restart:
        return None     # the untouched apps of a write: no definition to compare, field by field
    upgrade = restart or is_upgrade(old, new)
    if new.instances == 0 and (upgrade or old.instances != 0):
        return DeploymentAction("ScaleApplication", new.id, 0)
    if upgrade:
        return DeploymentAction("RestartApplication", new.id)
    if old.instances != new.instances:
        return DeploymentAction("ScaleApplication", new.id, new.instances)
    return None


def build_plan(original: Mapping[str, AppDefinition], target: Mapping[str, AppDefinition], *,
               plan_id: str, version: str, restart: frozenset[str] = frozenset(),
               group_dependencies: Mapping[str, Sequence[str]] = _EMPTY) -> DeploymentPlan:
    """The plan from ``original`` to ``target`` (both app id -> definition).

    ``restart``: apps to replace even if their definition is unchanged
    (``POST /v2/apps/{id}/restart``). ``group_dependencies``: group-level dependencies
    (``GroupUpdate.dependencies``), see :func:`dependency_graph`.

    Raises :class:`DependencyCycle` on a cycle. A dependency on something missing from
    ``target`` is accepted, as Marathon accepts it, and ignored for ordering until it
    exists, so it never blocks a deployment, a restart or a rollback.
    """
    return _build(original, target, plan_id, version, restart, group_dependencies)


def _build(original: Mapping[str, AppDefinition], target: Mapping[str, AppDefinition], plan_id: str,
           version: str, restart: frozenset[str], group_dependencies: Mapping[str, Sequence[str]]) -> DeploymentPlan:
    actions: dict[str, DeploymentAction] = {}
    for app_id, app in target.items():
        old = original.get(app_id)
        if old is app and app_id not in restart:
            continue        # the untouched apps of a write: the same definition object
        act = _action(old, app, app_id in restart)
        if act is not None:
            actions[app_id] = act
    edges, _missing = dependency_graph(target, group_dependencies, roots=actions)
    level = dependency_levels(edges)

    stop = DeploymentStep(tuple(DeploymentAction("StopApplication", a) for a in sorted(original.keys() - target.keys())))
    start = DeploymentStep(tuple(DeploymentAction("StartApplication", a, 0)
                                 for a in sorted(target.keys() - original.keys())))
    by_level: dict[int, list[DeploymentAction]] = {}
    for app_id in sorted(actions):
        by_level.setdefault(level[app_id], []).append(actions[app_id])
    ordered = [DeploymentStep(tuple(by_level[n])) for n in sorted(by_level)]
    steps = tuple(s for s in [stop, start, *ordered] if s.actions)
    return DeploymentPlan(id=plan_id, version=version, original=original, target=target, steps=steps)


def conflicting_deployments(plans: Iterable[DeploymentPlan], app_ids: Iterable[str]) -> list[str]:
    """Ids of ``plans`` touching any of ``app_ids``, in the order given (409 "locked")."""
    wanted = set(app_ids)
    result: list[str] = []
    for plan in plans:
        if wanted.intersection(plan.affected_app_ids) and plan.id not in result:
            result.append(plan.id)
    return result
