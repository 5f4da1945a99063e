"""JSON Schema of an app definition, for ``pacer schema`` and editor completion.

Generated from the models, so it cannot drift from what the API accepts. The
deprecated spellings the API still accepts are added as ``deprecated``
properties so old files validate in editors too; unknown fields stay allowed
because the API ignores them.
"""

from __future__ import annotations

from typing import Any

from .app import AppDefinition
from .deprecated import IpAddress

__all__ = ["app_json_schema"]

_READ_ONLY = ("version", "versionInfo")


def app_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of :class:`AppDefinition` by its JSON names."""
    schema = AppDefinition.model_json_schema(by_alias=True, mode="validation")
    ip_schema = IpAddress.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    defs.update(ip_schema.pop("$defs", {}))
    defs["IpAddress"] = ip_schema
    properties = schema["properties"]
    for name in _READ_ONLY:
        properties[name]["readOnly"] = True
    properties["ports"] = {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 65535},
        "deprecated": True,
        "description": "Deprecated: use portDefinitions.",
    }
    properties["uris"] = {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 1024},
        "deprecated": True,
        "description": "Deprecated: use fetch.",
    }
    properties["ipAddress"] = {
        "$ref": "#/$defs/IpAddress",
        "deprecated": True,
        "description": "Deprecated: use networks.",
    }
    docker = defs["DockerContainer"]["properties"]
    docker["network"] = {
        "enum": ["BRIDGE", "HOST", "USER"],
        "deprecated": True,
        "description": "Deprecated: use networks.",
    }
    docker["portMappings"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/PortMapping"},
        "deprecated": True,
        "description": "Deprecated: use container.portMappings.",
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Pacer app definition (Marathon v2 App)"
    return schema
