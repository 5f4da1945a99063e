"""The scheduling pass: from a view of the cluster to everything that must change, decided
purely (Nomad's reconciler returns its results the same way; the engine carries them out).

For each app it considers, the pass works out the instances to kill, how many to launch and
where (placement against the free offers, consumed app by app), why launches wait (backoff,
no fitting offer, a backend that cannot run the app), which unreachable instances are given up
(`unreachable.py`: replaced, then expunged) and how running deployments move on (a completed
step, progress, a stalled deadline). It never touches the store, the backend,
the clock or an event: `decide(view, now)` returns a `Pass`, and that is all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from scheduler.decide import backoff as backoff_math
from scheduler.decide import unreachable
from scheduler.decide.constraints import AgentView
from scheduler.decide.placement import AgentOffer, OfferTable, Placement, TaskRequest, place_tasks
from scheduler.decide.reconcile import Convergence, plan_convergence
from scheduler.decide.restart import InstanceState, next_restart_step
from scheduler.deploy.canary_run import StableVersion, canary_convergence, canary_size, stable_replacements
from scheduler.deploy.plan import DeploymentAction
from scheduler.deploy.progress import RunVerdict, StallEvidence, failures_since, judge_run
from scheduler.deploy.runs import DeploymentRun
from scheduler.state.apps import AppRecord, task_request
from scheduler.state.model import RUNNING, Instance


WAITING_FOR_BACKOFF = "waiting for backoff"


@dataclass(frozen=True)
class InstanceHealth:
    """What the health checker knows of one instance, in the terms deployments use."""

    healthy: bool                 # Marathon's consideredHealthy: running, and alive by its checks (or none)
    ready: bool                   # readiness passed (or the app has no readiness check and it runs)
    failure_cause: str | None = None


@dataclass(frozen=True)
class ClusterView:
    """Everything a pass may look at. Built by the engine from `ClusterState` and the backend."""

    apps: Mapping[str, AppRecord]
    instances: Mapping[str, Sequence[Instance]]          # by app id
    deployments: Sequence[DeploymentRun]
    backoffs: Mapping[str, backoff_math.Backoff]
    agents: Mapping[str, AgentView]
    offers: Callable[[], Sequence[AgentOffer]]           # free resources; computed only if a pass launches
    health: Mapping[str, InstanceHealth]                 # by instance id
    unsupported: Callable[[AppRecord], str | None]       # why the backend cannot run an app at all
    last_failures: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    queue_reasons: Mapping[str, str | None] = field(default_factory=dict)
    app_ids: frozenset[str] | None = None                # None: every app, and orphaned instances
    seed: int = 0
    parked: Mapping[str, int] = field(default_factory=dict)   # app id -> count: not placed again (parking.py)


@dataclass(frozen=True)
class Launch:
    """One instance to start. ``stable``: launch that version instead of the app's current one
    (a stable instance replaced during a canary phase); None: the app's current version."""

    app_id: str
    agent_id: str
    host: str
    ports: tuple[int, ...]
    stable: StableVersion | None = None


@dataclass(frozen=True)
class Kill:
    instance_id: str
    reason: str = ""


@dataclass(frozen=True)
class QueueStatus:
    """Instances an app still waits for after this pass, and why."""

    count: int
    message: str | None = None
    rejections: Mapping[str, int] = field(default_factory=dict)
    placed: bool = False          # placement was tried (not held back by backoff)
    offers_seen: int = 0          # offers this pass weighed for the app
    offers_unused: bool = False   # the offers were weighed and not all instances could be placed
    reason_kept: bool = False     # no offer to weigh: `message` is the last pass's reason, kept with its rejections


@dataclass(frozen=True)
class Pass:
    kills: tuple[Kill, ...] = ()
    launches: tuple[Launch, ...] = ()
    queue: Mapping[str, QueueStatus | None] = field(default_factory=dict)   # None: leaves the queue
    expired_backoffs: tuple[str, ...] = ()
    runs: tuple[RunVerdict, ...] = ()
    forgotten_apps: tuple[str, ...] = ()       # no definition and no instance left
    expunged: tuple[str, ...] = ()             # unreachable instances given up for good (their tasks killed)


