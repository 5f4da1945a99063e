"""The `pacer` command: serve, deploy, schema, auth.

Errors a user can fix are printed as one line naming the field or flag and the fix, with a
non-zero exit; never a traceback. Exit statuses (also in `pacer --help`):

    0    done; for `serve`, `autoscaler` and `haproxy-bridge`: stopped by SIGTERM/SIGINT
    1    a service it was pointed at does not answer (the API at `--master`, the Docker engine
         at `--docker-host`), or it failed while running (a deployment failed or timed out, a
         service loop crashed, a shutdown cut short by its deadline watchdog)
    2    it cannot run as given: a flag's value, an address already in use, a state directory
         that cannot be written, HAProxy's ports in use with `--haproxy-bridge on`
    130  interrupted before start-up finished; 128+N after a second signal N during a shutdown
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from app_definitions import DefinitionError, app_json_schema
from executor.errors import BadEnvironment
from haproxy_bridge.cli import add_arguments as add_bridge_arguments
from haproxy_bridge.cli import options_from_args as bridge_options_from_args
from metrics import MetricsConfigError
from metrics.cli import add_arguments as add_metrics_arguments
from metrics.cli import options_from_args as metrics_options_from_args
from metrics.dashboards import write_dashboards
from pacer.deploy import DeployOptions, run_deploy
from pacer_client import AccessError, access_from_args, add_access_arguments
from scheduler.auth.passwords import hash_password, hash_token, new_token
from scheduler.engine.build import ServeOptions

from .flags import (UsageError, agent_attributes, agent_resources, bridge_options, disk_options, listen_address,
                    mesos_config, positive_interval, security_options, zk_options)
from .ha import REJOIN_EXIT
from .serve import PacerOptions, run_autoscaler, run_bridge, run_pacer
from .shutdown import leave, run_main
from .startup import StartupError, check_master

EXIT_STATUSES = """exit status: 0 done (or stopped by SIGTERM/SIGINT); 1 failed, or the --master or
--docker-host given does not answer; 2 cannot run as given (a flag's value, an address in use, an unwritable
--home, HAProxy ports in use); 128+N after a second signal N while stopping"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacer", description="Marathon-style scheduler and autoscaler",
                                     epilog=EXIT_STATUSES)
    parser.add_argument("--log-level", default=os.environ.get("PACER_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the scheduler, embedded agents and the /v2 API")
    s.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the API (default 127.0.0.1:8080)")
    s.add_argument("--hostname", help="the host other instances reach this one at (with the --listen port), for "
                                      "proxying to the leader and in X-Marathon-Leader (default: the --listen "
                                      "host, or this machine's hostname when listening on 0.0.0.0)")
    s.add_argument("--home", default=os.environ.get("PACER_HOME", "var/pacer"),
                   help="state and sandboxes (default $PACER_HOME or ./var/pacer)")
    s.add_argument("--zk", default=None, metavar="URL",
                   help="high availability: keep the state in ZooKeeper under zk://[USER:PASSWORD@]HOST:2181[,…]/PATH "
                        "and elect one leader among the pacer serve sharing it (needs --master)")
    s.add_argument("--zk-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="ZooKeeper connection and request timeout (default 10)")
    s.add_argument("--zk-session-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="ZooKeeper session timeout: how soon another instance leads after the leader dies "
                        "(default 10)")
    s.add_argument("--on-session-loss", choices=("exit", "rejoin"), default="exit",
                   help="a leader whose ZooKeeper session expired (or that stopped leading) exits, or starts again "
                        "in place and rejoins the election (default exit)")
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
    s.add_argument("--cpu-quota", action="store_true",
                   help="cap each process task at its cpus with a hard CFS quota (default: cpus are CPU shares "
                        "only, so idle CPU is not wasted); needs writable cgroups")
    s.add_argument("--pids-limit", type=int, default=4096, metavar="N",
                   help="most processes a process task may have (default 4096; 0 = unlimited); needs writable "
                        "cgroups")
    s.add_argument("--task-log-max-bytes", default="10M", metavar="SIZE",
                   help="size of one stdout/stderr file of a task before it is rotated, e.g. 10M, 512K (default "
                        "10M); an app may lower it with the label PACER_LOG_MAX_BYTES")
    s.add_argument("--task-log-files", type=int, default=2, metavar="N",
                   help="stdout/stderr files kept per task and stream, the current one included (default 2); an "
                        "app may lower it with the label PACER_LOG_FILES")
    s.add_argument("--min-free-disk-mb", type=float, default=64.0, metavar="MB",
                   help="while less is free on the disk under --home, launches wait in /v2/queue (default 64; "
                        "0 = never)")
    s.add_argument("--sandbox-gc-delay", type=float, default=3600.0, metavar="SECONDS",
                   help="sandboxes of ended tasks are removed this long after the end, sooner the fuller the disk "
                        "(default 3600)")
    s.add_argument("--sandbox-gc-keep", type=int, default=3, metavar="N",
                   help="newest sandboxes of ended tasks always kept per app, besides its newest failure (default 3)")
    s.add_argument("--disk-watch-interval", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between two collections of ended sandboxes (default 60)")
    s.add_argument("--master", default=None, metavar="URL",
                   help="run tasks on the Mesos cluster of this master, http://HOST:5050 (comma-separate several), "
                        "or of the masters registered in ZooKeeper, zk://[USER:PASSWORD@]HOST:2181[,HOST:2181]/mesos; "
                        "without it, on the embedded agents")
    s.add_argument("--mesos-authentication-principal", default=None, metavar="PRINCIPAL",
                   help="Mesos principal of the framework (FrameworkInfo.principal; with a secret file, also the "
                        "user of HTTP basic authentication to the master)")
    s.add_argument("--mesos-authentication-secret-file", default=None, metavar="FILE",
                   help="file holding the principal's secret (a trailing newline is ignored)")
    s.add_argument("--reconciliation-interval", type=float, default=600.0, metavar="SECONDS",
                   help="seconds between two reconciliations of every task with the Mesos master (default 600)")
    s.add_argument("--framework-name", default="pacer", help="Mesos framework name (default pacer)")
    s.add_argument("--mesos-role", default="*", help="Mesos role the framework's tasks run under (default *)")
    s.add_argument("--mesos-user", default=None, help="user the Mesos tasks run as (default: the current user)")
    s.add_argument("--failover-timeout", type=float, default=604800.0, metavar="SECONDS",
                   help="how long Mesos keeps the tasks while no Pacer is subscribed (default 604800, a week)")
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
    _add_security_arguments(s)

    au = sub.add_parser("auth", help="create password hashes and API tokens for --auth-file")
    au_sub = au.add_subparsers(dest="auth_command", required=True)
    hp = au_sub.add_parser("hash-password", help="print the scrypt hash of a password (read from the terminal, "
                                                 "or from stdin when it is not a terminal)")
    hp.add_argument("--user", help="print a ready [users.USER] table instead of the hash alone")
    nt = au_sub.add_parser("new-token", help="print a new API token (give it to the client) and its hash (put it "
                                             "in the user's tokens)")
    nt.add_argument("--user", help="name the user in the output")

    a = sub.add_parser("autoscaler", help="run the autoscaler alone against a Pacer or Marathon API")
    a.add_argument("--master", default=os.environ.get("PACER_URL", "http://127.0.0.1:8080"),
                   help="API URL (default $PACER_URL or http://127.0.0.1:8080)")
    a.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT of its policy API (default 127.0.0.1:8090)")
    a.add_argument("--state-dir", default="var/pacer-autoscaler", help="where registered policies are kept")
    a.add_argument("--autoscale-interval", type=float, default=15.0, metavar="SECONDS")
    add_access_arguments(a)
    add_metrics_arguments(a)

    sub.add_parser("haproxy-bridge", add_help=False,
                   help="run the HAProxy bridge alone against a Pacer or Marathon API (see --help)")

    g = sub.add_parser("dashboards", help="write Grafana dashboards and datasource provisioning")
    g.add_argument("--out", required=True, help="directory to write into")
    g.add_argument("--datasource", default="InfluxDB", help="Grafana datasource name (default InfluxDB)")
    g.add_argument("--influxdb-url", default="http://127.0.0.1:8086", help="URL the datasource points at")
    g.add_argument("--influxdb-database", default="cadvisor")
    g.add_argument("--prometheus-datasource", default="Prometheus",
                   help="Grafana Prometheus datasource scraping pacer serve's /metrics (default Prometheus)")

    d = sub.add_parser("deploy", help="deploy an app definition file (per-environment overlays)")
    d.add_argument("-f", "--file", required=True, help="app definition JSON (base file)")
    d.add_argument("--env", help="environment: merges <file>.<env>.json onto the base file")
    d.add_argument("--master", default=os.environ.get("PACER_URL", "http://127.0.0.1:8080"),
                   help="API URL (default $PACER_URL or http://127.0.0.1:8080)")
    add_access_arguments(d)
    d.add_argument("--dry-run", action="store_true", help="print the merged definition and the diff, change nothing")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation on protected environments")
    d.add_argument("--force", action="store_true", help="override a deployment in progress")
    d.add_argument("--protected", default=os.environ.get("PACER_PROTECTED_ENVS", "prod,production"),
                   help="comma list of environments that ask for confirmation (default prod,production)")
    d.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the deployment (0 = do not wait)")
    d.add_argument("--at", help="schedule the cutover for this time instead of now: ISO 8601 with an offset, "
                                "e.g. 2026-12-06T02:00:00+08:00 (prints what was scheduled and returns)")

    sub.add_parser("schema", help="print the JSON schema of an app definition")
    sub.add_parser("executor", help="run as a Mesos custom executor (started by a Mesos agent, which sets "
                                    "the MESOS_* environment)")
    return parser


def _add_security_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--auth-file", default=None, metavar="FILE",
                   help="users (password hashes, API token hashes) and their roles per app path, TOML; reloaded on "
                        "SIGHUP (see README 'Securing Pacer')")
    s.add_argument("--http-credentials", default=None, metavar="USER:PASSWORD",
                   help="Marathon's single user: HTTP basic credentials of an admin on every path (visible in the "
                        "process list: prefer --auth-file)")
    s.add_argument("--tls-cert", default=None, metavar="PEM", help="serve the API over HTTPS with this certificate "
                                                                   "(chain), PEM")
    s.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert, PEM")
    s.add_argument("--tls-ca-file", default=None, metavar="PEM",
                   help="with --tls-cert and --zk: the CA certificate(s), PEM, that verify the leader's certificate "
                        "when this instance forwards API requests to it over HTTPS (default: the system trust store)")
    s.add_argument("--allowed-host-paths", action="append", default=[], metavar="PATH[,PATH]",
                   help="host paths a deployer may mount into containers (beneath them too); other host mounts "
                        "need admin")
    s.add_argument("--insecure", action="store_true",
                   help="serve on a non-loopback --listen address without authentication (refused otherwise)")
    s.add_argument("--audit-max-bytes", default="10M", metavar="SIZE",
                   help="size of the audit log (--home/audit/audit.log) before it is rotated (default 10M)")
    s.add_argument("--audit-files", type=int, default=5, metavar="N",
                   help="audit log files kept, the current one included (default 5)")


def _auth_command(args: argparse.Namespace) -> int:
    """`pacer auth hash-password` / `pacer auth new-token`: the values an auth file holds."""
    if args.auth_command == "new-token":
        token = new_token()
        who = f" for {args.user}" if args.user else ""
        print(f"token{who} (give it to the client, as 'Authorization: Bearer TOKEN'; it is not shown again):")
        print(f"  {token}")
        print("its hash (add it to the user's tokens in the auth file):")
        print(f'  "{hash_token(token)}"')
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("the password must not be empty")
    hashed = hash_password(password)
    if args.user:
        print(f'[users.{args.user}]\npassword = "{hashed}"\nroles = ["viewer on /**"]')
    else:
        print(hashed)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["haproxy-bridge"]:
        return _haproxy_bridge(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            if args.agents < 1:
                raise UsageError("--agents must be at least 1")
            host, port = listen_address(args.listen)
            options = ServeOptions(host=host, port=port, home=Path(args.home), agents=args.agents,
                                   resources=agent_resources(args.agent_resources),
                                   attributes=agent_attributes(args.attribute), networks=tuple(args.network),
                                   docker_host=args.docker_host,
                                   kill_drain_seconds=max(0.0, args.kill_drain_seconds),
                                   mesos=mesos_config(args),
                                   cpu_quota=args.cpu_quota, pids_max=max(0, args.pids_limit),
                                   **disk_options(args))
            status = leave(run_main(run_pacer(PacerOptions(
                serve=options, metrics=metrics_options_from_args(args), hostname=args.hostname,
                zk=zk_options(args, options), security=security_options(args),
                autoscale_interval=positive_interval(args.autoscale_interval), autoscaler=not args.no_autoscaler,
                bridge=bridge_options(args, host, port, Path(args.home)),
                bridge_required=args.haproxy_bridge == "on"))))
            if status == REJOIN_EXIT:
                logging.getLogger(__name__).warning("starting again to rejoin the election")
                os.execv(sys.executable, [sys.executable, "-m", "pacer.cli", *argv])
            return status
        if args.command == "autoscaler":
            host, port = listen_address(args.listen)
            return leave(run_main(run_autoscaler(args.master, metrics_options_from_args(args),
                                                 positive_interval(args.autoscale_interval), Path(args.state_dir),
                                                 host, port, access_from_args(args))))
        if args.command == "dashboards":
            for path in write_dashboards(Path(args.out), args.datasource, influxdb_url=args.influxdb_url,
                                         database=args.influxdb_database, prometheus=args.prometheus_datasource):
                print(path)
            return 0
        if args.command == "executor":
            return _executor()
        if args.command == "auth":
            return _auth_command(args)
        if args.command == "schema":
            print(json.dumps(app_json_schema(), indent=2, sort_keys=True))
            return 0
        return asyncio.run(_deploy(DeployOptions(
            file=Path(args.file), env=args.env, master=args.master, dry_run=args.dry_run, yes=args.yes,
            force=args.force, protected={e.strip() for e in args.protected.split(",") if e.strip()},
            wait=args.wait, access=access_from_args(args), at=args.at)))
    except StartupError as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return exc.status
    except (UsageError, MetricsConfigError) as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    except DefinitionError as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    except AccessError as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _deploy(options: DeployOptions) -> int:
    """`pacer deploy`, once the API at `--master` answers (else one line naming it, exit 1)."""
    await check_master(options.master, access=options.access)
    return await run_deploy(options)


def _executor() -> int:
    """`pacer executor`: 0 after a clean shutdown, 1 when the agent could not be reached, 2 when the
    MESOS_* environment is incomplete (it was not started by an agent)."""
    from executor.mesos_executor import run_executor
    from executor.mesos_protocol import config_from_env

    try:
        return run_executor(config_from_env(os.environ))
    except BadEnvironment as exc:
        print(f"pacer executor: {exc}", file=sys.stderr)
        return 2


def _haproxy_bridge(argv: list[str]) -> int:
    """`pacer haproxy-bridge`: the bridge's flags, with Pacer's start-up errors and shutdown."""
    parser = argparse.ArgumentParser(prog="pacer haproxy-bridge", epilog=EXIT_STATUSES,
                                     description="route HAProxy from Pacer's apps and HAPROXY_* labels")
    parser.add_argument("--log-level", default=os.environ.get("PACER_LOG_LEVEL", "INFO"))
    add_bridge_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = bridge_options_from_args(args)
        return leave(run_main(run_bridge(options)))
    except StartupError as exc:
        print(f"pacer haproxy-bridge: {exc}", file=sys.stderr)
        return exc.status
    except ValueError as exc:   # a flag's value, named by the bridge's options
        print(f"pacer haproxy-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
