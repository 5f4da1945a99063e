"""Placement: which agents take the next instances of one app. A pure decision.

Shaped like Nomad's scheduler: for each instance, a chain of small named feasibility checks,
cheapest first (network, cpus, mem, disk, gpus, ports, constraints), then a ranking of the
agents that passed. Every check and scorer works on numpy columns over all offered agents at
once, so 1,000 agents x 200 instances stays in the tens of milliseconds; the per-instance
Python work is one pass over the checks and, for the chosen agent only, its host ports.

Instances are placed one at a time. Each placement consumes the agent's resources and ports
and counts toward the constraints of the next one, exactly as if the next offer round saw it.
Nothing passed in is mutated; the answer is a `PlacementResult` value.

Ranking (a documented choice, `strategy=`):

* `"spread"` (default): least-populated GROUP_BY group first, then the agent holding the
  fewest instances of this app, then the most free memory. Long-running services want
  failure isolation more than dense packing, and this is also what makes a GROUP_BY without
  a value spread evenly.
* `"binpack"`: least-populated GROUP_BY group first, then the least free memory, then the
  least free cpus: fills agents up and leaves whole agents free for big tasks.

Ties are broken by a hash of (seed, agent id), so the result depends on the seed and on the
set of offers, not on their order. Random host ports come from a generator seeded the same way.

Without constraints, an instance changes nothing but its own agent's free resources and count,
so the agents' ranking is sorted once and only the chosen agent is re-ranked (a heap) after
each placement: the same choices as the one-at-a-time scan over every agent, at a cost that
does not grow with the number of agents per instance (10,000 agents are a common cluster).
A pass that places many apps on the same offers holds them in an `OfferTable`: their columns
are read once per pass, and each app's placements update only the agents they used.

Why not place an instance: `PlacementResult.rejections` counts, for the instance that could not
be placed, the agents rejected by each reason (each agent counted once, by the first check it
failed), and `message` says it in one sentence for `/v2/queue` and the logs.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, overload

import numpy as np

from scheduler.decide.constraints import AgentView, ConstraintSpec, FieldTally, constraint_mask

# Resources are floats that callers add and subtract: 0.3 - 0.1 - 0.1 must still fit 0.1.
EPSILON = 1e-9

REASONS: tuple[str, ...] = (
    "NoMatchingNetwork", "InsufficientCpus", "InsufficientMemory", "InsufficientDisk",
    "InsufficientGpus", "InsufficientPorts", "UnfulfilledConstraint",
)

Strategy = Literal["spread", "binpack"]


def reject_reason_names() -> tuple[str, ...]:
    """The reason vocabulary of `PlacementResult.rejections`, in check order (Marathon-like)."""
    return REASONS


class DuplicateAgentOffer(ValueError):
    """Two offers for one agent: the caller must merge them first (a programmer error)."""


@dataclass(frozen=True)
class AgentOffer:
    """What one agent has free right now.

    Its free ports are also kept merged and counted, once, when the offer is made: a pass
    weighs every offer for every app it places, and an offer changes only when a placement
    takes from it."""

    agent: AgentView
    cpus: float
    mem: float
    disk: float
    gpus: int = 0
    free_ports: tuple[tuple[int, int], ...] = ()   # inclusive ranges of free host ports
    networks: frozenset[str] = frozenset()         # named container networks on the agent
    merged_ports: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    port_count: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        merged = tuple(_merge(self.free_ports))
        object.__setattr__(self, "merged_ports", merged)
        object.__setattr__(self, "port_count", sum(end - begin + 1 for begin, end in merged))


@dataclass(frozen=True)
class TaskRequest:
    """One instance's needs, in plain values (the caller converts the app definition)."""

    app_id: str
    cpus: float
    mem: float
    disk: float
    gpus: int
    host_ports: tuple[int, ...]        # per port needing a host port: 0 = any, >0 = exactly that
    constraints: tuple[ConstraintSpec, ...]
    target_instances: int
    required_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    agent_id: str
    host_ports: tuple[int, ...]        # same order as TaskRequest.host_ports


