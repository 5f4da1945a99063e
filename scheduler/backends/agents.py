"""The embedded agents: what each one has, and what it has free given the running instances.

Agents on one host share a network namespace, so their host-port ranges are disjoint, and one
cgroup parent per home (`pacer/<home hash>`) holds their process tasks' cgroups.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from executor import CgroupOptions, Cgroups, ProcessRuntime, Unavailable, open_cgroups
from executor.cgroups import DEFAULT_ROOT as DEFAULT_CGROUP_ROOT

from scheduler.decide.constraints import AgentView
from scheduler.state.model import Instance
from scheduler.decide.placement import AgentOffer, subtract_ports

PORT_RANGE_START = 31000
PORT_RANGE_SIZE = 1000


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
        free_ports=subtract_ports((a.port_range,), ports[a.agent_id]),
        networks=a.networks) for a in agents]


def task_cgroup_parent(home: Path) -> str:
    """`pacer/<hash of home>`: derived from the home alone, so a restarted `pacer serve` on the
    same home finds its tasks' cgroups, and two homes on one host never see each other's."""
    return f"pacer/{hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]}"


def open_task_cgroups(root: Path | None, home: Path, options: CgroupOptions) -> Cgroups | Unavailable:
    """This home's task cgroups under `root` (None: disabled), or why there are none."""
    if root is None:
        return Unavailable("cgroups are disabled")
    return open_cgroups(root, task_cgroup_parent(home), options)


def remove_task_cgroups(home: Path, root: Path = DEFAULT_CGROUP_ROOT) -> list[str]:
    """Kill whatever is left in this home's task cgroups and remove them; the task ids found.

    For when no `pacer serve` runs on the home any more (test teardown, decommissioning): a
    running one removes its own. Not from a thread with a running event loop.
    """
    found = open_task_cgroups(root, home, CgroupOptions())
    if isinstance(found, Unavailable):
        return []
    return list(asyncio.run(ProcessRuntime(lambda report: None, cgroups=found).remove_strays()))
