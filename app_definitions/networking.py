"""Networks and ports of an app: the JSON models and the normalised :class:`PortSpec` view.

Marathon spreads "which ports does a task get" over three shapes that depend on
the networking mode (``portDefinitions`` in host mode, ``container.portMappings``
in bridge and container mode, each with different defaults). Placement, task
environment and load balancers all need the same answer, so
:func:`port_specs_for` computes it once, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from ._base import Labels, NonEmptyStr, OmitEmptyModel, Port, PortProtocol

__all__ = [
    "NetworkMode",
    "Network",
    "PortDefinition",
    "PortMapping",
    "PortSpec",
    "DEFAULT_PORT_NAME",
    "port_specs_for",
]

NetworkMode = Literal["host", "container/bridge", "container"]
DEFAULT_PORT_NAME = "default"
DEFAULT_NETWORK_NAME = "default"


class Network(OmitEmptyModel):
    """One network the task joins. ``mode`` defaults to ``container`` as in Marathon's RAML."""

    _omit_when_empty = ("labels",)

    mode: NetworkMode = "container"
    name: NonEmptyStr | None = None
    labels: Labels = Field(default_factory=dict)


class PortDefinition(OmitEmptyModel):
    """A host-mode port. ``port`` is the service port (and the host port when ``requirePorts``)."""

    _omit_when_empty = ("labels",)

    port: Port = 0
    protocol: PortProtocol = "tcp"
    name: NonEmptyStr | None = None
    labels: Labels = Field(default_factory=dict)


class PortMapping(OmitEmptyModel):
    """A bridge/container-mode port: container port, optional host port, service port.

    ``host_port`` None means no host port is allocated (container networks only);
    ``container_port`` 0 means "same as the host port".
    """

    _omit_when_empty = ("labels", "networkNames")

    container_port: Port = 0
    host_port: Port | None = None
    service_port: Port = 0
    protocol: PortProtocol = "tcp"
    name: NonEmptyStr | None = None
    labels: Labels = Field(default_factory=dict)
    network_names: list[NonEmptyStr] = Field(default_factory=list)


@dataclass(frozen=True)
class PortSpec:
    """One port of a task, whatever the networking mode.

    ``host_port``: 0 = any host port, None = no host port (container network
    without ``hostPort``), otherwise that exact port. ``container_port`` is None
    in host mode. ``service_port`` 0 means "not assigned yet".
    """

    index: int
    name: str | None
    host_port: int | None
    container_port: int | None
    service_port: int
    protocol: str
    labels: dict[str, str] = field(default_factory=dict)


def port_specs_for(
    mode: NetworkMode,
    port_definitions: list[PortDefinition],
    port_mappings: list[PortMapping],
    require_ports: bool,
) -> list[PortSpec]:
    """The ports of a task in order: port definitions in host mode, port mappings otherwise."""
    if mode == "host":
        return [
            PortSpec(
                index=i,
                name=d.name,
                host_port=d.port if require_ports else 0,
                container_port=None,
                service_port=d.port,
                protocol=d.protocol,
                labels=dict(d.labels),
            )
            for i, d in enumerate(port_definitions)
        ]
    return [
        PortSpec(
            index=i,
            name=m.name,
            host_port=m.host_port,
            container_port=m.container_port,
            service_port=m.service_port,
            protocol=m.protocol,
            labels=dict(m.labels),
        )
        for i, m in enumerate(port_mappings)
    ]
