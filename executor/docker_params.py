"""Pure mapping of Marathon's ``container.docker.parameters`` onto the Docker engine API.

Marathon passes each ``{"key": k, "value": v}`` to the docker CLI as ``--k v``; Pacer talks to
the engine's HTTP API through the docker SDK, so every supported key is translated here into
arguments of ``create_container`` / ``create_host_config``. The set of keys is
``app_definitions.container.SUPPORTED_DOCKER_PARAMETERS``, checked when an app is submitted;
a value the CLI would refuse (``memory-swap: lots``) raises ``InvalidTaskSpec`` naming the key,
which the backend reports as a failed launch.

Repeatable keys (``env``, ``label``, ``volume``, ``add-host``, ``cap-add``, ``ulimit``...)
accumulate in order; for single-valued keys (``user``, ``workdir``...) the last one wins, as
with repeated CLI flags.
"""

from __future__ import annotations

import re
import signal as signal_module
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app_definitions.container import canonical_docker_parameter

from executor.errors import InvalidTaskSpec

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_TRUE = {"true", "1", "yes", ""}
_FALSE = {"false", "0", "no"}


def parse_bytes(key: str, value: str) -> int:
    """Docker's size syntax: ``512``, ``64k``, ``128m``, ``1g`` (powers of 1024); -1 = unlimited."""
    if value.strip() == "-1":
        return -1
    match = _SIZE.match(value)
    if match is None:
        raise InvalidTaskSpec(f"docker parameter '{key}': '{value}' is not a size (e.g. 512m, 1g, -1)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def _key_value(key: str, value: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name:
        raise InvalidTaskSpec(f"docker parameter '{key}': expected NAME=VALUE, got '{value}'")
    return name, rest


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidTaskSpec(f"docker parameter '{key}': expected true or false, got '{value}'")


def _ulimit(key: str, value: str) -> dict[str, Any]:
    """``nofile=1024`` or ``nofile=1024:2048`` (soft:hard), as ``docker run --ulimit``."""
    name, limits = _key_value(key, value)
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise InvalidTaskSpec(
            f"docker parameter '{key}': expected NAME=SOFT[:HARD] with integers, got '{value}'") from None
    return {"name": name, "soft": soft, "hard": hard}


def signal_number(name: str) -> int | None:
    """``SIGTERM``/``TERM``/``15`` -> 15; None when it names no signal."""
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    try:
        return int(signal_module.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        return None


@dataclass
class ParameterOptions:
    """What the parameters add to a container; merged with the app's own settings by the caller."""

    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    binds: list[str] = field(default_factory=list)           # "src:dst[:mode]" (host path or named volume)
    anonymous_volumes: list[str] = field(default_factory=list)  # "/path": a fresh anonymous volume
    create: dict[str, Any] = field(default_factory=dict)     # extra create_container arguments
    host_config: dict[str, Any] = field(default_factory=dict)  # extra create_host_config arguments

    def _append(self, name: str, item: Any) -> None:
        self.host_config.setdefault(name, []).append(item)


def map_parameters(parameters: Iterable[tuple[str, str]]) -> ParameterOptions:
    """Translate ``(key, value)`` pairs; raises ``InvalidTaskSpec`` for unknown keys or bad values."""
    out = ParameterOptions()
    for raw_key, value in parameters:
        key = canonical_docker_parameter(raw_key)
        if key is None:  # validation refuses these at submission; a stored app may predate it
            raise InvalidTaskSpec(f"docker parameter '{raw_key}' is not supported")
        _apply(out, key, value)
    return out


def _apply(out: ParameterOptions, key: str, value: str) -> None:  # noqa: C901 - one branch per key
    if key == "env":
        name, sep, rest = value.partition("=")
        if not name:
            raise InvalidTaskSpec(f"docker parameter 'env': expected NAME=VALUE, got '{value}'")
        out.env[name] = rest if sep else ""
    elif key == "label":
        name, sep, rest = value.partition("=")
        if not name:
            raise InvalidTaskSpec(f"docker parameter 'label': expected NAME=VALUE, got '{value}'")
        out.labels[name] = rest
    elif key == "volume":
        parts = value.split(":")
        if len(parts) == 1 and value.startswith("/"):
            out.anonymous_volumes.append(value)
        elif 2 <= len(parts) <= 3 and all(parts[:2]) and parts[1].startswith("/"):
            out.binds.append(value)
        else:
            raise InvalidTaskSpec(
                f"docker parameter 'volume': expected SOURCE:/container/path[:ro|rw] or /container/path, "
                f"got '{value}'")
    elif key in ("user", "workdir", "hostname", "stop-signal"):
        if not value:
            raise InvalidTaskSpec(f"docker parameter '{key}' must not be empty")
        if key == "stop-signal" and signal_number(value) is None:
            raise InvalidTaskSpec(f"docker parameter 'stop-signal': '{value}' is not a signal (e.g. SIGTERM)")
        out.create[{"user": "user", "workdir": "working_dir", "hostname": "hostname",
                    "stop-signal": "stop_signal"}[key]] = value
    elif key == "memory-swap":
        out.host_config["memswap_limit"] = parse_bytes(key, value)
    elif key == "memory-reservation":
        out.host_config["mem_reservation"] = parse_bytes(key, value)
    elif key == "shm-size":
        out.host_config["shm_size"] = parse_bytes(key, value)
    elif key == "add-host":
        host, sep, address = value.partition(":")
        if not sep or not host or not address:
            raise InvalidTaskSpec(f"docker parameter 'add-host': expected HOST:IP, got '{value}'")
        out._append("extra_hosts", f"{host}:{address}")
    elif key in ("cap-add", "cap-drop", "dns", "dns-search", "security-opt"):
        if not value:
            raise InvalidTaskSpec(f"docker parameter '{key}' must not be empty")
        out._append({"cap-add": "cap_add", "cap-drop": "cap_drop", "dns": "dns", "dns-search": "dns_search",
                     "security-opt": "security_opt"}[key], value)
    elif key == "ulimit":
        out._append("ulimits", _ulimit(key, value))
    elif key == "sysctl":
        name, rest = _key_value(key, value)
        out.host_config.setdefault("sysctls", {})[name] = rest
    elif key == "tmpfs":
        path, _, options = value.partition(":")
        if not path.startswith("/"):
            raise InvalidTaskSpec(f"docker parameter 'tmpfs': expected /path[:options], got '{value}'")
        out.host_config.setdefault("tmpfs", {})[path] = options
    elif key == "log-driver":
        if not value:
            raise InvalidTaskSpec("docker parameter 'log-driver' must not be empty")
        out.host_config.setdefault("log_config", {"type": "", "config": {}})["type"] = value
    elif key == "log-opt":
        name, rest = _key_value(key, value)
        out.host_config.setdefault("log_config", {"type": "", "config": {}})["config"][name] = rest
    elif key == "read-only":
        out.host_config["read_only"] = _bool(key, value)
    elif key == "init":
        out.host_config["init"] = _bool(key, value)
    elif key == "pids-limit":
        try:
            out.host_config["pids_limit"] = int(value)
        except ValueError:
            raise InvalidTaskSpec(f"docker parameter 'pids-limit': expected an integer, got '{value}'") from None
    else:  # pragma: no cover - the supported set and this table are kept in step by a test
        raise InvalidTaskSpec(f"docker parameter '{key}' has no mapping")
