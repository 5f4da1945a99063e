"""Translating Marathon's deprecated spellings into the canonical ones, on raw JSON.

Old definitions (and tools that still write them) use ``ports``, ``uris``,
``ipAddress``, ``container.docker.network`` and
``container.docker.portMappings``. Marathon accepts them and answers with the
new form; so does Pacer. The translation runs on the decoded JSON *before*
the models see it, so the models and everything downstream know only the
canonical shape. It also reports the conflicts Marathon reports when a
definition mixes old and new spellings, and refuses what Marathon's check of
the old API refuses: ``docker.credential`` (no longer supported) and the
Docker-containerizer-only ``docker.network``/``docker.portMappings`` in a
``MESOS`` container ("must be empty").

The input may hold anything (this runs before type checking): every access is
guarded, and each deprecated field is type-checked on its own, so its errors
name the path the user actually wrote.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from ._base import Labels, Model, NonEmptyStr, Port, PortProtocol
from ._pydantic_errors import validate_with
from .errors import Violation

__all__ = ["MUST_BE_EMPTY", "IpAddress", "translate_deprecated"]

MESOS_BRIDGE_NAME = "mesos-bridge"
MUST_BE_EMPTY = "must be empty"
DockerNetwork = Literal["BRIDGE", "HOST", "NONE", "USER"]


class IpDiscoveryPort(Model):
    """A port announced through the old ``ipAddress.discovery``."""

    number: Port = 0
    name: NonEmptyStr
    protocol: PortProtocol = "tcp"
    labels: Labels = Field(default_factory=dict)


class IpDiscovery(Model):
    """The deprecated ``ipAddress.discovery``: ports announced for IP-per-task."""

    ports: list[IpDiscoveryPort] = Field(default_factory=list)


class IpAddress(Model):
    """The deprecated ``ipAddress`` (IP-per-task): becomes a ``container`` network."""

    network_name: NonEmptyStr | None = None
    labels: Labels = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list)
    discovery: IpDiscovery | None = None


_PORTS = TypeAdapter(list[Port])
_URIS = TypeAdapter(list[Annotated[str, Field(min_length=1, max_length=1024)]])
_IP_ADDRESS = TypeAdapter(IpAddress)
_DOCKER_NETWORK = TypeAdapter(DockerNetwork)


def _network(mode: str, name: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    network: dict[str, Any] = {"mode": mode}
    if name:
        network["name"] = name
    if labels:
        network["labels"] = dict(labels)
    return network


def _translate_uris(doc: dict[str, Any], violations: list[Violation]) -> None:
    uris, errors = validate_with(_URIS, doc.pop("uris"), "/uris")
    violations += errors
    if not uris:
        return
    if doc.get("fetch"):
        violations.append(Violation("/uris", "may not be set in conjunction with fetch"))
        return
    doc["fetch"] = [{"uri": uri, "extract": True, "executable": False, "cache": False} for uri in uris]


def _translate_ports(doc: dict[str, Any], violations: list[Violation]) -> None:
    ports, errors = validate_with(_PORTS, doc.pop("ports"), "/ports")
    violations += errors
    if ports is None:
        return
    fixed = [p for p in ports if p != 0]
    if len(set(fixed)) != len(fixed):
        violations.append(Violation("/", "ports must be unique"))
    if "portDefinitions" not in doc:
        doc["portDefinitions"] = [{"port": port} for port in ports]
        return
    definitions = doc["portDefinitions"]
    equivalent = isinstance(definitions, list) and [
        d.get("port", 0) if isinstance(d, dict) else None for d in definitions
    ] == ports
    if ports and definitions and not equivalent:
        violations.append(Violation("/", "cannot specify both ports and port definitions"))


def _move_docker_port_mappings(container: dict[str, Any], docker: dict[str, Any], violations: list[Violation]) -> bool:
    """Move ``docker.portMappings`` to ``container.portMappings``; True when moved."""
    docker_mappings = docker.pop("portMappings")
    if "portMappings" in container:
        if docker_mappings:
            violations.append(Violation("/container", "cannot specify both portMappings and docker.portMappings"))
        return False
    container["portMappings"] = docker_mappings
    return True


def _refuse_docker_only_fields(docker: dict[str, Any], violations: list[Violation]) -> None:
    """A ``MESOS`` container's ``docker`` block takes no Docker-containerizer options (Marathon's
    rule): ``network`` and ``portMappings`` are refused here, before they are translated;
    ``parameters`` by ``container_rules``, which sees them typed."""
    for name in ("network", "portMappings"):
        if name in docker and docker[name] not in ([], None):
            docker.pop(name)
            violations.append(Violation(f"/container/docker/{name}", MUST_BE_EMPTY))


def _networks_from(ip: IpAddress | None, docker_network: str | None, violations: list[Violation]) -> list | None:
    """Marathon's NetworkTranslation: the ``networks`` meant by ``ipAddress`` and/or ``docker.network``."""
    if docker_network == "NONE":
        violations.append(Violation("/container/docker/network", "unsupported docker network type NONE"))
        return None
    labels = ip.labels if ip else {}
    if docker_network == "HOST":
        return [_network("host")]
    if docker_network == "BRIDGE":
        return [_network("container/bridge", labels=labels)]
    if docker_network == "USER":
        return [_network("container", ip.network_name if ip else None, labels)]
    if ip is not None and ip.network_name == MESOS_BRIDGE_NAME:
        return [_network("container/bridge", labels=labels)]
    if ip is not None:
        return [_network("container", ip.network_name, labels)]
    return None


