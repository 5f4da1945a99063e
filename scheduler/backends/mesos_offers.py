"""Mesos offers as the pure placement sees them, and the resources a launch takes from them.

An offer is one agent's free resources allocated to the framework's role. Placement wants one
`AgentOffer` per agent, so the offers of one agent are merged; it also wants to see the agents
of running instances that have nothing free right now (those instances still count toward
UNIQUE, MAX_PER and GROUP_BY), so those are listed with zero resources.

Attributes become strings as Marathon's `Constraints.getValueString` writes them: TEXT as is,
SCALAR as `0.###`, RANGES as `[b-e,b-e]` sorted by begin, SET as `{a,b}` sorted. A fault
domain becomes `@region` / `@zone`.

A launch takes its resources entry by entry from the offered `Resource`s, keeping each entry's
role, `allocation_info` and reservation, because the master checks that a task's resources
are exactly a part of the offers it accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.backends.mesos_errors import LaunchAborted
from scheduler.decide.constraints import AgentView, format_scalar
from scheduler.decide.placement import AgentOffer

Json = dict[str, Any]
EPSILON = 1e-9
SCALARS = ("cpus", "mem", "disk", "gpus")


def attribute_text(attribute: Mapping[str, Any]) -> str | None:
    """An agent attribute's value as a constraint compares it (Marathon's getValueString)."""
    kind = attribute.get("type")
    if kind == "TEXT":
        return str(attribute.get("text", {}).get("value", ""))
    if kind == "SCALAR":
        return format_scalar(float(attribute.get("scalar", {}).get("value", 0.0)))
    if kind == "RANGES":
        ranges = sorted((int(r["begin"]), int(r["end"])) for r in attribute.get("ranges", {}).get("range", []))
        return "[" + ",".join(f"{b}-{e}" for b, e in ranges) + "]"
    if kind == "SET":
        return "{" + ",".join(sorted(attribute.get("set", {}).get("item", []))) + "}"
    return None


def agent_view(offer: Mapping[str, Any]) -> AgentView:
    attributes = {}
    for attribute in offer.get("attributes", []):
        value = attribute_text(attribute)
        if value is not None:
            attributes[attribute["name"]] = value
    domain = offer.get("domain", {}).get("fault_domain")
    if domain:
        attributes.setdefault("@region", domain["region"]["name"])
        attributes.setdefault("@zone", domain["zone"]["name"])
    return AgentView(agent_id=offer["agent_id"]["value"], hostname=offer["hostname"], attributes=attributes)


@dataclass(frozen=True)
class HeldOffer:
    offer_id: str
    agent: AgentView
    role: str
    resources: tuple[Json, ...]

    @classmethod
    def of(cls, offer: Mapping[str, Any]) -> "HeldOffer":
        role = offer.get("allocation_info", {}).get("role", "*")
        resources = []
        for res in offer.get("resources", []):
            entry = copy.deepcopy(dict(res))
            entry.setdefault("allocation_info", {"role": role})   # masters before MULTI_ROLE leave it out
            resources.append(entry)
        return cls(offer["id"]["value"], agent_view(offer), role, tuple(resources))


def _ranges(entry: Mapping[str, Any]) -> list[tuple[int, int]]:
    return [(int(r["begin"]), int(r["end"])) for r in entry.get("ranges", {}).get("range", [])]


class ResourcePool:
    """Resources of the offers one ACCEPT uses, handed out to the tasks it launches."""

    def __init__(self, offers: Iterable[HeldOffer]) -> None:
        self._entries: list[Json] = [copy.deepcopy(e) for o in offers for e in o.resources]

    def scalar(self, name: str) -> float:
        return sum(float(e["scalar"]["value"]) for e in self._entries
                   if e["name"] == name and e.get("type") == "SCALAR")

    def ports(self) -> list[tuple[int, int]]:
        return [r for e in self._entries if e["name"] == "ports" and e.get("type") == "RANGES" for r in _ranges(e)]

    def fits(self, needs: Mapping[str, float], ports: Sequence[int]) -> bool:
        if any(self.scalar(name) + EPSILON < amount for name, amount in needs.items() if amount > 0):
            return False
        free = self.ports()
        return all(any(b <= p <= e for b, e in free) for p in ports)

    def take(self, needs: Mapping[str, float], ports: Sequence[int]) -> list[Json]:
        """The `Resource` entries for one task (scalars by name, then each port), or LaunchAborted."""
        if not self.fits(needs, ports):
            wanted = ", ".join(f"{n}={v:g}" for n, v in needs.items() if v > 0)
            raise LaunchAborted(f"the offers no longer hold {wanted} and ports {list(ports)}")
        taken: list[Json] = []
        for name in SCALARS:
            amount = needs.get(name, 0.0)
            if amount > 0:
                taken.extend(self._take_scalar(name, amount))
        for port in ports:
            taken.append(self._take_port(port))
        return _merge_ports(taken)

    def _take_scalar(self, name: str, amount: float) -> list[Json]:
        out = []
        for entry in self._entries:
            if amount <= EPSILON:
                break
            if entry["name"] != name or entry.get("type") != "SCALAR":
                continue
            have = float(entry["scalar"]["value"])
            use = min(have, amount)
            if use <= EPSILON:
                continue
            piece = copy.deepcopy(entry)
            piece["scalar"] = {"value": round(use, 6)}
            entry["scalar"] = {"value": round(have - use, 6)}
            out.append(piece)
            amount -= use
        self._entries = [e for e in self._entries if e.get("type") != "SCALAR" or e["scalar"]["value"] > EPSILON]
        return out

    def _take_port(self, port: int) -> Json:
        for entry in self._entries:
            if entry["name"] != "ports" or entry.get("type") != "RANGES":
                continue
            ranges = _ranges(entry)
            if not any(b <= port <= e for b, e in ranges):
                continue
            left = []
            for b, e in ranges:
                if b <= port <= e:
                    left.extend(r for r in ((b, port - 1), (port + 1, e)) if r[0] <= r[1])
                else:
                    left.append((b, e))
            entry["ranges"] = {"range": [{"begin": b, "end": e} for b, e in left]}
            piece = copy.deepcopy(entry)
            piece["ranges"] = {"range": [{"begin": port, "end": port}]}
            return piece
        raise LaunchAborted(f"port {port} is not in the offers")


def _merge_ports(entries: list[Json]) -> list[Json]:
    """One `ports` entry per distinct role/reservation, as Mesos prefers, instead of one per port."""
    merged: list[Json] = []
    for entry in entries:
        if entry["name"] == "ports":
            key = {k: v for k, v in entry.items() if k != "ranges"}
            same = next((m for m in merged if m["name"] == "ports"
                         and {k: v for k, v in m.items() if k != "ranges"} == key), None)
            if same is not None:
                same["ranges"]["range"].extend(entry["ranges"]["range"])
                continue
        merged.append(entry)
    return merged


@dataclass
class OfferBook:
    """The offers held now, by id, and every agent seen in an offer since the subscription."""

    held: dict[str, HeldOffer] = field(default_factory=dict)
    agents: dict[str, AgentView] = field(default_factory=dict)

    def add(self, offer: Mapping[str, Any]) -> HeldOffer:
        held = HeldOffer.of(offer)
        self.held[held.offer_id] = held
        self.agents[held.agent.agent_id] = held.agent
        return held

    def remove(self, offer_id: str) -> HeldOffer | None:
        return self.held.pop(offer_id, None)

    def of_agent(self, agent_id: str) -> list[HeldOffer]:
        return [o for o in self.held.values() if o.agent.agent_id == agent_id]

    def take_agent(self, agent_id: str) -> list[HeldOffer]:
        """Every offer of the agent, removed from the book (one ACCEPT will use them)."""
        taken = self.of_agent(agent_id)
        for offer in taken:
            del self.held[offer.offer_id]
        return taken

    def take_all(self) -> list[HeldOffer]:
        taken = list(self.held.values())
        self.held.clear()
        return taken

    def forget_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)

    def agent_offers(self, also: Iterable[str] = ()) -> list[AgentOffer]:
        """One `AgentOffer` per agent with held offers (what they add up to), and a zero one for
        each known agent of `also` (agents whose instances count toward the constraints).

        Nothing at all when no offer is held: "no agent offers resources" is then the truth,
        where zero offers would blame the agents for lacking cpus."""
        by_agent: dict[str, list[HeldOffer]] = {}
        for offer in self.held.values():
            by_agent.setdefault(offer.agent.agent_id, []).append(offer)
        if not by_agent:
            return []
        for agent_id in also:
            if agent_id in self.agents:
                by_agent.setdefault(agent_id, [])
        out = []
        for agent_id, offers in by_agent.items():
            pool = ResourcePool(offers)
            out.append(AgentOffer(agent=self.agents[agent_id], cpus=pool.scalar("cpus"), mem=pool.scalar("mem"),
                                  disk=pool.scalar("disk"), gpus=int(pool.scalar("gpus") + EPSILON),
                                  free_ports=tuple(sorted(pool.ports()))))
        return out
