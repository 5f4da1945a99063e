"""`pacer serve`: every service in one process on the embedded default.

Wiring only: the scheduler (store, embedded agents, loop, health checks, API), the task
sampler writing metrics, and the autoscaler reading them back and resizing apps through the
scheduler's own HTTP API, exactly as it would from another process. Each long-lived loop is a
named service task.

Start-up first checks what an operator can get wrong (`pacer.startup`: the state directory,
the listening address, a Docker engine named with `--docker-host`, the bridge's ports) and
refuses with one line before any task is adopted or killed. SIGTERM/SIGINT stop the services
but leave tasks running, as a Mesos agent's tasks outlive their framework; the next start
with the same home re-adopts them. The stop is bounded (`pacer.shutdown`): every step has a
timeout, all of them one deadline, and a second signal exits at once.

Security (`SecurityOptions`, `scheduler.auth`): with `--auth-file`/`--http-credentials` every
API call is authenticated and authorized and every write audited under `--home/audit`; the
auth file is read again on SIGHUP. `--tls-cert`/`--tls-key` serve the API over HTTPS; with
`--zk`, a follower then forwards to the leader over HTTPS too, verifying its certificate
against `--tls-ca-file` (or the system trust store). A
non-loopback `--listen` with no authentication refuses to start unless `--insecure`. With
authentication or TLS on, the in-process autoscaler and HAProxy bridge reach the API through
a private plain-HTTP loopback listener that answers only this process's own connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import socket
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from autoscaler.api import build_autoscaler_app
from autoscaler.service import Autoscaler
from haproxy_bridge.errors import BridgeError
from haproxy_bridge.options import BridgeOptions
from haproxy_bridge.service import HaproxyBridge
from haproxy_bridge.status_api import build_status_app
from metrics import MetricsBackend, open_metrics
from metrics.options import MetricsOptions
from pacer.canary_stats import CanaryStats
from pacer.gc_policy import keep_full_collections_short
from pacer.heap import trim_periodically, tune_malloc
from pacer.request_log import RequestLog
from pacer.ha import HaNode, ZkOptions, lead
from pacer.lifecycle import Started, run_until_stopped
from pacer.startup import (
    StartupError,
    bridge_start_error,
    check_bridge_ports,
    check_docker,
    check_home,
    check_listen,
    check_master,
    listen_error,
    note_influxdb,
)
from scheduler.api import build_api
from scheduler.auth import AuthConfig, AuthState, Authenticator
from scheduler.auth.audit import AuditLog
from scheduler.auth.setup import (AuthSetupError, exposure_problem, leader_client_context, load_auth_config,
                                  tls_context)
from scheduler.ha.advertise import advertised_address
from pacer_client import NO_ACCESS, Access, PacerClient, redact_url
from scheduler.engine.core import Scheduler
from scheduler.engine.sampling import TaskSampler
from scheduler.engine.build import ServeOptions, make_scheduler
from scheduler.errors import StoreError

log = logging.getLogger(__name__)


LISTEN_FLAG = "--listen HOST:PORT (make run: LISTEN=HOST:PORT)"
HTTP_GRACE_SECONDS = 1.0
"""At shutdown, aiohttp waits this long for an open request to end, and as long again once it
cancelled it. An event stream to a client that stopped reading takes both; with aiohttp's
default of 60 s it held the stop for two minutes."""

_BRIDGE_OFF = ", or run without the bridge: --haproxy-bridge off"


@dataclass(frozen=True)
class SecurityOptions:
    """`pacer serve`'s security flags. ``http_credentials`` holds a password: kept out of repr."""

    auth_file: Path | None = None
    http_credentials: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca_file: Path | None = None           # verifies the leader's certificate when forwarding to it
    allowed_host_paths: tuple[str, ...] = ()
    insecure: bool = False
    audit_max_bytes: int = 10 * 1024 * 1024
    audit_files: int = 5


@dataclass(frozen=True)
class PacerOptions:
    serve: ServeOptions = field(default_factory=ServeOptions)
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    autoscale_interval: float = 15.0
    autoscaler: bool = True
    bridge: BridgeOptions | None = None       # None: no HAProxy bridge in this process
    bridge_required: bool = False             # --haproxy-bridge on: a bridge that cannot start is an error
    hostname: str | None = None               # --hostname: how other instances reach this one
    zk: ZkOptions | None = None               # --zk: state in ZooKeeper, one leader among several
    security: SecurityOptions = field(default_factory=SecurityOptions)


