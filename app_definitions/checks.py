"""Health checks, readiness checks and Mesos (non-health) checks of an app.

Defaults are Marathon's. Health checks come in two families that behave
differently at run time: Marathon-level checks (HTTP, HTTPS, TCP) run from
the scheduler, Mesos-level ones (COMMAND, MESOS_*) run next to the task; the
family sets are exported so the health checker and the validation agree.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ._base import Int, Model, NonEmptyStr, NonNegInt, Port, PositiveInt

__all__ = [
    "AppCheck",
    "CommandCheck",
    "ExecCheck",
    "HTTP_PATH_PROTOCOLS",
    "HealthCheck",
    "HealthCheckProtocol",
    "HttpCheck",
    "MARATHON_PROTOCOLS",
    "MESOS_PROTOCOLS",
    "MesosCommand",
    "ReadinessCheck",
    "TcpCheck",
]

HealthCheckProtocol = Literal["HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"]
MARATHON_PROTOCOLS = frozenset({"HTTP", "HTTPS", "TCP"})
MESOS_PROTOCOLS = frozenset({"COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"})
HTTP_PATH_PROTOCOLS = frozenset({"HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"})
HttpStatus = Annotated[Int, Field(ge=100, le=999)]


class CommandCheck(Model):
    """``{"value": "<shell command>"}``: the command of a COMMAND health check."""

    value: NonEmptyStr


class HealthCheck(Model):
    """One health check (Marathon's ``AppHealthCheck``).

    ``path`` is filled with ``/`` for HTTP-like protocols and ``port_index``
    with 0 when neither ``port`` nor ``portIndex`` is given and the app has
    ports (Marathon's normalisation); both stay None otherwise.
    """

    protocol: HealthCheckProtocol = "HTTP"
    path: str | None = None
    port_index: NonNegInt | None = None
    port: Port | None = None
    command: CommandCheck | None = None
    grace_period_seconds: NonNegInt = 300
    interval_seconds: PositiveInt = 60
    timeout_seconds: PositiveInt = 20
    max_consecutive_failures: NonNegInt = 3
    delay_seconds: NonNegInt = 15
    ignore_http1xx: bool = False
    ip_protocol: Literal["IPv4", "IPv6"] = "IPv4"

    @property
    def is_mesos(self) -> bool:
        """True for checks Mesos runs next to the task (COMMAND, MESOS_*)."""
        return self.protocol in MESOS_PROTOCOLS


class ReadinessCheck(Model):
    """A readiness check, used only while a deployment replaces instances."""

    name: NonEmptyStr = "readinessCheck"
    protocol: Literal["HTTP", "HTTPS"] = "HTTP"
    path: NonEmptyStr = "/"
    port_name: NonEmptyStr = "http-api"
    interval_seconds: PositiveInt = 30
    timeout_seconds: PositiveInt = 10
    http_status_codes_for_ready: list[HttpStatus] = Field(default_factory=lambda: [200])
    preserve_last_response: bool = False


class HttpCheck(Model):
    """HTTP part of a Mesos check (``check.http``)."""

    port_index: NonNegInt = 0
    path: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"


class TcpCheck(Model):
    """TCP part of a Mesos check (``check.tcp``)."""

    port_index: NonNegInt = 0


class MesosCommand(Model):
    """A command as Mesos takes it: a shell string or an argv array."""

    shell: NonEmptyStr | None = None
    argv: list[str] | None = None


class ExecCheck(Model):
    """Command part of a Mesos check (``check.exec``)."""

    command: MesosCommand


class AppCheck(Model):
    """A Mesos check (``check``): observed and reported, never kills the task."""

    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    exec: ExecCheck | None = None
    interval_seconds: PositiveInt = 60
    timeout_seconds: PositiveInt = 20
    delay_seconds: NonNegInt = 15
