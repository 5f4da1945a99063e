"""Cluster backends: where tasks actually run.

A backend turns placement decisions into running tasks and reports how they end. The
scheduler core talks to every backend through the `ClusterBackend` protocol, so the embedded
agents (`local`) and a Mesos cluster (`mesos`) are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app_definitions import AppDefinition
from executor import ResourceUsage

from scheduler.state.model import Instance
from scheduler.decide.placement import AgentOffer


@dataclass(frozen=True)
class StatusUpdate:
    instance_id: str
    state: str
    message: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class Recovery:
    """What a backend found of the instances the store remembered."""

    alive: tuple[Instance, ...]
    lost: tuple[Instance, ...]
    orphans_killed: int


StatusCallback = Callable[[StatusUpdate], None]


class ClusterBackend(Protocol):
    def offers(self, active: Sequence[Instance]) -> list[AgentOffer]:
        """Free resources of every agent, given the instances that hold resources now."""

    def unsupported_reason(self, app: AppDefinition) -> str | None:
        """Why no agent of this backend can run `app` at all (shown in /v2/queue), or None."""

    async def launch(self, instance: Instance, app: AppDefinition) -> Instance:
        """Start the task; returns the instance updated with what the launch learned (pid…)."""

    async def kill(self, instance: Instance, grace_seconds: float) -> None:
        """Stop the task; the end is reported through the status callback."""

    async def recover(self, instances: Sequence[Instance]) -> Recovery:
        """After a scheduler restart: re-adopt live tasks, report dead ones, kill strays."""

    async def usages(self) -> Mapping[str, ResourceUsage]:
        """Resource usage of every running task, by task id (for the metrics sampler)."""

    def describe(self) -> list[dict[str, object]]:
        """Agents as the API shows them."""

    async def close(self) -> None:
        """Stop watching tasks; tasks keep running (agents outlive their scheduler)."""
