"""Serialised JSON of apps and tasks, kept for as long as what they show is unchanged.

`GET /v2/apps?embed=apps.tasks` on 1,000 apps and 5,000 tasks is 3 MB of JSON; building it from
dicts on every request took 120 ms (half of it formatting timestamps), while a deployment tool
polls it every few seconds. Everything such a body shows is an immutable value that the
scheduler replaces when it changes: the app record, each instance, each health record, each
deployment. So "the same objects" means "the same bytes": a task's JSON is kept with the
instance and health records it was made from, an app's with its record, its instances, their
health records, its deployments' ids and its last failure, compared by identity (or equal value). A request then
costs a walk over the objects and a join of the bytes.

The bytes are assembled, not re-parsed: an app's JSON is its definition's JSON with the closing
brace replaced by the counters and embedded lists, in the key order `render.render_app` uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from scheduler.api.params import SchedulerApi
from scheduler.api.render import render_deployment_ref, render_task, task_counts
from scheduler.deploy.runs import DeploymentRun
from scheduler.state.apps import AppRecord
from scheduler.state.model import Instance

_encode = json.JSONEncoder(separators=(",", ":")).encode

PRUNE_SLACK = 256
"""Entries of gone apps and instances are dropped once this many more are kept than live."""


def _dumps(value: Any) -> bytes:
    return _encode(value).encode()


class _AppKey:
    """What an app's JSON was made from; equal when every part is the very same object."""

    __slots__ = ("record", "instances", "health", "runs", "failure")

    def __init__(self, record: AppRecord, instances: list[Instance], health: list[tuple[object, ...]],
                 runs: list[DeploymentRun], failure: object) -> None:
        self.record = record
        self.instances = instances
        self.health = health
        self.runs = tuple((run.id, run.canaries) for run in runs)   # a canary's step changes its weights
        self.failure = failure

    def same_as(self, other: _AppKey) -> bool:
        # list and tuple equality tries identity first, element by element: the usual all-same
        # case costs no field comparison, and equal values would render equal JSON anyway
        return (self.record is other.record and self.failure is other.failure and self.runs == other.runs
                and self.instances == other.instances and self.health == other.health)


class RenderCache:
    """One API's cache of app and task JSON (bytes), checked against the live objects per request."""

    def __init__(self, sched: SchedulerApi) -> None:
        self._sched = sched
        self._tasks: dict[str, tuple[Instance, tuple[object, ...], bytes]] = {}
        self._apps: dict[tuple[str, bool, bool], tuple[_AppKey, bytes]] = {}

    # -- tasks --------------------------------------------------------------------------------
    def task(self, inst: Instance) -> bytes:
        health = self._sched.view.health_records(inst.instance_id)
        hit = self._tasks.get(inst.instance_id)
        if hit is not None and hit[0] is inst and hit[1] == health:
            return hit[2]
        data = _dumps(render_task(inst, self._sched))
        self._tasks[inst.instance_id] = (inst, health, data)
        return data

    def tasks(self, instances: Sequence[Instance]) -> bytes:
        """A JSON array of the tasks, in the order given."""
        data = b"[" + b",".join([self.task(i) for i in instances]) + b"]"
        self._prune()
        return data

    # -- apps ---------------------------------------------------------------------------------
    def app(self, record: AppRecord, embed: set[str] | frozenset[str]) -> bytes:
        """`render.render_app(sched, record, embed)` as bytes."""
        view = self._sched.view
        app_id = record.app_id
        with_tasks, with_failure = "tasks" in embed, "lastTaskFailure" in embed
        insts = view.instances_of(app_id)
        failure = view.last_failures.get(app_id) if with_failure else None
        runs = view.deployments_of(app_id)
        key = _AppKey(record, insts, [view.health_records(i.instance_id) for i in insts], runs, failure)
        slot = (app_id, with_tasks, with_failure)
        hit = self._apps.get(slot)
        if hit is not None and hit[0].same_as(key):
            return hit[1]
        parts = [self._definition(record)[:-1]]      # the definition's object, still open
        counts = _dumps(task_counts(self._sched, insts))
        parts.append(b"," + counts[1:-1])
        parts.append(b',"deployments":' + _dumps(render_deployment_ref(runs)))
        canary = view.canary_traffic(app_id, runs)
        if canary is not None:
            parts.append(b',"canaryTraffic":' + _dumps(canary))
        if with_tasks:
            parts.append(b',"tasks":[' + b",".join([self.task(i) for i in sorted(insts, key=_staged)]) + b"]")
        if failure is not None:
            parts.append(b',"lastTaskFailure":' + _dumps(failure))
        parts.append(b"}")
        data = b"".join(parts)
        self._apps[slot] = (key, data)
        return data

    def apps(self, records: Sequence[AppRecord], embed: set[str] | frozenset[str]) -> bytes:
        """A JSON array of the apps, in the order given."""
        data = b"[" + b",".join([self.app(r, embed) for r in records]) + b"]"
        self._prune()
        return data

    @staticmethod
    def _definition(record: AppRecord) -> bytes:
        return record.encoded       # the record keeps its JSON serialised, as `_dumps` writes it

    def _prune(self) -> None:
        view = self._sched.view
        if len(self._tasks) > len(view.instances) + PRUNE_SLACK:
            live = view.instances
            self._tasks = {iid: hit for iid, hit in self._tasks.items() if iid in live}
        if len(self._apps) > 4 * len(view.apps) + PRUNE_SLACK:
            apps = view.apps
            self._apps = {slot: hit for slot, hit in self._apps.items() if slot[0] in apps}


RENDER_CACHE_KEY = web.AppKey("render_cache", RenderCache)


def render_cache_of(request: web.Request) -> RenderCache:
    """The API's cache, installed by `build_api` (one per application, kept across requests)."""
    return request.app[RENDER_CACHE_KEY]


def _staged(inst: Instance) -> float:
    return inst.staged_at
