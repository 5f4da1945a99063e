"""Groups: Marathon's tree of apps, derived from app ids.

Pacer stores apps only. A group is the set of apps whose ids lie beneath a path, so it
exists exactly as long as it holds an app; its JSON (:func:`group_tree`) is built from the
app map on demand, and a group change (:func:`apply_group_update`, :func:`delete_group`)
is computed as the new app map, which the caller validates, stores and diffs into a
deployment plan like any other change. Group-level ``dependencies`` are the one thing an
app map cannot hold: :func:`group_dependencies_of` extracts them for the caller to keep
and hand to ``build_plan`` and :func:`group_tree`.

``PUT`` follows Marathon's ``UpdateGroupStructureOp``: at each level of the body, a given
``apps`` list replaces the group's own apps and a given ``groups`` list replaces its
subgroups (apps of subgroups left out are removed); a key that is absent keeps what is
there. Apps named in the body are full definitions, not patches. Unlike Marathon, an app
listed with an unchanged definition keeps its stored JSON (and version), so re-sending a
group does not restart everything in it.
"""

from __future__ import annotations

import bisect
import copy
import math
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from app_definitions import ValidationFailed, is_rollback_request, is_upgrade, parent_of, parse_app_definition
from app_definitions.path_id import path_id_violations

__all__ = [
    "apply_group_update",
    "delete_group",
    "group_dependencies_of",
    "group_rollback_version",
    "group_tree",
    "is_under",
    "normalize_group_id",
    "restore_group",
]

_NO_DEPENDENCIES: Mapping[str, list[str]] = MappingProxyType({})
_ALONE = "not allowed in conjunction with other properties."
Violations = list[tuple[str, str]]


def normalize_group_id(group_id: str) -> str:
    """``"prod/"`` -> ``"/prod"``, ``""`` -> ``"/"``; raises :class:`ValidationFailed` on a bad id."""
    if not group_id.strip("/"):
        return "/"
    canonical, violations = path_id_violations(group_id, "/", within_parent=False)
    if canonical is None:
        raise ValidationFailed(violations)
    return canonical


def is_under(app_id: str, group_id: str) -> bool:
    """True when ``app_id`` lies beneath ``group_id`` (canonical ids; an app is not under itself)."""
    return group_id == "/" or app_id.startswith(group_id + "/")


def group_tree(apps: Mapping[str, dict], group_id: str = "/", *, embed_apps: bool = True,
               embed_groups: bool = True, version: str | None = None,
               dependencies: Mapping[str, list[str]] = _NO_DEPENDENCIES) -> dict | None:
    """Marathon's ``GET /v2/groups[/{id}]`` JSON for ``group_id``; None if no app is under it.

    ``apps``: app id -> app JSON as the apps endpoint shows it (used as given, never
    mutated). The root always exists. ``version`` is the requested group's version; a
    nested group (or the requested one when none is given) shows the newest ``version`` of
    the apps beneath it, the last time it changed as far as an app map can tell.
    ``embed_apps``/``embed_groups`` False leave the ``apps``/``groups`` keys out, as
    Marathon does without ``embed=group.apps``/``group.groups``.

    ``enforceRole`` is left out: Pacer has one role and keeps no per-group setting, so the
    value would always be the default ``false``, and strict clients (marathon-python's
    ``MarathonGroup``) reject a key they do not know.
    """
    gid = normalize_group_id(group_id)
    beneath = sorted(a for a in apps if is_under(a, gid))
    if not beneath and gid != "/":
        return None
    return _tree(apps, gid, beneath, version, dependencies, embed_apps, embed_groups)


def _tree(apps: Mapping[str, dict], gid: str, beneath: list[str], version: str | None,
          dependencies: Mapping[str, list[str]], embed_apps: bool, embed_groups: bool) -> dict:
    direct = [a for a in beneath if parent_of(a) == gid]
    children: dict[str, list[str]] = {}
    depth = 0 if gid == "/" else gid.count("/")
    for app_id in beneath:
        if parent_of(app_id) != gid:
            child = "/" + "/".join(app_id.split("/")[1:depth + 2])
            children.setdefault(child, []).append(app_id)
    versions = [apps[a]["version"] for a in beneath if isinstance(apps[a].get("version"), str)]
    shown_version = version if version is not None else (max(versions) if versions else None)
    node: dict[str, Any] = {"id": gid}
    if embed_apps:
        node["apps"] = [apps[a] for a in direct]
    if embed_groups:
        node["groups"] = [_tree(apps, child, members, None, dependencies, embed_apps, embed_groups)
                          for child, members in sorted(children.items())]
    node["pods"] = []
    node["dependencies"] = list(dependencies.get(gid, []))
    if shown_version is not None:
        node["version"] = shown_version
    return node


def delete_group(current: Mapping[str, dict], group_id: str) -> dict[str, dict]:
    """The app map without every app beneath ``group_id`` (all of them for ``/``)."""
    gid = normalize_group_id(group_id)
    return {a: data for a, data in current.items() if not is_under(a, gid)}


