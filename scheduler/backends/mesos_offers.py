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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
            entry = dict(res)
            entry.setdefault("allocation_info", {"role": role})   # masters before MULTI_ROLE leave it out
            resources.append(entry)
        return cls(offer["id"]["value"], agent_view(offer), role, tuple(resources))


def _ranges(entry: Mapping[str, Any]) -> list[tuple[int, int]]:
    return [(int(r["begin"]), int(r["end"])) for r in entry.get("ranges", {}).get("range", [])]


def _piece(entry: Json, **value: Json) -> Json:
    """A copy of a `Resource` entry with its value replaced. Shallow: the role, allocation and
    reservation parts are never changed once received, so they are shared, not copied."""
    piece = dict(entry)
    piece.update(value)
    return piece


class ResourcePool:
    """Resources of the offers one ACCEPT uses, handed out to the tasks it launches."""

    def __init__(self, offers: Iterable[HeldOffer]) -> None:
        self._entries: list[Json] = [dict(e) for o in offers for e in o.resources]

    def scalar(self, name: str) -> float:
        return sum(float(e["scalar"]["value"]) for e in self._entries
                   if e["name"] == name and e.get("type") == "SCALAR")

    def ports(self) -> list[tuple[int, int]]:
        return [r for e in self._entries if e["name"] == "ports" and e.get("type") == "RANGES" for r in _ranges(e)]

    def fits(self, needs: Mapping[str, float], ports: Sequence[int]) -> bool:
        if any(self.scalar(name) + EPSILON < amount for name, amount in needs.items() if amount > 0):
            return False
        if not ports:
            return True
        free = self.ports()
        return all(any(b <= p <= e for b, e in free) for p in ports)

    def take(self, needs: Mapping[str, float], ports: Sequence[int]) -> list[Json]:
        """The `Resource` entries for one task (scalars by name, then each port), or LaunchAborted."""
        return self.claim(needs, ports).resources()

    def claim(self, needs: Mapping[str, float], ports: Sequence[int]) -> "Claim":
        """Take one task's share now, and write its `Resource` entries only when its TaskInfo is
        (`Claim.resources`): a pass of a hundred thousand launches waits for its ACCEPTs holding
        claims, a few tuples each, not the entries."""
        if not self.fits(needs, ports):
            wanted = ", ".join(f"{n}={v:g}" for n, v in needs.items() if v > 0)
            raise LaunchAborted(f"the offers no longer hold {wanted} and ports {list(ports)}")
        parts: list[tuple[Json, float | int]] = []
        for name in SCALARS:
            amount = needs.get(name, 0.0)
            if amount > 0:
                parts.extend(self._take_scalar(name, amount))
        for port in ports:
            parts.append(self._take_port(port))
        return Claim(tuple(parts))

    def _take_scalar(self, name: str, amount: float) -> list[tuple[Json, float]]:
        out = []
        emptied = False
        for i, entry in enumerate(self._entries):
            if amount <= EPSILON:
                break
            if entry["name"] != name or entry.get("type") != "SCALAR":
                continue
            have = float(entry["scalar"]["value"])
            use = min(have, amount)
            if use <= EPSILON:
                continue
            out.append((entry, round(use, 6)))
            left = round(have - use, 6)
            self._entries[i] = _piece(entry, scalar={"value": left})
            emptied = emptied or left <= EPSILON
            amount -= use
        if emptied:
            self._entries = [e for e in self._entries if e.get("type") != "SCALAR" or e["scalar"]["value"] > EPSILON]
        return out

    def _take_port(self, port: int) -> tuple[Json, int]:
        for i, entry in enumerate(self._entries):
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
            self._entries[i] = _piece(entry, ranges={"range": [{"begin": b, "end": e} for b, e in left]})
            return entry, port
        raise LaunchAborted(f"port {port} is not in the offers")


