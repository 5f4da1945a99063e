"""``POST /v2/deployments/{id}/promote`` and ``/abort``: a person steering a canary deployment.

``promote`` with ``{"mode": "next"}`` (the default, also an empty body) ends the current step
now; ``{"mode": "full"}`` (or ``?full=true``) skips every remaining step and rolls the rest of
the app. ``abort`` sets the canary weight to 0, fails the deployment with the reason and rolls
the app back to its stable version. Both answer the deployment as ``GET /v2/deployments``
shows it (the abort: as it was when aborted). ``DELETE /v2/deployments/{id}`` keeps Marathon's
meaning for canary deployments too (rolled back, or only cancelled with ``?force=true``).

A deployment of several canary apps (a group written whole) is steered as one by default:
promote moves every canary still in its steps (all or nothing: 409 while one has not begun),
abort rolls the whole deployment back. ``?appId=/web`` acts on that app's canary only; an
abort of one still fails and rolls back the whole deployment, as its analysis failing would.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app_definitions import ValidationFailed, canonical_path_id

from scheduler.api.params import flag, json_body, json_response, scheduler_of


async def _body(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed([("/", 'the body must be an object such as {"mode": "next"} (or empty)')])
    return body


def _app_id(request: web.Request) -> str | None:
    """``?appId=``: the one canary app to act on (None: every canary of the deployment)."""
    raw = request.query.get("appId")
    if raw is None or raw.strip() == "":
        return None
    try:
        return canonical_path_id(raw.strip())
    except ValidationFailed:
        raise ValidationFailed([("/appId", f"{raw!r} is not an app id; name one of the deployment's canary "
                                           "apps, such as ?appId=/shop/web, or leave it out to act on all")]) from None


async def promote_deployment(request: web.Request) -> web.Response:
    body = await _body(request)
    unknown = sorted(set(body) - {"mode", "reason"})
    if unknown:
        raise ValidationFailed([(f"/{unknown[0]}", 'unknown field; the body is {"mode": "next"|"full"}')])
    mode = body.get("mode", "full" if flag(request, "full") else "next")
    if mode not in ("next", "full"):
        raise ValidationFailed([("/mode", f'must be "next" (end the current step) or "full" (skip every '
                                          f'remaining step), not {mode!r}')])
    run = scheduler_of(request).canary.promote(request.match_info["id"], mode, _app_id(request))
    return json_response(run.to_json())


async def abort_deployment(request: web.Request) -> web.Response:
    body = await _body(request)
    reason = body.get("reason", "aborted by request")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed([("/reason", "must be a non-empty string")])
    run = scheduler_of(request).canary.abort(request.match_info["id"], reason.strip(), _app_id(request))
    return json_response(run.to_json())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v2/deployments/{id}/promote", promote_deployment)
    router.add_post("/v2/deployments/{id}/abort", abort_deployment)
