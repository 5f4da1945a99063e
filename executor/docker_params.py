"""Pure mapping of Marathon's ``container.docker.parameters`` onto the Docker engine API.

Marathon passes each ``{"key": k, "value": v}`` to the docker CLI as ``--k v``; Pacer talks to
the engine's HTTP API through the docker SDK, so every supported key is translated here into
arguments of ``create_container`` / ``create_host_config`` (plus the container's endpoint on its
network, its name and the image pull policy). The set of keys is
``app_definitions.docker_parameters.SUPPORTED_DOCKER_PARAMETERS``, checked when an app is
submitted, which also refuses, with the reason, the ``docker run`` options that cannot be
honoured; a value the CLI would refuse (``memory-swap: lots``) raises ``InvalidTaskSpec``
naming the key, which the backend reports as a failed launch.

Repeatable keys (``env``, ``label``, ``volume``, ``add-host``, ``cap-add``, ``ulimit``,
``volumes-from``, ``mount``...) accumulate in order; for single-valued keys (``user``,
``workdir``, ``memory``...) the last one wins, as with repeated CLI flags. Flags that take no
value on the CLI (``--init``, ``--read-only``, ``--tty``...) take ``true``/``false`` here, an empty
value meaning ``true``.

Three keys need a word: ``name`` names the container ``<name>-<short task id>`` so that the
instances of an app (and a replacement started while its predecessor is still being removed)
never clash; ``rm`` and ``detach`` describe what Pacer always does (containers run detached and
are removed once their end is recorded), so ``true`` is accepted and ``false`` refused; ``pull``
``always`` is ``forcePullImage``, ``missing`` the default, and ``never`` is refused because Pacer
pulls a missing image itself.
"""

from __future__ import annotations

import re
import signal as signal_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app_definitions.docker_parameters import canonical_docker_parameter

from executor.errors import InvalidTaskSpec

__all__ = [
    "ParameterOptions",
    "map_parameters",
    "mapped_parameters",
    "parse_bytes",
    "parse_duration_ns",
    "signal_number",
]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_TRUE = {"true", "1", "yes", ""}
_FALSE = {"false", "0", "no"}


def _fail(key: str, message: str) -> InvalidTaskSpec:
    return InvalidTaskSpec(f"docker parameter '{key}': {message}")


