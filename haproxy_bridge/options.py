"""The bridge's settings, checked once when they are made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from pacer_client import NO_ACCESS, Access


@dataclass(frozen=True, kw_only=True)
class BridgeOptions:
    master: str                          # Pacer API URL, e.g. http://127.0.0.1:8080
    config_dir: Path                     # haproxy.cfg, sockets, pid file, haproxy.log
    group: str = "*"                     # HAPROXY_GROUP to serve: '*' (all) or a comma list
    http_port: int = 80                  # shared vhost frontend
    https_port: int = 443                # shared TLS frontend (only when a certificate is known)
    stats_port: int = 9090               # HAProxy stats page, /_haproxy_health_check, /metrics
    apps_port: int | None = 9091         # marathon-lb's X-Marathon-App-Id frontend; None: none
    status_port: int | None = None       # standalone: the bridge's own status server (127.0.0.1)
    # Loopback by default, like `pacer serve`; marathon-lb bound every interface ('*'):
    # pass --bind-address '*' (or 0.0.0.0) for an edge load balancer.
    bind_address: str = "127.0.0.1"
    haproxy_bin: str = "haproxy"
    resync_seconds: float = 300.0        # full refresh even without events
    debounce_seconds: float = 0.5        # at most one reload per window (server changes never wait)
    poll_seconds: float = 2.0            # refresh period while the event stream is unavailable
    stream_idle_seconds: float = 30.0    # no byte (not even a heartbeat) this long: reconnect
    max_backoff_seconds: float = 30.0    # event stream reconnect backoff cap
    drain_seconds: float = 30.0          # a removed server gets this long to finish its sessions
    hard_stop_after_seconds: int = 30    # old workers are stopped this long after a reload
    ssl_certs: tuple[str, ...] = field(default=())   # default certificates for the HTTPS frontend
    access: Access = NO_ACCESS           # credentials and CA for a secured Pacer (--credentials, --ca-file)
    # `pacer serve` reads a latency-judged canary's per-request times from HAProxy's log
    # (request_log.py); a standalone bridge has no reader, so it renders no log lines
    request_log: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("http_port", "https_port", "stats_port"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value < 65536:
                problems.append(f"--{name.replace('_', '-')} must be a port 1..65535 (got {value!r})")
        for name in ("status_port", "apps_port"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 < value < 65536):
                problems.append(f"--{name.replace('_', '-')} must be a port 1..65535 (got {value!r})")
        ports = [p for p in (self.http_port, self.https_port, self.stats_port, self.apps_port, self.status_port) if p]
        if len(set(ports)) != len(ports):
            problems.append(f"the HTTP, HTTPS, stats, apps and status ports must differ (got {ports})")
        if self.bind_address != "*":
            try:
                ipaddress.ip_address(self.bind_address)
            except ValueError:
                problems.append(f"--bind-address must be an IP address or '*' (got {self.bind_address!r})")
        if not self.master.startswith(("http://", "https://")):
            problems.append(f"--master must be an http(s) URL (got {self.master!r})")
        text = str(self.config_dir)
        if any(c in text for c in ",\n\r\t\"'\\$#") or " " in text:
            problems.append(f"--config-dir must be a plain path without spaces, commas or quotes (got {text!r})")
        for name in ("resync_seconds", "debounce_seconds", "poll_seconds", "stream_idle_seconds",
                     "max_backoff_seconds"):
            if getattr(self, name) <= 0:
                problems.append(f"--{name.replace('_', '-')} must be positive")
        if problems:
            raise ValueError("; ".join(problems))
