"""Rolling restart math: how many old instances to kill and new ones to launch, right now.

Marathon's ``TaskReplaceActor`` keeps counters that it updates as events arrive, so its
decisions depend on the history of messages and are lost when the leader dies. Here the
whole decision is one pure function of the instances as they are
(:func:`next_restart_step`); the deployment driver calls it again whenever anything
changes (and after a restart of ``pacer serve``) and does what it says. Calling it twice
on the same state gives the same answer, and applying its answer then calling it again
gives no further kills until something changes: the step is a fixpoint.

The bounds are Marathon's (``computeRestartStrategy``)::

    minHealthy  = ceil(n * minimumHealthCapacity)
    maxCapacity = floor(n * (1 + maximumOverCapacity))
    if minHealthy == maxCapacity: maxCapacity += 1   (resident apps: keep minHealthy - 1 instead)

:func:`restart_strategy` is that computation exactly as Marathon does it at the start of a
restart, for tables and for ``/v2/deployments`` to show. Two deliberate differences:

* The products are computed on the decimal values the user wrote: ``100 * 0.55`` is 55,
  not the 55.00000000000001 of binary floating point that makes Marathon keep 56, and
  ``100 * 1.15`` is 115, not 114.99999999999999.
* In the stepper the over-capacity ``+1`` applies whenever ``minHealthy == maxCapacity``,
  not only when every instance is healthy at the start: Marathon stalls forever in the
  other case (no room to launch, nothing healthy-and-ready to justify a kill).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "InstanceState",
    "RestartStep",
    "RestartStrategy",
    "capacity_bounds",
    "next_restart_step",
    "restart_strategy",
]


def _exact(value: float) -> Fraction:
    """The decimal the user wrote (``0.7`` is 7/10), so ceil/floor are not off by one ulp."""
    return Fraction(repr(float(value)))


def _check(instances: int, minimum_health_capacity: float, maximum_over_capacity: float) -> None:
    if instances < 0:
        raise ValueError(f"instances must be >= 0, got {instances}")
    for name, value in (("minimumHealthCapacity", minimum_health_capacity),
                        ("maximumOverCapacity", maximum_over_capacity)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")


def _raw_bounds(instances: int, minimum_health_capacity: float, maximum_over_capacity: float) -> tuple[int, int]:
    _check(instances, minimum_health_capacity, maximum_over_capacity)
    min_healthy = math.ceil(instances * _exact(minimum_health_capacity))
    max_capacity = math.floor(instances * (1 + _exact(maximum_over_capacity)))
    return min_healthy, max_capacity


@dataclass(frozen=True)
class RestartStrategy:
    """Marathon's ignition numbers for one restart.

    ``min_healthy``: instances that must stay healthy; ``max_capacity``: most instances
    (old + new) running at once, after the ``+1`` rule; ``kill_immediately``: old instances
    killed before any new one is healthy.
    """

    min_healthy: int
    max_capacity: int
    kill_immediately: int


def restart_strategy(instances: int, minimum_health_capacity: float, maximum_over_capacity: float,
                     healthy_count: int, resident: bool = False, *,
                     current_count: int | None = None) -> RestartStrategy:
    """Marathon's ``computeRestartStrategy`` for ``instances`` target instances.

    ``healthy_count``: old and new instances with goal running that are considered
    healthy. When ``minHealthy == maxCapacity`` and at least that many are healthy, a
    normal app gets one instance of temporary over-capacity; a resident app (which cannot
    exceed its reservations) kills one more instead. ``current_count``, when given, is
    every instance of the app: extras above ``instances`` are killed immediately too.
    """
    if healthy_count < 0:
        raise ValueError(f"healthy_count must be >= 0, got {healthy_count}")
    min_healthy, max_capacity = _raw_bounds(instances, minimum_health_capacity, maximum_over_capacity)
    kill = max(0, healthy_count - min_healthy)
    if min_healthy == max_capacity and max_capacity <= healthy_count:
        if resident:
            kill = healthy_count - min_healthy + 1
        else:
            max_capacity += 1
    if current_count is not None and instances < current_count:
        kill = max(current_count - instances, kill)
    return RestartStrategy(min_healthy=min_healthy, max_capacity=max_capacity, kill_immediately=kill)


def capacity_bounds(instances: int, strategy_params: tuple[float, float], *,
                    resident: bool = False) -> tuple[int, int]:
    """``(keep, max_capacity)`` the stepper works with.

    ``keep``: how many serving instances (healthy old + healthy-and-ready new) our kills
    leave, i.e. minHealthy, or minHealthy - 1 for a resident app whose bounds are equal.
    ``max_capacity``: the ceiling on active instances, with the ``+1`` for a normal app
    whose bounds are equal. Either way there is always room for progress.
    """
    min_healthy, max_capacity = _raw_bounds(instances, *strategy_params)
    if min_healthy == max_capacity:
        if resident:
            return max(0, min_healthy - 1), max_capacity
        return min_healthy, max_capacity + 1
    return min_healthy, max_capacity


@dataclass(frozen=True)
class InstanceState:
    """What the restart decision looks at on one instance of the app.

    ``is_new``: runs the target version. ``active``: goal running and not being killed
    (an instance we told to die no longer counts, as in Marathon). ``healthy``: considered
    healthy (no health checks, or passing). ``ready``: readiness checks pass (True when
    there are none). ``staged_at``: when it was launched, for "oldest first".
    """

    instance_id: str
    is_new: bool
    healthy: bool
    ready: bool
    active: bool
    staged_at: float


@dataclass(frozen=True)
class RestartStep:
    """What to do now: ``launch`` this many new instances, ``kill`` these ids (in order).

    ``done``: the restart is complete (n new instances healthy and ready, nothing old
    active, nothing pending); then ``launch`` is 0 and ``kill`` is empty.
    """

    launch: int
    kill: tuple[str, ...]
    done: bool


def _serving(instance: InstanceState) -> bool:
    """Counts toward minHealthy: a healthy old instance, or a new one that is healthy AND ready."""
    return instance.healthy and (instance.ready or not instance.is_new)


def next_restart_step(target_instances: int, strategy_params: tuple[float, float],
                      instances: Sequence[InstanceState], *, started_new: int = 0,
                      resident: bool = False) -> RestartStep:
    """The rolling-restart decision for the current instance states.

    ``strategy_params`` is ``(minimumHealthCapacity, maximumOverCapacity)``.
    ``started_new``: new instances already asked of the launch queue that do not appear
    in ``instances`` yet (0 when the queue records instances as soon as they are asked
    for); they count as active new instances that are not ready.

    * Old instances are killed until healthy old + healthy-and-ready new = minHealthy
      (unhealthy old first, then oldest, then by id). Killing an unhealthy one costs no
      health, so this never leaves fewer serving instances than minHealthy unless there
      were fewer to begin with; each new instance that becomes healthy and ready frees
      exactly one more old one.
    * New instances beyond ``target_instances`` are killed (not ready first, youngest).
    * New instances are launched up to ``min(n - new, maxCapacity - old - new)``, counting
      only active instances, so a new instance that failed is replaced and the total never
      exceeds maxCapacity.
    """
    if started_new < 0:
        raise ValueError(f"started_new must be >= 0, got {started_new}")
    ids = [i.instance_id for i in instances]
    if len(set(ids)) != len(ids):
        raise ValueError("instance ids must be distinct")
    keep, max_capacity = capacity_bounds(target_instances, strategy_params, resident=resident)

    new_active = [i for i in instances if i.is_new and i.active]
    old_active = [i for i in instances if not i.is_new and i.active]

    surplus = max(0, len(new_active) - target_instances)
    new_victims = sorted(new_active, key=lambda i: (_serving(i), -i.staged_at, i.instance_id))[:surplus]
    victim_ids = {i.instance_id for i in new_victims}
    new_kept = [i for i in new_active if i.instance_id not in victim_ids]
    new_serving = sum(1 for i in new_kept if _serving(i))

    keep_old = max(0, keep - new_serving)
    old_order = sorted(old_active, key=lambda i: (i.healthy, i.staged_at, i.instance_id))
    old_victims = old_order[:max(0, len(old_active) - keep_old)]

    old_after = len(old_active) - len(old_victims)
    new_after = len(new_kept) + started_new
    launch = max(0, min(target_instances - new_after, max_capacity - old_after - new_after))
    kill = tuple(i.instance_id for i in old_victims + new_victims)
    done = (not kill and launch == 0 and old_after == 0 and started_new == 0
            and len(new_kept) == target_instances and new_serving == target_instances)
    return RestartStep(launch=launch, kill=kill, done=done)
