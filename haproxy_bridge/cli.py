"""`pacer haproxy-bridge` (and `python -m haproxy_bridge`): the bridge as its own process.

`pacer haproxy-bridge` hands its arguments to `main`. HAProxy is stopped by its pid on the
way out, whatever ends the process (SIGTERM, SIGINT, an error), so no master outlives it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from aiohttp import web

from pacer_client import access_from_args, add_access_arguments

from .errors import BridgeError
from .options import BridgeOptions
from .service import HaproxyBridge
from .status_api import build_status_app

log = logging.getLogger(__name__)


def haproxy_available(binary: str = "haproxy") -> bool:
    """Is there a haproxy to run? (`pacer serve` starts the bridge only then.)"""
    return shutil.which(binary) is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=os.environ.get("PACER_URL", "http://127.0.0.1:8080"),
                        help="Pacer API URL (default $PACER_URL or http://127.0.0.1:8080)")
    parser.add_argument("--group", default="*",
                        help="HAPROXY_GROUP to serve: '*' for every app, or a comma list (default *)")
    parser.add_argument("--http-port", type=int, default=80, help="shared vhost frontend port (default 80)")
    parser.add_argument("--https-port", type=int, default=443, help="shared TLS frontend port (default 443)")
    parser.add_argument("--stats-port", type=int, default=9090,
                        help="HAProxy stats page, /_haproxy_health_check, /metrics and /v2/haproxy (default 9090)")
    parser.add_argument("--apps-port", type=int, default=9091,
                        help="frontend routing by the X-Marathon-App-Id header to the app's first HTTP service, "
                             "as marathon-lb's :9091 (default 9091; 0 turns it off)")
    parser.add_argument("--status-port", type=int, default=None,
                        help="port of the bridge's own status server on 127.0.0.1 (default: stats port + 2)")
    parser.add_argument("--config-dir", default=os.environ.get("PACER_HAPROXY_DIR", "var/haproxy"),
                        help="haproxy.cfg, sockets, pid file and haproxy.log (default var/haproxy)")
    parser.add_argument("--bind-address", default="127.0.0.1",
                        help="address the frontends bind (default 127.0.0.1; '*' for every interface)")
    parser.add_argument("--haproxy-bin", default="haproxy", help="the haproxy executable (default haproxy)")
    parser.add_argument("--ssl-cert", action="append", default=[],
                        help="default certificate (PEM) for the HTTPS frontend; repeatable")
    parser.add_argument("--resync-seconds", type=float, default=300.0,
                        help="full refresh period even without events (default 300)")
    parser.add_argument("--debounce-seconds", type=float, default=0.5,
                        help="at most one reload per this many seconds; server changes are applied at once "
                             "through the Runtime API (default 0.5)")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="refresh period while the event stream is unavailable (default 2)")
    add_access_arguments(parser)
    parser.add_argument("--drain-seconds", type=float, default=30.0,
                        help="time a removed server gets to finish its sessions (default 30)")


def options_from_args(args: argparse.Namespace) -> BridgeOptions:
    """Raises ValueError naming the flag when a value is wrong."""
    status_port = args.status_port if args.status_port is not None else args.stats_port + 2
    return BridgeOptions(
        master=args.master, group=args.group, http_port=args.http_port, https_port=args.https_port,
        stats_port=args.stats_port, apps_port=args.apps_port or None, status_port=status_port,
        config_dir=Path(args.config_dir),
        bind_address=args.bind_address, haproxy_bin=args.haproxy_bin, ssl_certs=tuple(args.ssl_cert),
        resync_seconds=args.resync_seconds, debounce_seconds=args.debounce_seconds,
        poll_seconds=args.poll_seconds, drain_seconds=args.drain_seconds, access=access_from_args(args))


async def run_standalone(options: BridgeOptions) -> None:
    """Run the bridge and its status server until cancelled (or SIGTERM/SIGINT)."""
    bridge = HaproxyBridge(options)
    runner: web.AppRunner | None = None
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, current.cancel if current else (lambda: None))
    try:
        await bridge.start()
        if options.status_port:
            root = web.Application()
            root.add_subapp("/v2/haproxy", build_status_app(bridge))
            runner = web.AppRunner(root, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", options.status_port).start()
            log.info("bridge status on http://127.0.0.1:%d/v2/haproxy", options.status_port)
        await bridge.run()
    except asyncio.CancelledError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
        await bridge.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pacer haproxy-bridge",
                                     description="route HAProxy from Pacer's apps and HAPROXY_* labels")
    parser.add_argument("--log-level", default=os.environ.get("PACER_LOG_LEVEL", "INFO"))
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.exit(2, f"pacer haproxy-bridge: {exc}\n")
    try:
        asyncio.run(run_standalone(options))
    except KeyboardInterrupt:
        return 130
    except BridgeError as exc:
        print(f"pacer haproxy-bridge: {exc}", file=sys.stderr)
        return 1
    return 0
