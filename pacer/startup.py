"""Start-up checks of the `pacer` commands: what must hold before a service starts.

Each check turns a failure an operator can fix into a `StartupError` whose message is one
line naming the address, path or URL, the flag that sets it and the way out, so that `pacer`
prints it and exits with its `status` instead of a traceback: 2 when the command cannot run
as given (an address in use, a directory that cannot be written), 1 when a service it was
pointed at does not answer (`Unreachable`: the API at `--master`, a `--docker-host`), as a
failed request would. They run before anything is started where that is possible (the
listening address is tried before the scheduler adopts or kills any task), so a refused
start leaves nothing behind.

Only an InfluxDB that does not answer is not fatal: samples wait in a bounded buffer and are
retried, and the autoscaler holds until it answers. `note_influxdb` says so once, at start.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from pacer_client import NO_ACCESS, Access, redact_url, session_for

from metrics.options import MetricsOptions
from scheduler.engine.build import NO_DOCKER

if TYPE_CHECKING:   # ZooKeeper discovery (kazoo) loads with `--master zk://` only
    from scheduler.backends.mesos_discovery import ZkMasters

log = logging.getLogger(__name__)

DOCKER_TIMEOUT = 5.0
MASTER_TIMEOUT = 5.0
INFLUXDB_TIMEOUT = 3.0
ZOOKEEPER_TIMEOUT = 5.0
_MAX_REASON = 240


class StartupError(Exception):
    """Pacer cannot start as configured; the message names what, the flag, and the fix."""

    status = 2


class Unreachable(StartupError):
    """A service this command was pointed at does not answer."""

    status = 1


def one_line(text: str) -> str:
    """`text` on one line, cut to a length a terminal shows whole."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_REASON else flat[:_MAX_REASON - 1] + "…"


# -- local resources ---------------------------------------------------------------------

def check_home(home: Path, flag: str = "--home DIR or $PACER_HOME") -> None:
    """The state directory exists (it is created) and a file can be written in it.

    Tried with a real file, since permissions alone do not tell (root, read-only mounts).
    """
    probe = home / f".pacer-write-check-{os.getpid()}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"cannot write to the state directory {home}: {exc.strerror or exc}; "
                           f"choose a writable directory with {flag}") from None


def check_listen(host: str, port: int, flag: str) -> None:
    """Nothing listens on HOST:PORT yet, and this process may listen there.

    Binds (without listening) a socket on every address the host resolves to, with the
    options aiohttp uses, and closes it; the server binds for real moments later, and
    `listen_error` words a failure there the same way.
    """
    problem = _bind_problem(host, port)
    if problem is not None:
        raise listen_error(host, port, problem, flag)


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why HOST:PORT cannot be bound right now, or None."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return exc
    return None


def listen_error(host: str, port: int, exc: OSError, flag: str) -> StartupError:
    """The one line for a failed bind of HOST:PORT."""
    reasons = {
        errno.EADDRINUSE: "the address is already in use (by another pacer or another server)",
        errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
        errno.EACCES: "permission denied (ports below 1024 need root)",
    }
    if isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror})"
    else:
        reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return StartupError(f"cannot listen on {host}:{port}: {reason}; choose another address with {flag}")


# -- services this one talks to ----------------------------------------------------------

async def check_docker(docker_host: str | None) -> None:
    """A Docker engine named with `--docker-host` answers.

    Named explicitly, a silent engine is a mistake to report, not a condition to wait out
    (`$DOCKER_HOST` or the default socket are still waited for: DOCKER apps queue, saying why).
    """
    if docker_host is None or docker_host.strip().lower() in NO_DOCKER:
        return
    from executor.docker_engine import DockerEngine, EngineUnavailable

    try:
        engine = await asyncio.to_thread(DockerEngine.connect, docker_host.strip(), scope="pacer-startup-check",
                                         timeout=DOCKER_TIMEOUT, pool_size=1)
    except EngineUnavailable as exc:
        reason = str(exc).partition(" does not answer: ")[2] or str(exc)
        raise Unreachable(f"the Docker engine at {docker_host} (--docker-host) does not answer: {one_line(reason)}; "
                           f"start it, or run without Docker: --docker-host none") from None
    engine.close()