def converge_app(record: AppRecord, insts: Sequence[Instance], action: DeploymentAction | None,
                 agents: Mapping[str, AgentView], health: Mapping[str, InstanceHealth],
                 now: float) -> tuple[Convergence, bool]:
    """What this pass does for one app, and whether its deployment action is complete.

    A StartApplication step holds a new app at 0 (its scale_to) until the step of its
    dependency level scales it up, which is what orders a group's deployment. An unreachable
    instance counts as one of the app's until its strategy gives it up (inactive), and an
    inactive one is left out of the judgement of the step.
    """
    app = record.definition
    gives_up = app.unreachable_strategy

    def counted(i: Instance) -> bool:
        return unreachable.counts(i, gives_up, now)

    if action is not None and action.action == "RestartApplication":
        states = [InstanceState(instance_id=i.instance_id, is_new=i.config_version == record.config_version,
                                healthy=_healthy(health, i), ready=_ready(health, i),
                                active=counted(i), staged_at=i.staged_at) for i in insts]
        strategy = app.upgrade_strategy
        step = next_restart_step(app.instances, (strategy.minimum_health_capacity, strategy.maximum_over_capacity),
                                 states, resident=app.is_resident)
        return Convergence(launch=step.launch, kill=tuple(step.kill)), step.done
    target = action.scale_to if action is not None and action.scale_to is not None else app.instances
    plan = plan_convergence(target=target, instances=insts, kill_selection=app.kill_selection,
                            constraints=record.task_request.constraints, agents=agents, counts=counted)
    present = [i for i in insts if not unreachable.inactive(i, gives_up, now)]
    active = [i for i in present if i.active]
    # readiness is probed for the current config's instances only, and gates them as in Marathon
    complete = (not plan.launch and not plan.kill and len(active) == len(present) == target
                and all(_healthy(health, i) and (_ready(health, i) or i.config_version != record.config_version)
                        for i in active))
    return plan, complete


def _healthy(health: Mapping[str, InstanceHealth], inst: Instance) -> bool:
    h = health.get(inst.instance_id)
    return h.healthy if h is not None else False


def _ready(health: Mapping[str, InstanceHealth], inst: Instance) -> bool:
    h = health.get(inst.instance_id)
    return h.ready if h is not None else inst.state == RUNNING


class _Offers:
    """The free offers of this pass, fetched on first use and consumed as apps are placed (an
    `OfferTable`: the agents' columns are read once per pass, not once per app)."""

    def __init__(self, supply: Callable[[], Sequence[AgentOffer]]) -> None:
        self._supply = supply
        self._table: OfferTable | None = None
        self.agents: dict[str, AgentView] = {}

    def get(self) -> OfferTable:
        if self._table is None:
            self._table = OfferTable(self._supply())
            self.agents = dict(zip(self._table.ids, self._table.agents))
        return self._table

    def consume(self, request: TaskRequest, placements: Sequence[Placement]) -> None:
        self._table = self.get().consumed(request, placements)


def decide(view: ClusterView, now: float) -> Pass:
    run_of = {a: run for run in view.deployments for a in run.plan.affected_app_ids}
    ids = set(view.instances) | set(view.apps) if view.app_ids is None else set(view.app_ids)
    ids |= set(run_of)
    kills: list[Kill] = []
    launches: list[Launch] = []
    queue: dict[str, QueueStatus | None] = {}
    expired: list[str] = []
    forgotten: list[str] = []
    expunged: list[str] = []
    done: dict[str, bool] = {}
    offers = _Offers(view.offers)
    seed = view.seed
    for app_id in sorted(ids):
        record = view.apps.get(app_id)
        insts = view.instances.get(app_id, ())
        if record is None:
            kills.extend(Kill(i.instance_id) for i in insts if not i.killing)
            if not insts:
                forgotten.append(app_id)
            done[app_id] = not insts
            continue
        strategy = record.definition.unreachable_strategy
        gone = [i.instance_id for i in insts if unreachable.expunged(i, strategy, now)]
        if gone:
            expunged.extend(gone)
            insts = [i for i in insts if i.instance_id not in gone]
        run = run_of.get(app_id)
        if run is not None and run.waits_for_step(app_id):
            continue
        action = run.action_for(app_id) if run is not None else None
        canary = run.canary_of(app_id) if run is not None and action is not None else None
        spec = record.definition.upgrade_strategy.canary
        stable: StableVersion | None = None
        stable_missing = 0
        if canary is not None and canary.in_steps and spec is not None:
            assert run is not None
            launch, kill = canary_convergence(canary_size(spec, record.definition.instances), insts,
                                              record.config_version,
                                              lambda i: _healthy(view.health, i) and _ready(view.health, i))
            stable, stable_missing = stable_replacements(run.plan.original.get(app_id), insts, record.config_version)
            decision, done[app_id] = Convergence(launch + stable_missing, kill), False
        else:
            decision, done[app_id] = converge_app(record, insts, action, view.agents, view.health, now)
        by_id = {i.instance_id: i for i in insts}
        kills.extend(Kill(iid) for iid in decision.kill if not by_id[iid].killing)
        if decision.launch == 0:
            queue[app_id] = None
            continue
        b = view.backoffs.get(app_id)
        if b is not None and backoff_math.expired(b, now, record.definition.max_launch_delay_seconds):
            expired.append(app_id)
        elif not backoff_math.launch_allowed(b, now):
            queue[app_id] = QueueStatus(decision.launch,
                                        f"{WAITING_FOR_BACKOFF}: {backoff_math.time_left(b, now):.1f} s left")
            continue
        if view.parked.get(app_id) == decision.launch:
            continue    # parked: nothing that placement depends on changed; its queue entry stands
        seed += 1
        if stable is not None:
            status, placed = _place_canary_phase(record, stable, insts, decision.launch - stable_missing,
                                                 stable_missing, offers, view.unsupported(record), seed,
                                                 view.queue_reasons.get(app_id))
        else:
            status, placed = _place(record, insts, decision.launch, offers, view.unsupported(record), seed,
                                    view.queue_reasons.get(app_id))
        queue[app_id] = status
        launches.extend(placed)
    runs = tuple(_judge_runs(view, done, queue, now))
    return Pass(kills=tuple(kills), launches=tuple(launches), queue=queue, expired_backoffs=tuple(expired),
                runs=runs, forgotten_apps=tuple(forgotten), expunged=tuple(expunged))


