"""Pure parts of the Docker runtime: what a container is asked to be, and what its state means.

* :class:`ContainerLaunch` describes one task's container; :func:`container_options` turns it
  into the arguments of the SDK's ``create_container`` / ``create_host_config`` (plain dicts, so
  tests check the whole table without an engine).
* :func:`container_exit` maps the engine's ``State`` of an exited container onto the task state
  Pacer reports (the same rules as processes: FAILED and FINISHED raise the backoff).
* :func:`usage_from_stats` reads the engine's one-shot stats (cgroup v1 or v2) into a
  :class:`ContainerUsage`, a :class:`~executor.stats.ResourceUsage` with the memory figures
  cAdvisor reports.

Decisions, and why:

* ``cmd`` runs as ``/bin/sh -c CMD`` with the entrypoint replaced (Mesos' Docker executor with
  ``shell=true``); ``args`` become the command after the image's own entrypoint; neither runs
  the image's default command.
* ``cpus`` sets both CPU shares (``1024 × cpus``, the relative weight Mesos uses) and a CFS quota
  of ``cpus`` cores per 100 ms period (``--cpus``), so a container can neither starve its
  neighbours nor exceed what placement reserved for it. The quota is floored at the engine's
  minimum of 1 ms. ``mem`` (MiB) is the hard memory limit; 0 means unlimited.
* ``taskKillGracePeriodSeconds`` is also the container's ``StopTimeout``, so an operator's
  ``docker stop`` waits as long as Pacer's kill does.
* Pacer's own labels are written last, so an app label or a ``label`` parameter cannot make a
  container look like another task's; ``pacer.task-id`` and the scope label ``pacer.home`` are
  always set, whatever the caller passes.
* The task sandbox is mounted at ``/mnt/mesos/sandbox`` (``$MESOS_SANDBOX``), as Mesos does;
  relative ``hostPath`` volumes are relative to the sandbox, and so are relative
  ``containerPath``s inside the container, as in Mesos.
* The ``name`` parameter names the container ``<name>-<short task id>`` (the first 12 hex digits
  of the instance's UUID): two instances of one app, or a task and its replacement, never clash,
  and the name still says which task it is. Without it the name is ``pacer-<task id>``.
* Parameters that set the CPU limit their own way (``cpus``, i.e. the engine's NanoCpus) replace
  the quota derived from the app's ``cpus``: the engine refuses both at once.
* ``link`` on a user-defined network goes into the container's endpoint on it, as the docker CLI
  puts it: the engine ignores legacy links there.
* The container's output is capped as a process task's is (``log_max_bytes`` × ``log_files`` per
  container): the ``json-file`` driver with ``max-size``/``max-file``. An app's own ``log-opt``
  for a rotating driver (``json-file``, ``local``) may lower them, never raise them; another
  driver (syslog, journald…) does not write under the engine's data root and is left alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.docker_params import map_parameters, parse_bytes
from executor.errors import InvalidTaskSpec
from executor.states import TASK_FAILED, TASK_FINISHED, TASK_KILLED, TaskExit
from executor.stats import ResourceUsage

LABEL_APP_ID = "pacer.app-id"
LABEL_TASK_ID = "pacer.task-id"
LABEL_APP_VERSION = "pacer.app-version"
LABEL_AGENT_ID = "pacer.agent-id"
LABEL_PORTS = "pacer.ports"
LABEL_SCOPE = "pacer.home"
"""Which Pacer owns the container (its home directory): several may share one engine."""

SANDBOX_MOUNT = "/mnt/mesos/sandbox"
ROTATING_LOG_DRIVERS = frozenset({"json-file", "local"})
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
OOM_REASON = "OOM"
REASON_MEMORY_LIMIT = "REASON_CONTAINER_LIMITATION_MEMORY"


@dataclass(frozen=True)
class PortBinding:
    """Publish ``container_port/protocol`` on ``host_port`` (bridge and named networks)."""

    container_port: int
    host_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class VolumeMount:
    """A host path mounted into the container."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerLaunch:
    """Everything needed to run one task as a container; built by the scheduler's backend.

    ``network`` is ``host``, ``bridge``, ``none`` or the name of a user-defined network.
    ``labels`` are the app's labels plus Pacer's (``pacer.app-id``, ``pacer.task-id``...); the
    runtime adds its scope label. ``parameters`` are the app's ``docker.parameters`` pairs.
    """

    task_id: str
    image: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    shell_command: str | None = None
    args: tuple[str, ...] | None = None
    network: str = "host"
    port_bindings: tuple[PortBinding, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    cpus: float = 0.0
    mem_mb: float = 0.0
    privileged: bool = False
    force_pull: bool = False
    parameters: tuple[tuple[str, str], ...] = ()
    kill_grace_seconds: float = 3.0
    sandbox: Path | None = None
    log_max_bytes: int = 0  # the engine's log file size cap (0: the engine's defaults)
    log_files: int = 1      # log files kept, the current one included

    @property
    def name(self) -> str:
        """The container's name: ``pacer-<task id>`` (task ids are valid Docker names)."""
        return f"pacer-{self.task_id}"


@dataclass(frozen=True)
class ContainerHandle:
    """What the scheduler stores to find the task's container again after it restarts."""

    task_id: str
    container_id: str


@dataclass(frozen=True)
class ContainerInfo:
    """One container of this Pacer, as listed by the engine (for recovery)."""

    container_id: str
    task_id: str
    running: bool
    labels: Mapping[str, str]
    status: str = ""
    network: str = ""

    @property
    def app_id(self) -> str | None:
        return self.labels.get(LABEL_APP_ID)

    @property
    def app_version(self) -> str | None:
        return self.labels.get(LABEL_APP_VERSION)

    @property
    def ports(self) -> tuple[int, ...] | None:
        """Host ports written at launch; None when the label is missing or unreadable."""
        text = self.labels.get(LABEL_PORTS)
        if text is None:
            return None
        try:
            return tuple(int(p) for p in text.split(",") if p)
        except ValueError:
            return None


@dataclass(frozen=True)
class ContainerOptions:
    """Arguments for the SDK: ``create_host_config(**host_config)``, ``create_container(**create)``."""

    create: dict[str, Any]
    host_config: dict[str, Any]
    stop_signal: str = "SIGTERM"
    force_pull: bool = False


def task_labels(*, app_id: str, task_id: str, app_version: str, agent_id: str,
                ports: tuple[int, ...]) -> dict[str, str]:
    """Pacer's labels on a task's container: who it is, and what recovery reads back."""
    return {
        LABEL_APP_ID: app_id,
        LABEL_TASK_ID: task_id,
        LABEL_APP_VERSION: app_version,
        LABEL_AGENT_ID: agent_id,
        LABEL_PORTS: ",".join(str(p) for p in ports),
    }


_INSTANCE_UUID = re.compile(r"instance-([0-9a-fA-F-]{12,})")


def short_task_id(task_id: str) -> str:
    """12 hex digits naming the task: the start of its instance UUID (a digest for other id forms)."""
    match = _INSTANCE_UUID.search(task_id)
    digits = match.group(1).replace("-", "") if match else ""
    return digits[:12].lower() if len(digits) >= 12 else hashlib.sha1(task_id.encode()).hexdigest()[:12]


def _user_defined(network: str) -> bool:
    """Whether ``network`` names a user-defined network (links live in its endpoint then)."""
    return network not in ("host", "bridge", "none", "default") and not network.startswith("container:")


def _container_path(path: str) -> str:
    return path if path.startswith("/") else f"{SANDBOX_MOUNT}/{path}"


def _host_path(volume: VolumeMount, sandbox: Path | None) -> str:
    if volume.host_path.startswith("/"):
        return volume.host_path
    if sandbox is None:
        raise InvalidTaskSpec(f"relative hostPath '{volume.host_path}' needs a task sandbox")
    return str(sandbox / volume.host_path)


def container_options(spec: ContainerLaunch, scope: Mapping[str, str] | None = None) -> ContainerOptions:
    """The engine arguments for ``spec``; raises ``InvalidTaskSpec`` for bad parameter values."""
    params = map_parameters(spec.parameters)
    env = {**params.env, **spec.env}
    binds = []
    if spec.sandbox is not None:
        binds.append(f"{spec.sandbox}:{SANDBOX_MOUNT}:rw")
        env.setdefault("MESOS_SANDBOX", SANDBOX_MOUNT)
    for volume in spec.volumes:
        binds.append(f"{_host_path(volume, spec.sandbox)}:{_container_path(volume.container_path)}:"
                     f"{'ro' if volume.read_only else 'rw'}")
    binds.extend(params.binds)
    labels = {**params.labels, **spec.labels, LABEL_TASK_ID: spec.task_id, **(scope or {})}

    port_bindings: dict[str, list[int]] = {}
    exposed: list[str] = []
    for binding in spec.port_bindings:
        for protocol in binding.protocol.split(","):
            key = f"{binding.container_port}/{protocol.strip() or 'tcp'}"
            if key not in port_bindings:
                exposed.append(key)
            port_bindings.setdefault(key, []).append(binding.host_port)
    for port, protocol in params.exposed:
        if f"{port}/{protocol}" not in exposed:
            exposed.append(f"{port}/{protocol}")

    grace = max(0, int(round(spec.kill_grace_seconds)))
    host_config: dict[str, Any] = {
        "network_mode": spec.network,
        "binds": binds,
        "privileged": spec.privileged,
    }
    if port_bindings:
        host_config["port_bindings"] = port_bindings
    if spec.cpus > 0:
        host_config["cpu_shares"] = max(2, int(spec.cpus * 1024))
        host_config["cpu_period"] = CPU_PERIOD_US
        host_config["cpu_quota"] = max(MIN_CPU_QUOTA_US, int(spec.cpus * CPU_PERIOD_US))
    if spec.mem_mb > 0:
        host_config["mem_limit"] = int(spec.mem_mb * 1024 * 1024)
    if "nano_cpus" in params.host_config:
        host_config.pop("cpu_period", None)
        host_config.pop("cpu_quota", None)
    host_config.update(params.host_config)
    if spec.log_max_bytes > 0:
        host_config["log_config"] = capped_log_config(host_config.get("log_config"), spec.log_max_bytes,
                                                      spec.log_files)
    endpoint = dict(params.endpoint)
    if "links" in host_config and _user_defined(spec.network):  # where the docker CLI puts them too
        endpoint["Links"] = [f"{name}:{alias}" for name, alias in host_config.pop("links").items()]

    create: dict[str, Any] = {
        "image": spec.image,
        "name": f"{params.name}-{short_task_id(spec.task_id)}" if params.name else spec.name,
        "environment": env,
        "labels": labels,
        "detach": True,
        "stop_timeout": grace,
    }
    if spec.shell_command:
        create["entrypoint"] = ["/bin/sh", "-c"]
        create["command"] = [spec.shell_command]
    elif spec.args:
        create["command"] = list(spec.args)
    if exposed:
        create["ports"] = [tuple(key.split("/")) for key in exposed]
    if params.anonymous_volumes:
        create["volumes"] = list(params.anonymous_volumes)
    if endpoint:
        create["networking_config"] = {"EndpointsConfig": {spec.network: endpoint}}
    if params.healthcheck:
        create["healthcheck"] = dict(params.healthcheck)
    create.update(params.create)
    stop_signal = create.get("stop_signal", "SIGTERM")
    return ContainerOptions(create=create, host_config=host_config, stop_signal=stop_signal,
                            force_pull=spec.force_pull or params.force_pull)


def _docker_size(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def capped_log_config(current: Mapping[str, Any] | None, max_bytes: int, files: int) -> dict[str, Any]:
    """The engine's ``LogConfig`` with the agent's cap: ``json-file`` unless the app chose a driver;
    the app's ``max-size``/``max-file`` of a rotating driver kept when they are lower."""
    files = max(1, files)
    if current is None:
        return {"type": "json-file", "config": {"max-size": _docker_size(max_bytes), "max-file": str(files)}}
    driver = current.get("type") or "json-file"
    config = dict(current.get("config") or {})
    if driver not in ROTATING_LOG_DRIVERS:
        return {"type": driver, "config": config}
    theirs = parse_bytes("log-opt", config["max-size"]) if config.get("max-size") else -1
    their_files = str(config.get("max-file", "")).strip()
    config["max-size"] = _docker_size(min(max_bytes, theirs) if theirs > 0 else max_bytes)
    config["max-file"] = str(min(files, int(their_files)) if their_files.isdigit() and int(their_files) > 0
                             else files)
    return {"type": driver, "config": config}


@dataclass(frozen=True, slots=True)
class ContainerExit(TaskExit):
    """A :class:`TaskExit` with Mesos' reason when the engine gives one (``OOM``)."""

    reason: str | None = None


def container_exit(task_id: str, state: Mapping[str, Any] | None, *, killed: bool,
                   mem_mb: float | None = None) -> ContainerExit:
    """Map ``docker inspect``'s ``State`` of a stopped container onto the reported end.

    * We asked for the kill: TASK_KILLED, whatever the exit code.
    * The kernel's OOM killer hit the container (``OOMKilled``): TASK_FAILED, reason ``OOM``.
    * Exit 0: TASK_FINISHED; any other code, or an engine ``Error``: TASK_FAILED.
    * No state (the container vanished, removed behind our back): TASK_FAILED (KILLED if asked).
    """
    if state is None:
        message = "Container was removed outside Pacer (exit status unknown)"
        return ContainerExit(task_id, TASK_KILLED if killed else TASK_FAILED, None, None, message)
    code = state.get("ExitCode")
    exit_code = int(code) if isinstance(code, int) else None
    error = state.get("Error") or ""
    # Exit codes above 128 are "killed by signal code-128" for the container's init process.
    sig = exit_code - 128 if exit_code is not None and 128 < exit_code < 128 + 65 else None
    base = f"Container exited with status {exit_code}" if exit_code is not None else "Container exited"
    if error:
        base += f": {error}"
    if killed:
        return ContainerExit(task_id, TASK_KILLED, exit_code, sig, base)
    if state.get("OOMKilled"):
        limit = f" of {mem_mb:g} MiB" if mem_mb else ""
        message = f"{OOM_REASON}: container exceeded its memory limit{limit} ({REASON_MEMORY_LIMIT}); {base}"
        return ContainerExit(task_id, TASK_FAILED, exit_code, sig, message, OOM_REASON)
    if exit_code == 0 and not error:
        return ContainerExit(task_id, TASK_FINISHED, 0, None, base)
    return ContainerExit(task_id, TASK_FAILED, exit_code, sig, base)


@dataclass(frozen=True, slots=True)
class ContainerUsage(ResourceUsage):
    """A container's usage: the process figures plus the memory figures cAdvisor reports.

    ``cpu_user_ns``/``cpu_system_ns`` are cumulative (the cgroup's counters), ``rss_bytes`` is the
    anonymous memory, ``memory_usage_bytes`` the cgroup's usage (page cache included),
    ``memory_working_set_bytes`` usage minus inactive file pages (what the kubelet and
    cAdvisor call the working set), ``memory_limit_bytes`` the engine's limit (the host's memory
    when unlimited). Network counters are None in host networking, where they would be the
    host's.
    """

    cpu_total_ns: int = 0
    memory_usage_bytes: int = 0
    memory_working_set_bytes: int = 0
    memory_limit_bytes: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None

    @property
    def cpu_ns(self) -> int:
        """The cgroup's total CPU counter (``cpu_usage_total``): user + system, at ns precision."""
        return self.cpu_total_ns or (self.cpu_user_ns + self.cpu_system_ns)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def usage_from_stats(stats: Mapping[str, Any], *, host_network: bool) -> ContainerUsage | None:
    """Read the engine's stats JSON (``GET /containers/{id}/stats?stream=false``); None if empty.

    cgroup v1 reports ``total_inactive_file``/``total_rss``, cgroup v2 ``inactive_file``/``anon``;
    both are handled, as ``docker stats`` does.
    """
    cpu = stats.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    memory = stats.get("memory_stats") or {}
    if not usage and not memory:
        return None
    detail = memory.get("stats") or {}
    used = _int(memory.get("usage"))
    inactive = _int(detail.get("total_inactive_file", detail.get("inactive_file", 0)))
    rss = _int(detail.get("total_rss", detail.get("rss", detail.get("anon", 0))))
    rx = tx = None
    networks = stats.get("networks")
    if not host_network and isinstance(networks, Mapping):
        rx = sum(_int(n.get("rx_bytes")) for n in networks.values() if isinstance(n, Mapping))
        tx = sum(_int(n.get("tx_bytes")) for n in networks.values() if isinstance(n, Mapping))
    limit = memory.get("limit")
    return ContainerUsage(
        cpu_user_ns=_int(usage.get("usage_in_usermode")),
        cpu_system_ns=_int(usage.get("usage_in_kernelmode")),
        rss_bytes=rss,
        processes=_int((stats.get("pids_stats") or {}).get("current")),
        cpu_total_ns=_int(usage.get("total_usage")),
        memory_usage_bytes=used,
        memory_working_set_bytes=used - inactive if inactive < used else 0,  # cAdvisor's rule
        memory_limit_bytes=_int(limit) if limit else None,
        rx_bytes=rx,
        tx_bytes=tx,
    )


def container_info(summary: Mapping[str, Any]) -> ContainerInfo | None:
    """A ``GET /containers/json`` entry -> :class:`ContainerInfo`; None without Pacer's task label."""
    labels = dict(summary.get("Labels") or {})
    task_id = labels.get(LABEL_TASK_ID)
    if not task_id:
        return None
    return ContainerInfo(container_id=summary["Id"], task_id=task_id,
                         running=summary.get("State") == "running", labels=labels,
                         status=summary.get("Status", ""),
                         network=str((summary.get("HostConfig") or {}).get("NetworkMode", "")))


__all__ = [
    "LABEL_AGENT_ID", "LABEL_APP_ID", "LABEL_APP_VERSION", "LABEL_PORTS", "LABEL_SCOPE", "LABEL_TASK_ID",
    "SANDBOX_MOUNT", "ContainerExit", "ContainerHandle", "ContainerInfo", "ContainerLaunch",
    "ContainerOptions", "ContainerUsage", "PortBinding", "VolumeMount", "capped_log_config", "container_exit",
    "container_info", "container_options", "short_task_id", "task_labels", "usage_from_stats",
]
