"""The autoscaler loop: read apps and metrics, decide, resize apps through the scheduler API.

Every ``interval`` seconds one cycle:

1. ``GET /v2/apps`` and ``GET /v2/deployments`` (the API client, `pacer_client`), then, when
   some app has a policy, ``GET /v2/tasks?status=running`` for the running task ids (not
   ``embed=apps.tasks``: at 1,000 apps and 5,000 tasks that body was 3 MB, ~15 MB once parsed,
   every cycle, whether any app autoscales or not);
2. the policy of each app: one registered over the REST API (persisted) wins over the app's
   ``AUTOSCALE_*`` labels; labels that do not parse give a recorded "invalid policy" decision;
3. one metrics query per metric for all apps (``source.task_usage``: cores or bytes per task),
   scaled to % of each task's allocation (the app's ``cpus`` / ``mem``);
4. the pure decision for all apps at once (``autoscaler.decision.decide_all``, numpy);
5. ``PUT /v2/apps/{id} {"instances": N}`` for each app whose size changes — never while a
   deployment other than a scaling one is running for that app.

Every decision (inputs, recommendation, action or the reason for none, and whether the PUT
worked) is kept in memory (``decisions()``, served at ``/v2/autoscaler/decisions``), written
to the metrics sink as ``autoscaler_decision`` and handed to ``on_decision`` (the hook that
``pacer serve`` points at its event bus). A failing API, metrics source or sink never ends the
loop: the cycle's error is counted and the affected apps hold their size.

``series(app_id, seconds)`` reads the same source for charts (``/v2/autoscaler/series``): both
metrics of the app's tasks, shaped by ``autoscaler.series`` with the recorded decisions.

Errors: this module raises nothing of its own; ``pacer_client.ClientError`` and
``metrics.errors.MetricsError`` are caught at their call sites and become reasons.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from metrics.base import MetricsSink, MetricsSource, sink_keeps
from metrics.schema import AUTOSCALER_DECISION, NS_PER_S, decision_point
from metrics.usage import UsageBatch, allocation_units
from pacer_client import ClientError, PacerClient
from periodic import FixedBeat, run_periodically

from .decision import AppInputs, AppState, Decision, decide_all
from .policy import Policy, PolicyError, canonical_app_id, policy_from_labels
from .schedule import spans_between
from .series import series_step, shape_series
from .store import PolicyStore

log = logging.getLogger(__name__)

SCALING_ACTION = "ScaleApplication"
LOOKBACK_WINDOWS = 4    # query this many windows back, to tell "stale" from "never had data"
_NO_STATE = AppState()  # an app's state before its first decision

# what an app's labels gave at the last cycle: (its labels, its canonical id, the policy or why not)
_Parsed = tuple[tuple[tuple[str, Any], ...], str, "Policy | PolicyError | None"]


class Autoscaler:
    def __init__(self, client: PacerClient, source: MetricsSource, sink: MetricsSink | None,
                 policy_store_dir: Path, interval: float = 15.0, *,
                 on_decision: Callable[[dict[str, Any]], None] | None = None,
                 max_decisions: int = 2000, clock: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.client = client
        self.source = source
        self.sink = sink
        self.interval = interval
        self.store = PolicyStore(policy_store_dir)
        self.on_decision = on_decision
        self._clock = clock
        # decisions as made; their JSON is built when read, since most entries never are
        self._log: deque[Decision] = deque(maxlen=max_decisions)
        self._states: dict[str, AppState] = {}
        self.label_policies: dict[str, Policy] = {}
        self.label_errors: dict[str, str] = {}
        # app id as listed -> what its labels gave at the last cycle: labels rarely change, and
        # parsing 2,000 of them every cycle costs more than the decision itself
        self._parsed_labels: dict[str, _Parsed] = {}
        self.cycles = 0
        self.errors = 0
        self.last_error: str | None = None
        self._source_errors: dict[str, str | None] = {}     # metric -> the failure last logged
        self.last_cycle_at: float | None = None

    # -- reading -----------------------------------------------------------------------------
    def decisions(self, app_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded decisions, oldest first (optionally one app's, the last `limit`)."""
        items = [d for d in self._log if app_id is None or d.app_id == app_id]
        return [d.to_json() for d in (items[-limit:] if limit else items)]

    def policies(self) -> list[dict[str, Any]]:
        """Effective policies: the REST ones, then label ones not overridden, then label errors."""
        registered = self.store.all()
        out = [p.to_json() for _, p in sorted(registered.items())]
        out += [p.to_json() for app_id, p in sorted(self.label_policies.items()) if app_id not in registered]
        out += [{"appId": app_id, "source": "labels", "error": err}
                for app_id, err in sorted(self.label_errors.items()) if app_id not in registered]
        return out

    def effective_policy(self, app_id: str, labels: Mapping[str, Any]) -> dict[str, Any] | None:
        """The policy in force for the app, as ``/policies`` shows it: the registered one, else the
        one its ``labels`` give (read now, not at the last cycle), else None."""
        registered = self.store.get(app_id)
        if registered is not None:
            return registered.to_json()
        policy = _parse_labels(app_id, labels)
        if isinstance(policy, PolicyError):
            return {"appId": app_id, "source": "labels", "error": str(policy)}
        return policy.to_json() if policy is not None else None

    async def series(self, app_id: str, seconds: float) -> dict[str, Any] | None:
        """CPU and memory of the app's tasks over the last ``seconds`` with its instance count, for
        charts (`autoscaler.series`); None for an unknown app. Raises ``ClientError`` when the
        scheduler API fails and ``MetricsError`` when the metrics source does."""
        app = await self.client.get_app(app_id)
        if app is None:
            return None
        end = self._clock()
        start = end - seconds
        cpu = await self.source.task_usage("cpu", start, end, [app_id])
        mem = await self.source.task_usage("mem", start, end, [app_id])
        points = shape_series(
            cpu.get(app_id, {}), mem.get(app_id, {}), cpus=_number(app.get("cpus")),
            mem_mb=_number(app.get("mem")), decisions=self.decisions(app_id), current=int(app.get("instances") or 0),
            start=start, end=end, step=series_step(seconds))
        policy = self.store.get(app_id) or _parse_labels(app_id, app.get("labels") or {})
        windows = spans_between(policy.schedule, start, end) if isinstance(policy, Policy) else []
        return {"appId": app_id, "points": points, "policy": self.effective_policy(app_id, app.get("labels") or {}),
                "windows": [w.to_json() for w in windows]}

    def status(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "errors": self.errors, "lastError": self.last_error,
                "lastCycleAt": self.last_cycle_at, "interval": self.interval,
                "sink": self.sink.stats() if self.sink is not None else None}

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Cycle every `interval` seconds until cancelled; never raises anything else.

        The guarded loop logs a failing cycle once per distinct error; `errors` and
        `last_error` still count every one, since `/v2/autoscaler/status` serves them.
        """
        beat = FixedBeat(self.interval, asyncio.get_running_loop().time)
        await run_periodically("autoscaler", self._cycle, beat, log=log)

    async def _cycle(self) -> None:
        """One round of `run`: a failure is counted where `status()` serves it, then re-raised
        for the loop to log and survive."""
        try:
            await self.run_once()
        except Exception as exc:   # a bug in one cycle must not end autoscaling: count, then retry
            self.errors += 1
            self.last_error = repr(exc)
            raise

    async def run_once(self) -> list[Decision]:
        now = self._clock()
        self.cycles += 1
        self.last_cycle_at = now
        try:
            apps = await self.client.list_apps(embed=None)
            deployments = await self.client.deployments()
        except (ClientError, asyncio.TimeoutError) as exc:
            return self._api_failed(exc)
        if not isinstance(apps, list) or not isinstance(deployments, list):
            self.errors += 1
            self.last_error = "scheduler API answered an unexpected shape"
            return []

        decisions: list[Decision] = []
        targets: dict[str, tuple[Policy, _Listed]] = {}
        registered = self.store.all()
        self.label_policies, self.label_errors = label_policies, label_errors = {}, {}
        parsed, self._parsed_labels = self._parsed_labels, {}
        for app in apps:
            listed_id = app.get("id")
            if not isinstance(listed_id, str):
                continue
            app_id, label_policy = self._label_policy(listed_id, app.get("labels") or {}, parsed)
            policy = registered.get(app_id)
            if isinstance(label_policy, PolicyError):
                exc, label_policy = label_policy, None
                label_errors[app_id] = str(exc)
                if policy is None:
                    decisions.append(_invalid(app_id, app, now, f"invalid policy labels: {exc}"))
            if label_policy is not None:
                label_policies[app_id] = label_policy
            policy = policy or label_policy
            if policy is not None:      # read now, while the listing is at hand (in the CPU's caches)
                targets[app_id] = (policy, _listed(app))
        for app_id in [a for a in self._states if a not in targets]:
            del self._states[app_id]

        try:
            running = await self._running_tasks() if targets else {}
        except (ClientError, asyncio.TimeoutError) as exc:
            return self._api_failed(exc)
        if not isinstance(running, dict):
            self.errors += 1
            self.last_error = "scheduler API answered an unexpected shape"
            return []
        blocked = _blocking_deployments(deployments)
        usage, errors = await self._fetch_usage(targets, now)
        states = self._states
        items = [(policy, _inputs_of(app_id, listed._replace(running=running.get(app_id, ())), policy,
                                     usage.get(policy.metric), errors.get(policy.metric), blocked.get(app_id)),
                  states.get(app_id, _NO_STATE))
                 for app_id, (policy, listed) in targets.items()]
        for decision, state in decide_all(items, now):
            states[decision.app_id] = state
            if decision.scales:
                decision = await self._apply(decision)
            decisions.append(decision)
        self._record(decisions)
        return decisions

    def _api_failed(self, exc: Exception) -> list[Decision]:
        self.errors += 1
        self.last_error = f"scheduler API: {exc}"
        log.warning("autoscaler: cannot read apps: %s", exc)
        return []

    async def _running_tasks(self) -> dict[str, tuple[str, ...]] | None:
        """App id -> ids of its running tasks, oldest first (as the app's embedded tasks list
        them); None when the answer is not a list."""
        tasks = await self.client.tasks(status="running")
        if not isinstance(tasks, list):
            return None
        by_listed_id: dict[str, list[str]] = {}     # 20,000 tasks: app ids made canonical once each
        for task in tasks:
            if isinstance(task, dict) and task.get("state") == "TASK_RUNNING":
                task_id, app_id = task.get("id"), task.get("appId")
                if isinstance(task_id, str) and isinstance(app_id, str):
                    by_listed_id.setdefault(app_id, []).append(task_id)
        running: dict[str, tuple[str, ...]] = {}
        for listed_id, ids in by_listed_id.items():
            app_id = canonical_app_id(listed_id)
            running[app_id] = running.get(app_id, ()) + tuple(ids)
        return running

    def _label_policy(self, listed_id: str, labels: Mapping[str, Any],
                      parsed: Mapping[str, _Parsed]) -> tuple[str, Policy | PolicyError | None]:
        """The app's canonical id and its label policy (or why it does not parse), parsed again
        only when its labels changed since the last cycle."""
        pairs = tuple(labels.items())
        last = parsed.get(listed_id)
        if last is not None and last[0] == pairs:
            self._parsed_labels[listed_id] = last
            return last[1], last[2]
        app_id = canonical_app_id(listed_id)
        policy = _parse_labels(app_id, labels)
        self._parsed_labels[listed_id] = (pairs, app_id, policy)
        return app_id, policy

    async def _fetch_usage(self, targets: Mapping[str, tuple[Policy, _Listed]],
                           now: float) -> tuple[dict[str, UsageBatch], dict[str, str]]:
        by_metric: dict[str, list[str]] = {}
        windows: dict[str, float] = {}
        for app_id, (policy, _app) in targets.items():
            if policy.enabled:
                by_metric.setdefault(policy.metric, []).append(app_id)
                windows[policy.metric] = max(windows.get(policy.metric, 0.0), policy.window)
        usage: dict[str, UsageBatch] = {}
        errors: dict[str, str] = {}
        for metric, app_ids in by_metric.items():
            start = now - windows[metric] * LOOKBACK_WINDOWS
            try:
                usage[metric] = UsageBatch.of(await self.source.task_usage(metric, start, now, app_ids))
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # MetricsError, or a broken source: hold, say why
                errors[metric] = str(exc) or type(exc).__name__
                if self._source_errors.get(metric) != errors[metric]:   # said once, not every cycle
                    log.warning("autoscaler: metrics source failed for %s: %s (holding every app on it)",
                                metric, errors[metric])
            else:
                if self._source_errors.get(metric) is not None:
                    log.info("autoscaler: metrics source answers again for %s", metric)
        self._source_errors = {m: errors.get(m) for m in by_metric}
        return usage, errors

    async def _apply(self, decision: Decision) -> Decision:
        try:
            await self.client.scale_app(decision.app_id, decision.desired)
        except (ClientError, asyncio.TimeoutError) as exc:
            log.warning("autoscaler: scaling %s to %d failed: %s", decision.app_id, decision.desired, exc)
            return replace(decision, extra={"applied": False, "error": str(exc)})
        log.info("autoscaler: %s %s -> %d (%s)", decision.app_id, decision.current, decision.desired,
                 decision.reason)
        return replace(decision, extra={"applied": True})

    def _record(self, decisions: list[Decision]) -> None:
        self._log.extend(decisions)
        if self.sink is not None and sink_keeps(self.sink, AUTOSCALER_DECISION):
            try:
                self.sink.write([decision_point(d.app_id, d.action, d.desired, d.current, d.observed, d.target,
                                                d.reason, int(d.time * NS_PER_S)) for d in decisions])
            except Exception:   # the sink must never stop the loop
                log.exception("autoscaler: writing decisions to the metrics sink failed")
        if self.on_decision is not None:
            for decision in decisions:
                try:
                    self.on_decision(decision.to_json())
                except Exception:
                    log.exception("autoscaler: on_decision hook failed")


def _invalid(app_id: str, app: Mapping[str, Any], now: float, reason: str) -> Decision:
    current = int(app.get("instances") or 0)
    return Decision(app_id=app_id, time=now, current=current, desired=current, action="none", reason=reason)


def _blocking_deployments(deployments: list[Any]) -> dict[str, str]:
    """app id -> why it must not be scaled now (a running deployment that is not a scale)."""
    out: dict[str, str] = {}
    for dep in deployments:
        if not isinstance(dep, Mapping):
            continue
        actions = dep.get("currentActions") or [a for step in dep.get("steps") or [] for a in step.get("actions", [])]
        for action in actions:
            name, app_id = action.get("action"), action.get("app")
            if isinstance(app_id, str) and name != SCALING_ACTION:
                out[canonical_app_id(app_id)] = f"deployment {dep.get('id')} in progress ({name})"
    return out


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _parse_labels(app_id: str, labels: Mapping[str, str]) -> Policy | PolicyError | None:
    try:
        return policy_from_labels(app_id, labels)
    except PolicyError as exc:
        return exc


class _Listed(NamedTuple):
    """What a cycle reads of an app's listing (``GET /v2/apps``), in one pass."""

    current: int                    # configured instances
    running: tuple[str, ...]        # ids of the tasks running now (from ``GET /v2/tasks``)
    cpus: Any                       # as listed: parsed where the policy's metric needs them
    mem: Any


