"""The scheduling pass `decide(view, now)` as tables: what one pass kills, launches, queues and
how it moves deployments, given a hand-built `ClusterView`.

The pass is pure, so each case states the whole world (apps, instances, health, offers,
backoffs, deployments) and checks the whole answer; the engine around it only carries the
answer out. Instance ids are `<app>.instance-<n>._app.1` and `staged_at` is `T0 + n`, so a
higher `n` is a younger instance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from app_definitions import parse_app_definition

from scheduler.backends.agents import AgentSpec, compute_offers
from scheduler.decide.backoff import Backoff
from scheduler.decide.scheduling import ClusterView, InstanceHealth, Kill, Pass, QueueStatus, decide
from scheduler.deploy.plan import build_plan
from scheduler.deploy.progress import RunVerdict
from scheduler.deploy.runs import DeploymentRun
from scheduler.state.apps import AppRecord, finalize_app
from scheduler.state.clock import iso_timestamp
from scheduler.state.model import FAILED, RUNNING, STAGING, Instance
from scheduler.state.usage import usage_of

from .fakes import T0, agent

NOW = T0 + 1000
V1 = iso_timestamp(T0 - 3600)
V2 = iso_timestamp(T0 - 60)
AGENTS = [agent(1, cpus=2, mem=1024), agent(2, cpus=2, mem=1024)]
HEALTHY = InstanceHealth(healthy=True, ready=True)
UNHEALTHY = InstanceHealth(healthy=False, ready=False)


# -- building the world ------------------------------------------------------------------

def app(app_id: str, *, instances: int = 1, version: str = V1, previous: AppRecord | None = None,
        **fields: Any) -> AppRecord:
    """A stored app version as the write path makes it (version stamps, service ports)."""
    data = {"id": app_id, "cmd": "serve", "instances": instances, "cpus": 1, "mem": 64, **fields}
    return finalize_app(parse_app_definition(data), previous, version, {})


def upgrade(record: AppRecord, **fields: Any) -> AppRecord:
    """The next version of `record` with `fields` changed (a config change unless only `instances`)."""
    return app(record.app_id, version=V2, previous=record,
               **{**{k: v for k, v in record.json.items() if k not in ("id", "version", "versionInfo")}, **fields})


def iid(app_id: str, n: int) -> str:
    return f"{app_id.strip('/').replace('/', '_')}.instance-{n}._app.1"


def inst(record: AppRecord, n: int, *, state: str = RUNNING, killing: bool = False, agent_n: int = 1,
         config: AppRecord | None = None) -> Instance:
    """Instance `n` of `record` (of `config`'s version when given) on agent `agent_n`, holding a port there."""
    source = config or record
    spec = AGENTS[agent_n - 1]
    return Instance(instance_id=iid(record.app_id, n), app_id=record.app_id, version=source.version,
                    config_version=source.config_version, agent_id=spec.agent_id, host=spec.hostname,
                    ports=(spec.port_range[0] + n,), service_ports=source.service_ports, state=state,
                    staged_at=T0 + n, killing=killing,
                    resources={"cpus": source.definition.cpus, "mem": source.definition.mem, "disk": 0.0})


def view(apps: Iterable[AppRecord], instances: Iterable[Instance] = (), *,
         deployments: Sequence[DeploymentRun] = (), backoffs: Mapping[str, Backoff] | None = None,
         health: Mapping[str, InstanceHealth] | None = None, agents: Sequence[AgentSpec] = AGENTS,
         unsupported: Callable[[AppRecord], str | None] = lambda record: None,
         last_failures: Mapping[str, Mapping[str, object]] | None = None,
         app_ids: frozenset[str] | None = None, indexed: Iterable[str] = ()) -> ClusterView:
    """The view the engine would build. Instances are healthy and ready when RUNNING unless
    `health` says otherwise; `indexed` names apps with an empty instance index (all gone)."""
    insts = list(instances)
    by_app: dict[str, list[Instance]] = {a: [] for a in indexed}
    for i in insts:
        by_app.setdefault(i.app_id, []).append(i)
    judged = {i.instance_id: HEALTHY if i.state == RUNNING else UNHEALTHY for i in insts}
    judged.update(health or {})
    return ClusterView(
        apps={r.app_id: r for r in apps}, instances=by_app, deployments=list(deployments),
        backoffs=dict(backoffs or {}), agents={a.agent_id: a.view() for a in agents},
        offers=lambda: compute_offers(agents, usage_of(insts)),
        health=judged, unsupported=unsupported, last_failures=dict(last_failures or {}), app_ids=app_ids)


def deployment(original: Iterable[AppRecord], target: Iterable[AppRecord], *, step: int = 0,
               started_at: float = NOW - 100, last_progress_at: float | None = None,
               marker: tuple[int, int] = (0, 0)) -> DeploymentRun:
    plan = build_plan({r.app_id: r.definition for r in original}, {r.app_id: r.definition for r in target},
                      plan_id="deployment-1", version=V2)
    return DeploymentRun(plan=plan, started_at=started_at,
                         last_progress_at=started_at if last_progress_at is None else last_progress_at,
                         step_index=step, progress_marker=marker)


def only_verdict(p: Pass) -> RunVerdict:
    assert len(p.runs) == 1
    return p.runs[0]


def in_range(port: int, agent_id: str) -> bool:
    lo, hi = next(a.port_range for a in AGENTS if a.agent_id == agent_id)
    return lo <= port <= hi


# -- scaling up: placement on the pass's offers ---------------------------------------------

def test_scale_up_places_on_free_offers():
    web = app("/web", instances=4)
    existing = inst(web, 1, agent_n=1)
    p = decide(view([web], [existing]), NOW)
    assert Counter(launch.agent_id for launch in p.launches) == {"agent-1": 1, "agent-2": 2}
    assert all(launch.app_id == "/web" and len(launch.ports) == 1 and in_range(launch.ports[0], launch.agent_id)
               for launch in p.launches)
    assert {launch.host for launch in p.launches} == {"host-1", "host-2"}
    taken = [port for launch in p.launches for port in launch.ports] + list(existing.ports)
    assert len(set(taken)) == len(taken)
    assert p.queue == {"/web": QueueStatus(3, None, {}, placed=True, offers_seen=2, offers_unused=False)}
    assert p.kills == () and p.runs == ()


def test_apps_consume_the_same_offers_in_app_order():
    one_agent = [agent(1, cpus=3, mem=1024)]
    first, second = app("/a", instances=2), app("/b", instances=2)
    p = decide(view([second, first], agents=one_agent), NOW)
    assert [launch.app_id for launch in p.launches] == ["/a", "/a", "/b"]
    ports = [launch.ports[0] for launch in p.launches]
    assert len(set(ports)) == 3            # the second app sees the ports the first one took
    assert p.queue["/a"].message is None
    assert p.queue["/b"] == QueueStatus(2, "no agent has enough cpus (needs 1, largest free 0)",
                                        {"InsufficientCpus": 1}, placed=True, offers_seen=1, offers_unused=True)


def test_no_fitting_offer_gives_the_placement_reason_and_rejections():
    big = app("/big", instances=1, mem=4096)
    p = decide(view([big]), NOW)
    assert p.launches == ()
    assert p.queue["/big"] == QueueStatus(1, "no agent has enough mem (needs 4096 MB, largest free 1024 MB)",
                                          {"InsufficientMemory": 2}, placed=True, offers_seen=2, offers_unused=True)


def test_an_unsupported_app_waits_with_the_backends_reason_and_takes_no_offer():
    docker, plain = app("/a-docker", instances=2), app("/b", instances=4)
    p = decide(view([docker, plain], unsupported=lambda r: "no Docker engine answers" if r.app_id == "/a-docker"
                    else None), NOW)
    assert [launch.app_id for launch in p.launches] == ["/b"] * 4      # all four cpus left for /b
    status = p.queue["/a-docker"]
    assert (status.count, status.message, status.offers_unused) == (2, "no Docker engine answers", True)


# -- scaling down -------------------------------------------------------------------------

@pytest.mark.parametrize("selection, killed", [
    ("YOUNGEST_FIRST", (3, 2)),
    ("OLDEST_FIRST", (1, 2)),
])
def test_scale_down_kills_per_kill_selection(selection: str, killed: tuple[int, ...]):
    web = app("/web", instances=1, killSelection=selection)
    p = decide(view([web], [inst(web, n) for n in (1, 2, 3)]), NOW)
    assert p.kills == tuple(Kill(iid("/web", n)) for n in killed)
    assert p.launches == () and p.queue == {"/web": None}


def test_scale_down_kills_staging_instances_before_running_ones():
    web = app("/web", instances=2, killSelection="OLDEST_FIRST")
    p = decide(view([web], [inst(web, 1), inst(web, 2), inst(web, 3, state=STAGING)]), NOW)
    assert p.kills == (Kill(iid("/web", 3)),)


# -- kills already in flight ----------------------------------------------------------------

WEB3 = app("/web", instances=1)
WEB3_V2 = upgrade(WEB3, env={"RELEASE": "2"})


@pytest.mark.parametrize("records, instances, deployments, kills, launches", [
    pytest.param([WEB3], [inst(WEB3, 1), inst(WEB3, 2), inst(WEB3, 3, killing=True)], [], [2], 0,
                 id="scale-down-skips-the-killing-one"),
    pytest.param([WEB3], [inst(WEB3, 1, killing=True)], [], [], 1,
                 id="a-killing-instance-is-no-capacity"),
    pytest.param([], [inst(WEB3, 1), inst(WEB3, 2, killing=True)], [], [1], 0,
                 id="orphan-killing-not-killed-again"),
    pytest.param([WEB3_V2], [inst(WEB3_V2, 1, config=WEB3, killing=True), inst(WEB3_V2, 2, config=WEB3)],
                 [deployment([WEB3], [WEB3_V2])], [], 1,
                 id="restart-skips-the-killing-old-one"),
])
def test_no_double_kill_of_an_instance_already_killing(records: list[AppRecord], instances: list[Instance],
                                                       deployments: list[DeploymentRun], kills: list[int],
                                                       launches: int):
    p = decide(view(records, instances, deployments=deployments), NOW)
    assert p.kills == tuple(Kill(iid("/web", n)) for n in kills)
    assert len(p.launches) == launches


# -- orphans ------------------------------------------------------------------------------

def test_orphans_are_killed_and_their_app_kept_while_any_remains():
    gone = app("/gone", instances=2)
    p = decide(view([], [inst(gone, 1), inst(gone, 2, state=STAGING)]), NOW)
    assert p.kills == (Kill(iid("/gone", 1)), Kill(iid("/gone", 2)))
    assert p.forgotten_apps == () and p.launches == ()


def test_an_orphan_app_is_forgotten_when_no_instance_remains():
    p = decide(view([], indexed=["/gone"]), NOW)
    assert p.forgotten_apps == ("/gone",) and p.kills == ()


def test_a_pass_over_some_apps_leaves_orphans_to_the_full_pass():
    web, gone = app("/web", instances=1), app("/gone")
    p = decide(view([web], [inst(web, 1), inst(gone, 1)], app_ids=frozenset({"/web"})), NOW)
    assert p.kills == () and p.forgotten_apps == ()


# -- backoff ------------------------------------------------------------------------------

def test_backoff_holds_launches_with_its_message():
    web = app("/web", instances=2)
    held = Backoff(delay=8.0, next_launch_at=NOW + 5, last_failure_at=NOW - 3)
    p = decide(view([web], backoffs={"/web": held}), NOW)
    assert p.launches == () and p.expired_backoffs == ()
    assert p.queue["/web"] == QueueStatus(2, "waiting for backoff: 5.0 s left")
    assert p.queue["/web"].placed is False


def test_a_backoff_whose_delay_passed_lets_launches_through_and_stays():
    web = app("/web", instances=2)
    waited = Backoff(delay=8.0, next_launch_at=NOW - 1, last_failure_at=NOW - 9)
    p = decide(view([web], backoffs={"/web": waited}), NOW)
    assert len(p.launches) == 2 and p.expired_backoffs == ()


def test_an_expired_backoff_is_cleared_and_launched_past():
    web = app("/web", instances=1, maxLaunchDelaySeconds=300)
    old = Backoff(delay=8.0, next_launch_at=NOW - 301, last_failure_at=NOW - 309)   # 309 > 8 + 300
    p = decide(view([web], backoffs={"/web": old}), NOW)
    assert p.expired_backoffs == ("/web",)
    assert len(p.launches) == 1 and p.queue["/web"].message is None


# -- deployments: steps -------------------------------------------------------------------

A, B = app("/a"), app("/b")


@pytest.mark.parametrize("instances, health, advanced", [
    pytest.param([inst(A, 1)], {}, False, id="b-not-launched"),
    pytest.param([inst(A, 1), inst(B, 1, agent_n=2)], {iid("/b", 1): UNHEALTHY}, False, id="b-unhealthy"),
    pytest.param([inst(A, 1), inst(B, 1, agent_n=2, state=STAGING)], {}, False, id="b-staging"),
    pytest.param([inst(A, 1), inst(A, 2), inst(B, 1, agent_n=2)], {}, False, id="a-has-one-too-many"),
    pytest.param([inst(A, 1), inst(B, 1, agent_n=2)], {}, True, id="both-done"),
])
def test_a_step_advances_only_when_all_its_apps_are_done(instances: list[Instance],
                                                          health: dict[str, InstanceHealth], advanced: bool):
    run = deployment([], [A, B], step=1)           # steps: [Start a, b], [Scale a, Scale b]
    verdict = only_verdict(decide(view([A, B], instances, deployments=[run], health=health), NOW))
    assert verdict.advanced is advanced
    assert verdict.finished is advanced            # the scale step was the last
    assert verdict.failure is None


DB2, WEB2 = app("/db", instances=2), app("/web", instances=2, dependencies=["/db"])
DB1, WEB1 = upgrade(DB2, instances=1), upgrade(WEB2, instances=1)


def test_one_step_per_pass_even_when_the_next_is_complete_too():
    run = deployment([DB2, WEB2], [DB1, WEB1])     # steps: [Scale db 1], [Scale web 1]
    world = [inst(DB1, 1), inst(WEB1, 1, agent_n=2)]
    first = only_verdict(decide(view([DB1, WEB1], world, deployments=[run]), NOW))
    assert (first.advanced, first.finished, first.run.step_index) == (True, False, 1)
    second = only_verdict(decide(view([DB1, WEB1], world, deployments=[first.run]), NOW))
    assert (second.advanced, second.finished) == (True, True)


def test_an_app_whose_turn_has_not_come_is_left_alone():
    run = deployment([DB2, WEB2], [DB1, WEB1])
    world = [inst(DB1, 1), inst(DB1, 2), inst(WEB1, 1, agent_n=2), inst(WEB1, 2, agent_n=2)]
    p = decide(view([DB1, WEB1], world, deployments=[run]), NOW)
    assert p.kills == (Kill(iid("/db", 2)),)      # /web still has two: its step comes later
    assert "/web" not in p.queue
    assert only_verdict(p).advanced is False      # /db's kill has not ended yet


def test_a_stopped_app_finishes_its_step_once_its_last_instance_is_gone():
    run = deployment([A], [])
    p = decide(view([], [inst(A, 1)], deployments=[run]), NOW)
    assert p.kills == (Kill(iid("/a", 1)),) and only_verdict(p).advanced is False
    p = decide(view([], indexed=["/a"], deployments=[run]), NOW)
    assert p.forgotten_apps == ("/a",)
    assert (only_verdict(p).advanced, only_verdict(p).finished) == (True, True)


def test_a_finished_deployment_is_reported_finished():
    run = deployment([], [A], step=1)
    verdict = only_verdict(decide(view([A], [inst(A, 1)], deployments=[run]), NOW))
    assert verdict == RunVerdict(replace(run, step_index=2), advanced=True, finished=True)


def test_a_scale_step_waits_for_readiness():
    ready_app = app("/r", portDefinitions=[{"port": 0, "name": "http-api"}],
                    readinessChecks=[{"portName": "http-api"}])
    run = deployment([], [ready_app], step=1)
    not_ready = {iid("/r", 1): InstanceHealth(healthy=True, ready=False)}
    verdict = only_verdict(decide(view([ready_app], [inst(ready_app, 1)], deployments=[run], health=not_ready),
                                  NOW))
    assert verdict.advanced is False


# -- deployments: progress and the deadline -------------------------------------------------

WEB = app("/web", instances=2, upgradeStrategy={"progressDeadlineSeconds": 60})


def rolling(*, mem: float = 64, **strategy: Any) -> tuple[AppRecord, DeploymentRun]:
    """/web v1 → v2 (a config change; deadline 60 s unless `strategy` says otherwise), last progress 61 s ago."""
    target = upgrade(WEB, env={"RELEASE": "2"}, mem=mem,
                     upgradeStrategy={"progressDeadlineSeconds": 60, **strategy})
    return target, deployment([WEB], [target], last_progress_at=NOW - 61)


def old_pair(target: AppRecord) -> list[Instance]:
    return [inst(target, 1, config=WEB), inst(target, 2, config=WEB, agent_n=2)]


@pytest.mark.parametrize("new_health, marker", [
    pytest.param(HEALTHY, (0, 1), id="healthy-and-ready"),
    pytest.param(InstanceHealth(healthy=True, ready=False), (0, 0), id="healthy-not-ready"),
    pytest.param(UNHEALTHY, (0, 0), id="unhealthy"),
])
def test_progress_marker_moves_on_new_healthy_and_ready_instances(new_health: InstanceHealth,
                                                                 marker: tuple[int, int]):
    target, run = rolling(progressDeadlineSeconds=0)
    world = [*old_pair(target), inst(target, 3)]
    verdict = only_verdict(decide(view([target], world, deployments=[run],
                                       health={iid("/web", 3): new_health}), NOW))
    assert verdict.run.progress_marker == marker
    assert verdict.run.last_progress_at == (NOW if marker > (0, 0) else run.last_progress_at)
    assert verdict.failure is None


def test_progress_is_counted_once():
    target, run = rolling()
    run = replace(run, progress_marker=(0, 1))
    world = [*old_pair(target), inst(target, 3)]
    verdict = only_verdict(decide(view([target], world, deployments=[run]), NOW))
    assert verdict.run.progress_marker == (0, 1) and verdict.failure is not None


def crash_loop(target: AppRecord) -> tuple[list[Instance], dict[str, InstanceHealth], dict[str, dict[str, Any]]]:
    failure = {"state": FAILED, "message": "exited with status 3", "timestamp": iso_timestamp(NOW - 30)}
    return old_pair(target), {}, {"/web": failure}


def failing_check(target: AppRecord) -> tuple[list[Instance], dict[str, InstanceHealth], dict[str, dict[str, Any]]]:
    sick = {iid("/web", 3): InstanceHealth(healthy=False, ready=False, failure_cause="HTTP 503 on /health")}
    return [*old_pair(target), inst(target, 3)], sick, {}


def old_failure_only(target: AppRecord) -> tuple[list[Instance], dict[str, InstanceHealth],
                                                  dict[str, dict[str, Any]]]:
    failure = {"state": FAILED, "message": "exited with status 3", "timestamp": iso_timestamp(NOW - 1000)}
    return [*old_pair(target), inst(target, 3)], {iid("/web", 3): UNHEALTHY}, {"/web": failure}


@pytest.mark.parametrize("world, cause", [
    pytest.param(crash_loop, "/web: tasks keep failing (TASK_FAILED: exited with status 3)", id="crash-loop"),
    pytest.param(failing_check, "/web: never healthy: HTTP 503 on /health", id="failing-check"),
    pytest.param(old_failure_only, "/web: no new instance became healthy and ready",
                 id="failure-before-the-deployment-names-nothing"),
])
@pytest.mark.parametrize("auto_rollback", [True, False])
def test_a_stalled_deployment_fails_naming_the_cause(world: Callable[..., Any], cause: str, auto_rollback: bool):
    target, run = rolling(autoRollback=auto_rollback)
    instances, health, failures = world(target)
    p = decide(view([target], instances, deployments=[run], health=health, last_failures=failures), NOW)
    verdict = only_verdict(p)
    assert verdict.failure == f"no progress for 60 s; {cause}"
    assert verdict.rollback is auto_rollback
    assert (verdict.advanced, verdict.finished) == (False, False)


def test_a_deployment_waiting_for_an_offer_fails_naming_the_placement():
    target, run = rolling(autoRollback=True, mem=2048)     # no agent has 2048 MB
    verdict = only_verdict(decide(view([target], old_pair(target), deployments=[run]), NOW))
    assert verdict.failure is not None
    assert verdict.failure.startswith("no progress for 60 s; /web: cannot be placed: no agent has enough mem "
                                      "(needs 2048 MB")
    assert verdict.rollback is True


@pytest.mark.parametrize("since_progress, deadline, fails", [
    pytest.param(60, 60, False, id="at-the-deadline"),
    pytest.param(60.5, 60, True, id="past-the-deadline"),
    pytest.param(10_000, 0, False, id="zero-waits-forever"),
])
def test_the_deadline_counts_from_the_last_progress(since_progress: float, deadline: int, fails: bool):
    target, run = rolling(progressDeadlineSeconds=deadline)
    run = replace(run, last_progress_at=NOW - since_progress)
    instances, health, failures = failing_check(target)
    verdict = only_verdict(decide(view([target], instances, deployments=[run], health=health), NOW))
    assert (verdict.failure is not None) is fails