def _place(record: AppRecord, insts: Sequence[Instance], count: int, offers: _Offers, unsupported: str | None,
           seed: int, previous: str | None = None, stable: StableVersion | None = None
           ) -> tuple[QueueStatus, list[Launch]]:
    """Place up to `count` instances on the pass's offers and consume what they take.

    With no offer at all to weigh, the reason of the last pass that had some (`previous`) is
    still the best one: a master pushes offers, the offers a constraint refused are declined,
    and the passes after that see none until something changes. "No agent offers resources"
    would then hide the constraint that is the real reason."""
    available = offers.get()
    if not available and unsupported is None and previous and not previous.startswith(WAITING_FOR_BACKOFF):
        return QueueStatus(count, previous, {}, placed=True, reason_kept=True), []
    agents = offers.agents
    placed_on = [agents[i.agent_id] for i in insts if i.active and i.agent_id in agents]
    request = record.task_request if stable is None else task_request(stable.definition)
    result = place_tasks(request, count, available, placed_on, seed=seed)
    short = len(result.placements) < count or unsupported is not None
    message = "; ".join(m for m in (result.message, unsupported) if m) if short else None
    status = QueueStatus(count, message or None, dict(result.rejections) if short else {},
                         placed=True, offers_seen=len(available), offers_unused=short)
    if unsupported:
        return status, []
    offers.consume(request, result.placements)
    return status, [Launch(record.app_id, p.agent_id, agents[p.agent_id].hostname, tuple(p.host_ports), stable)
                    for p in result.placements]


def _place_canary_phase(record: AppRecord, stable: StableVersion, insts: Sequence[Instance], new_count: int,
                        stable_count: int, offers: _Offers, unsupported: str | None, seed: int,
                        previous: str | None) -> tuple[QueueStatus, list[Launch]]:
    """Place a canary phase's launches: stable replacements first (production's capacity comes
    before the canary's), then the canary's own; one queue entry for the app, as for any."""
    statuses: list[QueueStatus] = []
    launches: list[Launch] = []
    for count, version in ((stable_count, stable), (new_count, None)):
        if count > 0:
            status, placed = _place(record, insts, count, offers, unsupported, seed, previous, version)
            statuses.append(status)
            launches.extend(placed)
    if len(statuses) == 1:
        return statuses[0], launches
    first, second = statuses
    messages = [m for m in (first.message, second.message) if m]
    rejections = dict(first.rejections)
    for reason, n in second.rejections.items():
        rejections[reason] = rejections.get(reason, 0) + n
    return QueueStatus(first.count + second.count, "; ".join(dict.fromkeys(messages)) or None, rejections,
                       placed=first.placed and second.placed, offers_seen=max(first.offers_seen, second.offers_seen),
                       offers_unused=first.offers_unused or second.offers_unused,
                       reason_kept=first.reason_kept and second.reason_kept), launches


def _judge_runs(view: ClusterView, done: Mapping[str, bool], queue: Mapping[str, QueueStatus | None],
                now: float) -> list[RunVerdict]:
    verdicts = []
    for run in view.deployments:
        # one step per pass: `done` was judged against this step's actions only
        step_done = not run.finished and all(done.get(a.app_id, False) for a in run.current_actions())
        verdicts.append(judge_run(run, step_done=step_done, new_healthy=lambda r: _new_healthy(view, r), now=now,
                                  evidence=_evidence(view, run, queue)))
    return verdicts


def _new_healthy(view: ClusterView, run: DeploymentRun) -> int:
    count = 0
    for action in run.current_actions():
        record = view.apps.get(action.app_id)
        if record is None:
            continue
        count += sum(1 for i in view.instances.get(action.app_id, ())
                     if i.config_version == record.config_version and _healthy(view.health, i)
                     and _ready(view.health, i))
    return count


def _evidence(view: ClusterView, run: DeploymentRun, queue: Mapping[str, QueueStatus | None]) -> StallEvidence:
    apps = [a.app_id for a in run.current_actions()]
    causes = {}
    for app_id in apps:
        for inst in view.instances.get(app_id, ()):
            h = view.health.get(inst.instance_id)
            if h is not None and h.failure_cause:
                causes[app_id] = h.failure_cause
    reasons: dict[str, str | None] = {}
    for app_id in apps:
        status = queue.get(app_id, "absent")
        reasons[app_id] = view.queue_reasons.get(app_id) if status == "absent" else (
            status.message if isinstance(status, QueueStatus) else None)
    return StallEvidence(failures_since(view.last_failures, run.started_at), causes, reasons)
