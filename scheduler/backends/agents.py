"""The embedded agents: what each one has, and what it has free given the running instances.

Agents on one host share a network namespace, so their host-port ranges are disjoint, and one
cgroup parent per home (`pacer/<home hash>`) holds their process tasks' cgroups. They share the
disk under the home too: `AgentDisk` holds launches back below its free-space watermark and
removes the sandboxes of ended tasks (see `executor.sandboxes` for the rules).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from executor import CgroupOptions, Cgroups, ProcessRuntime, Unavailable, open_cgroups
from executor import sandboxes
from executor.cgroups import DEFAULT_ROOT as DEFAULT_CGROUP_ROOT
from executor.sandboxes import DiskPolicy, DiskWatch
from periodic import run_periodically

from scheduler.decide.constraints import AgentView
from scheduler.state.usage import NO_USAGE, AgentUsage
from scheduler.decide.placement import AgentOffer, subtract_ports, without_ports

log = logging.getLogger(__name__)

PORT_RANGE_START = 31000
PORT_RANGE_SIZE = 1000
HOME_ENV = "PACER_HOME"  # in every task's environment: which home's scheduler started it


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


def agent_offer(a: AgentSpec, used: AgentUsage) -> AgentOffer:
    """What one agent has free: its totals minus what its holders take."""
    return AgentOffer(
        agent=a.view(),
        cpus=max(0.0, a.cpus - used.cpus),
        mem=max(0.0, a.mem - used.mem),
        disk=max(0.0, a.disk - used.disk),
        free_ports=subtract_ports((a.port_range,), used.ports),
        networks=a.networks)


def compute_offers(agents: Sequence[AgentSpec], usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
    """Free resources per agent: its totals minus what its holders take (`usage`, per agent)."""
    return [agent_offer(a, usage.get(a.agent_id, NO_USAGE)) for a in agents]


def _after_launches(a: AgentSpec, used: AgentUsage, before: AgentUsage, offer: AgentOffer) -> AgentOffer:
    """`agent_offer(a, used)`, from the offer made when the agent's usage was `before`, whose
    ports `used` all still holds."""
    free, _ = without_ports(offer.merged_ports, sorted(used.ports - before.ports))
    return AgentOffer(agent=offer.agent, cpus=max(0.0, a.cpus - used.cpus), mem=max(0.0, a.mem - used.mem),
                      disk=max(0.0, a.disk - used.disk), free_ports=free, networks=a.networks)


class OfferCache:
    """`compute_offers` that builds an agent's offer again only when its usage changed.

    A pass follows every write and every status update; building an offer sorts the agent's
    taken ports and merges its free ranges, about a millisecond for an agent holding a
    thousand tasks, and a write changes one agent. The usage ledger hands back the same
    `AgentUsage` object while an agent's holders keep what they hold, and offers are frozen,
    so an unchanged agent's offer is the one of the last pass; and when the agent only gained
    holders since (launches: no port freed), its free ports are the last offer's minus the new
    ones, each found by bisection, not the whole range minus every port again. The idle offer (no usage, which
    each pass also asks for, for the agents' attributes) is kept apart, so the two never evict
    each other."""

    def __init__(self) -> None:
        self._offers: dict[str, tuple[AgentSpec, AgentUsage, AgentOffer]] = {}
        self._idle: dict[str, tuple[AgentSpec, AgentUsage, AgentOffer]] = {}

    def offers(self, agents: Sequence[AgentSpec], usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
        out = []
        for a in agents:
            used = usage.get(a.agent_id, NO_USAGE)
            kept = self._idle if used is NO_USAGE else self._offers
            cached = kept.get(a.agent_id)
            if cached is not None and cached[0] is a and cached[1] is used:
                out.append(cached[2])
                continue
            if cached is not None and cached[0] is a and cached[1].ports <= used.ports:
                offer = _after_launches(a, used, cached[1], cached[2])
            else:
                offer = agent_offer(a, used)
            kept[a.agent_id] = (a, used, offer)
            out.append(offer)
        return out


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


class AgentDisk:
    """The disk under the home, as the agents use it: the launch watermark and sandbox collection.

    `launch_blocked` is asked for every app that waits for a launch (through the backend's
    `unsupported_reason`), so it reads the free space at most twice a second; the moment it
    finds the disk under the watermark it also wakes the collector, which then removes what it
    may at once. `run` is the collector's loop; start it only once the tasks of an earlier run
    have been adopted, so that none of theirs looks ended.
    """

    def __init__(self, home: Path, root: Path, policy: DiskPolicy,
                 usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage) -> None:
        self.home = home
        self.root = root
        self.policy = policy
        self.watch = DiskWatch(home, usage)
        self._pressure = asyncio.Event()
        self._blocked = False

    def launch_blocked(self) -> str | None:
        """Why launches wait (the free space is under the watermark), or None."""
        space = self.watch.space()
        reason = None if space is None else sandboxes.watermark_reason(self.home, space, self.policy.min_free_mb)
        if reason is not None and not self._blocked:
            log.warning("%s", reason)
            self._pressure.set()
        elif reason is None and self._blocked:
            log.info("free disk under %s is above the watermark again; launches resume", self.home)
        self._blocked = reason is not None
        return reason

    def task_ended(self, task_id: str, state: str) -> None:
        """Stamp the sandbox with the end, which its age counts from."""
        sandboxes.mark_ended(self.root / task_id, state)

    async def run(self, live: Callable[[], set[str]]) -> None:
        """Collect every `watch_interval` seconds, and at once when the disk runs short."""
        await run_periodically("sandbox collection", lambda: self.collect(live), self.policy.watch_interval,
                               log=log, wake=self._pressure, first_delay=True)

    async def collect(self, live: Callable[[], set[str]]) -> list[str]:
        """One round: the ended sandboxes that are old enough (for how full the disk is) go."""
        space = self.watch.space(fresh=True)
        delay = self.policy.gc_delay if space is None else sandboxes.gc_delay(self.policy, space)
        found = await asyncio.to_thread(sandboxes.scan, self.root, live())
        chosen = sandboxes.choose_removals(found, time.time(), delay, self.policy.keep_per_app)  # vs. mtimes
        running = live()  # launched meanwhile: a launch never reuses an ended task's id, but be sure
        removed = await asyncio.to_thread(sandboxes.remove, self.root, [t for t in chosen if t not in running])
        if removed:
            log.info("removed %d sandboxes of ended tasks under %s (older than %.0f s)", len(removed), self.root,
                     delay)
            self.watch.space(fresh=True)
        return removed
