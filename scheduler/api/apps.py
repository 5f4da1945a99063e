"""/v2/apps: list, create, update (PUT/PATCH, partial, rollback), delete, restart, versions, tasks.

App ids contain slashes, so everything below /v2/apps/ is one route whose tail is split here:
`<id>/tasks[/<taskId>]`, `<id>/versions[/<version>]`, `<id>/restart`, `<group>/*`. Marathon
reserves `tasks`, `versions` and `restart` as last id segments, which makes the split safe.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app_definitions import ValidationFailed

from scheduler.errors import NotFound, app_not_found
from scheduler.api.selector import SelectorSyntaxError, parse_label_selector
from scheduler.api.params import (deployment_result, embeds, flag, json_body, json_bytes_response, json_response,
                                  path_app_id, scheduler_of)
from scheduler.api.render import render_app, render_task
from scheduler.api.render_cache import render_cache_of
from scheduler.auth.middleware import app_filter
from scheduler.api.pending import may_hold, submit, wanted_at


APP_EMBEDS = frozenset({"tasks", "lastTaskFailure"})
"""What GET /v2/apps/{id} always embeds, as Marathon does."""


def _deployment_response(deployment_id: str, version: str, status: int = 200) -> web.Response:
    return json_response(deployment_result(deployment_id, version), status, {"Marathon-Deployment-Id": deployment_id})


def _announce(request: web.Request, records: list[Any]) -> None:
    """api_post_event for each app a request changed (marathon-lb re-syncs on it)."""
    sched = scheduler_of(request)
    for record in records:
        sched.events.publish("api_post_event", clientIp=request.remote, uri=request.path,
                             appDefinition=record.json)


async def list_apps(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    id_filter = request.query.get("id", "").lower()
    cmd_filter = request.query.get("cmd", "")
    label = request.query.get("label")
    try:
        matches_labels = parse_label_selector(label) if label else None
    except SelectorSyntaxError as exc:
        raise ValidationFailed([("/label", str(exc))]) from None
    wanted = embeds(request)
    visible = app_filter(request)
    out = []
    for app_id in sorted(sched.view.apps):
        record = sched.view.apps[app_id]
        if visible is not None and not visible(app_id):
            continue
        if id_filter and id_filter not in app_id.lower():
            continue
        if cmd_filter and cmd_filter not in (record.definition.cmd or ""):
            continue
        if matches_labels is not None and not matches_labels(record.definition.labels):
            continue
        out.append(record)
    return json_bytes_response(b'{"apps":' + render_cache_of(request).apps(out, wanted) + b"}")


async def create_app(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    body, force = await json_body(request), flag(request, "force")
    if may_hold(request):        # ?at= or an approval gate: validated now, perhaps started later
        record = sched.writes.prepare_create(body)
        held, deployment = submit(request, [record], force=force, status=201)
        if held is not None:
            return held
        assert deployment is not None
    else:
        record, deployment = sched.writes.create_app(body, force=force)
    _announce(request, [record])
    body = render_app(sched, record, set())
    body.update(tasksStaged=0, tasksRunning=0, tasksHealthy=0, tasksUnhealthy=0)
    return json_response(body, 201, {"Location": f"/v2/apps{record.app_id}", "Marathon-Deployment-Id": deployment.id})


async def _update_many(request: web.Request, *, must_exist: bool) -> web.Response:
    sched = scheduler_of(request)
    body = await json_body(request)
    if not isinstance(body, list):
        raise ValidationFailed([("/", "error.expected.jsarray")])
    updates = []
    for i, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValidationFailed([(f"/({i})/id", "error.path.missing")])
        updates.append((path_app_id(item["id"], missing_is_404=False), item))
    partial = flag(request, "partialUpdate", True) if request.method == "PUT" else True
    if may_hold(request):
        records = [r for r, _ in sched.writes.prepare_updates(updates, partial=partial, must_exist=must_exist)]
        held, deployment = submit(request, records, force=flag(request, "force"))
        if held is not None:
            return held
        assert deployment is not None
    else:
        records, deployment, _ = sched.writes.update_apps(updates, partial=partial, must_exist=must_exist,
                                                          force=flag(request, "force"))
    _announce(request, records)
    return _deployment_response(deployment.id, deployment.plan.version)


async def put_apps(request: web.Request) -> web.Response:
    return await _update_many(request, must_exist=False)


async def patch_apps(request: web.Request) -> web.Response:
    return await _update_many(request, must_exist=True)


def _split_tail(tail: str, known: set[str]) -> tuple[str, str, str | None]:
    """(app id, sub-resource, argument) for a /v2/apps/<tail> path."""
    parts = [p for p in tail.split("/") if p]
    for sub in ("tasks", "versions"):
        if len(parts) >= 2 and parts[-1] == sub:
            return "/" + "/".join(parts[:-1]), sub, None
        if len(parts) >= 3 and parts[-2] == sub and "/" + "/".join(parts) not in known:
            return "/" + "/".join(parts[:-2]), sub, parts[-1]
    if len(parts) >= 2 and parts[-1] == "restart":
        return "/" + "/".join(parts[:-1]), "restart", None
    if parts and parts[-1] == "*":
        return "/" + "/".join(parts[:-1]), "*", None
    return "/" + "/".join(parts), "", None


async def app_resource(request: web.Request) -> web.StreamResponse:
    sched = scheduler_of(request)
    raw_id, sub, arg = _split_tail(request.match_info["tail"], set(sched.view.apps))
    method = request.method
    if sub == "*" and method == "GET":
        prefix = path_app_id(raw_id).rstrip("/") + "/" if raw_id not in ("", "/") else "/"
        visible = app_filter(request)
        apps = [render_app(sched, sched.view.apps[a], {"tasks", "lastTaskFailure"})
                for a in sorted(sched.view.apps) if a.startswith(prefix) and (visible is None or visible(a))]
        return json_response({"*": apps})
    if sub == "":
        return await _app_root(request, raw_id)
    app_id = path_app_id(raw_id)
    if sub == "restart" and method == "POST":
        sched.view.app(app_id)
        record, deployment = sched.writes.restart_app(app_id, force=flag(request, "force"))
        return _deployment_response(deployment.id, record.version)
    if sub == "versions" and method == "GET":
        sched.view.app(app_id)
        if arg is None:
            return json_response({"versions": sched.view.app_versions(app_id)})
        stored = sched.view.app_version(app_id, arg)
        if stored is None:
            raise NotFound(f"App '{app_id}' does not exist in version {arg}")
        return json_response(stored)
    if sub == "tasks":
        return await _app_tasks(request, app_id, arg)
    raise web.HTTPMethodNotAllowed(method, ["GET", "POST", "DELETE"])


async def _app_root(request: web.Request, raw_id: str) -> web.Response:
    sched = scheduler_of(request)
    method = request.method
    if method == "GET":
        app_id = path_app_id(raw_id)
        record = sched.view.app(app_id)
        return json_bytes_response(b'{"app":' + render_cache_of(request).app(record, APP_EMBEDS) + b"}")
    if method in ("PUT", "PATCH") or (method == "POST" and wanted_at(request) is not None):
        # POST /v2/apps/{id}?at= (Pacer's): the whole definition, as PUT ...?partialUpdate=false
        app_id = path_app_id(raw_id, missing_is_404=False)
        body = await json_body(request)
        partial = flag(request, "partialUpdate", True) if method == "PUT" else method == "PATCH"
        force = flag(request, "force")
        if may_hold(request):
            prepared = sched.writes.prepare_updates([(app_id, body)], partial=partial, must_exist=method == "PATCH")
            records, created = [r for r, _ in prepared], prepared[0][1]
            held, deployment = submit(request, records, force=force, status=201 if created else 200)
            if held is not None:
                return held
            assert deployment is not None
        else:
            records, deployment, created = sched.writes.update_apps([(app_id, body)], partial=partial,
                                                                    must_exist=method == "PATCH", force=force)
        _announce(request, records)
        if created:
            return json_response(render_app(sched, records[0], set()), 201,
                         {"Location": f"/v2/apps{app_id}", "Marathon-Deployment-Id": deployment.id})
        return _deployment_response(deployment.id, records[0].version)
    if method == "DELETE":
        app_id = path_app_id(raw_id)
        deployment = sched.writes.delete_app(app_id, force=flag(request, "force", True))
        return _deployment_response(deployment.id, deployment.plan.version)
    raise web.HTTPMethodNotAllowed(method, ["GET", "PUT", "PATCH", "DELETE"])


async def _app_tasks(request: web.Request, app_id: str, task_id: str | None) -> web.Response:
    sched = scheduler_of(request)
    if app_id not in sched.view.apps:
        raise app_not_found(app_id)
    insts = sched.view.instances_of(app_id)
    if request.method == "GET" and task_id is None:
        tasks = render_cache_of(request).tasks(sorted(insts, key=lambda i: i.staged_at))
        return json_bytes_response(b'{"tasks":' + tasks + b"}")
    if request.method != "DELETE":
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "DELETE"])
    scale, wipe = flag(request, "scale"), flag(request, "wipe")
    if task_id is not None:
        if task_id not in {i.instance_id for i in insts}:
            raise NotFound(f"Task '{task_id}' does not exist")
        ids = [task_id]
    else:
        host = request.query.get("host")
        ids = [i.instance_id for i in insts if host is None or i.host == host]
    killed, deployment = sched.writes.kill_instances(ids, scale=scale, wipe=wipe, force=flag(request, "force"))
    if deployment is not None:
        return _deployment_response(deployment.id, deployment.plan.version)
    if task_id is not None:
        return json_response({"task": render_task(killed[0], sched)})
    return json_response({"tasks": [render_task(i, sched) for i in killed]})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/apps", list_apps)
    router.add_post("/v2/apps", create_app)
    router.add_put("/v2/apps", put_apps)
    router.add_patch("/v2/apps", patch_apps)
    router.add_route("*", "/v2/apps/{tail:.+}", app_resource)