def _decision_event(publish: Any) -> Any:
    def emit(decision: dict[str, Any]) -> None:
        publish("autoscaler_decision_event",
                **{k: v for k, v in decision.items() if k not in ("eventType", "timestamp")})
    return emit


async def run_pacer(options: PacerOptions) -> int:
    """`pacer serve`: serve until SIGTERM/SIGINT, then stop within the shutdown deadline."""
    tune_malloc()       # before the threads of the services start (pacer.heap)
    return await run_until_stopped(lambda started: _start_pacer(options, started))


async def _start_pacer(options: PacerOptions, started: Started) -> None:
    """Check, then start: scheduler (re-adopting tasks), API, the bridge if it must run."""
    serve = options.serve
    auth_config, tls, leader_tls = _security(options.security, serve.host, serve.port)
    check_home(serve.home)
    check_listen(serve.host, serve.port, LISTEN_FLAG)
    await check_docker(serve.docker_host)
    # authentication or TLS: the in-process services get a private listener of their own
    internal = _internal_socket() if auth_config.enabled or tls is not None else None
    internal_url = f"http://127.0.0.1:{internal.getsockname()[1]}" if internal is not None else None
    bridge_options = options.bridge
    if bridge_options is not None and internal_url is not None:
        bridge_options = dataclasses.replace(bridge_options, master=internal_url)
    bridge = started.bridge = HaproxyBridge(bridge_options) if bridge_options is not None else None
    bridge_ports_free = bridge is not None and _bridge_ports_free(bridge, options.bridge_required)
    address = advertised_address(serve.host, serve.port, options.hostname, socket.gethostname)
    ha = started.ha = HaNode(options.zk, address, asyncio.get_running_loop()) if options.zk is not None else None
    scheduler = started.scheduler = _open_scheduler(serve, ha)
    if ha is None:
        await scheduler.start()
    else:
        ha.start()                 # the state is loaded and the tasks re-adopted once elected
    metrics = started.metrics = open_metrics(options.metrics)
    auth = None
    if auth_config.enabled:
        started.audit = AuditLog(serve.home.resolve() / "audit", max_bytes=options.security.audit_max_bytes,
                                 files=options.security.audit_files)
        auth = AuthState(Authenticator(auth_config), audit=started.audit,
                         allowed_host_paths=options.security.allowed_host_paths,
                         internal_port=internal.getsockname()[1] if internal is not None else None,
                         home=serve.home.resolve())
        _reload_on_sighup(auth, options.security)
    api = build_api(scheduler, leader=address, leadership=ha.api if ha is not None else None, auth=auth,
                    leader_tls=leader_tls)
    client = started.client = PacerClient(internal_url or f"http://{serve.host}:{serve.port}")
    autoscaler = Autoscaler(client, metrics.source, metrics.sink, serve.home.resolve() / "autoscaler",
                            interval=options.autoscale_interval,
                            on_decision=_decision_event(scheduler.events.publish))
    api.add_subapp("/v2/autoscaler", build_autoscaler_app(autoscaler))
    if bridge is not None:
        api.add_subapp("/v2/haproxy", build_status_app(bridge))
    runner = started.runner = web.AppRunner(api, access_log=None, shutdown_timeout=HTTP_GRACE_SECONDS)
    await runner.setup()
    await _listen(runner, serve.host, serve.port, LISTEN_FLAG, tls)
    if internal is not None:
        await web.SockSite(runner, internal).start()
    if bridge is not None and bridge_ports_free and options.bridge_required:
        await _start_bridge(bridge)
    started.services = _pacer_services(options, scheduler, metrics, autoscaler,
                                       bridge if bridge_ports_free else None, ha)
    gc.collect()
    gc.freeze()     # start-up objects never die: keep them out of every later full collection
    keep_full_collections_short(asyncio.get_running_loop())
    scheme = "https" if tls is not None else "http"
    log.info("pacer API listening on %s://%s:%d (home %s, %d agent(s), metrics %s, %s)",
             scheme, serve.host, serve.port, serve.home, serve.agents, metrics.kind,
             f"authentication on, {len(auth_config.users)} user(s)" if auth_config.enabled else "no authentication")
    print(f"pacer serving on {scheme}://{serve.host}:{serve.port}", flush=True)


