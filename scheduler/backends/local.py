"""The embedded backend: N agents inside `pacer serve`, tasks run as real local processes.

The agents behave like Mesos agents on one host: each has its own resources, a disjoint host
port range and attributes, and offers what is free. Tasks live in their own process groups, so
they survive a crash of the scheduler and are re-adopted (pid + start time) when it comes back.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app_definitions import AppDefinition
from executor import (
    LaunchFailed,
    ProcessHandle,
    ProcessRuntime,
    TaskExit,
    TaskLaunch,
    marathon_task_env,
    task_command,
)

from ..model import Instance
from ..placement import AgentOffer
from ..constraints import AgentView
from . import Recovery, StatusCallback, StatusUpdate

log = logging.getLogger(__name__)

PORT_RANGE_START = 31000
PORT_RANGE_SIZE = 1000
HOME_ENV = "PACER_HOME"


@dataclass(frozen=True)
class AgentSpec:
    agent_id: str
    hostname: str
    cpus: float
    mem: float
    disk: float
    port_range: tuple[int, int]
    attributes: Mapping[str, str] = field(default_factory=dict)
    networks: frozenset[str] = frozenset()

    def view(self) -> AgentView:
        return AgentView(agent_id=self.agent_id, hostname=self.hostname, attributes=dict(self.attributes))


def detected_resources(home: Path) -> dict[str, float]:
    """What this machine has: all cores, total memory and the free disk of the home volume (MB)."""
    mem_mb = 1024.0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_mb = int(line.split()[1]) / 1024
                    break
    except OSError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    disk_mb = shutil.disk_usage(home).free / (1024 * 1024)
    return {"cpus": float(os.cpu_count() or 1), "mem": round(mem_mb), "disk": round(disk_mb)}


def build_agents(count: int, resources: Mapping[str, float], attributes: Mapping[str, str],
                 networks: Sequence[str] = (), hostname: str = "localhost",
                 port_start: int = PORT_RANGE_START) -> list[AgentSpec]:
    """N agents with equal resources and disjoint port ranges (they share one network namespace)."""
    agents = []
    for k in range(count):
        lo = port_start + k * PORT_RANGE_SIZE
        agents.append(AgentSpec(
            agent_id=f"agent-{k + 1}",
            hostname=hostname if count == 1 else f"agent-{k + 1}",
            cpus=resources["cpus"], mem=resources["mem"], disk=resources["disk"],
            port_range=(lo, lo + PORT_RANGE_SIZE - 1 if count > 1 else lo + PORT_RANGE_SIZE),
            attributes=dict(attributes), networks=frozenset(networks)))
    return agents


def _free_ranges(lo: int, hi: int, used: set[int]) -> tuple[tuple[int, int], ...]:
    ranges: list[tuple[int, int]] = []
    start = lo
    for port in sorted(p for p in used if lo <= p <= hi):
        if port > start:
            ranges.append((start, port - 1))
        start = port + 1
    if start <= hi:
        ranges.append((start, hi))
    return tuple(ranges)


def compute_offers(agents: Sequence[AgentSpec], active: Sequence[Instance]) -> list[AgentOffer]:
    """Free resources per agent: its totals minus what the active instances on it hold."""
    used: dict[str, dict[str, float]] = {a.agent_id: {"cpus": 0.0, "mem": 0.0, "disk": 0.0} for a in agents}
    ports: dict[str, set[int]] = {a.agent_id: set() for a in agents}
    for inst in active:
        if inst.agent_id not in used:
            continue
        for key in ("cpus", "mem", "disk"):
            used[inst.agent_id][key] += inst.resources.get(key, 0.0)
        ports[inst.agent_id].update(inst.ports)
    return [AgentOffer(
        agent=a.view(),
        cpus=max(0.0, a.cpus - used[a.agent_id]["cpus"]),
        mem=max(0.0, a.mem - used[a.agent_id]["mem"]),
        disk=max(0.0, a.disk - used[a.agent_id]["disk"]),
        free_ports=_free_ranges(a.port_range[0], a.port_range[1], ports[a.agent_id]),
        networks=a.networks) for a in agents]


def _read_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def find_task_processes(home: Path) -> dict[int, str]:
    """pid -> task id of every process that a Pacer with this home started (its env says so)."""
    found = {}
    marker = str(home)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        env = _read_environ(int(entry))
        if env.get(HOME_ENV) == marker and "MESOS_TASK_ID" in env:
            found[int(entry)] = env["MESOS_TASK_ID"]
    return found


class LocalBackend:
    """Agents in this process; the executor's process runtime does the running."""

    def __init__(self, agents: Sequence[AgentSpec], home: Path, on_status: StatusCallback) -> None:
        self.agents = list(agents)
        self._by_id = {a.agent_id: a for a in self.agents}
        self.home = home.resolve()
        self.sandboxes = self.home / "sandboxes"
        self._on_status = on_status
        self.runtime = ProcessRuntime(on_exit=self._task_exited)

    def _task_exited(self, exit_: TaskExit) -> None:
        self._on_status(StatusUpdate(exit_.task_id, exit_.state, exit_.message, exit_.exit_code))

    def offers(self, active: Sequence[Instance]) -> list[AgentOffer]:
        return compute_offers(self.agents, active)

    def unsupported_reason(self, app: AppDefinition) -> str | None:
        if app.container is not None and app.container.type == "DOCKER":
            return "container type DOCKER: no Docker runtime is available on the embedded agents"
        return None

    async def launch(self, instance: Instance, app: AppDefinition) -> Instance:
        specs = app.port_specs()
        env = marathon_task_env(
            app_id=app.id, app_version=instance.version, task_id=instance.instance_id, host=instance.host,
            ports=instance.ports, port_names=[s.name for s in specs if s.host_port is not None],
            cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus, labels=app.labels,
            user_env={k: v for k, v in app.env.items() if isinstance(v, str)},
            docker_image=app.container.docker.image if app.container and app.container.docker else None)
        env[HOME_ENV] = str(self.home)
        launch = TaskLaunch(task_id=instance.instance_id, argv=task_command(app.cmd, app.args), env=env,
                            sandbox=self.sandboxes / instance.instance_id,
                            kill_grace_seconds=app.task_kill_grace_seconds)
        handle = await self.runtime.launch(launch)
        return instance.with_(pid=handle.pid, pid_start_time=handle.start_time)

    async def kill(self, instance: Instance, grace_seconds: float) -> None:
        if self.runtime.is_running(instance.instance_id):
            await self.runtime.kill(instance.instance_id, grace_seconds)
        else:
            self._on_status(StatusUpdate(instance.instance_id, "TASK_KILLED", "task was not running"))

    async def recover(self, instances: Sequence[Instance]) -> Recovery:
        alive, lost = [], []
        for inst in instances:
            if inst.pid is not None and inst.pid_start_time is not None and self.runtime.adopt(
                    ProcessHandle(task_id=inst.instance_id, pid=inst.pid, start_time=inst.pid_start_time)):
                alive.append(inst)
            else:
                lost.append(inst)
        adopted = {inst.pid for inst in alive}
        stray_groups: dict[int, str] = {}
        for pid, task_id in find_task_processes(self.home).items():
            try:
                pgid = os.getpgid(pid)
            except ProcessLookupError:
                continue
            if pgid not in adopted:
                stray_groups[pgid] = task_id
        for pgid, task_id in stray_groups.items():
            try:
                os.killpg(pgid, signal.SIGKILL)
                log.warning("killed stray task process group %s (%s) left by an earlier run", pgid, task_id)
            except ProcessLookupError:
                pass
        orphans = len(stray_groups)
        return Recovery(alive=tuple(alive), lost=tuple(lost), orphans_killed=orphans)

    def describe(self) -> list[dict[str, object]]:
        return [{"id": a.agent_id, "hostname": a.hostname, "resources": {"cpus": a.cpus, "mem": a.mem, "disk": a.disk},
                 "ports": f"[{a.port_range[0]}-{a.port_range[1]}]", "attributes": dict(a.attributes)}
                for a in self.agents]

    async def close(self) -> None:
        await self.runtime.close(kill=False)


__all__ = ["AgentSpec", "LocalBackend", "build_agents", "compute_offers", "detected_resources", "LaunchFailed"]
