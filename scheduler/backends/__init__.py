"""Cluster backends: where tasks actually run.

A backend turns placement decisions into running tasks and reports how they end. The
scheduler core talks to every backend through the `ClusterBackend` protocol and hears from it
through a `BackendListener`, so a backend that computes its offers (the embedded agents,
`local`) and one that is pushed offers (a Mesos master) fit the same seam: a pushed backend
keeps the offers it holds, returns them from `offers`, says `on_offers` when new ones arrive,
launches on them, and declines the rest in `pass_finished`.

A backend also says how many launches may be under way at once (`launch_concurrency`: one that
forks processes bounds it, one that hands launches to a master need not) and what `/v2/info`
shows of it (`backend_info`: the master, the framework id, the role and user, as Marathon names
them).

A backend also reads a task's output files (`read_task_file`, `open_task_file`, for
`/v2/tasks/{id}/files/{name}`): where the sandbox is on this host it reads it (in a thread);
where it is not, it answers `FileMissing` saying where the output is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app_definitions import AppDefinition
from executor import ResourceUsage
from executor.sandbox_files import FileChunk, FileMissing, OpenedFile

from scheduler.state.model import Instance
from scheduler.state.usage import AgentUsage
from scheduler.decide.placement import AgentOffer


@dataclass(frozen=True)
class StatusUpdate:
    instance_id: str
    state: str
    message: str = ""
    exit_code: int | None = None
    healthy: bool | None = None     # the verdict of a health check the backend runs (Mesos's), if any


@dataclass(frozen=True)
class Recovery:
    """What a backend found of the instances the store remembered."""

    alive: tuple[Instance, ...]
    lost: tuple[Instance, ...]
    orphans_killed: int


StatusCallback = Callable[[StatusUpdate], None]

DEFAULT_LAUNCH_CONCURRENCY = 32
"""Launches a backend that starts tasks itself runs at once (forks, container creations)."""


@dataclass(frozen=True)
class BackendInfo:
    """What `/v2/info` shows of the backend, in the terms of Marathon's flags.

    `master` is Marathon's `--master`: the master URL(s) as given, or `local` for the embedded
    agents. `framework_id` is the id a Mesos master gave the framework (None until it did, and
    for the embedded agents, whose scheduler names itself)."""

    master: str = "local"
    framework_id: str | None = None
    role: str = "*"
    user: str | None = None
    framework_name: str | None = None
    failover_timeout: float | None = None
    leader: str | None = None          # the leading master's URL, once subscribed
    reconciliation_interval: float | None = None   # seconds between two reconciliations of every task
    launch_timeout: float | None = None            # seconds a launch may take to reach TASK_RUNNING

    @property
    def on_mesos(self) -> bool:
        return self.master != "local"


class BackendListener(Protocol):
    """What a backend tells the scheduler."""

    def on_status(self, update: StatusUpdate) -> None:
        """A task changed state."""

    def on_offers(self) -> None:
        """Resources arrived (a pushed offer, a freed agent): worth a scheduling pass."""


class ClusterBackend(Protocol):
    launch_concurrency: int
    """How many `launch` calls the scheduler lets run at once."""

    def offers(self, usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
        """Free resources of every agent, given what the instances holding resources take on
        each (`ClusterState.usage`, kept as instances change so a pass need not sum them)."""

    def pass_finished(self, launched: Sequence[Instance]) -> None:
        """A scheduling pass placed `launched` on this pass's offers (their launches are under
        way). A backend holding pushed offers declines what no launch used."""

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

    async def read_task_file(self, instance: Instance, name: str, offset: int, length: int) -> FileChunk | FileMissing:
        """Up to `length` bytes of the task's sandbox file `name` (stdout, stderr) from `offset`
        (-1: its end), or why it cannot be read here."""

    async def open_task_file(self, instance: Instance, name: str) -> OpenedFile | FileMissing:
        """The whole sandbox file `name` of the task, opened for a download (the caller closes it)."""

    def backend_info(self) -> BackendInfo:
        """The backend as `/v2/info` shows it."""

    async def close(self) -> None:
        """Stop watching tasks; tasks keep running (agents outlive their scheduler)."""