def restore_group(current: Mapping[str, dict], group_id: str, snapshot: Mapping[str, dict]) -> dict[str, dict]:
    """The app map with the group's apps replaced by those of ``snapshot`` beneath it.

    ``snapshot`` is the app map as it was at the version a ``{"version": ts}`` body names.
    """
    gid = normalize_group_id(group_id)
    result = delete_group(current, gid)
    result.update({a: copy.deepcopy(data) for a, data in snapshot.items() if is_under(a, gid)})
    return result


def group_rollback_version(update: Any) -> str | None:
    """The version a ``{"version": ts}`` (optionally with ``id``) group body rolls back to, or None.

    Raises :class:`ValidationFailed` when the version comes with other fields or is not a
    timestamp. The caller restores the group as of that version (:func:`restore_group`).
    """
    return is_rollback_request(update)


def _resolve_group_id(raw: Any, base: str, path: str, *, nested: bool) -> tuple[str | None, Violations]:
    """Canonical id of a group in a body: relative to ``base``; a nested one must lie below it."""
    if raw is None:
        return (None, [(path, "is required")]) if nested else (base, [])
    if isinstance(raw, str) and not raw.strip("/") and not nested:
        return "/", []
    canonical, violations = path_id_violations(raw, base, path=path, within_parent=nested)
    return canonical, [(v.path, v.message) for v in violations]


def _scale_by(current: Mapping[str, dict], gid: str, update: dict) -> dict[str, dict]:
    factor = update["scaleBy"]
    problems: Violations = []
    if set(k for k, v in update.items() if v is not None) - {"id", "scaleBy"}:
        problems.append(("/scaleBy", _ALONE))
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
        problems.append(("/scaleBy", "must be a number"))
    elif factor < 0:
        problems.append(("/scaleBy", f"got {factor}, expected 0 or more"))
    if problems:
        raise ValidationFailed(problems)
    exact = Fraction(repr(float(factor)))
    result = dict(current)
    for app_id, data in current.items():
        if is_under(app_id, gid):
            instances = data.get("instances", 1)
            result[app_id] = {**data, "instances": math.ceil(instances * exact)}
    return result


def _unchanged(old: dict | None, new_json: dict) -> bool:
    """True when ``new_json`` is ``old`` but for version stamps (keep the stored JSON then)."""
    if old is None:
        return False
    try:
        before, after = parse_app_definition(old), parse_app_definition(new_json)
    except ValidationFailed:
        return False
    return not is_upgrade(before, after) and before.instances == after.instances


class _Builder:
    """One pass over a (nested) group body, collecting the new app map and every violation."""

    def __init__(self, current: Mapping[str, dict], replace: bool) -> None:
        self.current = current
        self.result: dict[str, dict] = dict(current)
        self.replace = replace
        self.violations: Violations = []
        self.origin: dict[str, str] = {}     # app id -> JSON path of its entry in the body

    def group(self, body: dict, gid: str, prefix: str) -> None:
        for key in ("scaleBy", "version"):
            if prefix and body.get(key) is not None:
                self.violations.append((f"{prefix}/{key}", _ALONE))
        self._enforce_role(body, gid, prefix)
        self._dependencies(body, gid, prefix)
        if body.get("apps") is not None:
            self._apps(body["apps"], gid, prefix)
        if body.get("groups") is not None:
            self._groups(body["groups"], gid, prefix)

    def _enforce_role(self, body: dict, gid: str, prefix: str) -> None:
        value = body.get("enforceRole")
        if value is None:
            return
        if not isinstance(value, bool):
            self.violations.append((f"{prefix}/enforceRole", "must be a boolean"))
        elif value and gid.count("/") != 1:
            self.violations.append((f"{prefix}/enforceRole",
                                    f"enforceRole can only be set for top-level groups, and {gid} is not top-level"))

    def _dependencies(self, body: dict, gid: str, prefix: str) -> None:
        deps = body.get("dependencies")
        if deps is None:
            return
        if not isinstance(deps, list):
            self.violations.append((f"{prefix}/dependencies", "must be a JSON array"))
            return
        for k, raw in enumerate(deps):
            _, problems = path_id_violations(raw, gid, path=f"{prefix}/dependencies({k})", within_parent=False)
            self.violations.extend((v.path, v.message) for v in problems)

    def _apps(self, entries: Any, gid: str, prefix: str) -> None:
        if not isinstance(entries, list):
            self.violations.append((f"{prefix}/apps", "must be a JSON array"))
            return
        given: dict[str, dict] = {}
        for i, raw in enumerate(entries):
            path = f"{prefix}/apps({i})"
            try:
                app = parse_app_definition(raw, parent=gid)
            except ValidationFailed as exc:
                self.violations.extend((v.path, v.message) for v in exc.with_prefix(path).violations)
                continue
            if app.id in given:
                self.violations.append((f"{path}/id", f"Duplicate app id {app.id} in the group"))
                continue
            given[app.id] = app.to_json()
            self.origin[app.id] = path
        if self.replace:
            for app_id in [a for a in self.result if parent_of(a) == gid and a not in given]:
                del self.result[app_id]
        for app_id, data in given.items():
            old = self.current.get(app_id)
            self.result[app_id] = old if old is not None and _unchanged(old, data) else data

    def _groups(self, entries: Any, gid: str, prefix: str) -> None:
        if not isinstance(entries, list):
            self.violations.append((f"{prefix}/groups", "must be a JSON array"))
            return
        listed: list[tuple[dict, str, str]] = []
        for j, body in enumerate(entries):
            path = f"{prefix}/groups({j})"
            if not isinstance(body, dict):
                self.violations.append((path, "must be a JSON object"))
                continue
            sub, problems = _resolve_group_id(body.get("id"), gid, f"{path}/id", nested=True)
            self.violations.extend(problems)
            if sub is None:
                continue
            if any(sub == other for _, other, _ in listed):
                self.violations.append((f"{path}/id", f"Duplicate group id {sub} in the group"))
                continue
            listed.append((body, sub, path))
        if self.replace:
            kept = [sub for _, sub, _ in listed]
            for app_id in [a for a in self.result if is_under(a, gid) and parent_of(a) != gid
                           and not any(a == s or is_under(a, s) for s in kept)]:
                del self.result[app_id]
        for body, sub, path in listed:
            self.group(body, sub, path)

    def check_clashes(self) -> None:
        """An app and a group may not share an id (Marathon: "Groups and Applications ...")."""
        ids = sorted(self.result)
        for app_id in ids:
            at = bisect.bisect_left(ids, app_id + "/")   # ids beneath app_id sort right here
            if at == len(ids) or not ids[at].startswith(app_id + "/"):
                continue
            inner = ids[at]
            where = self.origin.get(app_id) or self.origin.get(inner)
            path = f"{where}/id" if where else "/"
            self.violations.append((path, f"Groups and Applications may not have the same identifier: {app_id}"))


