"""Marathon's /v2 REST API over aiohttp.

`build_api(scheduler)` returns the aiohttp application. Every error leaves through
`error_middleware`, which turns the package exception trees into Marathon's status codes and
bodies, so a bad request never becomes a 500 or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from scheduler.api.errors import EXPECTED_ERRORS, error_body
from scheduler.api import apps, events, groups, system, tasks
from scheduler.api.params import LEADER_KEY, SCHEDULER_KEY, SchedulerApi, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except EXPECTED_ERRORS as exc:
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        status, body = error_body(exc)
        response = json_response(body, status=status)
    except Exception as exc:  # last line of defence: log it, answer Marathon-style
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, body = error_body(exc)
        response = json_response(body, status=status)
    response.headers["X-Marathon-Leader"] = request.app[LEADER_KEY]
    return response


def build_api(scheduler: SchedulerApi, leader: str, *,
              heartbeat_seconds: float = events.HEARTBEAT_SECONDS) -> web.Application:
    """The /v2 application; ``heartbeat_seconds`` is how long an idle /v2/events stream waits
    before a heartbeat comment (short in tests, so they need not wait the default)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
    app[SCHEDULER_KEY] = scheduler
    app[LEADER_KEY] = leader
    app[events.HEARTBEAT_KEY] = heartbeat_seconds
    apps.add_routes(app.router)
    tasks.add_routes(app.router)
    system.add_routes(app.router)
    events.add_routes(app.router)
    groups.add_routes(app.router)
    return app