def _security(security: SecurityOptions, host: str,
              port: int) -> tuple[AuthConfig, ssl.SSLContext | None, ssl.SSLContext | None]:
    """The users, the server's TLS context and the one a follower verifies the leader with, as
    the flags ask; a start-up error naming the flag otherwise, and for a non-loopback `--listen`
    with no authentication and no `--insecure`."""
    try:
        config = load_auth_config(security.auth_file, security.http_credentials)
        tls = tls_context(security.tls_cert, security.tls_key)
        leader_tls = leader_client_context(tls is not None, security.tls_ca_file)
    except AuthSetupError as exc:
        raise StartupError(str(exc)) from None
    problem = exposure_problem(host, port, config, security.insecure)
    if problem is not None:
        raise StartupError(problem)
    if security.insecure and not config.enabled:
        log.warning("--insecure: the API on %s:%d has no authentication; anyone reaching it can run commands as "
                    "this user", host, port)
    return config, tls, leader_tls


def _internal_socket() -> socket.socket:
    """The private listener's socket: loopback, a port the kernel picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _reload_on_sighup(auth: AuthState, security: SecurityOptions) -> None:
    """SIGHUP reads the auth file again; a file that no longer parses keeps the users in force."""
    if security.auth_file is None:
        return

    def reload() -> None:
        try:
            config = load_auth_config(security.auth_file, security.http_credentials)
        except AuthSetupError as exc:
            log.error("SIGHUP: auth file not reloaded, the previous users stay in force: %s", exc)
            return
        auth.authenticator.reload(config)
        log.info("SIGHUP: auth file %s reloaded (%d user(s))", security.auth_file, len(config.users))

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def _pacer_services(options: PacerOptions, scheduler: Scheduler, metrics: MetricsBackend, autoscaler: Autoscaler,
                    bridge: HaproxyBridge | None, ha: HaNode | None) -> dict[str, Coroutine[Any, Any, None]]:
    """The long-lived loops of `pacer serve`, by name (a started `--haproxy-bridge on` bridge
    only runs; an `auto` one starts as a guest). With `--zk`, the scheduler's own loops run
    only while this instance leads (`pacer.ha.lead`)."""
    def leader_services() -> dict[str, Coroutine[Any, Any, None]]:
        services = {
            "scheduler-loop": scheduler.run(),
            "health-checks": scheduler.health.run(),
            "task-sampler": TaskSampler(scheduler.state, metrics.sink, options.metrics.interval,
                                        usages=scheduler.backend.usages).run(),
        }
        if options.autoscaler:
            services["autoscaler"] = autoscaler.run()
        if bridge is not None:      # canary analysis reads the bridge's HAProxy counters and request log
            request_log = RequestLog(bridge.process.request_log_socket) if bridge.options.request_log else None
            stats = CanaryStats(scheduler, bridge, metrics.source, request_log)
            scheduler.canary.analyse = stats.analyse
            services["canary-stats"] = stats.run()
            if request_log is not None:
                services["haproxy-request-log"] = request_log.run()
        return services

    services = leader_services() if ha is None else {"leadership": lead(ha, scheduler, leader_services)}
    services["influxdb-check"] = note_influxdb(options.metrics)
    services["heap-trim"] = trim_periodically()      # glibc keeps freed heap pages otherwise (pacer.heap)
    if bridge is not None:
        services["haproxy-bridge"] = bridge.run() if options.bridge_required else _run_bridge(bridge)
    return services


def _open_scheduler(serve: ServeOptions, ha: HaNode | None = None) -> Scheduler:
    """The scheduler on its store; a store that cannot be opened is a start-up error naming it."""
    try:
        return make_scheduler(serve, ha.shared_state() if ha is not None else None)
    except StoreError as exc:
        raise StartupError(f"{exc}; check the state directory, or choose another with --home DIR "
                           f"or $PACER_HOME") from None


async def _listen(runner: web.AppRunner, host: str, port: int, flag: str,
                  tls: ssl.SSLContext | None = None) -> None:
    """Listen on HOST:PORT (HTTPS with ``tls``); a bind that fails (taken since it was checked)
    reads as the check would."""
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
    except OSError as exc:
        raise listen_error(host, port, exc, flag) from None


def _port_flags(options: BridgeOptions, prefix: str) -> dict[int, str]:
    """Each port the bridge's HAProxy listens on, with the flag that sets it (`--haproxy-stats-port`)."""
    ports = {"http_port": options.http_port, "https_port": options.https_port, "stats_port": options.stats_port,
             "apps_port": options.apps_port}
    return {port: f"{prefix}{name.replace('_', '-')}" for name, port in ports.items() if port}


