"""Pacer's extensions of the deployment API: scheduled cutovers and approval gates.

* ``POST /v2/apps?at=T``, ``PUT /v2/apps/{id}?at=T`` and ``POST /v2/apps/{id}?at=T`` (the
  whole definition, as ``PUT …?partialUpdate=false``) validate now (the same 422/409 as
  without ``at``) and store the change as pending until ``T`` (ISO 8601 with an offset):
  201/200 with ``{"deploymentId", "version", "scheduledAt", "status"}``.
* A change to an app beneath a path the auth file marks ``requiresApproval`` is held the same
  way (``"status": "awaiting approval"``) until another user with `approver` on it approves.
* ``GET /v2/deployments`` lists them after the running ones; ``DELETE /v2/deployments/{id}``
  cancels one (or removes an ended one); ``PUT /v2/deployments/{id}`` with
  ``{"scheduledAt": T}`` moves one; ``POST /v2/deployments/{id}/approve`` and ``/reject`` with
  ``{"comment": …}`` decide a held one.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from app_definitions import ValidationFailed

from scheduler.api.params import json_body, json_response, scheduler_of
from scheduler.auth.approval import approval_for, approvals_configured
from scheduler.auth.middleware import principal_of
from scheduler.deploy.pending import PendingDeployment
from scheduler.deploy.runs import DeploymentRun
from scheduler.errors import NotFound
from scheduler.state.apps import AppRecord


def wanted_at(request: web.Request) -> str | None:
    """The ``at`` query parameter (an empty one is refused by `parse_at`), or None."""
    return request.query.get("at") if "at" in request.query else None


def author_of(request: web.Request) -> str | None:
    principal = principal_of(request)
    return principal.name if principal is not None else None


def may_hold(request: web.Request) -> bool:
    """Whether a write might be held (scheduled, or gated): if not, it takes the plain path."""
    return wanted_at(request) is not None or approvals_configured(request)


def pending_result(pending: PendingDeployment) -> dict[str, Any]:
    body: dict[str, Any] = {"deploymentId": pending.id, "version": pending.version, "status": pending.status}
    if pending.scheduled_at is not None:
        body["scheduledAt"] = pending.scheduled_text
    if pending.approval is not None:
        body["approval"] = pending.approval.to_json()
    return body


def submit(request: web.Request, records: list[AppRecord], *, force: bool,
           status: int = 200) -> tuple[web.Response | None, DeploymentRun | None]:
    """Hold the prepared records (scheduled or gated) and answer; or, when neither applies,
    deploy them at once and return the run for the caller's usual answer."""
    sched = scheduler_of(request)
    at = wanted_at(request)
    approval = approval_for(request, [r.app_id for r in records])
    if at is None and approval is None:
        return None, sched.writes.deploy_changes({r.app_id: r for r in records}, plan_id=str(uuid.uuid4()),
                                                 force=force)
    pending = sched.pending.submit(records, at=at, author=author_of(request), approval=approval)
    return json_response(pending_result(pending), status, {"Marathon-Deployment-Id": pending.id}), None


# -- /v2/deployments ------------------------------------------------------------------------

def pending_rows(request: web.Request) -> list[dict[str, Any]]:
    """The pending deployments as rows of ``GET /v2/deployments``, earliest start first."""
    pending = scheduler_of(request).view.pending.values()
    return [p.to_json() for p in sorted(pending, key=lambda p: (p.scheduled_at or p.created_at, p.id))]


def is_pending(request: web.Request, deployment_id: str) -> bool:
    return deployment_id in scheduler_of(request).view.pending


def cancel(request: web.Request, deployment_id: str) -> web.Response:
    scheduler_of(request).pending.cancel(deployment_id, author_of(request))
    return web.Response(status=202)


async def move_deployment(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    deployment_id = request.match_info["id"]
    if deployment_id not in sched.view.pending:
        if deployment_id in sched.view.deployments:
            raise ValidationFailed([("/scheduledAt", f"deployment {deployment_id} is already running; only a "
                                                     "scheduled deployment can be moved")])
        raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
    moved = sched.pending.move(deployment_id, await json_body(request))
    return json_response(moved.to_json())


async def _comment(request: web.Request) -> str | None:
    if not await request.read():
        return None
    body = await json_body(request)
    if not isinstance(body, dict) or not set(body) <= {"comment"} or not isinstance(body.get("comment", ""), str):
        raise ValidationFailed([("/comment", "the body must be {\"comment\": \"<text>\"} (or empty)")])
    return body.get("comment")


def _user(request: web.Request) -> str:
    user = author_of(request)
    if user is None:
        raise ValidationFailed([("/", "approving or rejecting needs an authenticated user: start pacer serve "
                                      "with --auth-file")])
    return user


async def approve_deployment(request: web.Request) -> web.Response:
    comment = await _comment(request)
    approved = scheduler_of(request).pending.approve(request.match_info["id"], _user(request), comment)
    return json_response(approved.to_json())


async def reject_deployment(request: web.Request) -> web.Response:
    comment = await _comment(request)
    rejected = scheduler_of(request).pending.reject(request.match_info["id"], _user(request), comment)
    return json_response(rejected.to_json())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_put("/v2/deployments/{id}", move_deployment)
    router.add_post("/v2/deployments/{id}/approve", approve_deployment)
    router.add_post("/v2/deployments/{id}/reject", reject_deployment)