@dataclass(frozen=True)
class Claim:
    """One task's share of an ACCEPT's offers: (offered entry, amount) per scalar taken from it,
    (offered entry, port) per port. The entries are those received (never changed), so each
    piece keeps its role, allocation and reservation."""

    parts: tuple[tuple[Json, float | int], ...]

    def resources(self) -> list[Json]:
        pieces = [_piece(entry, scalar={"value": value}) if entry.get("type") == "SCALAR"
                  else _piece(entry, ranges={"range": [{"begin": value, "end": value}]})
                  for entry, value in self.parts]
        return _merge_ports(pieces)


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


class OfferBook:
    """The offers held now, by id and by agent, and every agent seen in an offer since the
    subscription. A cluster of ten thousand agents holds ten thousand offers, and every pass
    asks for them all: each agent's `AgentOffer` is computed once per change of its offers."""

    def __init__(self) -> None:
        self.held: dict[str, HeldOffer] = {}
        self.agents: dict[str, AgentView] = {}
        self._by_agent: dict[str, dict[str, HeldOffer]] = {}
        self._summaries: dict[str, AgentOffer] = {}

    def add(self, offer: Mapping[str, Any]) -> HeldOffer:
        held = HeldOffer.of(offer)
        agent_id = held.agent.agent_id
        self.held[held.offer_id] = held
        self.agents[agent_id] = held.agent
        self._by_agent.setdefault(agent_id, {})[held.offer_id] = held
        self._summaries.pop(agent_id, None)
        return held

    def remove(self, offer_id: str) -> HeldOffer | None:
        held = self.held.pop(offer_id, None)
        if held is not None:
            agent_id = held.agent.agent_id
            mine = self._by_agent.get(agent_id, {})
            mine.pop(offer_id, None)
            if not mine:
                self._by_agent.pop(agent_id, None)
            self._summaries.pop(agent_id, None)
        return held

    def of_agent(self, agent_id: str) -> list[HeldOffer]:
        return list(self._by_agent.get(agent_id, {}).values())

    def take_agent(self, agent_id: str) -> list[HeldOffer]:
        """Every offer of the agent, removed from the book (one ACCEPT will use them)."""
        taken = list(self._by_agent.pop(agent_id, {}).values())
        for offer in taken:
            del self.held[offer.offer_id]
        self._summaries.pop(agent_id, None)
        return taken

    def take_all(self) -> list[HeldOffer]:
        taken = list(self.held.values())
        self.held.clear()
        self._by_agent.clear()
        self._summaries.clear()
        return taken

    def forget_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)

    def _summary(self, agent_id: str) -> AgentOffer:
        summary = self._summaries.get(agent_id)
        if summary is None:
            summary = self._summaries[agent_id] = summarize(self.agents[agent_id],
                                                            self._by_agent.get(agent_id, {}).values())
        return summary

    def agent_offers(self, also: Iterable[str] = ()) -> list[AgentOffer]:
        """One `AgentOffer` per agent with held offers (what they add up to), and a zero one for
        each known agent of `also` (agents whose instances count toward the constraints).

        Nothing at all when no offer is held: "no agent offers resources" is then the truth,
        where zero offers would blame the agents for lacking cpus."""
        if not self._by_agent:
            return []
        out = [self._summary(agent_id) for agent_id in self._by_agent]
        for agent_id in set(also):
            if agent_id in self.agents and agent_id not in self._by_agent:
                out.append(self._summary(agent_id))
        return out


def summarize(agent: AgentView, offers: Iterable[HeldOffer]) -> AgentOffer:
    """What the offers of one agent add up to, as placement weighs it."""
    scalars = dict.fromkeys(SCALARS, 0.0)
    ports: list[tuple[int, int]] = []
    for offer in offers:
        for entry in offer.resources:
            name, kind = entry["name"], entry.get("type")
            if kind == "SCALAR" and name in scalars:
                scalars[name] += float(entry["scalar"]["value"])
            elif kind == "RANGES" and name == "ports":
                ports.extend(_ranges(entry))
    return AgentOffer(agent=agent, cpus=scalars["cpus"], mem=scalars["mem"], disk=scalars["disk"],
                      gpus=int(scalars["gpus"] + EPSILON), free_ports=tuple(sorted(ports)))
