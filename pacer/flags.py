"""`pacer serve`'s flags checked and turned into options: each wrong value is a `UsageError`
naming the flag, what it takes and what it got, before anything starts."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executor.task_logs import MIN_MAX_BYTES, parse_size
from haproxy_bridge.cli import haproxy_available
from haproxy_bridge.options import BridgeOptions
from scheduler.engine.build import ServeOptions
from scheduler.errors import InvalidOption

from .ha import ZkOptions
from .serve import SecurityOptions
from .startup import check_zookeeper

if TYPE_CHECKING:   # the Mesos modules load only with --master
    from scheduler.backends.mesos import MesosConfig


class UsageError(Exception):
    """A flag's value is wrong; the message says which and how to fix it."""


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8080 (got '{value}')")
    return host or "127.0.0.1", int(port)


def positive_interval(value: float) -> float:
    if value <= 0:
        raise UsageError(f"--autoscale-interval must be a positive number of seconds (got {value})")
    return value


def agent_resources(value: str | None) -> dict[str, float]:
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


def agent_attributes(values: list[str]) -> dict[str, dict[str, str]]:
    """`rack=r1` applies to every agent, `agent-2:rack=r2` to one."""
    out: dict[str, dict[str, str]] = {}
    for item in values:
        target, sep, pair = item.partition(":") if ":" in item.split("=", 1)[0] else ("*", "", item)
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"--attribute takes NAME=VALUE or AGENT:NAME=VALUE (got '{item}')")
        out.setdefault(target, {})[key] = value
    return out


def disk_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task-log and disk flags of `serve`, checked, as `ServeOptions` fields."""
    try:
        max_bytes = parse_size(args.task_log_max_bytes)
    except ValueError as exc:
        raise UsageError(f"--task-log-max-bytes: {exc}") from None
    if max_bytes < MIN_MAX_BYTES:
        raise UsageError(f"--task-log-max-bytes must be at least {MIN_MAX_BYTES} bytes (got {max_bytes})")
    for flag, value, least in (("--task-log-files", args.task_log_files, 1),
                               ("--min-free-disk-mb", args.min_free_disk_mb, 0),
                               ("--sandbox-gc-delay", args.sandbox_gc_delay, 0),
                               ("--sandbox-gc-keep", args.sandbox_gc_keep, 0)):
        if value < least:
            raise UsageError(f"{flag} must be at least {least} (got {value:g})")
    if args.disk_watch_interval <= 0:
        raise UsageError(f"--disk-watch-interval must be a positive number of seconds (got {args.disk_watch_interval:g})")
    return {"task_log_max_bytes": max_bytes, "task_log_files": args.task_log_files,
            "min_free_disk_mb": args.min_free_disk_mb, "sandbox_gc_delay": args.sandbox_gc_delay,
            "sandbox_gc_keep": args.sandbox_gc_keep, "disk_watch_interval": args.disk_watch_interval}


def mesos_config(args: argparse.Namespace) -> MesosConfig | None:
    """`--master URL[,URL…]` or `--master zk://HOST:2181[,…]/PATH`: run tasks on that Mesos cluster
    instead of the embedded agents. A ZooKeeper that does not answer stops the start (Unreachable)."""
    if args.master is None:
        return None
    if args.reconciliation_interval <= 0:
        raise UsageError(f"--reconciliation-interval must be a positive number of seconds "
                         f"(got {args.reconciliation_interval:g})")
    if args.failover_timeout < 0:
        raise UsageError(f"--failover-timeout must be a number of seconds >= 0 (got {args.failover_timeout})")
    from scheduler.backends.mesos import MesosConfig
    from scheduler.backends.mesos_discovery import parse_zk_url

    principal, secret = _mesos_credentials(args)
    zookeeper = None
    if args.master.strip().startswith("zk://"):
        try:
            zookeeper = parse_zk_url(args.master.strip())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        check_zookeeper(zookeeper)
        masters: tuple[str, ...] = (zookeeper.url,)
    else:
        masters = tuple(m.strip().rstrip("/") for m in args.master.split(",") if m.strip())
        for url in masters:
            if not url.startswith(("http://", "https://")):
                raise UsageError(f"--master takes http://HOST:PORT of a Mesos master, comma-separated for several, "
                                 f"or zk://HOST:2181/mesos (got '{url}')")
    config = MesosConfig(masters=masters, zookeeper=zookeeper, framework_name=args.framework_name,
                         role=args.mesos_role, failover_timeout=args.failover_timeout, principal=principal,
                         secret=secret, reconciliation_interval=args.reconciliation_interval)
    return dataclasses.replace(config, user=args.mesos_user) if args.mesos_user else config


def _mesos_credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The principal, and the secret read from its file (without the trailing newline an editor
    leaves). A principal alone only names the framework (FrameworkInfo.principal)."""
    principal, secret_file = args.mesos_authentication_principal, args.mesos_authentication_secret_file
    if principal is not None and (not principal or ":" in principal):
        raise UsageError(f"--mesos-authentication-principal must be a non-empty name without ':' (got '{principal}')")
    if secret_file is None:
        return principal, None
    if principal is None:
        raise UsageError("--mesos-authentication-secret-file needs --mesos-authentication-principal: the secret is "
                         "the password of that principal")
    try:
        secret = Path(secret_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--mesos-authentication-secret-file {secret_file}: cannot read it ({reason}); give a "
                         f"readable file holding the principal's secret") from None
    secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise UsageError(f"--mesos-authentication-secret-file {secret_file} is empty; it must hold the secret of "
                         f"--mesos-authentication-principal")
    return principal, secret


