"""Request helpers shared by the API modules: query flags, bodies, path ids."""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from app_definitions import ValidationFailed, canonical_path_id, parse_json_body

from scheduler.engine.canary import CanaryDriver
from scheduler.engine.events import EventBus
from scheduler.engine.read_view import SchedulerView
from scheduler.engine.pending_writes import PendingWrites
from scheduler.engine.writes import AppWrites
from scheduler.errors import InvalidRequest, NotFound
from scheduler.telemetry import Telemetry


class SchedulerApi(Protocol):
    """What the API needs of a scheduler: a read-only view, the write path, the event bus and its metrics."""

    view: SchedulerView
    writes: AppWrites
    pending: PendingWrites
    canary: CanaryDriver
    events: EventBus
    telemetry: Telemetry


SCHEDULER_KEY = web.AppKey("scheduler", SchedulerApi)
LEADER_KEY = web.AppKey("leader", str)


def scheduler_of(request: web.Request) -> SchedulerApi:
    return request.app[SCHEDULER_KEY]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Marathon's JSON: compact, serialised once."""
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)


def json_bytes_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON already serialised (by the render cache)."""
    return web.Response(body=data, status=status, content_type="application/json", charset="utf-8", headers=headers)


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"Query parameter '{name}' must be true or false, not '{raw}'")


def embeds(request: web.Request) -> set[str]:
    """`embed=apps.tasks&embed=app.lastTaskFailure` -> {"tasks", "lastTaskFailure"}."""
    out = set()
    for value in request.query.getall("embed", []):
        for item in value.split(","):
            out.add(item.strip().rsplit(".", 1)[-1])
    return out


async def json_body(request: web.Request) -> Any:
    return parse_json_body(await request.read())


def path_app_id(raw: str, *, missing_is_404: bool = True) -> str:
    """Canonical app id from a URL path; an invalid id cannot exist, so it is a 404 on reads."""
    try:
        return canonical_path_id(raw or "/")
    except ValidationFailed:
        if missing_is_404:
            raise NotFound(f"App '/{raw.strip('/')}' does not exist") from None
        raise


def deployment_result(deployment_id: str, version: str) -> dict[str, str]:
    return {"deploymentId": deployment_id, "version": version}
