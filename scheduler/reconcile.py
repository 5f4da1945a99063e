"""What must change for one app to match its definition — decided, not done.

Like Nomad's reconciler this returns a diff (how many to launch, which to kill) and touches
nothing; the scheduler loop carries it out. This is the scale path (and the steady state);
config changes are rolled by `restart.next_restart_step` under a deployment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .constraints import AgentView, ConstraintSpec
from .kill_selection import InstanceView, select_instances_to_kill
from .model import RUNNING, Instance


@dataclass(frozen=True)
class Convergence:
    launch: int
    kill: tuple[str, ...]


def _views(instances: Sequence[Instance], agents: Mapping[str, AgentView]) -> list[InstanceView]:
    return [InstanceView(instance_id=i.instance_id, staged_at=i.staged_at,
                         agent=agents.get(i.agent_id, AgentView(i.agent_id, i.host, {})),
                         healthy=None, running=i.state == RUNNING) for i in instances]


def plan_convergence(*, target: int, config_version: str | None, instances: Sequence[Instance],
                     kill_selection: str, constraints: Sequence[ConstraintSpec],
                     agents: Mapping[str, AgentView]) -> Convergence:
    """Launch count and kill list that bring `instances` (of one app) to `target` of `config_version`.

    config_version=None counts every instance as current: outside a restart deployment an
    older instance is capacity, not something to replace (Marathon leaves a cancelled
    deployment's mix alone until the next deployment).
    """
    active = [i for i in instances if i.active]
    current = [i for i in active if config_version is None or i.config_version == config_version]
    current_ids = {i.instance_id for i in current}
    outdated = [i for i in active if i.instance_id not in current_ids]
    kill: list[str] = []
    if len(current) > target:
        kill += select_instances_to_kill(_views(current, agents), len(current) - target, kill_selection, constraints)
    running_current = sum(1 for i in current if i.state == RUNNING)
    keep_outdated = max(0, target - running_current)
    if len(outdated) > keep_outdated:
        kill += select_instances_to_kill(_views(outdated, agents), len(outdated) - keep_outdated,
                                         "OLDEST_FIRST", constraints)
    return Convergence(launch=max(0, target - len(current)), kill=tuple(kill))