def _discovery_port_mappings(ip: IpAddress, container: dict[str, Any], violations: list[Violation]) -> None:
    """``ipAddress.discovery.ports`` become port mappings of a MESOS container."""
    if ip.discovery is None or not ip.discovery.ports:
        return
    if container.get("type", "DOCKER") == "DOCKER":
        violations.append(Violation("/ipAddress", "ipAddress/discovery is not allowed for Docker containers"))
        return
    if container.get("portMappings"):
        violations.append(
            Violation("/ipAddress", "container.portMappings and ipAddress.discovery.ports must not both be set")
        )
        return
    container["portMappings"] = [
        {"containerPort": p.number, "name": p.name, "protocol": p.protocol, "labels": dict(p.labels)}
        for p in ip.discovery.ports
    ]


def translate_deprecated(doc: dict[str, Any]) -> tuple[list[Violation], dict[str, str]]:
    """Rewrite the deprecated fields of ``doc`` (which the caller owns) into canonical ones.

    Returns the violations found and a map of path prefixes to report errors
    under the spelling the user wrote (``/container/portMappings`` ->
    ``/container/docker/portMappings`` when they were moved).
    """
    violations: list[Violation] = []
    renames: dict[str, str] = {}
    had_ports = bool(doc.get("ports")) or bool(doc.get("portDefinitions"))
    if "uris" in doc:
        _translate_uris(doc, violations)
    if "ports" in doc:
        _translate_ports(doc, violations)

    container = doc.get("container")
    docker = container.get("docker") if isinstance(container, dict) else None
    docker_network: str | None = None
    if isinstance(docker, dict):
        if isinstance(container, dict) and container.get("type") == "MESOS":
            _refuse_docker_only_fields(docker, violations)
        if "credential" in docker:
            docker.pop("credential")
            violations.append(Violation("/container/docker/credential", MUST_BE_EMPTY))
        if "portMappings" in docker and _move_docker_port_mappings(container, docker, violations):
            renames["/container/portMappings"] = "/container/docker/portMappings"
        if "network" in docker:
            docker_network, errors = validate_with(_DOCKER_NETWORK, docker.pop("network"), "/container/docker/network")
            violations += errors

    ip: IpAddress | None = None
    if "ipAddress" in doc:
        ip, errors = validate_with(_IP_ADDRESS, doc.pop("ipAddress"), "/ipAddress")
        violations += errors
    if ip is not None and had_ports:
        violations.append(Violation("/", "cannot specify both an IP address and port"))

    if ip is None and docker_network is None:
        return violations, renames
    if doc.get("networks"):
        if ip is not None:
            violations.append(Violation("/", "must not specify both networks and ipAddress"))
        if docker_network is not None:
            violations.append(Violation("/", "must not specify both container.docker.network and networks"))
        return violations, renames
    networks = _networks_from(ip, docker_network, violations)
    if networks is not None:
        doc["networks"] = networks
    if ip is not None:
        if "container" not in doc:
            doc["container"] = {"type": "MESOS"}
        if isinstance(doc["container"], dict):
            _discovery_port_mappings(ip, doc["container"], violations)
    return violations, renames
