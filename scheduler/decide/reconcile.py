"""What must change for one app to match its definition — decided, not done.

Like Nomad's reconciler this returns a diff (how many to launch, which to kill) and touches
nothing; the scheduler loop carries it out. This is the scale path (and the steady state);
config changes are rolled by `restart.next_restart_step` under a deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.decide.constraints import AgentView, ConstraintSpec
from scheduler.decide.kill_selection import InstanceView, select_instances_to_kill
from scheduler.state.model import RUNNING, Instance


@dataclass(frozen=True)
class Convergence:
    launch: int
    kill: tuple[str, ...]


def _views(instances: Sequence[Instance], agents: Mapping[str, AgentView]) -> list[InstanceView]:
    return [InstanceView(instance_id=i.instance_id, staged_at=i.staged_at,
                         agent=agents.get(i.agent_id, AgentView(i.agent_id, i.host, {})),
                         healthy=None, running=i.state == RUNNING) for i in instances]


def plan_convergence(*, target: int, instances: Sequence[Instance], kill_selection: str,
                     constraints: Sequence[ConstraintSpec], agents: Mapping[str, AgentView],
                     counts: Callable[[Instance], bool] | None = None) -> Convergence:
    """Launch count and kill list that bring the counted `instances` (of one app) to `target`.

    Every version counts: outside a restart deployment an older instance is capacity, not
    something to replace (Marathon leaves a cancelled deployment's mix alone until the next).
    `counts` says which instances count (default: the active ones; an unreachable one may count
    too, see `unreachable.counts`). Instances that came back after they were replaced go first,
    then the kill selection chooses among the rest.
    """
    active = [i for i in instances if (counts(i) if counts is not None else i.active)]
    kill: list[str] = []
    surplus = len(active) - target
    if surplus > 0:
        returned = [i for i in active if i.returned_inactive]
        if returned:
            kill = select_instances_to_kill(_views(returned, agents), min(surplus, len(returned)), kill_selection,
                                            constraints)
        rest = [i for i in active if i.instance_id not in kill]
        if surplus > len(kill):
            kill += select_instances_to_kill(_views(rest, agents), surplus - len(kill), kill_selection, constraints)
    return Convergence(launch=max(0, target - len(active)), kill=tuple(kill))
