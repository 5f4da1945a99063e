"""Turning a validated definition into a stored app version: versions and service ports.

Kept apart from the loop so the API's write path reads top to bottom: validate, finalise
(version stamps, service ports), store, answer.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app_definitions import AppDefinition, is_upgrade, parse_app_definition

from scheduler.decide.constraints import ConstraintSpec
from scheduler.errors import Conflict
from scheduler.decide.placement import TaskRequest
from scheduler.decide.service_ports import ServicePortConflict, ServicePortsExhausted, assign_service_ports


_encode = _json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class AppRecord:
    """One app's current version, with its JSON rendered once per version (hot path for GETs).

    The JSON is kept serialised (`encoded`, the exact bytes the API serves for the definition),
    not as a tree of dicts: the tree of an ordinary app was ~2.5 KB against ~0.9 KB of bytes,
    and the API's render cache kept the bytes besides. `json` decodes a fresh copy (~10 us):
    it is read on writes, events and `/v2/groups`, never on the cached GET paths.
    """

    definition: AppDefinition
    encoded: bytes
    version: str
    config_version: str     # lastConfigChangeAt: instances launched from another one need replacing

    @property
    def app_id(self) -> str:
        return self.definition.id

    @property
    def json(self) -> dict[str, Any]:
        """The app's JSON (a new dict on every call: callers may keep or change it)."""
        data: dict[str, Any] = _json.loads(self.encoded)
        return data

    @cached_property
    def service_ports(self) -> tuple[int, ...]:
        return tuple(spec.service_port for spec in self.definition.port_specs())

    @cached_property
    def task_request(self) -> TaskRequest:
        return task_request(self.definition)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AppRecord":
        definition = parse_app_definition(data)
        rendered = definition.to_json()
        return cls(definition=definition, encoded=_encode(rendered).encode(), version=rendered["version"],
                   config_version=rendered["versionInfo"]["lastConfigChangeAt"])


def _set_service_ports(data: dict[str, Any], mode: str, ports: tuple[int, ...]) -> None:
    if mode == "host":
        entries = data.get("portDefinitions") or []
        key = "port"
    else:
        entries = (data.get("container") or {}).get("portMappings") or []
        key = "servicePort"
    for entry, port in zip(entries, ports):
        entry[key] = port


def finalize_app(app: AppDefinition, previous: AppRecord | None, version: str,
                 used_service_ports: Mapping[int, str]) -> AppRecord:
    """Stamp `version`/`versionInfo` and assign service ports; raises Conflict on a port clash.

    A scale-only change keeps `lastConfigChangeAt`, which is how running instances know they
    need no replacement. Ports left at 0 keep the port the app already had at that index, so
    an update never reshuffles a load balancer's frontends.
    """
    specs = app.port_specs()
    requested = [spec.service_port for spec in specs]
    if previous is not None:
        old = previous.service_ports
        requested = [port or (old[i] if i < len(old) else 0) for i, port in enumerate(requested)]
    try:
        ports = assign_service_ports(requested, used_service_ports, app.id)
    except ServicePortConflict as exc:
        raise Conflict(str(exc)) from exc
    except ServicePortsExhausted as exc:
        raise Conflict(str(exc)) from exc
    data = app.to_json()
    _set_service_ports(data, app.networking_mode, tuple(ports))
    data["version"] = version
    config_change = version
    if previous is not None:
        if not is_upgrade(previous.definition, parse_app_definition(data)):
            config_change = previous.config_version
    data["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": config_change}
    return AppRecord.from_json(data)


def task_request(app: AppDefinition) -> TaskRequest:
    """What one instance of `app` asks of an agent."""
    host_ports = tuple(spec.host_port if app.require_ports or spec.host_port else 0
                       for spec in app.port_specs() if spec.host_port is not None)
    constraints = tuple(ConstraintSpec(field=c.field, operator=c.operator, value=c.value) for c in app.constraints)
    return TaskRequest(app_id=app.id, cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus,
                       host_ports=host_ports, constraints=constraints, target_instances=app.instances,
                       required_networks=tuple(app.network_names))
