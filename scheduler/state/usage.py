"""What the instances holding resources take from each agent, kept per agent as they change.

A scheduling pass that places anything needs every agent's free resources. Summing them from
every instance each time made each pass O(instances): at 5,000 tasks that sum was most of a
pass, and a pass follows every write. The ledger keeps each agent's holders apart and sums an
agent again only when one of its instances changed what it holds, so a write that launches
one task costs one agent's sum, not the cluster's. Sums are recomputed from the holders, never
adjusted by adding and subtracting, so floating-point drift cannot build up over a long run;
only a holder added to an agent already summed is added to its sum, which is exact (the same
additions, in the same order, as a sum from scratch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.state.model import Instance

__all__ = ["NO_USAGE", "AgentUsage", "UsageLedger", "usage_of"]


@dataclass(frozen=True, slots=True)
class AgentUsage:
    """The resources one agent's holders take: the scalar sums and the host ports in use."""

    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    ports: frozenset[int] = frozenset()


NO_USAGE = AgentUsage()


def _sum(instances: Iterable[Instance]) -> AgentUsage:
    cpus = mem = disk = 0.0
    ports: set[int] = set()
    for inst in instances:
        res = inst.resources
        cpus += res.get("cpus", 0.0)
        mem += res.get("mem", 0.0)
        disk += res.get("disk", 0.0)
        ports.update(inst.ports)
    return AgentUsage(cpus, mem, disk, frozenset(ports))


def _plus(total: AgentUsage, inst: Instance) -> AgentUsage:
    """`total` with one more holder, added last: the same additions in the same order as
    `_sum` over the holders with `inst` appended, so the result is bit-for-bit what a sum
    from scratch gives (a launch costs one addition, not a pass over the agent's holders)."""
    res = inst.resources
    ports = total.ports | frozenset(inst.ports) if inst.ports else total.ports
    return AgentUsage(total.cpus + res.get("cpus", 0.0), total.mem + res.get("mem", 0.0),
                      total.disk + res.get("disk", 0.0), ports)


def usage_of(instances: Iterable[Instance]) -> dict[str, AgentUsage]:
    """Per agent, what the given instances that hold resources take (the ledger's answer, from scratch)."""
    by_agent: dict[str, list[Instance]] = {}
    for inst in instances:
        if inst.holds_resources:
            by_agent.setdefault(inst.agent_id, []).append(inst)
    return {agent: _sum(insts) for agent, insts in by_agent.items()}


def _same_hold(old: Instance, new: Instance) -> bool:
    """Whether `new` takes exactly what `old` took (most updates only change a task's state)."""
    return (old.agent_id == new.agent_id and old.ports == new.ports
            and (old.resources is new.resources or old.resources == new.resources))


class UsageLedger:
    """Per-agent usage of the instances holding resources, each agent summed again only when
    one of its holders came, went or changed what it holds."""

    def __init__(self) -> None:
        self._holders: dict[str, dict[str, Instance]] = {}
        self._sums: dict[str, AgentUsage] = {}

    def update(self, old: Instance | None, new: Instance | None) -> None:
        """Record that the instance `old` is now `new` (None: absent before / removed)."""
        old_holds = old is not None and old.holds_resources
        new_holds = new is not None and new.holds_resources
        if old_holds and new_holds:
            assert old is not None and new is not None
            if _same_hold(old, new):
                self._holders[new.agent_id][new.instance_id] = new
                return
        if old_holds:
            assert old is not None
            self._drop(old)
        if new_holds:
            assert new is not None
            holders = self._holders.setdefault(new.agent_id, {})
            added = new.instance_id not in holders
            holders[new.instance_id] = new
            total = self._sums.get(new.agent_id)
            if added and total is not None:
                self._sums[new.agent_id] = _plus(total, new)
            else:
                self._sums.pop(new.agent_id, None)

    def _drop(self, old: Instance) -> None:
        holders = self._holders.get(old.agent_id)
        if holders is not None:
            holders.pop(old.instance_id, None)
            if not holders:
                del self._holders[old.agent_id]
        self._sums.pop(old.agent_id, None)

    def usage(self) -> Mapping[str, AgentUsage]:
        """Agent id -> its usage, for every agent with at least one holder."""
        for agent, holders in self._holders.items():
            if agent not in self._sums:
                self._sums[agent] = _sum(holders.values())
        return {agent: self._sums[agent] for agent in self._holders}
