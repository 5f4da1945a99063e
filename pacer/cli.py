"""The `pacer` command: serve, deploy, schema.

Errors a user can fix are printed as one line naming the field or flag and the fix, with a
non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from app_definitions import DefinitionError, app_json_schema

from metrics import MetricsConfigError
from metrics.cli import add_arguments as add_metrics_arguments
from metrics.cli import options_from_args as metrics_options_from_args
from metrics.dashboards import write_dashboards
from pacer.deploy import DeployOptions, run_deploy
from scheduler.engine.build import ServeOptions

from haproxy_bridge.cli import haproxy_available
from haproxy_bridge.cli import main as haproxy_bridge_main
from haproxy_bridge.options import BridgeOptions

from .serve import PacerOptions, run_autoscaler, run_pacer


class UsageError(Exception):
    """A flag's value is wrong; the message says which and how to fix it."""


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8080 (got '{value}')")
    return host or "127.0.0.1", int(port)


def _positive(value: float) -> float:
    if value <= 0:
        raise UsageError(f"--autoscale-interval must be a positive number of seconds (got {value})")
    return value


def _resources(value: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, (value or "").split(",")):
        key, sep, number = item.partition("=")
        if not sep or key not in ("cpus", "mem", "disk"):
            raise UsageError(f"--agent-resources takes cpus=N,mem=MB,disk=MB (got '{item}')")
        try:
            out[key] = float(number)
        except ValueError:
            raise UsageError(f"--agent-resources: '{key}' must be a number (got '{number}')") from None
    return out


