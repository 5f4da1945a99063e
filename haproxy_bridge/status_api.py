"""The bridge's status view as an aiohttp sub-application.

`pacer serve` mounts it at /v2/haproxy; `pacer haproxy-bridge` serves it on its status port,
and HAProxy's stats listener forwards /v2/haproxy there, so one port shows everything:

    GET  /v2/haproxy            status: HAProxy pids, last reload (time, result), counters,
                                event stream state, per-app verdicts, draining servers
    GET  /v2/haproxy/apps       per-app verdicts only (?state=rejected|included|skipped)
    GET  /v2/haproxy/config     the configuration HAProxy runs (text/plain)
    GET  /v2/haproxy/servers    every server as HAProxy sees it now (`show stat`): weight, status,
                                last check, with the app and task it stands for; 503 without HAProxy
    POST /v2/haproxy/refresh    full resync now (marathon-lb's /_mlb_signal/hup); 202
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .errors import SocketError
from .server_states import servers_document

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


async def servers(request: web.Request) -> web.Response:
    """Asked of HAProxy at request time: a state cached from the last refresh would show a server
    UP long after its task stopped answering, which is the one thing this view is for."""
    bridge = _bridge(request)
    if not bridge.process.alive():
        return web.json_response({"message": "HAProxy is not running yet: server states come from its Runtime "
                                             "API; GET /v2/haproxy shows the bridge's state and last error"},
                                 status=503)
    live = bridge.state.live_model
    services = [(s.backend, s.app_id, s.servers) for s in live.services] if live is not None else []
    try:
        document = servers_document(await bridge.process.runtime("show stat"), services, bridge.draining.servers())
    except SocketError as exc:
        return web.json_response({"message": f"HAProxy's Runtime API did not answer: {exc}"}, status=503)
    return web.json_response(document)


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
    app.router.add_get("/servers", servers)
    app.router.add_post("/refresh", refresh)
    return app