def apply_group_update(current: Mapping[str, dict], group_id: str, update: dict, *,
                       replace: bool) -> dict[str, dict]:
    """The whole new app map (app id -> app JSON) after a ``GroupUpdate`` on ``group_id``.

    ``group_id`` is the group of the URL; a body ``id`` resolves against it (``POST
    /v2/groups`` with ``{"id": "prod"}`` is ``/prod``). App and nested group ids resolve
    against their group. ``replace=True`` is ``PUT``: given ``apps``/``groups`` replace
    what is there (see the module docstring); ``replace=False`` only adds and replaces
    apps, for ``POST`` (the caller answers 409 if the group exists). ``scaleBy: f`` sets
    every app beneath the group to ``ceil(instances * f)`` and may come only with ``id``.
    Apps in the body come back in canonical JSON (``to_json``), unchanged ones as stored.

    A ``{"version": ts}`` body is a rollback: check :func:`group_rollback_version` first;
    here it raises ValueError. Raises :class:`ValidationFailed` with every violation, at
    Marathon's paths (``/apps(0)/id``, ``/groups(1)/apps(0)/cmd``).
    """
    if not isinstance(update, dict):
        raise ValidationFailed([("/", "must be a JSON object")])
    if update.get("version") is not None:
        raise ValueError("a group body with a version is a rollback: use group_rollback_version and restore_group")
    gid, problems = _resolve_group_id(update.get("id"), normalize_group_id(group_id), "/id", nested=False)
    if gid is None:
        raise ValidationFailed(problems)
    if update.get("scaleBy") is not None:
        return _scale_by(current, gid, update)
    builder = _Builder(current, replace)
    builder.group(update, gid, "")
    builder.check_clashes()
    if builder.violations:
        raise ValidationFailed(builder.violations)
    return builder.result


def group_dependencies_of(group_id: str, update: dict) -> dict[str, list[str]]:
    """Group id -> canonical dependencies, for every group of a (valid) body that gives them.

    Groups whose body has no ``dependencies`` key are left out (they keep what they had).
    """
    result: dict[str, list[str]] = {}

    def walk(body: dict, gid: str) -> None:
        deps = body.get("dependencies")
        if isinstance(deps, list):
            resolved = [path_id_violations(raw, gid, within_parent=False)[0] for raw in deps]
            result[gid] = [d for d in resolved if d is not None]
        for sub in body.get("groups") or []:
            if isinstance(sub, dict):
                sub_id, _ = _resolve_group_id(sub.get("id"), gid, "/id", nested=True)
                if sub_id is not None:
                    walk(sub, sub_id)

    gid, _ = _resolve_group_id(update.get("id"), normalize_group_id(group_id), "/id", nested=False)
    if gid is not None:
        walk(update, gid)
    return result
