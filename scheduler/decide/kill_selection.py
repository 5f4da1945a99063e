"""Which instances to kill when an app has too many: a pure, deterministic proposal.

Order of preference, one victim at a time:

1. With GROUP_BY constraints, only instances in the most-populated group are candidates
   (for several GROUP_BY constraints, narrowed by each in turn), so a scale-down keeps the
   spread even. Marathon picks GROUP_BY victims before anything else for the same reason.
2. Among the candidates: not running (staging) first, then unhealthy, then unknown health,
   then healthy: kill what serves nobody before what serves traffic.
3. Then `killSelection`: YOUNGEST_FIRST kills the latest `staged_at` first (Marathon's
   default: old instances have proven themselves), OLDEST_FIRST the earliest.
4. Then the instance id, so equal inputs always give the same answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.decide.constraints import AgentView, ConstraintSpec, constraint_value

KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")


@dataclass(frozen=True)
class InstanceView:
    """What the choice looks at on one instance."""

    instance_id: str
    staged_at: float
    agent: AgentView
    healthy: bool | None     # None = no health checks, or no result yet
    running: bool


def _priority(instance: InstanceView, youngest_first: bool) -> tuple[int, int, float, str]:
    health = {False: 0, None: 1, True: 2}[instance.healthy]
    age = -instance.staged_at if youngest_first else instance.staged_at
    return (1 if instance.running else 0, health, age, instance.instance_id)


def select_instances_to_kill(instances: Sequence[InstanceView], count: int, kill_selection: str,
                             constraints: Sequence[ConstraintSpec]) -> list[str]:
    """Ids of `min(count, len(instances))` instances to kill, best victim first."""
    if kill_selection not in KILL_SELECTIONS:
        raise ValueError(f"kill selection must be one of {KILL_SELECTIONS}, got {kill_selection!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    ids = [i.instance_id for i in instances]
    if len(set(ids)) != len(ids):
        raise ValueError("instance ids must be distinct")
    youngest_first = kill_selection == "YOUNGEST_FIRST"
    fields = list(dict.fromkeys(c.field for c in constraints if c.operator == "GROUP_BY"))
    groups = {i.instance_id: tuple(constraint_value(i.agent, f) for f in fields) for i in instances}
    sizes = [Counter(groups[i.instance_id][n] for i in instances) for n in range(len(fields))]
    remaining = list(instances)
    chosen: list[str] = []
    for _ in range(min(count, len(instances))):
        candidates = remaining
        for n in range(len(fields)):
            largest = max(sizes[n][groups[i.instance_id][n]] for i in candidates)
            candidates = [i for i in candidates if sizes[n][groups[i.instance_id][n]] == largest]
        victim = min(candidates, key=lambda i: _priority(i, youngest_first))
        chosen.append(victim.instance_id)
        remaining.remove(victim)
        for n in range(len(fields)):
            sizes[n][groups[victim.instance_id][n]] -= 1
    return chosen
