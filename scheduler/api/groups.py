"""/v2/groups: groups are the app-id tree; writes become one deployment over all their apps."""

from __future__ import annotations

from aiohttp import web

from app_definitions import ValidationFailed, canonical_path_id

from scheduler.errors import Conflict, NotFound
from scheduler.deploy.groups import apply_group_update, delete_group, group_rollback_version, group_tree, restore_group
from scheduler.api.params import deployment_result, flag, json_body, json_response, scheduler_of
from scheduler.auth.middleware import app_filter



def _group_id(request: web.Request) -> str:
    raw = request.match_info.get("tail", "") or "/"
    try:
        return canonical_path_id(raw) if raw.strip("/") else "/"
    except ValidationFailed:
        raise NotFound(f"Group '/{raw.strip('/')}' does not exist") from None


def _current(request: web.Request) -> dict[str, dict]:
    return {app_id: record.json for app_id, record in scheduler_of(request).view.apps.items()}


def _visible(request: web.Request, apps: dict[str, dict]) -> dict[str, dict]:
    """``apps`` cut down to those the caller may view (reads only: a write works on the whole
    group, which its authorization covers): trees and versions are built from these, so a
    nested group holding nothing visible is not shown."""
    visible = app_filter(request)
    return apps if visible is None else {a: d for a, d in apps.items() if visible(a)}


async def get_group(request: web.Request) -> web.Response:
    tail = request.match_info.get("tail", "").rstrip("/")
    parts = tail.split("/")
    if parts[-1] == "versions" or (len(parts) >= 2 and parts[-2] == "versions"):
        return await _group_versions(request, parts)
    group_id = _group_id(request)
    embed = set(request.query.getall("embed", []))
    tree = group_tree(_visible(request, _current(request)), group_id, embed_apps=not embed or "group.apps" in embed)
    if tree is None:
        raise NotFound(f"Group '{group_id}' does not exist")
    return json_response(tree)


async def _group_versions(request: web.Request, parts: list[str]) -> web.Response:
    """A group's versions are the versions of the apps beneath it (Pacer versions apps only)."""
    sched = scheduler_of(request)
    at = parts[-1] if parts[-1] != "versions" else None
    base = parts[:-1] if at is None else parts[:-2]
    group_id = "/" + "/".join(p for p in base if p)
    current = _visible(request, _current(request))
    if group_id != "/" and group_tree(current, group_id) is None:
        raise NotFound(f"Group '{group_id}' does not exist")
    if at is None:
        versions = sorted({v for app_id in current if group_id == "/" or app_id.startswith(group_id + "/")
                           for v in sched.view.app_versions(app_id)}, reverse=True)
        return json_response(versions)
    snapshot = {a: d for a, d in _visible(request, sched.view.apps_as_of(at)).items()
                if group_id == "/" or a.startswith(group_id + "/")}
    tree = group_tree(snapshot, group_id, version=at)
    if tree is None:
        raise NotFound(f"Group '{group_id}' does not exist in version {at}")
    return json_response(tree)


async def _write(request: web.Request, *, create: bool) -> web.Response:
    sched = scheduler_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed([("/", "error.expected.jsobject")])
    group_id = _group_id(request)
    if create and "id" in body and group_id == "/":
        group_id = canonical_path_id(str(body["id"]))
        body = {k: v for k, v in body.items() if k != "id"}
    current = _current(request)
    if create and group_id != "/" and group_tree(current, group_id) is not None:
        raise Conflict(f"Group {group_id} is already created. Use PUT to change this group.")
    rollback_to = group_rollback_version(body)
    if rollback_to is not None:
        new_apps = restore_group(current, group_id, sched.view.apps_as_of(rollback_to))
    else:
        new_apps = apply_group_update(current, group_id, body, replace=not create)
    if flag(request, "dryRun"):
        plan = sched.writes.plan_replace(new_apps)
        return json_response({"steps": plan.to_json()["steps"]})
    run = sched.writes.replace_apps(new_apps, force=flag(request, "force"))
    for app_id in run.plan.affected_app_ids:
        if app_id in sched.view.apps:
            sched.events.publish("api_post_event", clientIp=request.remote, uri=request.path,
                                 appDefinition=sched.view.apps[app_id].json)
    sched.events.publish("group_change_success", groupId=group_id, version=run.plan.version)
    return json_response(deployment_result(run.id, run.plan.version), 201 if create else 200,
                 {"Marathon-Deployment-Id": run.id})


async def create_group(request: web.Request) -> web.Response:
    return await _write(request, create=True)


async def update_group(request: web.Request) -> web.Response:
    return await _write(request, create=False)


async def remove_group(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    group_id = _group_id(request)
    current = _current(request)
    if group_id != "/" and group_tree(current, group_id) is None:
        raise NotFound(f"Group '{group_id}' does not exist")
    run = sched.writes.replace_apps(delete_group(current, group_id), force=flag(request, "force"))
    sched.events.publish("group_change_success", groupId=group_id, version=run.plan.version)
    return json_response(deployment_result(run.id, run.plan.version), 200, {"Marathon-Deployment-Id": run.id})


def add_routes(router: web.UrlDispatcher) -> None:
    for path in ("/v2/groups", "/v2/groups/{tail:.+}"):
        router.add_get(path, get_group)
        router.add_post(path, create_group)
        router.add_put(path, update_group)
        router.add_delete(path, remove_group)
