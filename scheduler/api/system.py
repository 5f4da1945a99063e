"""/ping, /v2/info, /v2/leader and /v2/agents: what a client asks before anything else."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiohttp import web

from scheduler.api.params import LEADER_KEY, json_response, scheduler_of


def _leader(request: web.Request) -> str:
    return request.app[LEADER_KEY]



def _pacer_version() -> str:
    try:
        return version("pacer")
    except PackageNotFoundError:
        return "0.0.0"



async def ping(request: web.Request) -> web.Response:
    return web.Response(text="pong", content_type="text/plain")


async def info(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    leader = _leader(request)
    host, _, port = leader.rpartition(":")
    return json_response({
        "name": "pacer",
        "version": _pacer_version(),
        "buildref": "unknown",
        "elected": True,
        "leader": leader,
        "frameworkId": sched.view.framework_id,
        "marathon_config": {
            "master": "local",
            "hostname": host,
            "local_port_min": 10000,
            "local_port_max": 20000,
            "task_launch_timeout": 300000,
            "reconciliation_interval": 600000,
            "mesos_role": "*",
            "mesos_user": None,
            "features": [],
        },
        "zookeeper_config": {},
        "http_config": {"http_port": int(port) if port.isdigit() else None, "https_port": None},
        "pacer_config": {"home": str(Path(sched.view.location).parent), "agents": len(sched.view.agents())},
    })


async def leader(request: web.Request) -> web.Response:
    return json_response({"leader": _leader(request)})


async def agents(request: web.Request) -> web.Response:
    return json_response({"agents": scheduler_of(request).view.agents()})


_UI_PAGE = Path(__file__).with_name("static") / "index.html"


async def ui(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_UI_PAGE)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", ui)
    router.add_get("/ui", ui)
    router.add_get("/ping", ping)
    router.add_get("/v2/info", info)
    router.add_get("/v2/leader", leader)
    router.add_get("/v2/agents", agents)
