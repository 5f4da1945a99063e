"""`SchedulerView`: the read-only face the API renders from.

It joins what the state knows (apps, instances, deployments, queue) with what the health
checker knows (check results, readiness) and the backend describes (agents, and for /v2/info
the master and framework it runs as) or reads (a task's sandbox files), so API handlers never reach into the objects that own
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app_definitions import DefinitionError, parse_app_definition
from executor.sandbox_files import FileChunk, FileMissing, OpenedFile

from scheduler.backends import BackendInfo, ClusterBackend
from scheduler.decide.backoff import Backoff
from scheduler.deploy.pending import PendingDeployment
from scheduler.deploy.canary_run import traffic
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.view import healthy
from scheduler.errors import NotFound, app_not_found
from scheduler.health.checker import HealthChecker, render_results
from scheduler.state.apps import AppRecord
from scheduler.state.cluster import ClusterState, QueueEntry
from scheduler.state.model import RUNNING, Instance


class SchedulerView:
    def __init__(self, state: ClusterState, checker: HealthChecker, backend: ClusterBackend) -> None:
        self._state = state
        self._checker = checker
        self._backend = backend

    @property
    def apps(self) -> Mapping[str, AppRecord]:
        return self._state.apps

    @property
    def instances(self) -> Mapping[str, Instance]:
        return self._state.instances

    @property
    def deployments(self) -> Mapping[str, DeploymentRun]:
        return self._state.deployments

    @property
    def pending(self) -> Mapping[str, PendingDeployment]:
        """Scheduled cutovers and changes held for approval (not yet running)."""
        return self._state.pending

    @property
    def queue(self) -> Mapping[str, QueueEntry]:
        return self._state.queue

    @property
    def backoffs(self) -> Mapping[str, Backoff]:
        return self._state.backoffs

    @property
    def last_failures(self) -> Mapping[str, Mapping[str, Any]]:
        return self._state.last_failures

    @property
    def framework_id(self) -> str | None:
        """On Mesos, the id the master gave the framework (None until it did); else the
        scheduler's own, made on its first start."""
        info = self._backend.backend_info()
        return info.framework_id if info.on_mesos else self._state.framework_id

    def backend_info(self) -> BackendInfo:
        return self._backend.backend_info()

    @property
    def location(self) -> str:
        return self._state.location

    def app(self, app_id: str) -> AppRecord:
        record = self._state.apps.get(app_id)
        if record is None:
            raise app_not_found(app_id)
        return record

    def instances_of(self, app_id: str) -> list[Instance]:
        return self._state.instances_of(app_id)

    def deployments_of(self, app_id: str) -> list[DeploymentRun]:
        return self._state.deployments_of(app_id)

    def canary_traffic(self, app_id: str, runs: list[DeploymentRun] | None = None) -> dict[str, Any] | None:
        """The app's ``canaryTraffic`` (per-version HAProxy weights) while a canary runs, else None."""
        record = self._state.apps.get(app_id)
        for run in self._state.deployments_of(app_id) if runs is None else runs:
            canary = run.canary_of(app_id)
            if record is not None and canary is not None:
                return traffic(canary, self._state.instances_of(app_id), record.config_version,
                               lambda inst: self.healthy(inst) is not False and inst.state == RUNNING)
        return None

    def app_versions(self, app_id: str) -> list[str]:
        return self._state.app_versions(app_id)

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        """A stored version as today's rendering shows it: versions stored by an earlier Pacer
        carried every default written out, which strict clients reject."""
        stored = self._state.app_version(app_id, version)
        if stored is None:
            return None
        try:
            return parse_app_definition(stored).to_json()
        except DefinitionError:      # a version valid then, refused by today's rules: as stored
            return stored

    def apps_as_of(self, timestamp: str) -> dict[str, dict[str, Any]]:
        """Each app's newest stored version not after `timestamp` (group rollback by version)."""
        snapshot = {}
        for app_id in self._state.apps:
            versions = [v for v in self._state.app_versions(app_id) if v <= timestamp]
            if versions:
                stored = self.app_version(app_id, versions[0])
                if stored is not None:
                    snapshot[app_id] = stored
        return snapshot

    def healthy(self, inst: Instance) -> bool | None:
        return healthy(self._state, self._checker, inst)

    def health_results(self, instance_id: str) -> list[dict[str, Any]]:
        return render_results(self._checker.records, instance_id)

    def health_records(self, instance_id: str) -> tuple[object, ...]:
        """The instance's current health records: immutable values, replaced on every verdict,
        so the API can tell by identity that a rendered task is still right."""
        records = self._checker.records.get(instance_id)
        return tuple(records) if records else ()

    def readiness(self, instance_id: str) -> dict[str, Any] | None:
        return self._checker.readiness.get(instance_id)

    def agents(self) -> list[dict[str, object]]:
        return self._backend.describe()

    def _task(self, task_id: str) -> Instance:
        inst = self._state.instances.get(task_id)
        if inst is None:
            raise NotFound(f"Task '{task_id}' does not exist")
        return inst

    async def read_task_file(self, task_id: str, name: str, offset: int, length: int) -> FileChunk | FileMissing:
        """A range of a known task's sandbox file, read by the backend that runs the task."""
        return await self._backend.read_task_file(self._task(task_id), name, offset, length)

    async def open_task_file(self, task_id: str, name: str) -> OpenedFile | FileMissing:
        return await self._backend.open_task_file(self._task(task_id), name)
