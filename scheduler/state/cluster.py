"""`ClusterState`: the one owner of what the scheduler knows, and the only caller of the store.

Apps, instances, running deployments, backoff and the launch queue live here, in memory for
the hot paths and in the `Store` for crash safety. Every change goes through a method of this
class, which writes the store first (so anything acknowledged is durable) and memory second,
so the two can never drift apart. Instance changes are frequent and cheap to lose for a
moment (a restarted scheduler reconciles them with its backend), so they are buffered and
written in one transaction per scheduling pass (`flush`), as is the progress of deployments
that a pass records (a restart resumes from the last stored step); in `pacer serve` that
transaction runs on a thread of its own (`write_behind`). App changes, and deployments an API
request starts or cancels, are written at once.

`ReadView` is the read-only face of this class that the API and the health checker use.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app_definitions import HealthCheck, parse_app_definition

from scheduler.decide.backoff import Backoff
from scheduler.deploy.pending import PendingDeployment, is_pending_record
from scheduler.deploy.runs import DeploymentRun, run_from_record, run_record
from scheduler.errors import FencedOut, StoreError, app_not_found
from scheduler.state.apps import AppRecord
from scheduler.state.model import Instance
from scheduler.state.usage import UsageLedger
from scheduler.state.write_behind import WriteBehind
from scheduler.state.store import (
    DeleteApp,
    DeleteDeployment,
    DeleteInstance,
    Fence,
    PutAppVersion,
    PutBackoff,
    PutDeployment,
    PutInstance,
    PutMeta,
    Store,
    Write,
)

log = logging.getLogger(__name__)

CHECKS_CACHE_SIZE = 256


@dataclass
class QueueEntry:
    """Why an app still has instances waiting: shown by /v2/queue."""

    count: int
    since: float
    message: str | None = None
    rejections: dict[str, int] = field(default_factory=dict)
    processed_offers: int = 0
    unused_offers: int = 0
    last_unused_offer_at: float | None = None


class ReadView(Protocol):
    """What readers (the API, the health checker, the sampler) may see of the state."""

    @property
    def apps(self) -> Mapping[str, AppRecord]: ...
    @property
    def instances(self) -> Mapping[str, Instance]: ...
    @property
    def deployments(self) -> Mapping[str, DeploymentRun]: ...
    @property
    def pending(self) -> Mapping[str, PendingDeployment]: ...
    @property
    def queue(self) -> Mapping[str, QueueEntry]: ...
    @property
    def backoffs(self) -> Mapping[str, Backoff]: ...
    @property
    def last_failures(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def framework_id(self) -> str: ...
    @property
    def location(self) -> str: ...

    def app(self, app_id: str) -> AppRecord: ...
    def instances_of(self, app_id: str) -> list[Instance]: ...
    def deployments_of(self, app_id: str) -> list[DeploymentRun]: ...
    def app_versions(self, app_id: str) -> list[str]: ...
    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None: ...
    def health_checks_of(self, inst: Instance) -> list[HealthCheck]: ...


class ClusterState:
    def __init__(self, store: Store, fence: Fence | Callable[[], Fence | None] | None = None, *,
                 write_behind: bool = False) -> None:
        """`fence`: the token every commit carries, or what gives the current one (the leader's,
        which changes with each takeover; None then means this instance may not write).
        `write_behind`: commit each pass's writes on a thread, behind the event loop."""
        self._store = store
        self._fence = fence
        self._behind = WriteBehind(store.commit, self._current_fence, background=write_behind)
        self.apps: dict[str, AppRecord] = {}
        self.instances: dict[str, Instance] = {}
        self.usage = UsageLedger()              # per agent, what the instances holding resources take
        self._by_app: dict[str, dict[str, Instance]] = {}
        self.deployments: dict[str, DeploymentRun] = {}
        self._runs_by_app: dict[str, dict[str, None]] = {}   # app id -> ids of the runs touching it, in order
        self.pending: dict[str, PendingDeployment] = {}      # scheduled cutovers, changes held for approval
        self.backoffs: dict[str, Backoff] = {}
        self.queue: dict[str, QueueEntry] = {}
        self.last_failures: dict[str, dict[str, Any]] = {}
        self.framework_id = ""
        self._meta: dict[str, str] = {}          # small durable values of the backend (the Mesos framework id)
        self.changed_apps: set[str] = set()     # apps whose state changed since the loop last looked
        self.capacity_epoch = 0                  # bumped when resources may have freed (decide/parking.py)
        self._checks_by_version: OrderedDict[tuple[str, str], list[HealthCheck] | None] = OrderedDict()

    @property
    def location(self) -> str:
        return self._store.location

    def _current_fence(self) -> Fence | None:
        fence = self._fence() if callable(self._fence) else self._fence
        if fence is None and callable(self._fence):
            raise FencedOut("this instance is not the leader: it may not write")
        return fence

    def _commit(self, writes: Sequence[Write]) -> None:
        """Durable now: after the pass's writes in flight, replacing buffered ones of the same records."""
        fence = self._current_fence()
        self._behind.before_commit()
        self._store.commit(writes, fence)
        self._behind.committed(writes)

    # -- loading ------------------------------------------------------------------------
    def load(self, new_framework_id: str) -> list[Instance]:
        """Read the store; returns the instances it remembers (the backend decides which live)."""
        stored = self._store.load()
        for app_id, _version, data in stored.apps:
            self.apps[app_id] = AppRecord.from_json(dict(data))
        for app_id, record in stored.backoffs.items():
            self.backoffs[app_id] = Backoff(**record)
        for record in stored.deployments:
            if is_pending_record(record):
                pending = PendingDeployment.from_record(record)
                self.pending[pending.id] = pending
                continue
            run = run_from_record(record)
            self._keep_run(run)
        framework_id = stored.meta.get("framework-id")
        if framework_id is None:
            framework_id = new_framework_id
            self._commit([PutMeta("framework-id", framework_id)])
        self.framework_id = framework_id
        self._meta = dict(stored.meta)
        return list(stored.instances)

    # -- small durable values -------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def put_meta(self, key: str, value: str) -> None:
        """Durable at once: a backend's value (the framework id a Mesos master assigned) must
        survive a kill -9 that comes right after it was learned."""
        self._commit([PutMeta(key, value)])
        self._meta[key] = value

    # -- reads --------------------------------------------------------------------------
    def app(self, app_id: str) -> AppRecord:
        record = self.apps.get(app_id)
        if record is None:
            raise app_not_found(app_id)
        return record

    def instances_of(self, app_id: str) -> list[Instance]:
        return list(self._by_app.get(app_id, {}).values())

    def app_ids_with_instances(self) -> set[str]:
        return set(self._by_app)

    def deployments_of(self, app_id: str) -> list[DeploymentRun]:
        """From an index: every app of a listing asks, and a thousand waiting deployments made
        a scan of all of them per app quadratic."""
        return [self.deployments[run_id] for run_id in self._runs_by_app.get(app_id, ())]

    def run_for(self, app_id: str) -> DeploymentRun | None:
        return next((self.deployments[run_id] for run_id in self._runs_by_app.get(app_id, ())), None)

    def _keep_run(self, run: DeploymentRun) -> None:
        if run.id not in self.deployments:
            for app_id in run.plan.affected_app_ids:
                self._runs_by_app.setdefault(app_id, {})[run.id] = None
        self.deployments[run.id] = run

    def app_versions(self, app_id: str) -> list[str]:
        return self._store.app_versions(app_id)

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        return self._store.app_version(app_id, version)

    def health_checks_of(self, inst: Instance) -> list[HealthCheck]:
        """The health checks of the version the instance runs, as Marathon does: a new version's
        checks (perhaps broken) must not judge, and get killed, the old version's instances."""
        record = self.apps.get(inst.app_id)
        if record is None:
            return []
        if inst.config_version == record.config_version:
            return record.definition.health_checks
        key = (inst.app_id, inst.version)
        if key in self._checks_by_version:
            self._checks_by_version.move_to_end(key)
        else:
            stored = self._store.app_version(inst.app_id, inst.version)
            self._checks_by_version[key] = parse_app_definition(stored).health_checks if stored else None
            if len(self._checks_by_version) > CHECKS_CACHE_SIZE:
                self._checks_by_version.popitem(last=False)
        checks = self._checks_by_version[key]
        return record.definition.health_checks if checks is None else checks

    # -- apps ---------------------------------------------------------------------------
    def commit_apps(self, changes: Mapping[str, AppRecord | None], run: DeploymentRun | None = None) -> None:
        """New versions (or deletions) of apps, durable before they are visible. A new config
        starts with a clean backoff; a deleted app leaves the queue. `run`: the deployment of
        these changes, stored in the same transaction (as `save_deployment` would)."""
        writes: list[Write] = []
        cleared_backoffs = []
        for app_id, record in changes.items():
            if record is None:
                writes.append(DeleteApp(app_id))
                continue
            writes.append(PutAppVersion(app_id, record.version, record.json))
            previous = self.apps.get(app_id)
            if previous is not None and previous.config_version != record.config_version \
                    and app_id in self.backoffs:
                writes.append(PutBackoff(app_id, None))
                cleared_backoffs.append(app_id)
        # with its deployment in one transaction (one fsync), except a deletion: on a full disk
        # the store lets only deletions use its reserve, and the deployment comes after
        together = run is not None and any(record is not None for record in changes.values())
        if together:
            assert run is not None
            writes.append(PutDeployment(run.id, run_record(run)))
        self._commit(writes)
        for app_id in cleared_backoffs:
            self.backoffs.pop(app_id, None)
        for app_id, record in changes.items():
            if record is None:
                self.apps.pop(app_id, None)
                self.backoffs.pop(app_id, None)
                self.queue.pop(app_id, None)
            else:
                self.apps[app_id] = record
            self.changed_apps.add(app_id)
        if run is not None and together:
            self._kept_run(run)
        elif run is not None:
            self.save_deployment(run)

    # -- instances ----------------------------------------------------------------------
    def put_instance(self, inst: Instance) -> None:
        old = self.instances.get(inst.instance_id)
        if old is not None and old.holds_resources and not inst.holds_resources:
            self.capacity_epoch += 1
        self.instances[inst.instance_id] = inst
        self.usage.update(old, inst)
        self._by_app.setdefault(inst.app_id, {})[inst.instance_id] = inst
        self.changed_apps.add(inst.app_id)
        self._behind.put(PutInstance(inst))

    def remove_instance(self, instance_id: str) -> Instance | None:
        old = self.instances.pop(instance_id, None)
        if old is not None:
            self.usage.update(old, None)
            self._by_app.get(old.app_id, {}).pop(instance_id, None)
            self.changed_apps.add(old.app_id)
            self.capacity_epoch += 1
        self._behind.put(DeleteInstance(instance_id))
        return old

    def forget_app_index(self, app_id: str) -> None:
        """An app with no record and no instances left: drop its empty index entry."""
        if not self._by_app.get(app_id):
            self._by_app.pop(app_id, None)

    def forget_instances(self, instance_ids: Sequence[str]) -> None:
        """Instances the backend no longer has, removed from the store at once."""
        self._commit([DeleteInstance(i) for i in instance_ids])

    def flush(self) -> None:
        """Write the buffered changes in one transaction: behind the event loop when the state
        writes behind and a loop runs, else at once (raising what the commit raised; the
        changes are kept for the next flush)."""
        self._behind.flush()

    def drain(self) -> None:
        """Write every buffered change now (shutdown): waits for the transaction in flight."""
        self._behind.drain()

    def close(self) -> None:
        self._behind.close()

    def adopt(self, instances: Sequence[Instance]) -> None:
        """Instances a backend re-adopted after a restart: in memory, already in the store."""
        for inst in instances:
            self.put_instance(inst)
        self._behind.forget([("instance", inst.instance_id) for inst in instances])

    # -- deployments --------------------------------------------------------------------
    def save_deployment(self, run: DeploymentRun, *, at_once: bool = True) -> None:
        """`at_once=False`: progress a pass records, written with the pass's other writes."""
        write = PutDeployment(run.id, run_record(run))
        if at_once:
            self._commit([write])
        else:
            self._behind.put(write)
        self._kept_run(run)

    def _kept_run(self, run: DeploymentRun) -> None:
        """A run now stored: visible, and its current apps looked at by the next pass."""
        self._keep_run(run)
        self.changed_apps.update(a.app_id for a in run.current_actions())

    def note_progress(self, run: DeploymentRun) -> None:
        """Progress bookkeeping that need not survive a crash (the deadline restarts then)."""
        if run.id in self.deployments:
            self.deployments[run.id] = run

    def forget_deployment(self, deployment_id: str, *, at_once: bool = True) -> DeploymentRun | None:
        """`at_once=False`: a deployment a pass found finished (a restart would find it done)."""
        run = self.deployments.get(deployment_id)
        if run is not None:
            if at_once:
                self._commit([DeleteDeployment(deployment_id)])
            else:
                self._behind.put(DeleteDeployment(deployment_id))
            del self.deployments[deployment_id]
            for app_id in run.plan.affected_app_ids:
                runs = self._runs_by_app.get(app_id)
                if runs is not None:
                    runs.pop(deployment_id, None)
                    if not runs:
                        del self._runs_by_app[app_id]
            self.changed_apps.update(run.plan.affected_app_ids)
        return run

    # -- pending deployments (scheduled cutovers, held for approval) ----------------------
    def save_pending(self, pending: PendingDeployment) -> None:
        """Stored beside the running deployments (same collection, same id space), durable
        before it is visible."""
        self._commit([PutDeployment(pending.id, pending.to_record())])
        self.pending[pending.id] = pending

    def forget_pending(self, pending_id: str, *, delete_record: bool = True) -> PendingDeployment | None:
        """Drop a pending deployment; `delete_record=False` when a running deployment of the
        same id has already replaced its record in the store."""
        pending = self.pending.get(pending_id)
        if pending is not None:
            if delete_record:
                self._commit([DeleteDeployment(pending_id)])
            del self.pending[pending_id]
        return pending

    # -- backoff, failures, queue -------------------------------------------------------
    def set_backoff(self, app_id: str, backoff: Backoff | None, *, must_persist: bool = True) -> None:
        """A new launch backoff. Backoff is soft state: when a task's failure cannot be written
        (`must_persist=False`, a full disk), it still applies in memory, so a crash loop is
        held back now and merely starts over after a restart."""
        record = None if backoff is None else {"delay": backoff.delay, "next_launch_at": backoff.next_launch_at,
                                               "last_failure_at": backoff.last_failure_at}
        try:
            self._commit([PutBackoff(app_id, record)])
        except StoreError as exc:
            if must_persist:
                raise
            log.warning("backoff of %s kept in memory only: %s", app_id, exc)
        if backoff is None:
            self.backoffs.pop(app_id, None)
        else:
            self.backoffs[app_id] = backoff

    def record_failure(self, app_id: str, failure: dict[str, Any]) -> None:
        self.last_failures[app_id] = failure

    def set_queue(self, app_id: str, entry: QueueEntry | None) -> None:
        if entry is None:
            self.queue.pop(app_id, None)
        else:
            self.queue[app_id] = entry

    def note_capacity(self) -> None:
        """Resources may have freed outside the instances (new offers from the master)."""
        self.capacity_epoch += 1

    def drain_changed_apps(self) -> set[str]:
        changed, self.changed_apps = self.changed_apps, set()
        return changed
