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

Why not place an instance: `PlacementResult.rejections` counts, for the instance that could not
be placed, the agents rejected by each reason (each agent counted once, by the first check it
failed), and `message` says it in one sentence for `/v2/queue` and the logs.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

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
    """What one agent has free right now."""

    agent: AgentView
    cpus: float
    mem: float
    disk: float
    gpus: int = 0
    free_ports: tuple[tuple[int, int], ...] = ()   # inclusive ranges of free host ports
    networks: frozenset[str] = frozenset()         # named container networks on the agent


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


class _Pool:
    """The offers as numpy columns, consumed as instances are placed. Private to one call."""

    def __init__(self, request: TaskRequest, offers: Sequence[AgentOffer], placed: Sequence[AgentView],
                 seed: int) -> None:
        n = len(offers)
        self.offers = offers
        ids = [o.agent.agent_id for o in offers]
        if len(set(ids)) != n:
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise DuplicateAgentOffer(f"more than one offer for agent {dup!r}")
        self.cpus = np.array([o.cpus for o in offers], dtype=np.float64)
        self.mem = np.array([o.mem for o in offers], dtype=np.float64)
        self.disk = np.array([o.disk for o in offers], dtype=np.float64)
        self.gpus = np.array([o.gpus for o in offers], dtype=np.int64)
        required = frozenset(request.required_networks)
        self.network_ok = np.array([required <= o.networks for o in offers], dtype=bool)
        on_agent = Counter(p.agent_id for p in placed)
        self.instances = np.array([on_agent.get(i, 0) for i in ids], dtype=np.int64)
        self.tiebreak = np.array([_seeded_u64(seed, i) for i in ids], dtype=np.uint64)

        self.ranges = [_merge(o.free_ports) for o in offers]
        owner = np.array([i for i, rs in enumerate(self.ranges) for _ in rs], dtype=np.int64)
        starts = np.array([b for rs in self.ranges for b, _ in rs], dtype=np.int64)
        ends = np.array([e for rs in self.ranges for _, e in rs], dtype=np.int64)
        self.port_total = np.bincount(owner, weights=ends - starts + 1, minlength=n).astype(np.int64)
        self.ports_free = self.port_total.copy()
        self.taken: dict[int, list[int]] = {}
        self.fixed = tuple(p for p in request.host_ports if p > 0)
        self.fixed_ok = np.ones(n, dtype=bool)
        for port in self.fixed:
            has = np.zeros(n, dtype=bool)
            has[owner[(starts <= port) & (port <= ends)]] = True
            self.fixed_ok &= has

        agents = [o.agent for o in offers]
        self.tallies = {c.field: FieldTally(c.field, agents, placed) for c in request.constraints}
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
    """The best of the feasible agent indices `candidates` (np.lexsort: last key is primary)."""
    load = np.zeros(len(candidates), dtype=np.int64)
    for tally in pool.group_by:
        load += tally.load()[candidates]
    if strategy == "spread":
        keys = (pool.tiebreak[candidates], -pool.mem[candidates], pool.instances[candidates], load)
    else:
        keys = (pool.tiebreak[candidates], pool.cpus[candidates], pool.mem[candidates], load)
    return int(candidates[np.lexsort(keys)[0]])


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
    placements: list[Placement] = []
    for _ in range(count):
        candidates = np.flatnonzero(_feasible(pool, request))
        if len(candidates) == 0:
            rejections, message = _explain(pool, request)
            return PlacementResult(tuple(placements), rejections, message)
        i = _choose(pool, candidates, strategy)
        placements.append(Placement(pool.offers[i].agent.agent_id, pool.take(i, request, rng)))
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
    taken = list(taken)
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        start = lo
        for port in sorted(p for p in taken if lo <= p <= hi):
            if port > start:
                out.append((start, port - 1))
            start = port + 1
        if start <= hi:
            out.append((start, hi))
    return tuple(out)


def consume_offers(offers: Sequence[AgentOffer], request: TaskRequest,
                   placements: Sequence[Placement]) -> list[AgentOffer]:
    """The offers left after `placements` took their share, so one pass can place many apps
    without recomputing every agent's free resources from the instance table."""
    by_agent: dict[str, list[Placement]] = {}
    for placement in placements:
        by_agent.setdefault(placement.agent_id, []).append(placement)
    out = []
    for offer in offers:
        taken = by_agent.get(offer.agent.agent_id)
        if not taken:
            out.append(offer)
            continue
        n = len(taken)
        out.append(replace(
            offer, cpus=max(0.0, offer.cpus - n * request.cpus), mem=max(0.0, offer.mem - n * request.mem),
            disk=max(0.0, offer.disk - n * request.disk), gpus=max(0, offer.gpus - n * request.gpus),
            free_ports=subtract_ports(offer.free_ports, [p for pl in taken for p in pl.host_ports])))
    return out
