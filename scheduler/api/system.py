"""/ping, /v2/info, /v2/leader, /metrics and /v2/agents: what a client asks before anything else.

``/v2/info`` carries Marathon's keys only: marathon-python builds a strict ``MarathonInfo``
from it, so a key of Pacer's own would break ``get_info`` (the agents are at /v2/agents).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from scheduler.api.leadership import current_leader, leadership_of
from scheduler.api.params import LEADER_KEY, SchedulerApi, json_response, scheduler_of
from scheduler.api.proxy_rules import LEADERSHIP_ABDICATED, THERE_IS_NO_LEADER
from scheduler.api.telemetry import prometheus_response, wants_dropwizard_json
from scheduler.auth.middleware import AUTH_KEY, is_admin
from scheduler.auth.secrecy import redact
from scheduler.backends import BackendInfo
from scheduler.ha import SoleLeader
from scheduler.state.model import RUNNING, STAGING, STARTING

log = logging.getLogger(__name__)

DROPWIZARD_VERSION = "4.0.0"
"""The ``version`` of Marathon's Dropwizard-format ``/metrics`` document."""


def _leader(request: web.Request) -> str:
    return request.app[LEADER_KEY]



def _pacer_version() -> str:
    try:
        return version("pacer")
    except PackageNotFoundError:
        return "0.0.0"



async def ping(request: web.Request) -> web.Response:
    return web.Response(text="pong", content_type="text/plain")


def _millis(seconds: float | None, default: float) -> int:
    return int(round((default if seconds is None else seconds) * 1000))


def marathon_config(backend: BackendInfo, host: str, agents: list[dict[str, object]]) -> dict[str, Any]:
    """Marathon's `marathon_config`, with Marathon's keys only. On Mesos it shows the flags
    Pacer was started with (`--master`, `--mesos-role`, `--mesos-user`, `--framework-name`,
    `--failover-timeout`, `--reconciliation-interval`) and the leading master
    (`mesos_leader_ui_url`, as Marathon does). Durations in Marathon's units: milliseconds,
    but `failover_timeout` in seconds. A zk:// `master` is shown without its credentials."""
    config: dict[str, Any] = {
        "master": backend.master,
        "hostname": host,
        "local_port_min": 10000,
        "local_port_max": 20000,
        "task_launch_timeout": _millis(backend.launch_timeout, 300.0),
        "reconciliation_interval": _millis(backend.reconciliation_interval, 600.0),
        "mesos_role": backend.role,
        "mesos_user": backend.user,
        "features": sorted({f"task_isolation:{a['isolation']}" for a in agents if "isolation" in a}),
    }
    if backend.on_mesos:
        config["framework_name"] = backend.framework_name
        config["failover_timeout"] = int(backend.failover_timeout) if backend.failover_timeout is not None else None
        config["mesos_leader_ui_url"] = backend.leader
        config["checkpoint"] = True                     # Pacer's FrameworkInfo always asks for it
    return config


async def info(request: web.Request) -> web.Response:
    sched = scheduler_of(request)
    leader = _leader(request)
    host, _, port = leader.rpartition(":")
    auth = request.config_dict.get(AUTH_KEY)
    tls = request.secure
    listen_port = int(port) if port.isdigit() else None
    hidden = [str(auth.home)] if auth is not None and auth.home is not None and not is_admin(request) else []
    # never a credential inside a URL (a master given as http://user:secret@…); the home
    # directory only to admins once authentication is on
    return json_response(redact({
        "name": "pacer",
        "version": _pacer_version(),
        "buildref": "unknown",
        "elected": leadership_of(request).is_leader(),
        "leader": current_leader(leadership_of(request)),
        "frameworkId": sched.view.framework_id,
        "marathon_config": marathon_config(sched.view.backend_info(), host, sched.view.agents()),
        "zookeeper_config": {},
        "http_config": {"http_port": None if tls else listen_port, "https_port": listen_port if tls else None},
    }, hidden))


async def leader(request: web.Request) -> web.Response:
    """`GET /v2/leader`, answered by every instance from its own view of the election."""
    address = current_leader(leadership_of(request))
    if address is None:
        return json_response({"message": THERE_IS_NO_LEADER}, status=404)
    return json_response({"leader": address})


async def abdicate(request: web.Request) -> web.StreamResponse:
    """`DELETE /v2/leader` on the leader (a follower forwards it here): answer, then step down.

    The answer is sent before abdicating, as Marathon does, so the caller gets it even when
    giving the leadership up tears this instance's serving down. Marathon's `backup`/`restore`
    of the state on abdication has no counterpart here: asked for, it is refused, not ignored.
    Without an election (`SoleLeader`) there is nobody to hand over to and abdicating would only
    stop the one scheduler: the method is not offered (405), as before HA existed.
    """
    leadership = leadership_of(request)
    if isinstance(leadership, SoleLeader):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    if not leadership.is_leader():       # lost it between the proxy's decision and now
        return json_response({"message": THERE_IS_NO_LEADER}, status=404)
    unsupported = [name for name in ("backup", "restore") if name in request.query]
    if unsupported:
        return json_response({"message": f"Pacer does not support {' or '.join(unsupported)} on "
                                         "DELETE /v2/leader; call it without them"}, status=400)
    response = json_response({"message": LEADERSHIP_ABDICATED})
    await response.prepare(request)
    await response.write_eof()
    try:
        await leadership.abdicate()
    except Exception:  # the caller has its answer; the election's own failure is logged there
        log.exception("abdicating the leadership failed")
    return response


def metrics_document(sched: SchedulerApi) -> dict[str, Any]:
    """``GET /metrics`` in Marathon's Dropwizard JSON shape, with the gauges Pacer can count.

    Marathon's metric names where Marathon has the metric, ``pacer.``-prefixed names for the
    event bus counters it has no equivalent of; tools that read the document index it by name.
    """
    states = [inst.state for inst in sched.view.instances.values()]
    gauges = {
        "marathon.apps.active.gauge": len(sched.view.apps),
        "marathon.deployments.active.gauge": len(sched.view.deployments),
        "marathon.instances.running.gauge": states.count(RUNNING),
        "marathon.instances.staged.gauge": states.count(STAGING) + states.count(STARTING),
        "marathon.http.event-streams.active.gauge": sched.events.subscriber_count,
    }
    counters = {
        "pacer.events.published.counter": sched.events.published,
        "pacer.events.slow-clients-dropped.counter": sched.events.slow_clients_dropped,
    }
    return {
        "version": DROPWIZARD_VERSION,
        "gauges": {name: {"value": value} for name, value in gauges.items()},
        "counters": {name: {"count": value} for name, value in counters.items()},
        "histograms": {},
        "meters": {},
        "timers": {},
    }


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text (or OpenMetrics); Marathon's Dropwizard JSON to a client asking for JSON."""
    accept = request.headers.get("Accept", "")
    if wants_dropwizard_json(accept):
        return json_response(metrics_document(scheduler_of(request)))
    return prometheus_response(scheduler_of(request).telemetry, accept)


async def agents(request: web.Request) -> web.Response:
    return json_response({"agents": scheduler_of(request).view.agents()})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ping", ping)
    router.add_get("/v2/info", info)
    router.add_get("/v2/leader", leader)
    router.add_delete("/v2/leader", abdicate)
    router.add_get("/metrics", metrics)
    router.add_get("/v2/agents", agents)
