"""Which parts of an app definition break the isolation between a task and its host.

A deployer may run any command under its paths: that is the job. What it must not get is the
host itself: a privileged container, the host's pid/ipc/uts/user/cgroup namespace, added
capabilities, host devices, a relaxed security profile, another cgroup parent, or a bind mount
of a host path (outside `--allowed-host-paths`). Those need `admin` on the app's path.

Pure: `isolation_breaches(app_json, allowed_host_paths)` reads an app definition (or the
fields of a partial update) as sent, before validation, and names every breach; `group_apps`
finds the app definitions inside a group body. Unknown or malformed shapes are not breaches
here: validation refuses them later with Marathon's 422.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from typing import Any

from app_definitions.docker_parameters import DOCKER_PARAMETER_ALIASES

_HOST_NAMESPACES = frozenset({"pid", "ipc", "uts", "userns", "cgroupns", "network"})
_ALWAYS = {
    "privileged": "runs the container privileged",
    "cap-add": "adds Linux capabilities",
    "device": "hands a host device to the container",
    "device-cgroup-rule": "opens host devices to the container",
    "security-opt": "changes the container's security profile",
    "cgroup-parent": "moves the container out of Pacer's cgroups",
    "volumes-from": "mounts the volumes of another container",
}


def _canonical(key: str) -> str:
    name = key.lstrip("-")
    return DOCKER_PARAMETER_ALIASES.get(name, name)


def host_path_allowed(path: str, allowed: Iterable[str]) -> bool:
    """Whether the host ``path`` lies at or beneath one of ``allowed`` (after resolving ``..``)."""
    normal = posixpath.normpath(path)
    for root in allowed:
        base = posixpath.normpath(root)
        if normal == base or normal.startswith(base.rstrip("/") + "/"):
            return True
    return False


def _bind_source(key: str, value: str) -> str | None:
    """The host path a ``volume``/``mount`` parameter binds, if any."""
    if key == "volume":
        source = value.split(":", 1)[0]
        return source if source.startswith("/") else None      # a name is a Docker volume, not a host path
    options = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    kind = options.get("type", "volume")
    source = options.get("source", options.get("src"))
    if kind == "bind" and source:
        return source
    return None


def _parameter_breaches(parameters: Any, allowed: tuple[str, ...]) -> Iterator[str]:
    if not isinstance(parameters, list):
        return
    for item in parameters:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        key, value = _canonical(item["key"]), str(item.get("value", ""))
        if key == "privileged" and value.strip().lower() in ("false", "0"):
            continue
        if key in _ALWAYS:
            yield f"docker parameter '{item['key']}' {_ALWAYS[key]}"
        elif key in _HOST_NAMESPACES and value.strip().lower() == "host":
            yield f"docker parameter '{item['key']}={value}' shares the host's {key} namespace"
        elif key in ("volume", "mount"):
            source = _bind_source(key, value)
            if source is not None and not host_path_allowed(source, allowed):
                yield f"docker parameter '{item['key']}' mounts host path {source}, outside --allowed-host-paths"


def isolation_breaches(app: Any, allowed_host_paths: Iterable[str] = ()) -> list[str]:
    """Every part of ``app`` (an app JSON or update body) that needs `admin`; empty if none."""
    if not isinstance(app, dict):
        return []
    allowed = tuple(allowed_host_paths)
    found: list[str] = []
    container = app.get("container")
    if isinstance(container, dict):
        docker = container.get("docker")
        if isinstance(docker, dict):
            if docker.get("privileged") is True:
                found.append("container.docker.privileged runs the container privileged")
            found.extend(_parameter_breaches(docker.get("parameters"), allowed))
        volumes = container.get("volumes")
        for volume in volumes if isinstance(volumes, list) else []:
            host = volume.get("hostPath") if isinstance(volume, dict) else None
            if isinstance(host, str) and host.startswith("/") and not host_path_allowed(host, allowed):
                found.append(f"container.volumes mounts host path {host}, outside --allowed-host-paths")
    return found


def group_apps(body: Any) -> Iterator[Any]:
    """The app definitions of a group body, nested groups included."""
    if not isinstance(body, dict):
        return
    apps = body.get("apps")
    for app in apps if isinstance(apps, list) else []:
        yield app
    groups = body.get("groups")
    for group in groups if isinstance(groups, list) else []:
        yield from group_apps(group)
