"""What a caller may see: listings and events cut down to the apps it may view.

Pure. The API's own listings filter at their source: each handler asks `middleware.app_filter`
for the caller's predicate and leaves out what it may not view *before* rendering, so the
render cache keeps serving the bytes of each app and task, a nested group tree is built from
the visible apps only, and nothing is parsed again. `deployment_view` cuts one deployment's
JSON down to the visible apps. `filter_listing(kind, body, may_view)` filters the listings of
sub-applications that do not know the caller (the autoscaler's policies and decisions) after
their handler, on the parsed JSON; `event_visible` decides for one event. A caller who may
view everything (``viewer on /**``) costs nothing extra anywhere.

The rules, in one place:

* an app, a task, a queue entry, an autoscaler policy or decision: visible with `viewer` on
  its app id;
* a deployment: visible with `viewer` on at least one app it affects, and then shown with
  the other apps' ids cut out (``affectedApps``, each step's actions, ``currentActions``):
  a deployment touching an app the caller may not view never names it;
* a group tree: only the apps the caller may view, and the (nested) groups that hold one; a
  group holding none does not exist for the caller (404);
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


def deployment_view(deployment: dict[str, Any], may_view: MayView) -> dict[str, Any] | None:
    """``deployment`` (a `/v2/deployments` item) as the caller may see it: None when it affects
    no app the caller may view, else without the ids of the apps it may not view."""
    affected = [a for a in deployment.get("affectedApps", []) if isinstance(a, str)]
    seen = [a for a in affected if may_view(a)]
    if affected and not seen:
        return None
    if len(seen) == len(affected):
        return deployment
    out = dict(deployment, affectedApps=seen)
    if isinstance(deployment.get("steps"), list):
        out["steps"] = [dict(step, actions=_keep(step.get("actions"), may_view, "app"))
                        if isinstance(step, dict) else step for step in deployment["steps"]]
    if "currentActions" in deployment:
        out["currentActions"] = _keep(deployment["currentActions"], may_view, "app")
    approval = deployment.get("approval")
    if isinstance(approval, dict) and isinstance(approval.get("paths"), list):
        out["approval"] = dict(approval, paths=[p for p in approval["paths"] if isinstance(p, str) and may_view(p)])
    return out


def filter_listing(kind: str, body: Any, may_view: MayView) -> Any:
    """``body`` without what the caller may not view (``kind`` from `routes.listing_kind`: the
    autoscaler's ``policies`` and ``decisions``, whose handlers do not know the caller)."""
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
