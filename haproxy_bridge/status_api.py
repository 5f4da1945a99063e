"""The bridge's status view as an aiohttp sub-application.

`pacer serve` mounts it at /v2/haproxy; `pacer haproxy-bridge` serves it on its status port,
and HAProxy's stats listener forwards /v2/haproxy there, so one port shows everything:

    GET  /v2/haproxy            status: HAProxy pids, last reload (time, result), counters,
                                event stream state, per-app verdicts, draining servers
    GET  /v2/haproxy/apps       per-app verdicts only (?state=rejected|included|skipped)
    GET  /v2/haproxy/config     the configuration HAProxy runs (text/plain)
    POST /v2/haproxy/refresh    full resync now (marathon-lb's /_mlb_signal/hup); 202
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .service import HaproxyBridge

BRIDGE_KEY: web.AppKey["HaproxyBridge"] = web.AppKey("haproxy_bridge")


def _bridge(request: web.Request) -> "HaproxyBridge":
    return request.app[BRIDGE_KEY]


async def status(request: web.Request) -> web.Response:
    return web.json_response(_bridge(request).status())


async def apps(request: web.Request) -> web.Response:
    wanted = request.query.get("state")
    verdicts = [a.as_json() for a in _bridge(request).state.model.apps if wanted in (None, a.state)]
    return web.json_response({"apps": verdicts})


async def config(request: web.Request) -> web.Response:
    text = _bridge(request).state.live_config
    if text is None:
        raise web.HTTPServiceUnavailable(text="HAProxy has no configuration yet\n")
    return web.Response(text=text, content_type="text/plain")


async def refresh(request: web.Request) -> web.Response:
    _bridge(request).request_refresh("requested through the status API", True)
    return web.json_response({"message": "full resync requested"}, status=202)


def build_status_app(bridge: "HaproxyBridge") -> web.Application:
    app = web.Application()
    app[BRIDGE_KEY] = bridge
    app.router.add_get("", status)
    app.router.add_get("/", status)
    app.router.add_get("/apps", apps)
    app.router.add_get("/config", config)
    app.router.add_post("/refresh", refresh)
    return app