@dataclass(frozen=True)
class PlacementResult:
    placements: tuple[Placement, ...]  # may be fewer than asked
    rejections: Mapping[str, int] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class Fit:
    """Kubernetes-style answer for one agent: fits, or the reason (a REASONS name) it does not."""

    ok: bool
    reason: str | None = None
    message: str | None = None


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping inclusive ranges (offers may list them in any order)."""
    if len(ranges) == 1:                      # the usual case, and one offer per agent per pass
        begin, end = ranges[0]
        return [(int(begin), int(end))] if begin <= end else []
    if all(b <= e for b, e in ranges) and all(a[1] + 1 < b[0] for a, b in zip(ranges, ranges[1:])):
        return [(int(b), int(e)) for b, e in ranges]      # already so: what consuming leaves
    merged: list[tuple[int, int]] = []
    for begin, end in sorted((int(b), int(e)) for b, e in ranges if b <= e):
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _kth_free(ranges: Sequence[tuple[int, int]], taken: Sequence[int], k: int) -> int:
    """The k-th (0-based) port of `ranges` that is not in sorted `taken`."""
    for begin, end in ranges:
        lo, hi = bisect_left(taken, begin), bisect_right(taken, end)
        available = end - begin + 1 - (hi - lo)
        if k < available:
            port = begin + k
            for t in taken[lo:hi]:
                if t > port:
                    break
                port += 1
            return port
        k -= available
    raise AssertionError("k exceeds the free ports")  # guarded by the ports check


def _seeded_u64(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest(), "little")


class _AgentHashes(dict[str, int]):
    """A 64-bit hash of each agent id, computed once per process (a memo: still pure)."""

    LIMIT = 1 << 17

    def __missing__(self, agent_id: str) -> int:
        if len(self) >= self.LIMIT:
            self.clear()
        value = self[agent_id] = int.from_bytes(hashlib.blake2b(agent_id.encode(), digest_size=8).digest(),
                                                "little")
        return value


_AGENT_HASHES = _AgentHashes()


def _tiebreaks(seed: int, agent_hashes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of (seed, agent id) per agent from the agents' own hashes (`_AGENT_HASHES`),
    the seed mixed in for all agents at once (splitmix64's finalizer)."""
    z = agent_hashes ^ np.uint64(_seeded_u64(seed, ""))
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