def _listed(app: Mapping[str, Any]) -> _Listed:
    """`running` from the app's embedded tasks when listed with them (a cycle lists apps
    without, and fills it in from the running tasks)."""
    tasks = app.get("tasks") or []
    running = tuple([task_id for t in tasks
                     if (isinstance(t, dict) or isinstance(t, Mapping)) and t.get("state") == "TASK_RUNNING"
                     and isinstance(task_id := t.get("id"), str)])
    return _Listed(int(app.get("instances") or 0), running, app.get("cpus"), app.get("mem"))


def _inputs(app_id: str, app: Mapping[str, Any], policy: Policy,
            usage: UsageBatch | None, error: str | None,
            blocked: str | None) -> AppInputs:
    return _inputs_of(app_id, _listed(app), policy, usage, error, blocked)


def _inputs_of(app_id: str, listed: _Listed, policy: Policy, usage: UsageBatch | None, error: str | None,
               blocked: str | None) -> AppInputs:
    current, running = listed.current, listed.running
    if usage is None:
        return AppInputs(app_id, current, running, None, error or "no metrics queried", blocked)
    try:
        allocation = allocation_units(policy.metric, float(listed.cpus or 0), float(listed.mem or 0))
    except (TypeError, ValueError):
        allocation = 0.0
    if allocation <= 0:
        return AppInputs(app_id, current, running, None, f"the app allocates no {policy.metric}", blocked)
    return AppInputs(app_id, current, running, usage.app_series(app_id), None, blocked, 100.0 / allocation)
