"""Marathon's /v2 REST API over aiohttp.

`build_api(scheduler, leader)` returns the aiohttp application. Every error leaves through
`error_middleware`, which turns the package exception trees into Marathon's status codes and
bodies, so a bad request never becomes a 500 or a traceback. Inside it,
`leadership.leadership_middleware` answers here or forwards to the leader (HA: several
instances, one leads), and every response carries `X-Marathon-Leader`. With ``auth`` given,
`scheduler.auth`'s gate sits between the two: a follower checks credentials before forwarding.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from scheduler.api.errors import EXPECTED_ERRORS, error_body
from scheduler.api import apps, canary, dry_run, events, groups, pending, system, task_files, tasks, ui
from scheduler.api.leadership import READ_SECONDS, install_leadership, leadership_middleware
from scheduler.api.params import LEADER_KEY, SCHEDULER_KEY, SchedulerApi, json_response
from scheduler.api.render_cache import RENDER_CACHE_KEY, RenderCache
from scheduler.api.telemetry import time_request
from scheduler.auth.middleware import AUTH_KEY, AuthState, audit_handler, build_auth_middleware
from scheduler.auth.whoami import whoami
from scheduler.ha import Leadership, SoleLeader

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
    return response


def build_api(scheduler: SchedulerApi, leader: str | None = None, *, leadership: Leadership | None = None,
              heartbeat_seconds: float = events.HEARTBEAT_SECONDS,
              proxy_read_seconds: float = READ_SECONDS, auth: AuthState | None = None,
              leader_tls: ssl.SSLContext | None = None) -> web.Application:
    """The /v2 application.

    ``leader`` is this instance's advertised ``host:port`` when it runs alone (it then always
    leads: `SoleLeader`); with an election, pass ``leadership`` instead (its ``address`` is this
    instance's). ``heartbeat_seconds`` is how long an idle /v2/events stream waits before a
    heartbeat comment (short in tests, so they need not wait the default);
    ``proxy_read_seconds`` how long a follower waits for the leader's answer. ``auth``:
    authentication, authorization and the audit log (`scheduler.auth`); None keeps the API open.
    ``leader_tls``: the instances serve HTTPS; a follower forwards to the leader over HTTPS,
    verifying its certificate with this context (`scheduler.auth.setup.leader_client_context`).
    """
    if leadership is None:
        if leader is None:
            raise TypeError("build_api needs this instance's address (leader=) or a leadership")
        leadership = SoleLeader(leader)
    # time_request outermost (it sees every final status), then error_middleware: whatever the
    # proxy meets still leaves as Marathon's body
    gate = [build_auth_middleware(error_body)] if auth is not None else []
    app = web.Application(middlewares=[time_request, error_middleware, *gate, leadership_middleware],
                          client_max_size=16 * 1024 * 1024)
    if auth is not None:
        auth.view = scheduler.view
        auth.leads = leadership.is_leader
        app[AUTH_KEY] = auth
        app.router.add_get("/v2/audit", audit_handler)
    app[SCHEDULER_KEY] = scheduler
    app[RENDER_CACHE_KEY] = RenderCache(scheduler)
    app[LEADER_KEY] = leadership.address
    install_leadership(app, leadership, read_seconds=proxy_read_seconds, tls=leader_tls)
    app[events.HEARTBEAT_KEY] = heartbeat_seconds
    apps.add_routes(app.router)
    tasks.add_routes(app.router)
    task_files.add_routes(app.router)
    system.add_routes(app.router)
    events.add_routes(app.router)
    groups.add_routes(app.router)
    pending.add_routes(app.router)
    canary.add_routes(app.router)
    dry_run.add_routes(app.router)
    ui.add_routes(app.router)
    app.router.add_get("/v2/auth/whoami", whoami)
    return app