class OfferTable(Sequence[AgentOffer]):
    """The offers of one scheduling pass, with their columns: what `place_tasks` weighs.

    A pass places app after app on the same offers, each taking its share (`consumed`). Read
    from the offers for every app, the columns of ten thousand agents cost more than placing a
    hundred instances on them; kept here, they are read once per pass, and each app's
    placements change only the agents they used (the rest is shared between the tables). A
    used agent's `AgentOffer` is made again only if someone asks for it; it is then exactly
    what `consume_offers` would have left."""

    def __init__(self, offers: Sequence[AgentOffer]) -> None:
        self._offers: list[AgentOffer | None] = list(offers)
        self.ids = [o.agent.agent_id for o in offers]
        self.index = {agent_id: i for i, agent_id in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            dup = next(i for i, c in Counter(self.ids).items() if c > 1)
            raise DuplicateAgentOffer(f"more than one offer for agent {dup!r}")
        self.agents = [o.agent for o in offers]
        self.networks = [o.networks for o in offers]
        self.free_ports = [o.free_ports for o in offers]
        self.cpus = np.array([o.cpus for o in offers], dtype=np.float64)
        self.mem = np.array([o.mem for o in offers], dtype=np.float64)
        self.disk = np.array([o.disk for o in offers], dtype=np.float64)
        self.gpus = np.array([o.gpus for o in offers], dtype=np.int64)
        self.port_total = np.array([o.port_count for o in offers], dtype=np.int64)
        self.ranges = [o.merged_ports for o in offers]
        self.hashes = np.array([_AGENT_HASHES[i] for i in self.ids], dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._offers)

    @overload
    def __getitem__(self, i: int) -> AgentOffer: ...
    @overload
    def __getitem__(self, i: slice) -> list[AgentOffer]: ...

    def __getitem__(self, i: int | slice) -> AgentOffer | list[AgentOffer]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        offer = self._offers[i]
        if offer is None:
            offer = self._offers[i] = AgentOffer(
                self.agents[i], cpus=float(self.cpus[i]), mem=float(self.mem[i]), disk=float(self.disk[i]),
                gpus=int(self.gpus[i]), free_ports=self.free_ports[i], networks=self.networks[i])
        return offer

    def consumed(self, request: TaskRequest, placements: Sequence[Placement]) -> "OfferTable":
        """The table after `placements` of `request` took their share (this one is unchanged),
        computed as `consume_offers` computes it."""
        by_agent = _by_agent(placements)
        if not by_agent:
            return self
        table = copy.copy(self)
        table._offers, table.free_ports, table.ranges = list(self._offers), list(self.free_ports), list(self.ranges)
        rows = np.fromiter((self.index[agent_id] for agent_id in by_agent), dtype=np.int64, count=len(by_agent))
        counts = np.fromiter((len(taken) for taken in by_agent.values()), dtype=np.int64, count=len(by_agent))
        table.cpus, table.mem, table.disk = self.cpus.copy(), self.mem.copy(), self.disk.copy()
        table.gpus, table.port_total = self.gpus.copy(), self.port_total.copy()
        table.cpus[rows] = np.maximum(0.0, self.cpus[rows] - counts * request.cpus)
        table.mem[rows] = np.maximum(0.0, self.mem[rows] - counts * request.mem)
        table.disk[rows] = np.maximum(0.0, self.disk[rows] - counts * request.disk)
        table.gpus[rows] = np.maximum(0, self.gpus[rows] - counts * request.gpus)
        if request.host_ports:
            for i, taken in zip(rows.tolist(), by_agent.values()):
                ports = [p for pl in taken for p in pl.host_ports]
                free_before, merged_before = self.free_ports[i], self.ranges[i]
                merged, removed = without_ports(merged_before, sorted(ports))
                table.ranges[i] = merged
                # an offer's ranges are usually merged already: then both are the same subtraction
                table.free_ports[i] = merged if free_before == merged_before else subtract_ports(free_before, ports)
                table.port_total[i] = self.port_total[i] - removed
        for i in rows.tolist():
            table._offers[i] = None
        return table


class _Pool:
    """The offers as numpy columns, consumed as instances are placed. Private to one call."""

    def __init__(self, request: TaskRequest, offers: Sequence[AgentOffer], placed: Sequence[AgentView],
                 seed: int) -> None:
        table = offers if isinstance(offers, OfferTable) else OfferTable(offers)
        n = len(table)
        self.offers = table
        self.cpus, self.mem, self.disk = table.cpus.copy(), table.mem.copy(), table.disk.copy()
        self.gpus, self.port_total = table.gpus.copy(), table.port_total
        required = frozenset(request.required_networks)
        self.network_ok = np.array([required <= o.networks for o in table], dtype=bool) if required else \
            np.ones(n, dtype=bool)
        self.instances = np.zeros(n, dtype=np.int64)
        for agent_id, k in Counter(p.agent_id for p in placed).items():
            if agent_id in table.index:
                self.instances[table.index[agent_id]] = k
        self.tiebreak = _tiebreaks(seed, table.hashes)

        self.ranges = table.ranges
        self.ports_free = self.port_total.copy()
        self.taken: dict[int, list[int]] = {}
        self.fixed = tuple(p for p in request.host_ports if p > 0)
        self.fixed_ok = np.ones(n, dtype=bool)
        if self.fixed:
            owner = np.array([i for i, rs in enumerate(self.ranges) for _ in rs], dtype=np.int64)
            starts = np.array([b for rs in self.ranges for b, _ in rs], dtype=np.int64)
            ends = np.array([e for rs in self.ranges for _, e in rs], dtype=np.int64)
            for port in self.fixed:
                has = np.zeros(n, dtype=bool)
                has[owner[(starts <= port) & (port <= ends)]] = True
                self.fixed_ok &= has

        self.tallies = {c.field: FieldTally(c.field, table.agents, placed) for c in request.constraints}
        self.group_by = [self.tallies[c.field] for c in request.constraints if c.operator == "GROUP_BY"]

    def take(self, i: int, request: TaskRequest, rng: np.random.Generator) -> tuple[int, ...]:
        """Consume agent i's resources for one instance; returns its host ports."""
        taken = self.taken.setdefault(i, [])
        for port in self.fixed:
            insort(taken, port)
        ports = []
        for wanted in request.host_ports:
            if wanted > 0:
                ports.append(wanted)
                continue
            k = int(rng.integers(int(self.port_total[i]) - len(taken)))
            port = _kth_free(self.ranges[i], taken, k)
            insort(taken, port)
            ports.append(port)
        self.cpus[i] -= request.cpus
        self.mem[i] -= request.mem
        self.disk[i] -= request.disk
        self.gpus[i] -= request.gpus
        self.ports_free[i] -= len(request.host_ports)
        if self.fixed:
            self.fixed_ok[i] = False
        self.instances[i] += 1
        for tally in self.tallies.values():
            tally.add_agent(i)
        return tuple(ports)


# -- feasibility checks, cheapest first: each answers for every agent at once -------------------

def fits_network(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return pool.network_ok


def fits_cpus(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return pool.cpus + EPSILON >= request.cpus


def fits_mem(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return pool.mem + EPSILON >= request.mem


def fits_disk(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return pool.disk + EPSILON >= request.disk


def fits_gpus(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return pool.gpus >= request.gpus


def fits_ports(pool: _Pool, request: TaskRequest) -> np.ndarray:
    return (pool.ports_free >= len(request.host_ports)) & pool.fixed_ok


def fits_constraints(pool: _Pool, request: TaskRequest) -> np.ndarray:
    ok = np.ones(len(pool.offers), dtype=bool)
    for c in request.constraints:
        ok &= constraint_mask(c, pool.tallies[c.field], request.target_instances)
    return ok


Check = Callable[[_Pool, TaskRequest], np.ndarray]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("NoMatchingNetwork", fits_network), ("InsufficientCpus", fits_cpus),
    ("InsufficientMemory", fits_mem), ("InsufficientDisk", fits_disk),
    ("InsufficientGpus", fits_gpus), ("InsufficientPorts", fits_ports),
    ("UnfulfilledConstraint", fits_constraints),
)


def _feasible(pool: _Pool, request: TaskRequest) -> np.ndarray:
    ok = np.ones(len(pool.offers), dtype=bool)
    for _, check in CHECKS:
        ok &= check(pool, request)
        if not ok.any():
            break
    return ok


# -- ranking -------------------------------------------------------------------------------------

def _choose(pool: _Pool, candidates: np.ndarray, strategy: Strategy) -> int:
    """The best of the feasible agent indices `candidates` (ascending), key by key: the GROUP_BY
    load, then for spread the fewest instances and the most free mem, for binpack the least free
    mem and cpus, then the tie-break hash; a full tie goes to the lowest index."""
    if pool.group_by:
        load = np.zeros(len(candidates), dtype=np.int64)
        for tally in pool.group_by:
            load += tally.load()[candidates]
        candidates = candidates[load == load.min()]
    columns = ((pool.instances, False), (pool.mem, True)) if strategy == "spread" else \
        ((pool.mem, False), (pool.cpus, False))
    for column, highest in columns:
        if len(candidates) == 1:
            return int(candidates[0])
        values = column[candidates]
        candidates = candidates[values == (values.max() if highest else values.min())]
    return int(candidates[np.argmin(pool.tiebreak[candidates])])


def _rank(pool: _Pool, i: int, strategy: Strategy) -> tuple[float, float, int, int]:
    """Agent i's place in `_choose`'s order when no GROUP_BY applies: smaller is better."""
    if strategy == "spread":
        return (int(pool.instances[i]), -float(pool.mem[i]), int(pool.tiebreak[i]), i)
    return (float(pool.mem[i]), float(pool.cpus[i]), int(pool.tiebreak[i]), i)


def _fits(pool: _Pool, request: TaskRequest, i: int) -> bool:
    """The checks of `CHECKS` but constraints, for agent i alone."""
    return bool(pool.network_ok[i] and pool.cpus[i] + EPSILON >= request.cpus
                and pool.mem[i] + EPSILON >= request.mem and pool.disk[i] + EPSILON >= request.disk
                and pool.gpus[i] >= request.gpus and pool.ports_free[i] >= len(request.host_ports)
                and pool.fixed_ok[i])


def _lex_first(candidates: np.ndarray, keys: Sequence[np.ndarray], k: int) -> np.ndarray:
    """The first `k` of `candidates` (ascending indices) in the lexicographic order of the
    columns `keys` (primary first; a full tie goes to the lower index), in that order.

    A pass places a hundred instances on ten thousand agents: sorting them all by three keys
    costs more than the placements. Key by key, the k-th smallest value (np.partition) splits the
    agents into those surely among the first k, those surely not, and the ties, which the next
    key decides; only the k chosen are then sorted."""
    if k < len(candidates):
        chosen: list[np.ndarray] = []
        pool = candidates
        for key in keys:
            if k == 0 or k >= len(pool):
                break
            values = key[pool]
            kth = np.partition(values, k - 1)[k - 1]
            below = pool[values < kth]
            chosen.append(below)
            k -= len(below)
            pool = pool[values == kth]
        chosen.append(pool[:k])
        candidates = np.concatenate(chosen)
        candidates.sort()
    return candidates[np.lexsort(tuple(key[candidates] for key in reversed(keys)))]


def _place_unconstrained(pool: _Pool, request: TaskRequest, count: int, rng: np.random.Generator,
                         strategy: Strategy) -> list[Placement]:
    """`count` placements (fewer if the agents run out) of a request without constraints.

    Placing on an agent changes only that agent, so `_choose`'s order over all feasible agents is
    sorted once; the agents used so far wait in a heap under their new rank, and each placement
    takes the better of the heap's top and the next agent of the sorted order."""
    feasible = np.flatnonzero(_feasible(pool, request))
    if strategy == "spread":
        keys = (pool.instances, -pool.mem, pool.tiebreak)
    else:
        keys = (pool.mem, pool.cpus, pool.tiebreak)
    order = _lex_first(feasible, keys, count).tolist()
    used: list[tuple[float, float, int, int]] = []
    placements: list[Placement] = []
    nxt = 0
    while len(placements) < count:
        fresh = _rank(pool, order[nxt], strategy) if nxt < len(order) else None
        if used and (fresh is None or used[0] < fresh):
            i = heapq.heappop(used)[3]
        elif fresh is not None:
            i = fresh[3]
            nxt += 1
        else:
            break
        placements.append(Placement(pool.offers.ids[i], pool.take(i, request, rng)))
        if _fits(pool, request, i):
            heapq.heappush(used, _rank(pool, i, strategy))
    return placements


# -- entry points --------------------------------------------------------------------------------

def place_tasks(request: TaskRequest, count: int, offers: Sequence[AgentOffer], placed: Sequence[AgentView],
                seed: int = 0, *, strategy: Strategy = "spread") -> PlacementResult:
    """Place up to `count` instances of `request` on `offers`, one at a time.

    `placed` holds the agents of the app's instances already placed or running (one entry per
    instance); each new placement is added to it for the constraint checks of the next.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if strategy not in ("spread", "binpack"):
        raise ValueError(f"unknown placement strategy {strategy!r}")
    _validate(request)
    if count == 0:
        return PlacementResult(placements=())
    pool = _Pool(request, offers, placed, seed)
    rng = np.random.default_rng(_seeded_u64(seed, request.app_id))
    if not request.constraints:
        placements = _place_unconstrained(pool, request, count, rng, strategy)
        if len(placements) == count:
            return PlacementResult(tuple(placements))
        rejections, message = _explain(pool, request)
        return PlacementResult(tuple(placements), rejections, message)
    placements = []
    for _ in range(count):
        candidates = np.flatnonzero(_feasible(pool, request))
        if len(candidates) == 0:
            rejections, message = _explain(pool, request)
            return PlacementResult(tuple(placements), rejections, message)
        i = _choose(pool, candidates, strategy)
        placements.append(Placement(pool.offers.ids[i], pool.take(i, request, rng)))
    return PlacementResult(tuple(placements))


def check_offer(request: TaskRequest, offer: AgentOffer, placed: Sequence[AgentView] = ()) -> Fit:
    """Whether one more instance fits on this one offer, and if not, the first reason why."""
    _validate(request)
    pool = _Pool(request, [offer], placed, 0)
    for reason, check in CHECKS:
        if not check(pool, request)[0]:
            return Fit(False, reason, _explain(pool, request)[1])
    return Fit(True)


def _validate(request: TaskRequest) -> None:
    if any(p < 0 or p > 65535 for p in request.host_ports):
        raise ValueError(f"host ports must be within 0..65535, got {request.host_ports}")
    fixed = [p for p in request.host_ports if p > 0]
    if len(set(fixed)) != len(fixed):
        raise ValueError(f"host port requested twice in {request.host_ports}")


# -- explaining a refusal --------------------------------------------------------------------------

def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0").rstrip(".")


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _clause(reason: str, pool: _Pool, request: TaskRequest, failed: np.ndarray,
            per_constraint: Counter[str], every: bool) -> str:
    """What the agents in `failed` lack; `every` = they are all the offered agents."""
    n = int(failed.sum())
    if reason == "NoMatchingNetwork":
        what = ("container network " if len(request.required_networks) == 1 else "container networks ") \
            + _quoted(request.required_networks)
        return f"no agent has {what}" if every else f"{n} lack {what}"
    resources = {"InsufficientCpus": ("cpus", pool.cpus, request.cpus, ""),
                 "InsufficientMemory": ("mem", pool.mem, request.mem, " MB"),
                 "InsufficientDisk": ("disk", pool.disk, request.disk, " MB"),
                 "InsufficientGpus": ("gpus", pool.gpus, request.gpus, "")}
    if reason in resources:
        label, free, need, unit = resources[reason]
        detail = f"enough {label} (needs {_num(need)}{unit}, largest free {_num(max(0, free[failed].max()))}{unit})"
        return f"no agent has {detail}" if every else f"{n} lack {detail}"
    if reason == "InsufficientPorts":
        if pool.fixed and not pool.fixed_ok[failed].all():
            ports = ", ".join(str(p) for p in pool.fixed)
            word = "port" if len(pool.fixed) == 1 else "ports"
            return f"no agent has host {word} {ports} free" if every else f"{n} lack free host {word} {ports}"
        detail = f"enough free host ports (needs {len(request.host_ports)}, most free {int(pool.ports_free[failed].max())})"
        return f"no agent has {detail}" if every else f"{n} lack {detail}"
    if len(per_constraint) == 1:
        (text, _), = per_constraint.items()
        if every:
            return f"constraint {text} unmet on " + (f"all {n} agents" if n > 1 else "the only agent")
        return f"{n} fail constraint {text}"
    listing = ", ".join(f"{text} on {k}" for text, k in per_constraint.items())
    return f"constraints unmet on all {n} agents: {listing}" if every else f"{n} fail constraints ({listing})"


def _explain(pool: _Pool, request: TaskRequest) -> tuple[dict[str, int], str]:
    """Rejection counts (each agent by the first check it fails) and one sentence saying why."""
    total = len(pool.offers)
    if total == 0:
        return {}, "no agent offers resources"
    remaining = np.ones(total, dtype=bool)
    failed_by: dict[str, np.ndarray] = {}
    per_constraint: Counter[str] = Counter()
    for reason, check in CHECKS:
        if reason == "UnfulfilledConstraint":
            start = remaining.copy()
            for c in request.constraints:
                ok = constraint_mask(c, pool.tallies[c.field], request.target_instances)
                if (remaining & ~ok).any():
                    per_constraint[str(c)] += int((remaining & ~ok).sum())
                remaining &= ok
            failed = start & ~remaining
        else:
            ok = check(pool, request)
            failed = remaining & ~ok
            remaining &= ok
        if failed.any():
            failed_by[reason] = failed
    rejections = {reason: int(mask.sum()) for reason, mask in failed_by.items()}
    if len(failed_by) == 1:
        (reason, mask), = failed_by.items()
        return rejections, _clause(reason, pool, request, mask, per_constraint, every=True)
    clauses = "; ".join(_clause(r, pool, request, m, per_constraint, every=False) for r, m in failed_by.items())
    return rejections, f"no agent fits ({total} agents): {clauses}"


def subtract_ports(ranges: Sequence[tuple[int, int]], taken: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Inclusive port ranges minus the taken ports."""
    ports = sorted(taken)
    if not ports:
        return tuple(ranges)
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        start = lo
        for port in ports[bisect_left(ports, lo):bisect_right(ports, hi)]:
            if port > start:
                out.append((start, port - 1))
            start = max(start, port + 1)
        if start <= hi:
            out.append((start, hi))
    return tuple(out)


def without_ports(merged: tuple[tuple[int, int], ...], ports: Sequence[int]) -> tuple[tuple[tuple[int, int], ...], int]:
    """`subtract_ports` for ranges already sorted and apart (`_merge`d), which stay so, and how
    many ports it removed: each port splits the one range that holds it, found by bisection (a
    pass takes a port or two from each of thousands of agents, whose ranges fragment as it goes)."""
    out = merged
    removed = 0
    for port in ports:
        j = bisect_right(out, (port, _NO_END)) - 1
        if j < 0 or out[j][1] < port:
            continue
        lo, hi = out[j]
        pieces = tuple(r for r in ((lo, port - 1), (port + 1, hi)) if r[0] <= r[1])
        out = out[:j] + pieces + out[j + 1:]
        removed += 1
    return out, removed


_NO_END = float("inf")


def consume_offers(offers: Sequence[AgentOffer], request: TaskRequest, placements: Sequence[Placement],
                   *, index: Mapping[str, int] | None = None) -> list[AgentOffer]:
    """The offers left after `placements` took their share, so one pass can place many apps
    without recomputing every agent's free resources from the instance table. `index` (agent
    id → position in `offers`) spares a scan of every offer for the few that were used."""
    by_agent = _by_agent(placements)
    out = list(offers)
    if not by_agent:
        return out
    if index is None:
        index = {o.agent.agent_id: i for i, o in enumerate(offers)}
    for agent_id, taken in by_agent.items():
        i = index[agent_id]
        out[i] = _consumed(offers[i], request, taken)
    return out


def _by_agent(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    by_agent: dict[str, list[Placement]] = {}
    for placement in placements:
        by_agent.setdefault(placement.agent_id, []).append(placement)
    return by_agent


def _consumed(offer: AgentOffer, request: TaskRequest, taken: Sequence[Placement]) -> AgentOffer:
    """What is left of `offer` once `taken` (placements on it) took their share (`OfferTable`
    computes the same column by column)."""
    n = len(taken)
    return replace(
        offer, cpus=max(0.0, offer.cpus - n * request.cpus), mem=max(0.0, offer.mem - n * request.mem),
        disk=max(0.0, offer.disk - n * request.disk), gpus=max(0, offer.gpus - n * request.gpus),
        free_ports=subtract_ports(offer.free_ports, [p for pl in taken for p in pl.host_ports]))