def security_options(args: argparse.Namespace) -> SecurityOptions:
    try:
        audit_max_bytes = parse_size(args.audit_max_bytes)
    except ValueError as exc:
        raise UsageError(f"--audit-max-bytes: {exc}") from None
    if audit_max_bytes < 4096:
        raise UsageError(f"--audit-max-bytes must be at least 4096 bytes (got {audit_max_bytes})")
    if args.audit_files < 1:
        raise UsageError(f"--audit-files must be at least 1 (got {args.audit_files})")
    paths = tuple(p.strip() for value in args.allowed_host_paths for p in value.split(",") if p.strip())
    for path in paths:
        if not path.startswith("/"):
            raise UsageError(f"--allowed-host-paths takes absolute paths (got '{path}')")
    return SecurityOptions(
        auth_file=Path(args.auth_file) if args.auth_file else None, http_credentials=args.http_credentials,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None, tls_key=Path(args.tls_key) if args.tls_key else None,
        tls_ca_file=Path(args.tls_ca_file) if args.tls_ca_file else None,
        allowed_host_paths=paths, insecure=args.insecure, audit_max_bytes=audit_max_bytes,
        audit_files=args.audit_files)


def bridge_options(args: argparse.Namespace, host: str, port: int, home: Path) -> BridgeOptions | None:
    if args.haproxy_bridge == "off" or (args.haproxy_bridge == "auto" and not haproxy_available()):
        return None
    if args.haproxy_bridge == "on" and not haproxy_available():
        raise UsageError("--haproxy-bridge on: no haproxy on the PATH (apt-get install haproxy)")
    try:
        return BridgeOptions(master=f"http://{host}:{port}", config_dir=home.resolve() / "haproxy",
                             group=args.haproxy_group, http_port=args.haproxy_http_port,
                             https_port=args.haproxy_https_port, stats_port=args.haproxy_stats_port,
                             apps_port=args.haproxy_apps_port or None, ssl_certs=tuple(args.haproxy_ssl_cert),
                             bind_address=host if host not in ("", "0.0.0.0") else "*",
                             request_log=True)      # read by pacer serve's canary analysis
    except ValueError as exc:
        raise UsageError(str(exc).replace("--http-port", "--haproxy-http-port")) from None


def zk_options(args: argparse.Namespace, serve: ServeOptions) -> ZkOptions | None:
    """`--zk URL`: state in ZooKeeper and a leader election (Marathon's `--zk` with `--ha`)."""
    if args.zk is None:
        return None
    if serve.mesos is None:
        raise UsageError("--zk needs --master: several pacer serve share one Mesos cluster's tasks "
                         "(the embedded agents' tasks belong to one machine)")
    from scheduler.ha.zk_url import parse_zk_url as parse_ha_zk_url

    try:
        parse_ha_zk_url(args.zk)
    except InvalidOption as exc:
        raise UsageError(str(exc)) from None
    for flag, value in (("--zk-timeout", args.zk_timeout), ("--zk-session-timeout", args.zk_session_timeout)):
        if not value > 0:
            raise UsageError(f"{flag} must be a positive number of seconds (got {value:g})")
    return ZkOptions(args.zk, timeout=args.zk_timeout, session_timeout=args.zk_session_timeout,
                     on_session_loss=args.on_session_loss)
