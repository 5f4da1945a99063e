"""What a caller may see: listings and events cut down to the apps it may view.

Pure: `filter_listing(kind, body, may_view)` takes a listing's JSON (as the handler wrote it)
and returns it without the entries about apps the caller may not view; `event_visible` does
the same for one event. Filtering happens after the handler, so the handlers stay as they are
and a caller who may view everything (``viewer on /**``) costs nothing extra.

The rules, in one place:

* an app, a task, a queue entry, an autoscaler policy or decision: visible with `viewer` on
  its app id;
* a deployment: visible only with `viewer` on *every* app it affects (its plan names them all);
* a group tree: only the apps the caller may view, and the subgroups that still hold one;
* an event: about apps (``appId``, ``appDefinition.id``, a deployment plan's
  ``affectedApps``) -> visible only with `viewer` on all of them; about a group
  (``groupId``) -> with `viewer` on all of the group; about no app (``event_stream_attached``,
  leader events) -> visible to every authenticated caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

MayView = Callable[[str], bool]


def _app_of(item: Any, *keys: str) -> str | None:
    for key in keys:
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, str):
            return value
    return None


def _keep(items: Any, may_view: MayView, *keys: str) -> Any:
    if not isinstance(items, list):
        return items
    return [i for i in items if (app := _app_of(i, *keys)) is None or may_view(app)]


def _deployment_visible(deployment: Any, may_view: MayView) -> bool:
    affected = deployment.get("affectedApps", []) if isinstance(deployment, dict) else []
    return all(may_view(a) for a in affected if isinstance(a, str))


def _group(tree: Any, may_view: MayView) -> Any:
    """The group tree with only visible apps and the subgroups that still hold something."""
    if not isinstance(tree, dict):
        return tree
    out = dict(tree)
    if isinstance(tree.get("apps"), list):
        out["apps"] = [a for a in tree["apps"] if isinstance(a, dict) and may_view(str(a.get("id", "")))]
    if isinstance(tree.get("groups"), list):
        kept = [_group(g, may_view) for g in tree["groups"]]
        out["groups"] = [g for g in kept if _holds_something(g)]
    return out


def _holds_something(tree: Any) -> bool:
    return isinstance(tree, dict) and bool(tree.get("apps") or tree.get("groups"))


def filter_listing(kind: str, body: Any, may_view: MayView) -> Any:
    """``body`` without what the caller may not view (``kind`` from `routes.listing_kind`)."""
    if kind in ("apps", "apps*") and isinstance(body, dict):
        key = "apps" if kind == "apps" else "*"
        return {**body, key: _keep(body.get(key), may_view, "id")}
    if kind == "tasks" and isinstance(body, dict):
        return {**body, "tasks": _keep(body.get("tasks"), may_view, "appId")}
    if kind == "queue" and isinstance(body, dict):
        return {**body, "queue": _keep(body.get("queue"), may_view, "app")}
    if kind == "deployments" and isinstance(body, list):
        return [d for d in body if _deployment_visible(d, may_view)]
    if kind == "groups":
        return _group(body, may_view)
    if kind in ("policies", "decisions") and isinstance(body, dict):
        return {**body, kind: _keep(body.get(kind), may_view, "appId")}
    return body


@lru_cache(maxsize=4096)
def event_subjects(data: str) -> tuple[tuple[str, ...], str | None]:
    """(app ids, group id) an event's JSON is about. Cached by the event's text: the bus
    serialises each event once and every subscriber sees the same string."""
    try:
        payload = json.loads(data)
    except ValueError:
        return (), None
    if not isinstance(payload, dict):
        return (), None
    apps: list[str] = []
    for key in ("appId",):
        if isinstance(payload.get(key), str):
            apps.append(payload[key])
    definition = payload.get("appDefinition")
    if isinstance(definition, dict) and isinstance(definition.get("id"), str):
        apps.append(definition["id"])
    plan = payload.get("plan")
    if isinstance(plan, dict) and isinstance(plan.get("affectedApps"), list):
        apps.extend(a for a in plan["affectedApps"] if isinstance(a, str))
    group = payload.get("groupId")
    return tuple(dict.fromkeys(apps)), group if isinstance(group, str) else None


def event_visible(data: str, may_view: MayView, may_view_group: MayView) -> bool:
    """Whether an event (its JSON text) may be sent to a caller (see the module's rules)."""
    apps, group = event_subjects(data)
    if group is not None and not may_view_group(group):
        return False
    return all(may_view(a) for a in apps)
