"""The write path: changes to desired state (apps, groups, task kills, deployments) as the
API asks for them.

Each change validates everything first, then plans (pure `build_plan`), refuses with
`AppLocked` when another deployment holds one of the apps (unless forced), commits through
`ClusterState` (durable before visible), and only then starts the deployment. A rejected
request leaves no trace. It depends on small seams, not on the scheduler: the state, an event
publisher, a task killer, the clocks and a wake-up callback.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from app_definitions import ValidationFailed, apply_app_update, is_rollback_request, \
    parse_app_definition

from scheduler.deploy.canary_run import CanaryRun, canary_apps
from scheduler.deploy.plan import DeploymentPlan, build_plan
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.tasks import EventPublisher, TaskKiller
from scheduler.errors import AppLocked, Conflict, InvalidRequest, NotFound
from scheduler.state.apps import AppRecord, finalize_app
from scheduler.state.clock import Clock, VersionClock
from scheduler.state.cluster import ClusterState
from scheduler.state.model import Instance

def _canaries_of(plan: DeploymentPlan) -> tuple[CanaryRun, ...]:
    """The canaries this plan runs, one per canary app (a group written whole may hold several),
    each stepping on its own; by app id."""
    return tuple(CanaryRun(app_id) for app_id in sorted(set(canary_apps(plan))))


class AppWrites:
    def __init__(self, state: ClusterState, events: EventPublisher, killer: TaskKiller, clock: Clock,
                 wake: Callable[[], None]) -> None:
        self.state = state
        self.events = events
        self._killer = killer
        self._clock = clock
        self._versions = VersionClock(clock)
        self._wake = wake


    # -- deployments --------------------------------------------------------------------
    def _locked_by(self, app_ids: list[str]) -> list[str]:
        """Deployments holding any of ``app_ids``, in the order they started (from the state's
        index: a write beside a thousand waiting deployments looked at every plan)."""
        holding = {run.id for app_id in app_ids for run in self.state.deployments_of(app_id)}
        return [run_id for run_id in self.state.deployments if run_id in holding]

    def _plan(self, changes: Mapping[str, AppRecord | None],
              restart: frozenset[str] = frozenset(), plan_id: str | None = None) -> DeploymentPlan:
        original = {app_id: rec.definition for app_id, rec in self.state.apps.items()}
        target = dict(original)
        for app_id, record in changes.items():
            if record is None:
                target.pop(app_id, None)
            else:
                target[app_id] = record.definition
        version = next((r.version for r in changes.values() if r is not None), None) or self._versions.next()
        return build_plan(original, target, plan_id=plan_id or str(uuid.uuid4()), version=version, restart=restart)

    def _deploy(self, changes: Mapping[str, AppRecord | None], *, force: bool,
                restart: frozenset[str] = frozenset(), plan_id: str | None = None,
                canary: bool = True) -> DeploymentRun:
        """Plan, check locks, persist, apply: the one path every app change takes. `canary`:
        False for a rollback, which restores the stable version at once, never through steps."""
        plan = self._plan(changes, restart, plan_id)
        canaries = _canaries_of(plan) if canary else ()
        locked = self._locked_by(list(changes))
        if locked and not force:
            raise AppLocked(locked)
        run = self._new_run(plan, canaries)
        # the apps and their deployment in one transaction: one fsync per write, not two
        self.state.commit_apps(changes, run if plan.steps else None)
        for app_id, record in changes.items():
            if record is None:
                self.events.publish("app_terminated_event", appId=app_id)
        for dep_id in locked:
            self._cancel(dep_id, "canceled by a forced deployment")
        return self._announce(run)

    def _new_run(self, plan: DeploymentPlan, canaries: tuple[CanaryRun, ...] = ()) -> DeploymentRun:
        t = self._clock.now()
        return DeploymentRun(plan=plan, started_at=t, last_progress_at=t, canaries=canaries)

    def _start_run(self, plan: DeploymentPlan) -> DeploymentRun:
        run = self._new_run(plan)
        if plan.steps:
            self.state.save_deployment(run)
        return self._announce(run)

    def _announce(self, run: DeploymentRun) -> DeploymentRun:
        """The events of a stored run (or of a plan with nothing to do), and a pass for it."""
        plan = run.plan
        if plan.steps:
            self.events.publish("deployment_info", plan=plan.to_json(), currentStep=run.to_json()["currentActions"])
        else:
            self.events.publish("deployment_success", id=plan.id, plan=plan.to_json())
        self._wake()
        return run

    def _cancel(self, deployment_id: str, reason: str) -> DeploymentRun:
        run = self.state.forget_deployment(deployment_id)
        if run is None:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        self.events.publish("deployment_failed", id=run.id, plan=run.plan.to_json(), reason=reason)
        return run

    def resume_restarts(self, app_ids: frozenset[str]) -> DeploymentRun:
        """A fresh rolling restart of apps left mixed by a crash no stored plan covers."""
        return self._start_run(self._plan({}, restart=app_ids))

    def cancel_deployment(self, deployment_id: str, *, force: bool) -> DeploymentRun | None:
        """DELETE /v2/deployments/{id}: force cancels only; otherwise a rollback deployment starts."""
        run = self._cancel(deployment_id, "canceled by request" if force else "rolled back by request")
        return None if force else self.rollback(run)

    def rollback(self, run: DeploymentRun) -> DeploymentRun:
        """Put the original definitions back as new versions and deploy them (forced)."""
        changes: dict[str, AppRecord | None] = {}
        for app_id in run.plan.affected_app_ids:
            original = run.plan.original.get(app_id)
            changes[app_id] = None if original is None else self._restored(original.to_json())
        return self._deploy(changes, force=True, canary=False)

    def _restored(self, stored: dict[str, Any]) -> AppRecord:
        """A stored version brought back as a new version with its original config identity,
        so instances still running that config are kept, not restarted."""
        version = self._versions.next()
        config = (stored.get("versionInfo") or {}).get("lastConfigChangeAt") or version
        return AppRecord.from_json({**stored, "version": version,
                                    "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": config}})

    # -- apps ---------------------------------------------------------------------------
    def _used_service_ports(self, except_app: str) -> dict[int, str]:
        return {port: app_id for app_id, rec in self.state.apps.items() if app_id != except_app
                for port in rec.service_ports if port}

    def prepare_create(self, data: Any) -> AppRecord:
        """The new app's record, validated and finalised, not stored (POST /v2/apps)."""
        app = parse_app_definition(data)
        if app.id in self.state.apps:
            raise Conflict(f"An app with id [{app.id}] already exists.")
        return finalize_app(app, None, self._versions.next(), self._used_service_ports(app.id))

    def create_app(self, data: Any, *, force: bool = False) -> tuple[AppRecord, DeploymentRun]:
        record = self.prepare_create(data)
        return record, self._deploy({record.app_id: record}, force=force)

    def _prepare_update(self, app_id: str, body: Any, partial: bool,
                        batch: Mapping[int, str]) -> tuple[AppRecord, bool]:
        """The new record of one app of a PUT/PATCH; `batch` holds the service ports the
        batch's earlier apps took, so two new apps of one batch never get the same port."""
        if not isinstance(body, dict):
            raise ValidationFailed([("/", "error.expected.jsobject")])
        existing = self.state.apps.get(app_id)
        rollback_to = is_rollback_request(body)
        if rollback_to is not None:
            stored = self.state.app_version(app_id, rollback_to)
            if stored is None:
                raise NotFound(f"App '{app_id}' does not exist in version {rollback_to}")
            return self._restored(stored), existing is None
        elif partial and existing is not None:
            data = apply_app_update(existing.json, body)
        else:
            data = dict(body)
        data["id"] = app_id
        app = parse_app_definition(data)
        used = {**self._used_service_ports(app_id), **{p: a for p, a in batch.items() if a != app_id}}
        record = finalize_app(app, existing, self._versions.next(), used)
        return record, existing is None

    def update_apps(self, updates: list[tuple[str, Any]], *, partial: bool = True,
                    must_exist: bool = False, force: bool = False) -> tuple[list[AppRecord], DeploymentRun, bool]:
        """PUT/PATCH for one or many apps: all are validated before any is stored.

        Upsert, partial merge by default, or rollback when the body is `{"version": ts}`.
        Returns the new records, their deployment and whether the (first) app was created.
        """
        prepared = self.prepare_updates(updates, partial=partial, must_exist=must_exist)
        records = [record for record, _ in prepared]
        run = self._deploy({r.app_id: r for r in records}, force=force)
        return records, run, bool(prepared) and prepared[0][1]

    def prepare_updates(self, updates: list[tuple[str, Any]], *, partial: bool = True,
                        must_exist: bool = False) -> list[tuple[AppRecord, bool]]:
        """The new records (and whether each creates its app), validated and finalised, not stored."""
        if must_exist:
            for app_id, _ in updates:
                self.state.app(app_id)
        prepared: list[tuple[AppRecord, bool]] = []
        batch: dict[int, str] = {}
        for app_id, body in updates:
            record, created = self._prepare_update(app_id, body, partial, batch)
            prepared.append((record, created))
            batch.update({port: record.app_id for port in record.service_ports if port})
        return prepared

    def plan_changes(self, changes: Mapping[str, AppRecord | None], plan_id: str) -> DeploymentPlan:
        """The plan these changes would run now, under the given id; nothing is stored."""
        return self._plan(changes, plan_id=plan_id)

    def deploy_changes(self, changes: Mapping[str, AppRecord | None], *, plan_id: str,
                       force: bool = False) -> DeploymentRun:
        """Store and start prepared changes as deployment `plan_id` (a pending one starting)."""
        return self._deploy(changes, force=force, plan_id=plan_id)

    def restart_app(self, app_id: str, *, force: bool = False) -> tuple[AppRecord, DeploymentRun]:
        existing = self.state.app(app_id)
        version = self._versions.next()
        record = AppRecord.from_json({**existing.json, "version": version,
                                      "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version}})
        return record, self._deploy({app_id: record}, force=force, restart=frozenset({app_id}))

    def delete_app(self, app_id: str, *, force: bool = True) -> DeploymentRun:
        self.state.app(app_id)
        return self._deploy({app_id: None}, force=force)

    def _changes_to(self, new_apps: Mapping[str, dict[str, Any]]) -> dict[str, AppRecord | None]:
        """Group writes give the full desired app-JSON map; keep only what differs."""
        changes: dict[str, AppRecord | None] = {a: None for a in self.state.apps if a not in new_apps}
        version = self._versions.next()     # one group change, one version for all its apps
        for app_id, data in sorted(new_apps.items()):
            existing = self.state.apps.get(app_id)
            clean = {k: v for k, v in data.items() if k not in ("version", "versionInfo")}
            if existing is not None and clean == {k: v for k, v in existing.json.items()
                                                  if k not in ("version", "versionInfo")}:
                continue
            try:
                app = parse_app_definition(clean)
            except ValidationFailed as exc:
                raise exc.with_prefix(f"/apps({app_id})") from None
            used = {**self._used_service_ports(app_id),
                    **{p: r.app_id for r in changes.values() if r is not None for p in r.service_ports if p}}
            changes[app_id] = finalize_app(app, existing, version, used)
        return changes

    def plan_replace(self, new_apps: Mapping[str, dict[str, Any]]) -> DeploymentPlan:
        """The plan a group write would run, without running it (`dryRun=true`)."""
        return self._plan(self._changes_to(new_apps))

    def replace_apps(self, new_apps: Mapping[str, dict[str, Any]], *, force: bool) -> DeploymentRun:
        return self._deploy(self._changes_to(new_apps), force=force)

    # -- tasks --------------------------------------------------------------------------
    def kill_instances(self, ids: list[str], *, scale: bool, wipe: bool,
                       force: bool = False) -> tuple[list[Instance], DeploymentRun | None]:
        if scale and wipe:
            raise InvalidRequest("You cannot use scale and wipe at the same time.")
        unknown = [i for i in ids if i not in self.state.instances]
        if unknown:
            raise InvalidRequest(f"Invalid task ids: {', '.join(unknown)}")
        targets = [self.state.instances[i] for i in ids]
        run = None
        if scale:
            per_app: dict[str, int] = {}
            for inst in targets:
                if inst.active:
                    per_app[inst.app_id] = per_app.get(inst.app_id, 0) + 1
            changes: dict[str, AppRecord | None] = {}
            for app_id, n in per_app.items():
                if app_id in self.state.apps:
                    current = self.state.apps[app_id]
                    app = parse_app_definition({**current.json, "instances": max(0, current.definition.instances - n)})
                    changes[app_id] = finalize_app(app, current, self._versions.next(),
                                                   self._used_service_ports(app_id))
            run = self._deploy(changes, force=True) if changes else None
        for inst in targets:
            self._killer.kill(inst)
        self._wake()
        return targets, run

    def reset_delay(self, app_id: str) -> None:
        self.state.app(app_id)
        if app_id not in self.state.backoffs and app_id not in self.state.queue:
            raise NotFound(f"Application {app_id} not found in tasks queue.")
        self.state.set_backoff(app_id, None)
        self._wake()


__all__ = ["AppWrites"]
