"""/v2/tasks, /v2/tasks/delete, /v2/queue and /v2/deployments."""

from __future__ import annotations

import time

from aiohttp import web

from app_definitions import ValidationFailed

from scheduler.state.model import RUNNING, STAGING, STARTING
from scheduler.api.params import (deployment_result, embeds, flag, json_body, json_bytes_response, json_response,
                                  path_app_id, scheduler_of)
from scheduler.api.render import render_queue_entry, render_task
from scheduler.api.render_cache import render_cache_of
from scheduler.auth.middleware import app_filter
from scheduler.auth.visibility import deployment_view
from scheduler.api.pending import cancel, is_pending, pending_rows

_STATUS_FILTERS = {"running": {RUNNING}, "staging": {STAGING, STARTING}}



async def list_tasks(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    wanted: set[str] = set()
    for value in request.query.getall("status", []) + request.query.getall("status[]", []):
        states = _STATUS_FILTERS.get(value.lower())
        if states is None:
            raise ValidationFailed([("/status", 
                f"unknown status '{value}': use running or staging")])
        wanted |= states
    visible = app_filter(request)
    insts = [i for i in sched.view.instances.values()
             if (not wanted or i.state in wanted) and (visible is None or visible(i.app_id))]
    tasks = render_cache_of(request).tasks(sorted(insts, key=lambda i: (i.app_id, i.staged_at)))
    return json_bytes_response(b'{"tasks":' + tasks + b"}")


async def delete_tasks(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    body = await json_body(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValidationFailed([("/ids", "expected a list of task ids")])
    killed, deployment = sched.writes.kill_instances(ids, scale=flag(request, "scale"), wipe=flag(request, "wipe"),
                                              force=flag(request, "force"))
    if deployment is not None:
        return json_response(deployment_result(deployment.id, deployment.plan.version), 200,
                     {"Marathon-Deployment-Id": deployment.id})
    return json_response({"tasks": [render_task(i, sched) for i in killed]})


async def get_queue(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    t = time.time()
    with_reason = "reason" in embeds(request)
    visible = app_filter(request)
    return json_response({"queue": [render_queue_entry(sched, app_id, entry, t, with_reason)
                                    for app_id, entry in sorted(sched.view.queue.items())
                                    if app_id in sched.view.apps and (visible is None or visible(app_id))]})


async def reset_delay(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    sched.writes.reset_delay(path_app_id(request.match_info["tail"]))
    return web.Response(status=204)


async def list_deployments(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    visible = app_filter(request)
    runs = [run for run in sched.view.deployments.values()
            if visible is None or any(visible(a) for a in run.plan.affected_app_ids)]
    readiness = {app_id: [r for i in sched.view.instances_of(app_id) if (r := sched.view.readiness(i.instance_id))]
                 for run in runs for app_id in run.plan.affected_app_ids if visible is None or visible(app_id)}
    # Pacer's waiting deployments (scheduled, awaiting approval, ended unstarted) only when asked
    # for: Marathon clients (marathon-python's MarathonDeployment) refuse a row with fields of ours
    bodies = [run.to_json(readiness) for run in runs] + (pending_rows(request) if "pending" in embeds(request) else [])
    if visible is not None:
        bodies = [view for body in bodies if (view := deployment_view(body, visible)) is not None]
    return json_response(bodies)


async def delete_deployment(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    if is_pending(request, request.match_info["id"]):
        return cancel(request, request.match_info["id"])
    rollback = sched.writes.cancel_deployment(request.match_info["id"], force=flag(request, "force"))
    if rollback is None:
        return web.Response(status=202)
    return json_response(deployment_result(rollback.id, rollback.plan.version), 200, {"Marathon-Deployment-Id": rollback.id})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/tasks", list_tasks)
    router.add_post("/v2/tasks/delete", delete_tasks)
    router.add_get("/v2/queue", get_queue)
    router.add_delete("/v2/queue/{tail:.+}/delay", reset_delay)
    router.add_get("/v2/deployments", list_deployments)
    router.add_delete("/v2/deployments/{id}", delete_deployment)
