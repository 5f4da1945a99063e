"""marathon-python (PyPI ``marathon`` 0.13) against a real ``pacer serve``: every call it offers.

The client is used unmodified apart from one import patch: 0.13 still reads
``collections.Iterable`` and friends, which live only in ``collections.abc`` since Python
3.10. Its models are strict (``MarathonApp(**json)``: a key it does not know is a
``TypeError``), so these tests hold Pacer's responses to Marathon's field set: Pacer's
extensions appear only where the user set them to a non-default value.

One server serves the whole module (starting one per test would dominate the run time);
every test uses app ids of its own and removes what could disturb the others.
"""

from __future__ import annotations

import collections
import collections.abc

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
    setattr(collections, _name, getattr(collections.abc, _name))

import json  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError  # noqa: E402
from marathon.models import (  # noqa: E402
    MarathonApp,
    MarathonDeployment,
    MarathonEndpoint,
    MarathonGroup,
    MarathonHealthCheck,
    MarathonInfo,
    MarathonTask,
)
from marathon.models.events import (  # noqa: E402
    EventFactory,
    MarathonApiPostEvent,
    MarathonAppTerminatedEvent,
    MarathonDeploymentSuccess,
    MarathonEventStreamAttached,
    MarathonHealthStatusChangedEvent,
    MarathonInstanceChangedEvent,
    MarathonStatusUpdateEvent,
)

from .support import PacerServer, free_port, kill_task_processes, wait_until  # noqa: E402

SLEEP = "sleep 1000"
SMALL: dict[str, Any] = {"cpus": 0.05, "mem": 16}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacerServer]:
    home: Path = tmp_path_factory.mktemp("marathon-python") / "home"
    home.mkdir()
    pacer = PacerServer(home, "--agent-resources", "cpus=16,mem=16384,disk=10000").start()
    yield pacer
    pacer.stop()
    kill_task_processes(home)


@pytest.fixture
def client(server: PacerServer) -> MarathonClient:
    return MarathonClient(server.url, timeout=10)


def app(**fields: Any) -> MarathonApp:
    """A small app as the client builds one (``MarathonApp`` serialised minimally)."""
    return MarathonApp(**{"cmd": SLEEP, **SMALL, **fields})


def running(client: MarathonClient, app_id: str, count: int) -> list[MarathonTask]:
    """The app's tasks once exactly ``count`` run and no deployment touches it."""
    def settled() -> tuple[list[MarathonTask]] | None:
        current = client.get_app(app_id)
        tasks = [t for t in current.tasks if t.state == "TASK_RUNNING"]
        return (tasks,) if len(tasks) == len(current.tasks) == count and not current.deployments else None
    return wait_until(settled, timeout=30, what=f"{count} running tasks of {app_id}")[0]


def deployed(client: MarathonClient, app_id: str) -> MarathonApp:
    """The app once no deployment touches it any more."""
    return wait_until(lambda: (a := client.get_app(app_id)) and not a.deployments and a, timeout=30,
                      what=f"the deployment of {app_id} to finish")


def gone(client: MarathonClient, app_id: str) -> None:
    """Wait until the app is removed (a delete is a deployment, not immediate)."""
    def missing() -> bool:
        try:
            client.get_app(app_id)
        except NotFoundError:
            return True
        return False
    wait_until(missing, timeout=30, what=f"{app_id} to be removed")


# --- system ------------------------------------------------------------------------------------

def test_ping_info_leader_metrics(client: MarathonClient, server: PacerServer) -> None:
    assert client.ping() == b"pong"
    info = client.get_info()
    assert isinstance(info, MarathonInfo)
    assert info.elected is True and info.leader == f"127.0.0.1:{server.port}"
    assert info.http_config.http_port == server.port and info.marathon_config.mesos_role == "*"
    assert client.get_leader() == {"leader": f"127.0.0.1:{server.port}"}
    metrics = client.get_metrics()
    assert metrics["version"] == "4.0.0"
    assert {"marathon.apps.active.gauge", "marathon.instances.running.gauge"} <= set(metrics["gauges"])