def parse_bytes(key: str, value: str) -> int:
    """Docker's size syntax: ``512``, ``64k``, ``128m``, ``1g`` (powers of 1024); -1 = unlimited."""
    if value.strip() == "-1":
        return -1
    match = _SIZE.match(value)
    if match is None:
        raise _fail(key, f"'{value}' is not a size (e.g. 512m, 1g, -1)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_duration_ns(key: str, value: str) -> int:
    """Go's duration syntax, as the CLI reads it: ``30s``, ``1m30s``, ``250ms``, ``0``; in nanoseconds."""
    text = value.strip()
    if text == "0":
        return 0
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise _fail(key, f"'{value}' is not a duration (e.g. 30s, 1m30s, 250ms)")
    return int(sum(float(number) * _DURATION_NS[unit] for number, unit in parts))


def _int(key: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _fail(key, f"expected an integer, got '{value}'") from None


def _key_value(key: str, value: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name:
        raise _fail(key, f"expected NAME=VALUE, got '{value}'")
    return name, rest


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _fail(key, f"expected true or false, got '{value}'")


def _text(key: str, value: str) -> str:
    if not value:
        raise _fail(key, "must not be empty")
    return value


def _ulimit(key: str, value: str) -> dict[str, Any]:
    """``nofile=1024`` or ``nofile=1024:2048`` (soft:hard), as ``docker run --ulimit``."""
    name, limits = _key_value(key, value)
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise _fail(key, f"expected NAME=SOFT[:HARD] with integers, got '{value}'") from None
    return {"name": name, "soft": soft, "hard": hard}


def _device_limit(key: str, value: str, field_name: str, parse: Callable[[str, str], int]) -> dict[str, Any]:
    """``/dev/sda:1mb`` (rates) or ``/dev/sda:200`` (weights): the engine's ``{Path, Rate|Weight}``."""
    path, sep, amount = value.rpartition(":")
    if not sep or not path.startswith("/"):
        raise _fail(key, f"expected /dev/DEVICE:AMOUNT, got '{value}'")
    return {"Path": path, field_name: parse(key, amount)}


def _mount(key: str, value: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` as the engine's ``Mount`` object."""
    options: dict[str, str] = {}
    driver_options: dict[str, str] = {}
    for item in value.split(","):
        name, sep, setting = item.partition("=")
        if name.strip().lower() == "volume-opt":
            opt_name, opt_value = _key_value(key, setting)
            driver_options[opt_name] = opt_value
        else:
            options[name.strip().lower()] = setting if sep else "true"
    kind = options.pop("type", "volume")
    target = options.pop("target", None) or options.pop("destination", None) or options.pop("dst", None)
    if not target:
        raise _fail(key, f"a mount needs a target, got '{value}'")
    mount: dict[str, Any] = {"Type": kind, "Target": target}
    source = options.pop("source", None) or options.pop("src", None)
    if source:
        mount["Source"] = source
    readonly = options.pop("readonly", options.pop("ro", None))
    if readonly is not None:
        mount["ReadOnly"] = _bool(key, readonly)
    if "bind-propagation" in options:
        mount["BindOptions"] = {"Propagation": options.pop("bind-propagation")}
    volume: dict[str, Any] = {}
    if "volume-nocopy" in options:
        volume["NoCopy"] = _bool(key, options.pop("volume-nocopy"))
    if "volume-driver" in options or driver_options:
        volume["DriverConfig"] = {"Name": options.pop("volume-driver", ""), "Options": driver_options}
    if volume:
        mount["VolumeOptions"] = volume
    tmpfs: dict[str, Any] = {}
    if "tmpfs-size" in options:
        tmpfs["SizeBytes"] = parse_bytes(key, options.pop("tmpfs-size"))
    if "tmpfs-mode" in options:
        try:
            tmpfs["Mode"] = int(options.pop("tmpfs-mode"), 8)
        except ValueError:
            raise _fail(key, f"tmpfs-mode must be an octal mode, got '{value}'") from None
    if tmpfs:
        mount["TmpfsOptions"] = tmpfs
    if kind not in ("bind", "volume", "tmpfs") or options:
        raise _fail(key, f"cannot read mount '{value}' (type bind, volume or tmpfs; source, target, readonly, "
                         "bind-propagation, volume-driver, volume-opt, volume-nocopy, tmpfs-size, tmpfs-mode)")
    return mount


def _gpus(key: str, value: str) -> dict[str, Any]:
    """``all``, ``2``, ``device=0,1``, ``count=2,capabilities=utility``: the engine's ``DeviceRequest``."""
    text = value.strip().strip('"')
    request: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    if text == "all":
        request["Count"] = -1
        return request
    if text.isdigit():
        request["Count"] = int(text)
        return request
    name = ""
    for item in text.split(","):
        part_name, sep, setting = item.partition("=")
        if sep:
            name = part_name.strip()
        elif name != "device":
            raise _fail(key, f"cannot read '{value}' (all, a count, or count=/device=/driver=/capabilities=)")
        else:
            setting = part_name
        if name == "count":
            request["Count"] = -1 if setting == "all" else _int(key, setting)
        elif name == "device":
            request["DeviceIDs"].append(setting)
        elif name == "driver":
            request["Driver"] = setting
        elif name == "capabilities":
            request["Capabilities"] = [["gpu", setting]] if setting != "gpu" else [["gpu"]]
        else:
            raise _fail(key, f"cannot read '{value}' (all, a count, or count=/device=/driver=/capabilities=)")
    return request


def _expose(key: str, value: str) -> list[tuple[int, str]]:
    """``80``, ``53/udp``, ``8000-8002/tcp``: the ports to expose, one per port of a range."""
    ports, _, protocol = value.partition("/")
    first, sep, last = ports.partition("-")
    try:
        start, end = int(first), int(last) if sep else int(first)
    except ValueError:
        raise _fail(key, f"expected PORT[-PORT][/PROTOCOL], got '{value}'") from None
    if not 0 < start <= end <= 65535:
        raise _fail(key, f"expected ports between 1 and 65535, got '{value}'")
    return [(port, protocol or "tcp") for port in range(start, end + 1)]


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
    exposed: list[tuple[int, str]] = field(default_factory=list)  # (port, protocol) to expose, not publish
    create: dict[str, Any] = field(default_factory=dict)     # extra create_container arguments
    host_config: dict[str, Any] = field(default_factory=dict)  # extra create_host_config arguments
    endpoint: dict[str, Any] = field(default_factory=dict)   # the engine's EndpointSettings on the network
    healthcheck: dict[str, Any] = field(default_factory=dict)  # the engine's HealthConfig
    name: str | None = None                                  # the container's name, before its suffix
    force_pull: bool = False                                 # pull=always

    def _append(self, name: str, item: Any) -> None:
        self.host_config.setdefault(name, []).append(item)


_CREATE_TEXT = {"user": "user", "workdir": "working_dir", "hostname": "hostname", "domainname": "domainname",
                "mac-address": "mac_address", "platform": "platform"}
_HOST_TEXT = {"cgroup-parent": "cgroup_parent", "cgroupns": "cgroupns", "cpuset-cpus": "cpuset_cpus",
              "cpuset-mems": "cpuset_mems", "ipc": "ipc_mode", "pid": "pid_mode", "uts": "uts_mode",
              "userns": "userns_mode", "isolation": "isolation", "runtime": "runtime",
              "volume-driver": "volume_driver"}
_HOST_LISTS = {"cap-add": "cap_add", "cap-drop": "cap_drop", "dns": "dns", "dns-search": "dns_search",
               "dns-option": "dns_opt", "security-opt": "security_opt", "device": "devices",
               "device-cgroup-rule": "device_cgroup_rules", "group-add": "group_add", "volumes-from": "volumes_from"}
_HOST_BYTES = {"memory": "mem_limit", "memory-swap": "memswap_limit", "memory-reservation": "mem_reservation",
               "shm-size": "shm_size", "kernel-memory": "kernel_memory"}
_HOST_INTS = {"pids-limit": "pids_limit", "memory-swappiness": "mem_swappiness", "oom-score-adj": "oom_score_adj",
              "cpu-shares": "cpu_shares", "cpu-period": "cpu_period", "cpu-quota": "cpu_quota",
              "cpu-rt-period": "cpu_rt_period", "cpu-rt-runtime": "cpu_rt_runtime", "blkio-weight": "blkio_weight"}
_HOST_BOOLS = {"read-only": "read_only", "init": "init", "privileged": "privileged",
               "oom-kill-disable": "oom_kill_disable"}
_DEVICE_LIMITS = {"device-read-bps": ("device_read_bps", "Rate", parse_bytes),
                  "device-write-bps": ("device_write_bps", "Rate", parse_bytes),
                  "device-read-iops": ("device_read_iops", "Rate", _int),
                  "device-write-iops": ("device_write_iops", "Rate", _int),
                  "blkio-weight-device": ("blkio_weight_device", "Weight", _int)}
_HEALTH_DURATIONS = {"health-interval": "Interval", "health-timeout": "Timeout", "health-start-period": "StartPeriod"}
_ALWAYS_DONE = {"rm": "Pacer removes every container once its end is recorded",
                "detach": "Pacer runs every container detached"}


def _apply_special(out: ParameterOptions, key: str, value: str) -> None:  # noqa: C901 - one branch per key
    if key in ("env", "label"):
        name, sep, rest = value.partition("=")
        if not name:
            raise _fail(key, f"expected NAME=VALUE, got '{value}'")
        (out.env if key == "env" else out.labels)[name] = rest
    elif key == "volume":
        parts = value.split(":")
        if len(parts) == 1 and value.startswith("/"):
            out.anonymous_volumes.append(value)
        elif 2 <= len(parts) <= 3 and all(parts[:2]) and parts[1].startswith("/"):
            out.binds.append(value)
        else:
            raise _fail(key, f"expected SOURCE:/container/path[:ro|rw] or /container/path, got '{value}'")
    elif key == "stop-signal":
        if signal_number(value) is None:
            raise _fail(key, f"'{value}' is not a signal (e.g. SIGTERM)")
        out.create["stop_signal"] = value
    elif key == "stop-timeout":
        out.create["stop_timeout"] = _int(key, value)
    elif key == "entrypoint":
        out.create["entrypoint"] = [value]
    elif key in ("tty", "interactive"):
        out.create["tty" if key == "tty" else "stdin_open"] = _bool(key, value)
    elif key == "name":
        if not _CONTAINER_NAME.match(value):
            raise _fail(key, f"'{value}' is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
        out.name = value
    elif key in _ALWAYS_DONE:
        if not _bool(key, value):
            raise _fail(key, f"'{value}' cannot be honoured: {_ALWAYS_DONE[key]}")
    elif key == "pull":
        if value not in ("always", "missing"):
            raise _fail(key, f"'{value}' cannot be honoured (always or missing; Pacer pulls a missing image)")
        out.force_pull = out.force_pull or value == "always"
    elif key == "cpus":
        try:
            out.host_config["nano_cpus"] = int(round(float(value) * 1e9))
        except ValueError:
            raise _fail(key, f"expected a number of CPUs, got '{value}'") from None
    elif key == "add-host":
        host, sep, address = value.partition(":")
        if not sep or not host or not address:
            raise _fail(key, f"expected HOST:IP, got '{value}'")
        out._append("extra_hosts", f"{host}:{address}")
    elif key == "link":
        name, _, alias = value.partition(":")
        out.host_config.setdefault("links", {})[_text(key, name)] = alias or name
    elif key in ("ip", "ip6"):
        out.endpoint.setdefault("IPAMConfig", {})["IPv4Address" if key == "ip" else "IPv6Address"] = _text(key, value)
    elif key == "link-local-ip":
        out.endpoint.setdefault("IPAMConfig", {}).setdefault("LinkLocalIPs", []).append(_text(key, value))
    elif key == "network-alias":
        out.endpoint.setdefault("Aliases", []).append(_text(key, value))
    elif key == "expose":
        out.exposed.extend(_expose(key, value))
    elif key == "health-cmd":
        out.healthcheck["Test"] = ["CMD-SHELL", _text(key, value)]
    elif key == "no-healthcheck":
        if _bool(key, value):
            out.healthcheck["Test"] = ["NONE"]
    elif key == "health-retries":
        out.healthcheck["Retries"] = _int(key, value)
    elif key in _HEALTH_DURATIONS:
        out.healthcheck[_HEALTH_DURATIONS[key]] = parse_duration_ns(key, value)
    elif key == "ulimit":
        out._append("ulimits", _ulimit(key, value))
    elif key == "sysctl":
        name, rest = _key_value(key, value)
        out.host_config.setdefault("sysctls", {})[name] = rest
    elif key == "storage-opt":
        name, rest = _key_value(key, value)
        out.host_config.setdefault("storage_opt", {})[name] = rest
    elif key == "tmpfs":
        path, _, options = value.partition(":")
        if not path.startswith("/"):
            raise _fail(key, f"expected /path[:options], got '{value}'")
        out.host_config.setdefault("tmpfs", {})[path] = options
    elif key in ("log-driver", "log-opt"):
        log_config = out.host_config.setdefault("log_config", {"type": "", "config": {}})
        if key == "log-driver":
            log_config["type"] = _text(key, value)
        else:
            name, rest = _key_value(key, value)
            log_config["config"][name] = rest
    elif key == "mount":
        out._append("mounts", _mount(key, value))
    elif key == "gpus":
        out._append("device_requests", _gpus(key, value))
    else:  # pragma: no cover - the supported set and these tables are kept in step by a test
        raise InvalidTaskSpec(f"docker parameter '{key}' has no mapping")


def _apply(out: ParameterOptions, key: str, value: str) -> None:
    if key in _CREATE_TEXT:
        out.create[_CREATE_TEXT[key]] = _text(key, value)
    elif key in _HOST_TEXT:
        out.host_config[_HOST_TEXT[key]] = _text(key, value)
    elif key in _HOST_LISTS:
        out._append(_HOST_LISTS[key], _text(key, value))
    elif key in _HOST_BYTES:
        out.host_config[_HOST_BYTES[key]] = parse_bytes(key, value)
    elif key in _HOST_INTS:
        out.host_config[_HOST_INTS[key]] = _int(key, value)
    elif key in _HOST_BOOLS:
        out.host_config[_HOST_BOOLS[key]] = _bool(key, value)
    elif key in _DEVICE_LIMITS:
        name, field_name, parse = _DEVICE_LIMITS[key]
        out._append(name, _device_limit(key, value, field_name, parse))
    else:
        _apply_special(out, key, value)


def map_parameters(parameters: Iterable[tuple[str, str]]) -> ParameterOptions:
    """Translate ``(key, value)`` pairs; raises ``InvalidTaskSpec`` for unknown keys or bad values."""
    out = ParameterOptions()
    for raw_key, value in parameters:
        key = canonical_docker_parameter(raw_key)
        if key is None:  # validation refuses these at submission; a stored app may predate it
            raise InvalidTaskSpec(f"docker parameter '{raw_key}' is not supported")
        _apply(out, key, value)
    return out


def mapped_parameters() -> frozenset[str]:
    """Every key this module maps (for the test that keeps it in step with the supported set)."""
    special = {"env", "label", "volume", "stop-signal", "stop-timeout", "entrypoint", "tty", "interactive", "name",
               "pull", "cpus", "add-host", "link", "ip", "ip6", "link-local-ip", "network-alias", "expose",
               "health-cmd", "no-healthcheck", "health-retries", "ulimit", "sysctl", "storage-opt", "tmpfs",
               "log-driver", "log-opt", "mount", "gpus"}
    tables: list[Iterable[str]] = [_CREATE_TEXT, _HOST_TEXT, _HOST_LISTS, _HOST_BYTES, _HOST_INTS, _HOST_BOOLS,
                                   _DEVICE_LIMITS, _HEALTH_DURATIONS, _ALWAYS_DONE, special]
    return frozenset(key for table in tables for key in table)
