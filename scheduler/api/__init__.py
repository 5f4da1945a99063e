"""Marathon's /v2 REST API over aiohttp.

`build_api(scheduler)` returns the aiohttp application. Every error leaves through
`error_middleware`, which turns the package exception trees into Marathon's status codes and
bodies, so a bad request never becomes a 500 or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app_definitions import DefinitionError, InvalidJSON, ValidationFailed

from scheduler.engine.core import Scheduler
from scheduler.errors import ApiError
from scheduler.api import apps, events, groups, system, tasks
from scheduler.api.params import LEADER_KEY, SCHEDULER_KEY, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, ApiError):
        return exc.status, exc.to_body()
    if isinstance(exc, InvalidJSON):
        return 400, exc.to_body()
    if isinstance(exc, ValidationFailed):
        return 422, exc.to_body()
    if isinstance(exc, DefinitionError):
        return 422, {"message": str(exc)}
    if isinstance(exc, web.HTTPNotFound):
        return 404, {"message": "URI not found"}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return 405, {"message": f"HTTP 405 Method Not Allowed: {exc.method} is not allowed here; "
                                f"allowed: {', '.join(sorted(exc.allowed_methods))}"}
    if isinstance(exc, web.HTTPNotAcceptable):
        return 406, {"message": exc.reason}
    if isinstance(exc, web.HTTPException):
        return exc.status, {"message": exc.reason}
    return 500, {"message": "Internal error; see the scheduler log"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except (ApiError, DefinitionError, web.HTTPException) as exc:
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        status, body = _error_body(exc)
        response = json_response(body, status=status)
    except Exception as exc:  # last line of defence: log it, answer Marathon-style
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, body = _error_body(exc)
        response = json_response(body, status=status)
    response.headers["X-Marathon-Leader"] = request.app[LEADER_KEY]
    return response


def build_api(scheduler: Scheduler, leader: str) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
    app[SCHEDULER_KEY] = scheduler
    app[LEADER_KEY] = leader
    apps.add_routes(app.router)
    tasks.add_routes(app.router)
    system.add_routes(app.router)
    events.add_routes(app.router)
    groups.add_routes(app.router)
    return app