def test_raw_responses_carry_marathons_field_set(server: PacerServer) -> None:
    """Pacer's additions stay out of what every app and the server info show by default."""
    status, body, _ = server.request("POST", "/v2/apps", {"id": "/mp-plain", "cmd": SLEEP, "instances": 0})
    assert status == 201, body
    assert body["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    _, info, _ = server.get("/v2/info")
    assert set(info) == {"name", "version", "buildref", "elected", "leader", "frameworkId", "marathon_config",
                         "zookeeper_config", "http_config"}
    _, root, _ = server.get("/v2/groups")
    assert "enforceRole" not in root
    server.request("DELETE", "/v2/apps/mp-plain")


def test_an_extension_the_user_set_is_shown_and_read_back(client: MarathonClient, server: PacerServer) -> None:
    strategy = {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0, "progressDeadlineSeconds": 120,
                "autoRollback": True}
    status, body, _ = server.request("POST", "/v2/apps", {"id": "/mp-ext", "cmd": SLEEP, "instances": 0,
                                                          "upgradeStrategy": strategy})
    assert status == 201 and body["upgradeStrategy"] == strategy
    assert server.get("/v2/apps/mp-ext")[1]["app"]["upgradeStrategy"] == strategy
    # the user opted into a field Marathon does not have, and this strict client rejects it
    with pytest.raises(TypeError, match="progress_deadline_seconds"):
        client.get_app("/mp-ext")
    server.request("DELETE", "/v2/apps/mp-ext")


def test_the_client_fails_over_to_the_next_server(server: PacerServer) -> None:
    assert MarathonClient([f"http://127.0.0.1:{free_port()}", server.url], timeout=5).ping() == b"pong"


def test_leader_abdication_is_refused(client: MarathonClient, server: PacerServer) -> None:
    # Marathon abdicates and exits so that a standby takes over; Pacer runs one scheduler
    # without an election, so abdicating would only stop it: the method is not offered.
    with pytest.raises(MarathonHttpError) as refused:
        client.delete_leader()
    assert refused.value.status_code == 405
    assert client.get_leader() == {"leader": f"127.0.0.1:{server.port}"}


def test_event_subscriptions_are_gone_as_in_marathon(client: MarathonClient) -> None:
    # /v2/eventSubscriptions (HTTP callbacks) was removed in Marathon 1.5; no current
    # Marathon answers these three calls either.
    for call in (client.list_event_subscriptions, lambda: client.create_event_subscription("http://127.0.0.1:9/cb"),
                 lambda: client.delete_event_subscription("http://127.0.0.1:9/cb")):
        with pytest.raises(NotFoundError):
            call()


# --- apps --------------------------------------------------------------------------------------

def test_create_list_and_get_apps(client: MarathonClient) -> None:
    created = client.create_app("/mp-list", app(instances=2, labels={"tier": "web"}))
    assert isinstance(created, MarathonApp)
    assert created.id == "/mp-list" and created.instances == 2 and created.deployments
    assert (created.upgrade_strategy.minimum_health_capacity, created.upgrade_strategy.maximum_over_capacity) == (1, 1)
    client.create_app("/mp-other", app(instances=0, cmd="sleep 999"))
    running(client, "/mp-list", 2)

    assert {"/mp-list", "/mp-other"} <= {a.id for a in client.list_apps()}
    embedded = client.list_apps(embed_tasks=True, embed_counts=True, embed_deployments=True, embed_readiness=True,
                                embed_last_task_failure=True, embed_failures=True, embed_task_stats=True)
    listed = next(a for a in embedded if a.id == "/mp-list")
    assert len(listed.tasks) == 2 and listed.tasks_running == 2
    assert [a.id for a in client.list_apps(label="tier==web")] == ["/mp-list"]
    assert [a.id for a in client.list_apps(app_id="mp-li")] == ["/mp-list"]
    assert [a.id for a in client.list_apps(cmd="sleep 999")] == ["/mp-other"]
    assert [a.id for a in client.list_apps(app_id="mp-", instances=0)] == ["/mp-other"]   # client-side filter

    got = client.get_app("/mp-list")
    assert got.id == "/mp-list" and got.labels == {"tier": "web"} and got.tasks_running == 2
    assert len(got.tasks) == 2 and all(t.app_id == "/mp-list" for t in got.tasks)   # always embedded
    assert len(client.get_app("/mp-list", embed_tasks=True, embed_counts=True, embed_task_stats=True).tasks) == 2
    with pytest.raises(NotFoundError):
        client.get_app("/mp-nothing")
    with pytest.raises(ConflictError):
        client.create_app("/mp-list", app())
    for app_id in ("/mp-list", "/mp-other"):
        client.delete_app(app_id)


def test_scale_app(client: MarathonClient) -> None:
    client.create_app("/mp-scale", app(instances=1))
    running(client, "/mp-scale", 1)
    assert "deploymentId" in client.scale_app("/mp-scale", instances=3)
    running(client, "/mp-scale", 3)
    assert "deploymentId" in client.scale_app("/mp-scale", delta=-2)
    assert len(running(client, "/mp-scale", 1)) == 1
    assert client.scale_app("/mp-scale") is None                    # neither instances nor delta
    assert client.scale_app("/mp-nothing", instances=1) is None     # the client logs a 404 and gives up
    client.delete_app("/mp-scale")


def test_update_versions_rollback_and_restart(client: MarathonClient) -> None:
    client.create_app("/mp-ver", app(instances=1, cmd="sleep 1001"))
    first = deployed(client, "/mp-ver").version
    result = client.update_app("/mp-ver", MarathonApp(cmd="sleep 1002"))
    assert set(result) == {"deploymentId", "version"}
    assert deployed(client, "/mp-ver").cmd == "sleep 1002"

    versions = client.list_versions("/mp-ver")
    assert len(versions) == 2 and versions[-1] == first
    old = client.get_version("/mp-ver", first)
    assert isinstance(old, MarathonApp) and old.cmd == "sleep 1001" and old.version == first

    assert "deploymentId" in client.rollback_app("/mp-ver", first)
    assert deployed(client, "/mp-ver").cmd == "sleep 1001"
    before = client.get_app("/mp-ver").version
    assert "deploymentId" in client.restart_app("/mp-ver")
    assert deployed(client, "/mp-ver").version != before

    result = client.update_apps([MarathonApp(id="/mp-ver", instances=2), app(id="/mp-ver2", instances=0)])
    assert set(result) == {"deploymentId", "version"}
    assert deployed(client, "/mp-ver").instances == 2 and client.get_app("/mp-ver2").instances == 0
    for app_id in ("/mp-ver", "/mp-ver2"):
        assert "deploymentId" in client.delete_app(app_id, force=True)
        gone(client, app_id)
    with pytest.raises(NotFoundError):
        client.delete_app("/mp-ver")


def test_a_locked_app_is_a_conflict_unless_forced(client: MarathonClient) -> None:
    client.create_app("/mp-lock", app(instances=1, mem=100000))      # no agent has the memory: stays deploying
    with pytest.raises(ConflictError):
        client.update_app("/mp-lock", MarathonApp(instances=2))
    assert "deploymentId" in client.update_app("/mp-lock", MarathonApp(instances=0, mem=16), force=True)
    deployed(client, "/mp-lock")
    client.delete_app("/mp-lock", force=True)


# --- tasks -------------------------------------------------------------------------------------

def test_list_tasks_and_endpoints(client: MarathonClient) -> None:
    client.create_app("/mp-tasks", app(instances=2))
    tasks = running(client, "/mp-tasks", 2)
    assert {t.id for t in tasks} <= {t.id for t in client.list_tasks()}
    listed = client.list_tasks("/mp-tasks", state="TASK_RUNNING")
    assert {t.id for t in listed} == {t.id for t in tasks}
    assert all(t.app_id == "/mp-tasks" and t.host and t.slave_id and t.started_at for t in listed)
    assert listed[0].ip_addresses[0].ip_address == "127.0.0.1"

    service_port = client.get_app("/mp-tasks").port_definitions[0].port
    endpoints = [e for e in client.list_endpoints() if e.app_id == "/mp-tasks"]
    assert all(isinstance(e, MarathonEndpoint) for e in endpoints)
    assert {(e.task_id, e.task_port) for e in endpoints} == {(t.id, t.ports[0]) for t in tasks}
    assert {e.service_port for e in endpoints} == {service_port}
    client.delete_app("/mp-tasks")


def test_kill_one_task(client: MarathonClient) -> None:
    client.create_app("/mp-kill1", app(instances=2))
    first, second = running(client, "/mp-kill1", 2)
    killed = client.kill_task("/mp-kill1", first.id)
    assert isinstance(killed, MarathonTask) and killed.id == first.id
    wait_until(lambda: first.id not in {t.id for t in running(client, "/mp-kill1", 2)}, what="a replacement task")
    result = client.kill_task("/mp-kill1", second.id, scale=True)          # a deployment, not a task
    assert "deploymentId" in result
    assert deployed(client, "/mp-kill1").instances == 1
    client.delete_app("/mp-kill1")


def test_kill_given_tasks(client: MarathonClient) -> None:
    client.create_app("/mp-kill2", app(instances=3))
    a, b, _ = running(client, "/mp-kill2", 3)
    assert client.kill_given_tasks([a.id]) is True
    assert client.kill_given_tasks([b.id], scale=True, force=True) is True
    assert deployed(client, "/mp-kill2").instances == 2
    with pytest.raises(MarathonHttpError):
        client.kill_given_tasks(["mp-kill2.instance-nothing._app.1"])
    client.delete_app("/mp-kill2")


def test_kill_tasks_of_an_app(client: MarathonClient) -> None:
    client.create_app("/mp-kill3", app(instances=2))
    tasks = running(client, "/mp-kill3", 2)
    killed = client.kill_tasks("/mp-kill3")
    assert {t.id for t in killed} == {t.id for t in tasks} and all(isinstance(t, MarathonTask) for t in killed)
    tasks = running(client, "/mp-kill3", 2)
    assert client.kill_tasks("/mp-kill3", host="no-such-host") == []
    assert {t.id for t in client.kill_tasks("/mp-kill3", host=tasks[0].host)} == {t.id for t in tasks}
    running(client, "/mp-kill3", 2)
    # In batches the client kills batch_size tasks, waits for them to leave the app, then waits
    # batch_delay. Two client bugs make this mode unusable against any Marathon: its batching
    # generator calls next() past the end, which Python 3.7+ (PEP 479) turns into a RuntimeError
    # once every batch is done; and batch_delay=0 waits for "running" tasks counted as those
    # *without* startedAt, which never reach the instance count. What it does: every task killed
    # and replaced, batch by batch, then the RuntimeError.
    tasks = running(client, "/mp-kill3", 2)
    with pytest.raises(RuntimeError, match="generator raised StopIteration"):
        client.kill_tasks("/mp-kill3", batch_size=1, batch_delay=0.2)
    assert not {t.id for t in running(client, "/mp-kill3", 2)} & {t.id for t in tasks}
    result = client.kill_tasks("/mp-kill3", scale=True)
    assert "deploymentId" in result
    assert deployed(client, "/mp-kill3").instances == 0
    client.delete_app("/mp-kill3")


# --- deployments and the queue -----------------------------------------------------------------

def test_list_and_cancel_deployments(client: MarathonClient) -> None:
    client.create_app("/mp-dep", app(instances=1, mem=100000))       # never placed: the deployment stays
    # a new app's plan is StartApplication (done at the first pass) then ScaleApplication, the
    # step that waits for an offer: wait for that one, the first may still be current
    deployment = wait_until(lambda: [d for d in client.list_deployments() if d.affected_apps == ["/mp-dep"]
                                     and d.current_step == 2], what="the deployment of /mp-dep at its second step")[0]
    assert isinstance(deployment, MarathonDeployment)
    assert deployment.total_steps == len(deployment.steps) == 2
    assert [a.action for s in deployment.steps for a in s.actions] == ["StartApplication", "ScaleApplication"]
    assert [(a.action, a.app) for a in deployment.current_actions] == [("ScaleApplication", "/mp-dep")]

    rollback = client.delete_deployment(deployment.id)                # reverts the create: the app goes
    assert set(rollback) == {"deploymentId", "version"}
    gone(client, "/mp-dep")

    client.create_app("/mp-dep", app(instances=1, mem=100000))
    stuck = wait_until(lambda: [d for d in client.list_deployments() if d.affected_apps == ["/mp-dep"]],
                       what="the second deployment")[0]
    assert client.delete_deployment(stuck.id, force=True) == {}        # cancelled only: the app stays
    wait_until(lambda: stuck.id not in {d.id for d in client.list_deployments()}, what="the cancel")
    assert client.get_app("/mp-dep").instances == 1
    client.delete_app("/mp-dep", force=True)
    gone(client, "/mp-dep")
    with pytest.raises(NotFoundError):
        client.delete_deployment("no-such-deployment")


def test_a_scheduled_deployment_stays_out_of_marathons_listing(client: MarathonClient, server: PacerServer) -> None:
    import datetime
    import urllib.parse

    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    status, body, _ = server.request("POST", f"/v2/apps/mp-later?at={urllib.parse.quote(at)}", {"id": "/mp-later", "cmd": "sleep 3600"})
    assert status == 201, body
    try:
        assert body["deploymentId"] not in {d.id for d in client.list_deployments()}   # parsed, and not there
        assert body["deploymentId"] in {d["id"] for d in server.get("/v2/deployments?embed=pending")[1]}
    finally:
        assert server.request("DELETE", f"/v2/deployments/{body['deploymentId']}")[0] == 202


def test_list_queue_when_nothing_waits(client: MarathonClient) -> None:
    wait_until(lambda: client.list_queue() == [], what="the apps of earlier tests to leave the queue")
    assert client.list_queue(embed_last_unused_offers=True) == []


def test_list_queue_while_an_app_waits(client: MarathonClient) -> None:
    client.create_app("/mp-queue", app(instances=2, mem=100000))
    try:
        wait_until(lambda: client.get_app("/mp-queue").deployments, what="the deployment")
        items = wait_until(client.list_queue, what="the waiting app in the queue")
        assert [(i.app.id, i.count) for i in items] == [("/mp-queue", 2)]
        assert items[0].processed_offers_summary["processedOffersCount"] >= 1
    finally:
        client.delete_app("/mp-queue", force=True)
        gone(client, "/mp-queue")


def test_reset_delay(client: MarathonClient, server: PacerServer) -> None:
    client.create_app("/mp-crash", app(instances=1, cmd="exit 3", backoff_seconds=60))
    waiting = wait_until(lambda: [q for q in server.get("/v2/queue")[1]["queue"] if q["app"]["id"] == "/mp-crash"
                                  and q["delay"]["timeLeftSeconds"] > 0], what="the crashing app's backoff")
    assert waiting
    assert client.reset_delay("/mp-crash") is None                   # 204, no body
    with pytest.raises(NotFoundError):
        client.reset_delay("/mp-nothing")
    client.delete_app("/mp-crash", force=True)
    gone(client, "/mp-crash")


# --- groups ------------------------------------------------------------------------------------

def test_groups(client: MarathonClient) -> None:
    group = MarathonGroup(id="/mp-grp", apps=[app(id="/mp-grp/web", instances=1),
                                              app(id="/mp-grp/db", instances=1)])
    created = client.create_group(group)
    assert set(created) == {"deploymentId", "version"}
    with pytest.raises(ConflictError):
        client.create_group(group)
    running(client, "/mp-grp/web", 1)

    listed = client.list_groups(id="/mp-grp")                          # kwargs filter on the client side
    assert len(listed) == 1 and isinstance(listed[0], MarathonGroup)
    assert {a.id for a in listed[0].apps} == {"/mp-grp/db", "/mp-grp/web"}
    got = client.get_group("/mp-grp")
    assert got.id == "/mp-grp" and got.version and {a.id for a in got.apps} == {"/mp-grp/db", "/mp-grp/web"}
    assert "/mp-grp" in {g.id for g in client.get_group("/").groups}

    got.apps = [a for a in got.apps if a.id == "/mp-grp/web"]          # PUT: the listed apps are the group's
    assert "deploymentId" in client.update_group("/mp-grp", got, force=True)
    gone(client, "/mp-grp/db")
    assert "deploymentId" in client.scale_group("/mp-grp", 2)
    assert deployed(client, "/mp-grp/web").instances == 2

    # rollback_group PUTs to /v2/groups/{id}/versions/{version} without a body; Marathon rolls a
    # group back with PUT /v2/groups/{id} {"version": ...}, so no Marathon accepts this call.
    with pytest.raises(MarathonHttpError) as refused:
        client.rollback_group("/mp-grp", got.version)
    assert refused.value.status_code == 400

    assert set(client.delete_group("/mp-grp", force=True)) == {"deploymentId", "version"}
    gone(client, "/mp-grp/web")
    with pytest.raises(NotFoundError):
        client.get_group("/mp-grp")


# --- events ------------------------------------------------------------------------------------

class EventReader:
    """``client.event_stream`` in a thread: the generator blocks, the test looks at what it saw."""

    def __init__(self, client: MarathonClient, *, raw: bool, event_types: list[Any]) -> None:
        self.seen: list[Any] = []
        self.thread = threading.Thread(target=self._read, args=(client, raw, event_types), daemon=True)
        self.thread.start()

    def _read(self, client: MarathonClient, raw: bool, event_types: list[Any]) -> None:
        try:
            for event in client.event_stream(raw=raw, event_types=event_types):
                self.seen.append(event)
        except Exception as exc:  # kept, so the test fails with the client's own error
            self.seen.append(exc)

    def wait_for(self, predicate: Callable[[Any], bool], what: str) -> Any:
        """The first event seen that ``predicate`` accepts, in whatever order events came."""
        def first() -> Any:
            for item in list(self.seen):
                if isinstance(item, Exception):
                    raise item
                if predicate(item):
                    return item
            return None
        return wait_until(first, timeout=30, interval=0.05, what=what)


def test_event_stream_parsed(client: MarathonClient) -> None:
    types: list[Any] = [MarathonEventStreamAttached, MarathonApiPostEvent, "status_update_event",
                        "instance_changed_event", MarathonDeploymentSuccess, "health_status_changed_event",
                        "app_terminated_event"]
    reader = EventReader(client, raw=False, event_types=types)
    reader.wait_for(lambda e: isinstance(e, MarathonEventStreamAttached), "the stream to attach")

    checked = app(instances=1, cmd="exec python3 -m http.server $PORT0",
                  health_checks=[MarathonHealthCheck(protocol="HTTP", path="/", grace_period_seconds=10,
                                                     interval_seconds=1, timeout_seconds=1)])
    client.create_app("/mp-events", checked)
    post = reader.wait_for(lambda e: isinstance(e, MarathonApiPostEvent)
                           and e.app_definition["id"] == "/mp-events", "api_post_event")
    assert post.uri == "/v2/apps"
    update = reader.wait_for(lambda e: isinstance(e, MarathonStatusUpdateEvent) and e.app_id == "/mp-events"
                             and e.task_status == "TASK_RUNNING", "status_update_event")
    assert update.ip_addresses[0].ip_address == "127.0.0.1"
    reader.wait_for(lambda e: isinstance(e, MarathonInstanceChangedEvent) and e.run_spec_id == "/mp-events"
                    and e.condition == "Running", "instance_changed_event")
    health = reader.wait_for(lambda e: isinstance(e, MarathonHealthStatusChangedEvent)
                             and e.app_id == "/mp-events", "health_status_changed_event")
    assert health.alive is True
    reader.wait_for(lambda e: isinstance(e, MarathonDeploymentSuccess), "deployment_success")
    task = running(client, "/mp-events", 1)[0]
    results = client.get_app("/mp-events").tasks[0].health_check_results
    assert [(r.alive, r.instance_id) for r in results] == [(True, task.id)]

    client.delete_app("/mp-events")
    reader.wait_for(lambda e: isinstance(e, MarathonAppTerminatedEvent) and e.app_id == "/mp-events",
                    "app_terminated_event")


def test_event_stream_raw_and_deployment_plans(client: MarathonClient) -> None:
    reader = EventReader(client, raw=True, event_types=["event_stream_attached", "deployment_info",
                                                        "deployment_step_success"])
    reader.wait_for(lambda e: "event_stream_attached" in e, "the stream to attach")
    client.create_app("/mp-plans", app(instances=0))
    info = json.loads(reader.wait_for(lambda e: "deployment_info" in e and "/mp-plans" in e, "deployment_info"))
    assert info["eventType"] == "deployment_info" and info["plan"]["id"]
    step = json.loads(reader.wait_for(lambda e: "deployment_step_success" in e and "/mp-plans" in e,
                                      "deployment_step_success"))
    assert step["plan"]["steps"][0]["actions"][0]["app"] == "/mp-plans"
    # Parsed, these events need the plan's `original` and `target` groups (MarathonDeploymentPlan),
    # which Marathon dropped in 1.8 (`plan-format=light` only): against any current Marathon the
    # client can read deployment_info and deployment_step_* raw only.
    for event in (info, step):
        with pytest.raises((TypeError, AttributeError)):
            EventFactory().process(event)
    client.delete_app("/mp-plans", force=True)