async def _http_reason(url: str, timeout: float, access: Access = NO_ACCESS) -> str | None:
    """None when anything answers HTTP at `url` (any status), else why not, on one line."""
    try:
        async with session_for(access, aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url) as response:
                await response.read()
        return None
    except asyncio.TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        return one_line(str(exc) or type(exc).__name__)


async def check_master(url: str, flag: str = "--master URL or $PACER_URL", access: Access = NO_ACCESS) -> None:
    """The Pacer (or Marathon) API at `url` answers.

    Any HTTP status counts, a 401 of an API behind authentication included: the check is
    for an address nothing answers on, which would fail every later request.
    """
    reason = await _http_reason(url.rstrip("/") + "/ping", MASTER_TIMEOUT, access)
    if reason is not None:
        raise Unreachable(f"cannot reach the API at {redact_url(url)} (set with {flag}): {reason}")


def check_zookeeper(target: ZkMasters, flag: str = "--master") -> None:
    """The ZooKeeper of `--master zk://…` accepts a session. A master that does not answer is
    waited for (it may be failing over), but a ZooKeeper nobody answers at is a wrong address
    or a stopped ensemble: every subscription would wait on it forever."""
    from scheduler.backends.mesos_discovery import check_reachable

    reason = check_reachable(target, ZOOKEEPER_TIMEOUT)
    if reason is not None:
        raise Unreachable(f"cannot reach ZooKeeper at {target.hosts} (set with {flag} {target.url}): "
                          f"{one_line(reason)}; start it, or give the Mesos master itself: {flag} http://HOST:5050")


async def note_influxdb(options: MetricsOptions) -> None:
    """Say once, plainly, that the InfluxDB given does not answer; never fatal."""
    if options.influxdb_url:
        url, flag = options.influxdb_url, "--influxdb-url"
    elif options.influxdb_v2_url:
        url, flag = options.influxdb_v2_url, "--influxdb-v2-url"
    else:
        return
    reason = await _http_reason(url.rstrip("/") + "/ping", INFLUXDB_TIMEOUT)
    if reason is not None:
        log.warning("InfluxDB at %s (%s) does not answer: %s; samples are buffered (bounded) and retried, "
                    "and the autoscaler does nothing until it answers", url, flag, reason)


# -- the HAProxy bridge ------------------------------------------------------------------

_BIND_FAILED = re.compile(r"cannot bind socket \(([^)]*)\) for \[([^\]]+)\]")
_ALERT = re.compile(r"\[ALERT\]\s*(?:\(\d+\)\s*)?:\s*(.*)")


def check_bridge_ports(bind_address: str, ports: Mapping[int, str], leftover_pid_file: Path) -> None:
    """No other server listens on the bridge's ports (`ports` maps each to the flag that sets it).

    Only "already in use" is reported: whether HAProxy may bind a low port is for HAProxy to
    say (it may hold a capability this process lacks). Skipped while a HAProxy left by an
    earlier run of this home is alive (its pid file names a live process): the bridge stops
    that one first, and its ports are then free.
    """
    if _alive(leftover_pid_file):
        return
    host = "0.0.0.0" if bind_address in ("*", "") else bind_address
    for port, flag in ports.items():
        problem = _bind_problem(host, port)
        if problem is not None and problem.errno == errno.EADDRINUSE:
            raise StartupError(f"HAProxy cannot listen on {host}:{port}: the address is already in use; "
                               f"choose another {flag}, or run without the bridge: --haproxy-bridge off")


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid > 1 and Path(f"/proc/{pid}").exists()


def bridge_start_error(exc: BaseException, ports: Mapping[int, str], way_out: str = "") -> str:
    """HAProxy's multi-line start-up output as one line: the address it could not bind and the
    flag that sets it, or else its first alert. `way_out` ends the line (", or run without …")."""
    text = str(exc)
    bind = _BIND_FAILED.search(text)
    if bind is not None:
        reason, address = bind.groups()
        port_text = address.rpartition(":")[2]
        flag = ports.get(int(port_text) if port_text.isdigit() else 0, "port flags")
        return f"HAProxy cannot listen on {address}: {reason.lower()}; choose another {flag}{way_out}"
    alerts = [m.group(1) for m in map(_ALERT.search, text.splitlines()) if m is not None]
    return one_line(f"HAProxy did not start: {alerts[0] if alerts else text}")
