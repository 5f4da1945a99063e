"""Which ``docker run`` options ``container.docker.parameters`` may name, and why the others may not.

Marathon hands each ``{"key": k, "value": v}`` to the docker CLI as ``--k v``; Pacer talks to the
engine's API instead, so a key is usable only when the engine's API can express it. Every
``docker run`` option falls in one of two sets:

* :data:`SUPPORTED_DOCKER_PARAMETERS`: mapped onto the engine's API by
  ``executor.docker_params`` (a test keeps that table and this set in step);
* :data:`REFUSED_DOCKER_PARAMETERS`: options that cannot be honoured, each with the reason
  (an option of the docker client itself, one that would take ports, networks or restarts away
  from the scheduler, one Docker removed, one for Windows hosts only).

A key in neither set is not a ``docker run`` option at all. Both kinds of refusal happen when
the app is submitted (a 422 naming the parameter), never as a failing launch. Keys are
accepted with or without leading dashes and in the CLI's short and deprecated spellings
(:data:`DOCKER_PARAMETER_ALIASES`); the value's syntax is checked when the container is built.
"""

from __future__ import annotations

__all__ = [
    "DOCKER_PARAMETER_ALIASES",
    "REFUSED_DOCKER_PARAMETERS",
    "SUPPORTED_DOCKER_PARAMETERS",
    "canonical_docker_parameter",
    "docker_parameter_problem",
]

SUPPORTED_DOCKER_PARAMETERS: frozenset[str] = frozenset({
    "add-host", "blkio-weight", "blkio-weight-device", "cap-add", "cap-drop", "cgroup-parent", "cgroupns",
    "cpu-period", "cpu-quota", "cpu-rt-period", "cpu-rt-runtime", "cpu-shares", "cpus", "cpuset-cpus",
    "cpuset-mems", "detach", "device", "device-cgroup-rule", "device-read-bps", "device-read-iops",
    "device-write-bps", "device-write-iops", "dns", "dns-option", "dns-search", "domainname", "entrypoint", "env",
    "expose", "gpus", "group-add", "health-cmd", "health-interval", "health-retries", "health-start-period",
    "health-timeout", "hostname", "init", "interactive", "ip", "ip6", "ipc", "isolation", "kernel-memory", "label",
    "link", "link-local-ip", "log-driver", "log-opt", "mac-address", "memory", "memory-reservation",
    "memory-swap", "memory-swappiness", "mount", "name", "network-alias", "no-healthcheck", "oom-kill-disable",
    "oom-score-adj", "pid", "pids-limit", "platform", "privileged", "pull", "read-only", "rm", "runtime",
    "security-opt", "shm-size", "stop-signal", "stop-timeout", "storage-opt", "sysctl", "tmpfs", "tty", "ulimit",
    "user", "userns", "uts", "volume", "volume-driver", "volumes-from", "workdir",
})
"""The ``docker run`` options (long names) that Pacer maps onto the engine's API."""

_CLIENT_ONLY = "an option of the docker client itself, with no equivalent in the engine's API"
_WINDOWS_ONLY = "applies to Windows containers only; Pacer runs Linux containers"

REFUSED_DOCKER_PARAMETERS: dict[str, str] = {
    "annotation": "needs Docker Engine API 1.43, newer than the API Pacer's Docker client speaks",
    "attach": f"{_CLIENT_ONLY}: task output goes to the sandbox's stdout and stderr",
    "cidfile": f"{_CLIENT_ONLY}: the task's container id is in its task record",
    "cpu-count": _WINDOWS_ONLY,
    "cpu-percent": _WINDOWS_ONLY,
    "detach-keys": f"{_CLIENT_ONLY}: nothing attaches to a task's container",
    "disable-content-trust": f"{_CLIENT_ONLY}: image trust is the engine's configuration",
    "env-file": f"{_CLIENT_ONLY} (it reads a file where the client runs); use env instead",
    "health-start-interval": "needs Docker Engine API 1.44, newer than the API Pacer's Docker client speaks",
    "io-maxbandwidth": _WINDOWS_ONLY,
    "io-maxiops": _WINDOWS_ONLY,
    "label-file": f"{_CLIENT_ONLY} (it reads a file where the client runs); use label or the app's labels",
    "lxc-conf": "the LXC execution driver was removed from Docker (1.10); no engine accepts it",
    "network": "the app's networks choose the container's network; use networks instead",
    "publish": "host ports come from the agent's range through container.portMappings; use portMappings instead",
    "publish-all": "host ports come from the agent's range through container.portMappings; use portMappings instead",
    "quiet": f"{_CLIENT_ONLY}: there is no pull output to silence",
    "restart": "Pacer restarts tasks itself (with backoff and health checks); a Docker restart policy would "
               "hide exits from it",
    "sig-proxy": f"{_CLIENT_ONLY}: Pacer signals the container through the engine",
    "use-api-socket": f"{_CLIENT_ONLY}; mount the engine's socket with volume if the task needs it",
}
"""``docker run`` options that cannot be honoured, with the reason a 422 gives."""

DOCKER_PARAMETER_ALIASES: dict[str, str] = {
    "a": "attach", "c": "cpu-shares", "d": "detach", "e": "env", "h": "hostname", "i": "interactive",
    "l": "label", "m": "memory", "P": "publish-all", "p": "publish", "q": "quiet", "t": "tty", "u": "user",
    "v": "volume", "w": "workdir",
    "dns-opt": "dns-option", "net": "network", "net-alias": "network-alias",
}
"""The docker CLI's one-letter spellings (``-v`` is ``--volume``) and deprecated long names."""


def _name(key: str) -> str:
    name = key.lstrip("-")
    return DOCKER_PARAMETER_ALIASES.get(name, name)


def canonical_docker_parameter(key: str) -> str | None:
    """``volume`` for ``volume``, ``--volume``, ``v`` or ``-v``; None for a key Pacer cannot map."""
    name = _name(key)
    return name if name in SUPPORTED_DOCKER_PARAMETERS else None


def docker_parameter_problem(key: str) -> str | None:
    """Why ``key`` cannot be used (the message a 422 carries); None when it can."""
    name = _name(key)
    if name in SUPPORTED_DOCKER_PARAMETERS:
        return None
    if name in REFUSED_DOCKER_PARAMETERS:
        return f"docker parameter '{key}' is not supported: {REFUSED_DOCKER_PARAMETERS[name]}"
    supported = ", ".join(sorted(SUPPORTED_DOCKER_PARAMETERS))
    aliases = ", ".join(f"{short} ({long})" for short, long in sorted(DOCKER_PARAMETER_ALIASES.items()))
    return (f"docker parameter '{key}' is not supported; it is not a docker run option. Supported keys: "
            f"{supported}; other spellings: {aliases}")
