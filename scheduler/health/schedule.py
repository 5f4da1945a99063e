"""When each health check is due: the instances being checked and a heap of due times.

The checker runs a round every 100 ms. Walking every instance's checks each round (building
its probe, its environment, its due table) cost more than the probes at thousands of
instances. Here each instance is looked at again only when its `Instance` value changed
(instances are immutable values, replaced on every change): a round is one identity
comparison per instance plus popping the checks that fell due off a heap.

Timing is the checker's as before: a check starts at the first round at or after its due
time when it is not still running; its next due time is its start plus `intervalSeconds`;
first checks of new instances are spread over up to a second.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from app_definitions import HealthCheck

from scheduler.health.probes import Probe
from scheduler.state.model import RUNNING, Instance

ProbeKey = tuple[str, int]       # (instance id, check index)


@dataclass(slots=True, eq=False)
class Tracked:
    """What the schedule knows of one instance, rebuilt only when the instance changes."""

    inst: Instance
    live: bool = False                    # RUNNING and not being killed
    # tuples, () when there are none: every instance has an entry, most apps have no checks,
    # and two empty lists per instance were 5,000 x 112 bytes for nothing
    checks: Sequence[HealthCheck] = ()
    probes: Sequence[Probe | None] = ()   # None: a check the backend runs
    epoch: int = 0                        # bumped when it (re)starts being checked: older heap items are void
    seen: int = 0                         # the last round that found it in the state


def first_due(instance_id: str, t: float, interval: float) -> float:
    """Spread first checks over up to a second so a thousand new tasks do not fire at once."""
    return t + (zlib.crc32(instance_id.encode()) % 1000) / 1000 * min(interval, 1.0)


class CheckSchedule:
    """The instances under check and the heap of (due, entry, check) the rounds pop from."""

    def __init__(self, build_probe: Callable[[Instance, int, HealthCheck], Probe | None],
                 checks_of: Callable[[Instance], list[HealthCheck]]) -> None:
        self._build_probe = build_probe
        self._checks_of = checks_of
        self.tracked: dict[str, Tracked] = {}
        self.probing: dict[ProbeKey, float] = {}     # in flight -> its next due time
        self._heap: list[tuple[float, int, Tracked, int, int]] = []
        self._sequence = itertools.count()
        self._round = 0

    def refresh(self, instances: Iterable[Instance], t: float) -> tuple[list[Tracked], bool]:
        """Follow the state: the entries that are new or changed this round, and whether any
        instance left it (their entries are dropped)."""
        self._round += 1
        this_round = self._round
        tracked = self.tracked
        changed: list[Tracked] = []
        count = 0
        for inst in instances:
            count += 1
            entry = tracked.get(inst.instance_id)
            if entry is not None and entry.inst is inst:
                entry.seen = this_round
                continue
            changed.append(self._track(inst, entry, t, this_round))
        gone = len(tracked) > count and self._drop_unseen(this_round)
        return changed, gone

    def due(self, t: float) -> list[Probe]:
        """Pop the checks due at `t` that are not still running; they count as in flight."""
        heap = self._heap
        batch: list[Probe] = []
        while heap and heap[0][0] <= t:
            _, _, entry, epoch, index = heapq.heappop(heap)
            if epoch != entry.epoch or not entry.live or index >= len(entry.probes):
                continue
            probe = entry.probes[index]
            if probe is None or probe.key in self.probing or self.tracked.get(entry.inst.instance_id) is not entry:
                continue
            self.probing[probe.key] = t + entry.checks[index].interval_seconds
            batch.append(probe)
        return batch

    def finished(self, key: ProbeKey) -> None:
        """A probe's verdict came back: schedule the check's next run."""
        next_due = self.probing.pop(key, None)
        entry = self.tracked.get(key[0])
        if next_due is not None and entry is not None and entry.live:
            heapq.heappush(self._heap, (next_due, next(self._sequence), entry, entry.epoch, key[1]))

    def forget(self, instance_id: str) -> None:
        self.tracked.pop(instance_id, None)

    def _track(self, inst: Instance, entry: Tracked | None, t: float, this_round: int) -> Tracked:
        was_live = entry is not None and entry.live and self.tracked.get(inst.instance_id) is entry
        if entry is None:
            entry = self.tracked[inst.instance_id] = Tracked(inst)
        entry.inst, entry.seen = inst, this_round
        entry.live = inst.state == RUNNING and not inst.killing
        if not entry.live:
            entry.checks, entry.probes = (), ()
            return entry
        checks = self._checks_of(inst)
        restart = not was_live or len(checks) != len(entry.checks)
        entry.checks = checks or ()           # the app version's own list when there are checks
        entry.probes = tuple(self._build_probe(inst, index, check) for index, check in enumerate(checks))
        if restart:
            entry.epoch += 1
            for index, check in enumerate(checks):
                if (inst.instance_id, index) not in self.probing:   # a running one reschedules itself
                    heapq.heappush(self._heap, (first_due(inst.instance_id, t, check.interval_seconds),
                                                next(self._sequence), entry, entry.epoch, index))
        return entry

    def _drop_unseen(self, this_round: int) -> bool:
        gone = [iid for iid, entry in self.tracked.items() if entry.seen != this_round]
        for iid in gone:
            del self.tracked[iid]
        return bool(gone)
