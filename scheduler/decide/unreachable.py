"""Unreachable instances under their app's `unreachableStrategy`, decided purely.

An instance whose agent stopped answering (TASK_UNREACHABLE) may come back, so it is not given
up at once, as in Marathon 1.4+: for `inactiveAfterSeconds` it still counts toward the app's
`instances` (nothing is launched in its place); then it is *inactive*: it no longer counts and
a replacement is launched; after `expungeAfterSeconds` it is forgotten (expunged) and its task
is killed should it ever come back. A `"disabled"` strategy (resident apps) never gives one up.
Marathon's default is 0 and 0 (replace and forget at once; `app_definitions` has it so).

An instance that comes back after it was replaced is the surplus: it is the first to be killed
while the app has more instances than it wants (the replacement, started meanwhile on a
reachable agent, stays).

The clock is the scheduler's: an instance is unreachable since the update that said so was
judged (`since`), or since the master said, for instances recovered after a restart.
"""

from __future__ import annotations

from app_definitions import UnreachableStrategy

from scheduler.state.model import UNREACHABLE, Instance

def _unreachable_for(inst: Instance, now: float) -> float:
    """How long it has been unreachable; an unknown start counts as now (not given up yet)."""
    since = inst.unreachable_since
    return 0.0 if since is None else max(0.0, now - since)


def inactive(inst: Instance, strategy: UnreachableStrategy, now: float) -> bool:
    """Unreachable for `inactiveAfterSeconds` or longer: replaced, no longer counted."""
    return (inst.state == UNREACHABLE and not strategy.is_disabled
            and _unreachable_for(inst, now) >= strategy.inactive_after_seconds)


def expunged(inst: Instance, strategy: UnreachableStrategy, now: float) -> bool:
    """Unreachable for `expungeAfterSeconds` or longer: to be forgotten."""
    return (inst.state == UNREACHABLE and not strategy.is_disabled
            and _unreachable_for(inst, now) >= strategy.expunge_after_seconds)


def counts(inst: Instance, strategy: UnreachableStrategy, now: float) -> bool:
    """Whether the instance counts toward the app's `instances`: active, or unreachable and not
    yet inactive (a kill asked for ends its count either way)."""
    if inst.killing:
        return False
    return inst.active or (inst.state == UNREACHABLE and not inactive(inst, strategy, now))


def on_update(inst: Instance, state: str, strategy: UnreachableStrategy | None, now: float) -> Instance:
    """The instance's reachability after a non-terminal update `state` (its state not yet set).

    Unreachable: since now, or since earlier when it already was. Reachable again: the time is
    cleared, and it is marked `returned_inactive` when it had been replaced meanwhile."""
    if state == UNREACHABLE:
        if inst.state == UNREACHABLE and inst.unreachable_since is not None:
            return inst
        return inst.with_(unreachable_since=now)
    if inst.state != UNREACHABLE:
        return inst
    replaced = strategy is not None and inactive(inst, strategy, now)
    return inst.with_(unreachable_since=None, returned_inactive=inst.returned_inactive or replaced)