def _bridge_ports_free(bridge: HaproxyBridge, required: bool) -> bool:
    """Whether the bridge's ports are free; with `--haproxy-bridge on` a taken one is an error,
    with `auto` the bridge (a guest) stays off and says why, once, in the log and at /v2/haproxy."""
    try:
        check_bridge_ports(bridge.options.bind_address, _port_flags(bridge.options, "--haproxy-"),
                           bridge.process.pid_file)
    except StartupError as exc:
        if required:
            raise
        bridge.state.last_error = f"HAProxy bridge not started: {exc}"
        log.warning("%s", bridge.state.last_error)
        return False
    return True


async def _start_bridge(bridge: HaproxyBridge) -> None:
    """`--haproxy-bridge on`: HAProxy starts now, or Pacer does not start."""
    try:
        await bridge.start()
    except (BridgeError, OSError) as exc:
        raise StartupError(bridge_start_error(exc, _port_flags(bridge.options, "--haproxy-"),
                                              _BRIDGE_OFF)) from None


async def _run_bridge(bridge: HaproxyBridge) -> None:
    """The bridge is a guest (`--haproxy-bridge auto`): if HAProxy cannot start (a port in use,
    no permission), the scheduler keeps serving and the reason is in the log and at /v2/haproxy."""
    try:
        await bridge.start()
    except (BridgeError, OSError) as exc:
        reason = bridge_start_error(exc, _port_flags(bridge.options, "--haproxy-"), _BRIDGE_OFF)
        bridge.state.last_error = f"HAProxy bridge not started: {reason}"
        log.warning("%s", bridge.state.last_error)
        return
    await bridge.run()


async def run_autoscaler(master: str, metrics_options: MetricsOptions, interval: float, state_dir: Path,
                         host: str, port: int, access: Access = NO_ACCESS) -> int:
    """`pacer autoscaler`: the same loop as a separate process, with its policy API on HOST:PORT.

    Starts only when its listening address is free and the API at `master` answers; stops
    like `pacer serve` (bounded, at once on a second signal). Returns 0, or 1 if its loop failed.
    """
    return await run_until_stopped(
        lambda started: _start_autoscaler(master, metrics_options, interval, state_dir, host, port, started, access))


async def _start_autoscaler(master: str, metrics_options: MetricsOptions, interval: float, state_dir: Path,
                            host: str, port: int, started: Started, access: Access = NO_ACCESS) -> None:
    flag = "--listen HOST:PORT"
    check_listen(host, port, flag)
    await check_master(master, access=access)
    metrics = started.metrics = open_metrics(metrics_options)
    client = started.client = PacerClient(master, access=access)
    autoscaler = Autoscaler(client, metrics.source, metrics.sink, state_dir, interval=interval)
    app = web.Application()
    app.add_subapp("/v2/autoscaler", build_autoscaler_app(autoscaler))
    runner = started.runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_GRACE_SECONDS)
    await runner.setup()
    await _listen(runner, host, port, flag)
    started.services = {"autoscaler": autoscaler.run(), "influxdb-check": note_influxdb(metrics_options)}
    print(f"pacer autoscaler on http://{host}:{port}/v2/autoscaler, scaling apps of {redact_url(master)}", flush=True)


async def run_bridge(options: BridgeOptions) -> int:
    """`pacer haproxy-bridge`: the bridge alone, with its status server on 127.0.0.1.

    Starts only when the API at `--master` answers, HAProxy starts and the status port is
    free; stops like `pacer serve` (bounded, at once on a second signal), HAProxy by its pid.
    """
    return await run_until_stopped(lambda started: _start_bridge_alone(options, started))


async def _start_bridge_alone(options: BridgeOptions, started: Started) -> None:
    if options.status_port:
        check_listen("127.0.0.1", options.status_port, "--status-port")
    await check_master(options.master, access=options.access)
    bridge = started.bridge = HaproxyBridge(options)
    try:
        await bridge.start()
    except (BridgeError, OSError) as exc:
        raise StartupError(bridge_start_error(exc, _port_flags(options, "--"))) from None
    if options.status_port:
        root = web.Application()
        root.add_subapp("/v2/haproxy", build_status_app(bridge))
        runner = started.runner = web.AppRunner(root, access_log=None, shutdown_timeout=HTTP_GRACE_SECONDS)
        await runner.setup()
        await _listen(runner, "127.0.0.1", options.status_port, "--status-port")
        log.info("bridge status on http://127.0.0.1:%d/v2/haproxy", options.status_port)
    started.services = {"haproxy-bridge": bridge.run()}
