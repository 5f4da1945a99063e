"""Changing an app: partial updates, rollback requests, JSON Merge Patch, restart-or-scale.

All functions here are pure and never mutate their arguments: the API hands
them the stored JSON and the request body and gets new JSON back to feed
:func:`app_definitions.parse_app_definition`.
"""

from __future__ import annotations

import copy
from typing import Any

from .app import AppDefinition
from .depth import MAX_DEFINITION_DEPTH, TOO_DEEP_DEFINITION_MESSAGE, too_deep_at
from .errors import ValidationFailed, Violation
from .strategies import is_timestamp

__all__ = [
    "SERVER_FIELDS",
    "apply_app_update",
    "is_rollback_request",
    "is_upgrade",
    "merge_patch",
]

SERVER_FIELDS = frozenset(
    {
        "version",
        "versionInfo",
        "tasks",
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
        "tasksStats",
        "deployments",
        "lastTaskFailure",
        "readinessCheckResults",
    }
)
_SCALE_ONLY_FIELDS = frozenset({"instances", "version", "version_info"})

# When an update gives the key on the left, these keys of the current definition
# go: they are the other spelling of the same thing, or its alternative.
_REPLACES = {
    "ports": ("portDefinitions", "ports"),
    "portDefinitions": ("ports",),
    "uris": ("fetch",),
    "fetch": ("uris",),
    "ipAddress": ("networks",),
    "networks": ("ipAddress",),
    "cmd": ("args",),
    "args": ("cmd",),
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch of ``patch`` onto ``target``; a new value, inputs untouched.

    An object patch merges member by member (``null`` deletes a member); any
    other patch replaces the target.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _docker_network_given(update: dict[str, Any]) -> bool:
    """True when the update uses the deprecated ``container.docker.network``."""
    container = update.get("container")
    docker = container.get("docker") if isinstance(container, dict) else None
    return isinstance(docker, dict) and docker.get("network") is not None


def _new_network_mode(update: dict[str, Any]) -> str | None:
    """The networking mode an update switches to (``host`` or ``other``); None if it keeps the current one."""
    if update.get("ipAddress") is not None:
        return "other"
    if _docker_network_given(update):
        return "host" if update["container"]["docker"]["network"] == "HOST" else "other"
    networks = update.get("networks")
    if isinstance(networks, list):
        first = networks[0] if networks else {"mode": "host"}
        mode = first.get("mode", "container") if isinstance(first, dict) else None
        return "host" if mode == "host" else "other"
    return None


def _drop_port_mappings(current: dict[str, Any]) -> None:
    """Remove port mappings (both spellings) from ``current``'s container, which a host-mode app cannot use."""
    container = current.get("container")
    if isinstance(container, dict):
        container = dict(container)
        container.pop("portMappings", None)
        if isinstance(container.get("docker"), dict):
            container["docker"] = {k: v for k, v in container["docker"].items() if k != "portMappings"}
        current["container"] = container


def apply_app_update(current: dict | None, update: dict) -> dict:
    """Marathon's partial update (``PUT`` with ``partialUpdate=true``, ``PATCH``).

    Top-level keys of ``update`` replace those of ``current`` (``None`` for a
    create-by-PUT). Server fields are dropped from both. A key given in one
    spelling drops the other spelling from ``current`` (``ports`` vs
    ``portDefinitions``, ``uris`` vs ``fetch``, ``ipAddress`` or
    ``container.docker.network`` vs ``networks``, ``cmd`` vs ``args``), and an
    update that switches the networking mode drops current port declarations
    the new mode cannot use (port mappings in host mode, port definitions
    otherwise) unless it gives new ones.

    Raises :class:`ValidationFailed` when ``update`` nests deeper than any
    definition may (checked before anything recursive copies it).
    """
    where = too_deep_at(update, MAX_DEFINITION_DEPTH)
    if where is not None:
        raise ValidationFailed([Violation(where, TOO_DEEP_DEFINITION_MESSAGE)])
    merged = {k: copy.deepcopy(v) for k, v in (current or {}).items() if k not in SERVER_FIELDS}
    changes = {k: v for k, v in update.items() if k not in SERVER_FIELDS}
    for key in changes:
        for dropped in _REPLACES.get(key, ()):
            merged.pop(dropped, None)
    if _docker_network_given(changes):
        merged.pop("networks", None)
    mode = _new_network_mode(changes)
    if mode == "host" and "container" not in changes:
        _drop_port_mappings(merged)
    if mode == "other" and not {"ports", "portDefinitions"} & changes.keys():
        merged.pop("ports", None)
        merged.pop("portDefinitions", None)
    merged.update(copy.deepcopy(changes))
    return merged


def is_rollback_request(data: Any) -> str | None:
    """The version to roll back to when ``data`` is ``{"version": ts}`` or ``{"id": .., "version": ts}``.

    Returns None when the body carries no version. Raises
    :class:`ValidationFailed` when a version comes with other fields ("The
    'version' field may only be combined with the 'id' field.", as Marathon)
    or is not a timestamp.
    """
    if not isinstance(data, dict) or data.get("version") is None:
        return None
    if set(data) - {"id", "version"}:
        raise ValidationFailed([Violation("/", "The 'version' field may only be combined with the 'id' field.")])
    version = data["version"]
    if not is_timestamp(version):
        raise ValidationFailed([Violation("/version", "must be an ISO-8601 date-time")])
    return version


def is_upgrade(old: AppDefinition, new: AppDefinition) -> bool:
    """True when going from ``old`` to ``new`` needs a rolling restart, False for a pure scale.

    Everything but ``instances`` (and the server-set version stamps) counts:
    command, resources, container, ports, checks, labels, strategies...
    """
    return old.model_dump(exclude=set(_SCALE_ONLY_FIELDS)) != new.model_dump(exclude=set(_SCALE_ONLY_FIELDS))