def _attributes(values: list[str]) -> dict[str, dict[str, str]]:
    """`rack=r1` applies to every agent, `agent-2:rack=r2` to one."""
    out: dict[str, dict[str, str]] = {}
    for item in values:
        target, sep, pair = item.partition(":") if ":" in item.split("=", 1)[0] else ("*", "", item)
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"--attribute takes NAME=VALUE or AGENT:NAME=VALUE (got '{item}')")
        out.setdefault(target, {})[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacer", description="Marathon-style scheduler and autoscaler")
    parser.add_argument("--log-level", default=os.environ.get("PACER_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the scheduler, embedded agents and the /v2 API")
    s.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the API (default 127.0.0.1:8080)")
    s.add_argument("--home", default=os.environ.get("PACER_HOME", "var/pacer"),
                   help="state and sandboxes (default $PACER_HOME or ./var/pacer)")
    s.add_argument("--agents", type=int, default=1, help="number of embedded agents (default 1)")
    s.add_argument("--agent-resources", help="per-agent cpus=N,mem=MB,disk=MB (default: detected)")
    s.add_argument("--attribute", action="append", default=[], help="agent attribute NAME=VALUE or AGENT:NAME=VALUE")
    s.add_argument("--network", action="append", default=[], help="container network the agents provide")
    s.add_argument("--docker-host", default=None,
                   help="Docker engine for container.type DOCKER apps: unix:///path or tcp://host:port; 'none' "
                        "disables Docker (default: $DOCKER_HOST, else /var/run/docker.sock if it answers)")
    s.add_argument("--kill-drain-seconds", type=float, default=2.0, metavar="SECONDS",
                   help="a running task of an app with HAPROXY_* labels leaves the load balancer this long "
                        "before it is signalled, so no response is cut (default 2; 0 kills at once)")
    s.add_argument("--autoscale-interval", type=float, default=15.0, metavar="SECONDS",
                   help="seconds between autoscaler decisions (default 15)")
    s.add_argument("--no-autoscaler", action="store_true", help="do not run the built-in autoscaler")
    s.add_argument("--haproxy-bridge", choices=("auto", "on", "off"), default="auto",
                   help="run the HAProxy bridge in this process: auto = when haproxy is on the PATH (default)")
    s.add_argument("--haproxy-group", default="*", help="HAPROXY_GROUP the built-in bridge serves (default *)")
    s.add_argument("--haproxy-http-port", type=int, default=80, help="vhost frontend port (default 80)")
    s.add_argument("--haproxy-https-port", type=int, default=443, help="TLS frontend port (default 443)")
    s.add_argument("--haproxy-stats-port", type=int, default=9090, help="HAProxy stats page port (default 9090)")
    s.add_argument("--haproxy-apps-port", type=int, default=9091,
                   help="frontend routing by the X-Marathon-App-Id header, as marathon-lb's :9091 (0: none)")
    s.add_argument("--haproxy-ssl-cert", action="append", default=[], metavar="PEM",
                   help="default certificate of the TLS frontend (repeatable; apps add theirs with HAPROXY_n_SSL_CERT)")
    add_metrics_arguments(s)

    a = sub.add_parser("autoscaler", help="run the autoscaler alone against a Pacer or Marathon API")
    a.add_argument("--master", default=os.environ.get("PACER_URL", "http://127.0.0.1:8080"),
                   help="API URL (default $PACER_URL or http://127.0.0.1:8080)")
    a.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT of its policy API (default 127.0.0.1:8090)")
    a.add_argument("--state-dir", default="var/pacer-autoscaler", help="where registered policies are kept")
    a.add_argument("--autoscale-interval", type=float, default=15.0, metavar="SECONDS")
    add_metrics_arguments(a)

    sub.add_parser("haproxy-bridge", add_help=False,
                   help="run the HAProxy bridge alone against a Pacer or Marathon API (see --help)")

    g = sub.add_parser("dashboards", help="write Grafana dashboards and datasource provisioning")
    g.add_argument("--out", required=True, help="directory to write into")
    g.add_argument("--datasource", default="InfluxDB", help="Grafana datasource name (default InfluxDB)")
    g.add_argument("--influxdb-url", default="http://127.0.0.1:8086", help="URL the datasource points at")
    g.add_argument("--influxdb-database", default="cadvisor")

    d = sub.add_parser("deploy", help="deploy an app definition file (per-environment overlays)")
    d.add_argument("-f", "--file", required=True, help="app definition JSON (base file)")
    d.add_argument("--env", help="environment: merges <file>.<env>.json onto the base file")
    d.add_argument("--master", default=os.environ.get("PACER_URL", "http://127.0.0.1:8080"),
                   help="API URL (default $PACER_URL or http://127.0.0.1:8080)")
    d.add_argument("--dry-run", action="store_true", help="print the merged definition and the diff, change nothing")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation on protected environments")
    d.add_argument("--force", action="store_true", help="override a deployment in progress")
    d.add_argument("--protected", default=os.environ.get("PACER_PROTECTED_ENVS", "prod,production"),
                   help="comma list of environments that ask for confirmation (default prod,production)")
    d.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the deployment (0 = do not wait)")

    sub.add_parser("schema", help="print the JSON schema of an app definition")
    return parser


def _bridge_options(args: argparse.Namespace, host: str, port: int, home: Path) -> BridgeOptions | None:
    if args.haproxy_bridge == "off" or (args.haproxy_bridge == "auto" and not haproxy_available()):
        return None
    if args.haproxy_bridge == "on" and not haproxy_available():
        raise UsageError("--haproxy-bridge on: no haproxy on the PATH (apt-get install haproxy)")
    try:
        return BridgeOptions(master=f"http://{host}:{port}", config_dir=home.resolve() / "haproxy",
                             group=args.haproxy_group, http_port=args.haproxy_http_port,
                             https_port=args.haproxy_https_port, stats_port=args.haproxy_stats_port,
                             apps_port=args.haproxy_apps_port or None, ssl_certs=tuple(args.haproxy_ssl_cert),
                             bind_address=host if host not in ("", "0.0.0.0") else "*")
    except ValueError as exc:
        raise UsageError(str(exc).replace("--http-port", "--haproxy-http-port")) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["haproxy-bridge"]:
        return haproxy_bridge_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            if args.agents < 1:
                raise UsageError("--agents must be at least 1")
            host, port = _listen(args.listen)
            options = ServeOptions(host=host, port=port, home=Path(args.home), agents=args.agents,
                                   resources=_resources(args.agent_resources),
                                   attributes=_attributes(args.attribute), networks=tuple(args.network),
                                   docker_host=args.docker_host,
                                   kill_drain_seconds=max(0.0, args.kill_drain_seconds))
            asyncio.run(run_pacer(PacerOptions(serve=options, metrics=metrics_options_from_args(args),
                                               autoscale_interval=_positive(args.autoscale_interval),
                                               autoscaler=not args.no_autoscaler,
                                               bridge=_bridge_options(args, host, port, Path(args.home)))))
            return 0
        if args.command == "autoscaler":
            host, port = _listen(args.listen)
            asyncio.run(run_autoscaler(args.master, metrics_options_from_args(args),
                                       _positive(args.autoscale_interval), Path(args.state_dir), host, port))
            return 0
        if args.command == "dashboards":
            for path in write_dashboards(Path(args.out), args.datasource, influxdb_url=args.influxdb_url,
                                         database=args.influxdb_database):
                print(path)
            return 0
        if args.command == "schema":
            print(json.dumps(app_json_schema(), indent=2, sort_keys=True))
            return 0
        return asyncio.run(run_deploy(DeployOptions(
            file=Path(args.file), env=args.env, master=args.master, dry_run=args.dry_run, yes=args.yes,
            force=args.force, protected={e.strip() for e in args.protected.split(",") if e.strip()},
            wait=args.wait)))
    except (UsageError, MetricsConfigError) as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    except DefinitionError as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
