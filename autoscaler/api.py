"""The autoscaler's REST API, an aiohttp sub-application mounted at ``/v2/autoscaler``.

    GET    /policies               effective policies (REST-registered, then label ones)
    POST   /policies               register one (body has appId); 201, 409 if it exists
    GET    /policies/{appId}       one REST-registered or label policy; 404
    PUT    /policies/{appId}       create (201) or replace (200)
    DELETE /policies/{appId}       remove a REST-registered policy (labels stay); 200 with it, 404
    GET    /decisions              ?appId=/x&limit=N&action=scale_up|scale_down|none
    GET    /series                 ?appId=/x&seconds=N (3600; at most 7 days): CPU and memory in % of
                                   the allocation and instances over time, with the effective policy
                                   and the spans of its scheduled windows in that time (``windows``)
    GET    /status                 cycles, errors, sink counters

Bad bodies: 400 for invalid JSON, 422 with Marathon's error shape naming each field:
``{"message": "Object is not valid", "details": [{"path": "/max", "errors": ["is required"]}]}``.
The handlers answer every error themselves, so the sub-app works under any parent app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from app_definitions import ValidationFailed, canonical_path_id
from metrics.errors import MetricsError
from pacer_client import ClientError

from .policy import PolicyError, canonical_app_id, policy_from_json
from .series import DEFAULT_SECONDS, MAX_SECONDS
from .service import Autoscaler

AUTOSCALER_KEY = web.AppKey("autoscaler", Autoscaler)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json")


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message}
    if details is not None:
        body["details"] = details
    return _json(body, status)


def _invalid(exc: PolicyError) -> web.Response:
    details = [{"path": field if field.startswith("/") else "/" + field, "errors": [message]}
               for field, message in exc.violations]
    return _error(422, "Object is not valid", details)


async def _body(request: web.Request) -> Any:
    text = await request.text()
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"message": f"Invalid JSON: {exc}"}),
                                 content_type="application/json") from None


def _scaler(request: web.Request) -> Autoscaler:
    return request.app[AUTOSCALER_KEY]


def _path_app_id(request: web.Request) -> str:
    return canonical_app_id(request.match_info["app_id"])


async def list_policies(request: web.Request) -> web.Response:
    return _json({"policies": _scaler(request).policies()})


async def create_policy(request: web.Request) -> web.Response:
    scaler = _scaler(request)
    try:
        policy = policy_from_json(await _body(request))
    except PolicyError as exc:
        return _invalid(exc)
    if scaler.store.get(policy.app_id) is not None:
        return _error(409, f"A policy for app {policy.app_id} already exists; PUT /v2/autoscaler/policies"
                           f"{policy.app_id} replaces it")
    scaler.store.put(policy)
    return _json(policy.to_json(), 201)


async def get_policy(request: web.Request) -> web.Response:
    scaler, app_id = _scaler(request), _path_app_id(request)
    for policy in scaler.policies():
        if policy["appId"] == app_id:
            return _json(policy)
    return _error(404, f"No autoscaling policy for app {app_id}")


async def put_policy(request: web.Request) -> web.Response:
    scaler, app_id = _scaler(request), _path_app_id(request)
    try:
        policy = policy_from_json(await _body(request), app_id=app_id)
    except PolicyError as exc:
        return _invalid(exc)
    created = scaler.store.put(policy)
    return _json(policy.to_json(), 201 if created else 200)


async def delete_policy(request: web.Request) -> web.Response:
    scaler, app_id = _scaler(request), _path_app_id(request)
    policy = scaler.store.delete(app_id)
    if policy is None:
        return _error(404, f"No autoscaling policy registered over the API for app {app_id}")
    return _json(policy.to_json())


async def list_decisions(request: web.Request) -> web.Response:
    query = request.query
    app_id = canonical_app_id(query["appId"]) if query.get("appId") else None
    limit = None
    if "limit" in query:
        try:
            limit = int(query["limit"])
            if limit < 1:
                raise ValueError
        except ValueError:
            return _error(400, f"limit must be a positive integer (got '{query['limit']}')")
    decisions = _scaler(request).decisions(app_id)
    if query.get("action"):
        decisions = [d for d in decisions if d["action"] == query["action"]]
    if limit:
        decisions = decisions[-limit:]
    return _json({"decisions": decisions})


def series_query(query: Mapping[str, str]) -> tuple[str, int] | str:
    """(app id, seconds) from ``/series``'s query, or the message of a 400."""
    raw_app = query.get("appId", "").strip()
    if not raw_app.strip("/"):
        return "appId is required: the id of the app to chart, e.g. appId=/web"
    try:
        app_id = canonical_path_id(raw_app)
    except ValidationFailed:
        return (f"appId '{raw_app}' is not an app id: use a path of names made of letters, digits and '-' "
                "separated by '/', such as /group/app")
    raw = query.get("seconds", "").strip()
    if not raw:
        return app_id, DEFAULT_SECONDS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SECONDS:
        return f"seconds must be an integer from 1 to {MAX_SECONDS} (7 days), not '{raw}'"
    return app_id, int(raw)


async def series(request: web.Request) -> web.Response:
    parsed = series_query(request.query)
    if isinstance(parsed, str):
        return _error(400, parsed)
    app_id, seconds = parsed
    try:
        answer = await _scaler(request).series(app_id, seconds)
    except (ClientError, TimeoutError) as exc:
        return _error(503, f"the scheduler API cannot be read now: {exc or 'timed out'}")
    except MetricsError as exc:
        return _error(503, f"the metrics source cannot be read now: {exc}")
    if answer is None:
        return _error(404, f"App '{app_id}' does not exist")
    return _json(answer)


async def status(request: web.Request) -> web.Response:
    return _json(_scaler(request).status())


def build_autoscaler_app(autoscaler: Autoscaler) -> web.Application:
    app = web.Application()
    app[AUTOSCALER_KEY] = autoscaler
    app.router.add_get("/policies", list_policies)
    app.router.add_post("/policies", create_policy)
    app.router.add_get("/policies/{app_id:.+}", get_policy)
    app.router.add_put("/policies/{app_id:.+}", put_policy)
    app.router.add_delete("/policies/{app_id:.+}", delete_policy)
    app.router.add_get("/decisions", list_decisions)
    app.router.add_get("/series", series)
    app.router.add_get("/status", status)
    return app
