"""The scale path as a table: launches up to the target, kills by killSelection, ignores kills in flight."""

from __future__ import annotations

import pytest

from scheduler.state.model import RUNNING, STAGING, Instance
from scheduler.decide.reconcile import plan_convergence


def inst(n: int, *, state: str = RUNNING, killing: bool = False, config: str = "v1") -> Instance:
    return Instance(instance_id=f"a.instance-{n}._app.1", app_id="/a", version=config, config_version=config,
                    agent_id="agent-1", host="localhost", ports=(), service_ports=(), state=state,
                    staged_at=float(n), killing=killing)


@pytest.mark.parametrize("target, instances, selection, launch, killed", [
    (3, [], "YOUNGEST_FIRST", 3, set()),
    (3, [inst(1), inst(2)], "YOUNGEST_FIRST", 1, set()),
    (1, [inst(1), inst(2), inst(3)], "YOUNGEST_FIRST", 0, {3, 2}),
    (1, [inst(1), inst(2), inst(3)], "OLDEST_FIRST", 0, {1, 2}),
    (2, [inst(1), inst(2, killing=True)], "YOUNGEST_FIRST", 1, set()),        # a kill in flight is not capacity
    (1, [inst(1), inst(2, state=STAGING)], "OLDEST_FIRST", 0, {2}),            # staging goes first
    (2, [inst(1, config="v1"), inst(2, config="v2")], "YOUNGEST_FIRST", 0, set()),  # every version counts
    (0, [inst(1)], "YOUNGEST_FIRST", 0, {1}),
])
def test_plan_convergence(target, instances, selection, launch, killed):
    plan = plan_convergence(target=target, instances=instances, kill_selection=selection, constraints=(),
                            agents={})
    assert plan.launch == launch
    assert set(plan.kill) == {f"a.instance-{n}._app.1" for n in killed}
