"""The incremental renderer gives exactly what a full render gives, and redoes only what changed.

The property: over random sequences of app changes (tasks, labels, ports, vhosts, health, apps
coming and going, exclusions, resolved hosts, the health memory), the renderer fed the whole
list and the renderer fed only the change both give `render_haproxy_config(build_model(...))`
byte for byte, and the same model. The unit tests count what was redone: a task change of one
app renders that app's sections and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haproxy_bridge.app_model import Service
from haproxy_bridge.incremental import IncrementalRenderer, Rendered
from haproxy_bridge.model import Model, build_model
from haproxy_bridge.render import RenderSettings, render_haproxy_config, service_text

from .test_haproxy_render import HTTP_CHECK, app, task

SETTINGS = RenderSettings(http_port=18080, https_port=18443, stats_port=19090,
                          admin_socket="/run/pacer-test/admin.sock", request_log="/run/pacer-test/reqlog.sock")
RESERVED = {("127.0.0.1", 18080): "http", ("127.0.0.1", 18443): "https", ("127.0.0.1", 19090): "stats"}
IDS = ["/a", "/b", "/team/c", "/d", "/e_1", "bad id"]


def full(apps: list[dict[str, Any]], **inputs: Any) -> Rendered:
    model = build_model(apps, **inputs)
    return Rendered(model, render_haproxy_config(model, SETTINGS))


# -- random apps: few ids, ports and vhosts, so that apps collide, share and take over --------------
label_sets = st.fixed_dictionaries({}, optional={
    "HAPROXY_GROUP": st.sampled_from(["external", "internal", "external,internal"]),
    "HAPROXY_0_VHOST": st.sampled_from(["a.example.com", "b.example.com", "*.example.com",
                                        "a.example.com,c.example.com"]),
    "HAPROXY_0_PATH": st.sampled_from(["/api", "/", "/x /y"]),
    "HAPROXY_0_MODE": st.sampled_from(["http", "tcp", "udp"]),
    "HAPROXY_0_BALANCE": st.sampled_from(["leastconn", "source", "roundrobin"]),
    "HAPROXY_0_STICKY": st.sampled_from(["true", "false"]),
    "HAPROXY_0_PORT": st.sampled_from(["10100", "18080", "10200"]),
    "HAPROXY_0_BACKEND_WEIGHT": st.sampled_from(["5", "-3"]),
    "HAPROXY_0_SSL_CERT": st.just("/certs/a.pem"),
    "HAPROXY_0_AUTH": st.just("realm:user:$6$saltsalt$hashhashhash"),
    "HAPROXY_1_VHOST": st.sampled_from(["b.example.com", "d.example.com"]),
    "HAPROXY_1_ENABLED": st.just("false"),
    "HAPROXY_DEPLOYMENT_GROUP": st.sampled_from(["blue", "green"]),
})
task_lists = st.lists(st.builds(
    lambda n, port, host, state, alive: task(f"t{n}", port, port + 1, host=host, state=state, alive=alive),
    st.integers(0, 5), st.sampled_from([31000, 31001, 31002]), st.sampled_from(["127.0.0.1", "agent-1", "agent-2"]),
    st.sampled_from(["TASK_RUNNING", "TASK_RUNNING", "TASK_STAGING"]), st.sampled_from([None, True, False])),
    max_size=3)
#: a canary running (its weights), and judging latency (HAProxy logs its requests) or not
CANARIES: dict[str | None, dict[str, Any]] = {
    None: {},
    "weights": {"canaryTraffic": {"percent": 50, "canaryTasks": ["t1"], "canaryWeight": 2, "stableWeight": 1}},
    "latency": {"canaryTraffic": {"percent": 50, "canaryTasks": ["t1"], "canaryWeight": 2, "stableWeight": 1},
                "upgradeStrategy": {"canary": {"analysis": {"maxLatencyP95Ratio": 1.5}}}},
}
apps_st = st.builds(
    lambda app_id, ports, labels, tasks, checked, since, canary: app(
        app_id, ports, labels, copy.deepcopy(tasks), **({"healthChecks": HTTP_CHECK} if checked else {}),
        **({"versionInfo": {"lastConfigChangeAt": since}} if since else {}), **copy.deepcopy(CANARIES[canary])),
    st.sampled_from(IDS), st.lists(st.sampled_from([0, 10100, 10101, 10102]), max_size=2),
    label_sets, task_lists, st.booleans(), st.sampled_from([None, "2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z"]),
    st.sampled_from(list(CANARIES)))

steps = st.one_of(
    st.tuples(st.just("put"), apps_st),
    st.tuples(st.just("tasks"), st.sampled_from(IDS), task_lists),
    st.tuples(st.just("remove"), st.sampled_from(IDS)),
    st.tuples(st.just("exclude"), st.sets(st.sampled_from(IDS), max_size=2)),
    st.tuples(st.just("hosts"), st.sampled_from([{}, {"agent-1": "127.0.0.5"},
                                                 {"agent-1": "10.0.0.1", "agent-2": "10.0.0.2"}])),
    st.tuples(st.just("healthy"), st.sets(st.sampled_from([f"t{n}" for n in range(6)]), max_size=4)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(start=st.lists(apps_st, max_size=5), changes=st.lists(steps, min_size=1, max_size=12),
       group=st.sampled_from(["*", "external"]))
def test_incremental_render_is_byte_identical_to_a_full_render(start: list[dict[str, Any]], changes: list[Any],
                                                               group: str) -> None:
    apps = {a["id"]: a for a in start}
    whole, delta = IncrementalRenderer(SETTINGS), IncrementalRenderer(SETTINGS)
    exclude: dict[str, str] = {}
    hosts: dict[str, str] = {}
    healthy: set[str] = set()
    live: Model | None = None
    owners: dict[Any, Any] = {}

    def inputs() -> dict[str, Any]:
        return dict(reserved=RESERVED, host_addresses=hosts, known_healthy=healthy, default_bind="127.0.0.1",
                    exclude=exclude, previous=live, owners=owners)

    whole.render(list(apps.values()), group, **inputs())
    delta.render(list(apps.values()), group, **inputs())
    for step in changes:
        changed: list[dict[str, Any]] = []
        removed: list[str] = []
        kind = step[0]
        if kind == "put":
            apps[step[1]["id"]] = step[1]
            changed = [step[1]]
        elif kind == "tasks" and step[1] in apps:
            apps[step[1]] = {**apps[step[1]], "tasks": copy.deepcopy(step[2])}
            changed = [apps[step[1]]]
        elif kind == "remove" and step[1] in apps:
            del apps[step[1]]
            removed = [step[1]]
        elif kind == "exclude":
            exclude = {i: "left out by the test" for i in step[1]}
        elif kind == "hosts":
            hosts = step[1]
            changed = list(apps.values())       # a fact about other apps' tasks: they changed
        elif kind == "healthy":
            healthy = set(step[1])
            changed = list(apps.values())
        expected = full(list(apps.values()), group=group, **inputs())
        got_whole = whole.render(list(apps.values()), group, **inputs())
        got_delta = delta.update(changed, removed, group, **inputs())
        assert got_whole.text == expected.text
        assert got_delta.text == expected.text
        assert got_whole.model == expected.model == got_delta.model
        live, owners = expected.model, dict(expected.model.owners)


# -- what is redone ------------------------------------------------------------------------------
def fleet(n: int = 30, gen: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        labels = {"HAPROXY_GROUP": "external"}
        if i % 2 == 0:
            labels["HAPROXY_0_VHOST"] = f"app{i}.example.com"
        out.append(app(f"/team/app{i}", [10100 + i], labels,
                       [task(f"app{i}.{k}", 31000 + i * 10 + k, host="agent-1") for k in range(3)],
                       **({"healthChecks": HTTP_CHECK} if i % 3 == 0 else {})))
    return out


class CountingSections:
    """A section renderer that counts what it renders, by backend."""

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def __call__(self, service: Service, settings: RenderSettings) -> str:
        self.rendered.append(service.backend)
        return service_text(service, settings)


def test_a_task_change_renders_only_that_apps_sections() -> None:
    counting = CountingSections()
    renderer = IncrementalRenderer(SETTINGS, section_renderer=counting)
    apps = fleet()
    renderer.render(apps, host_addresses={"agent-1": "127.0.0.1"})
    assert len(counting.rendered) == 30
    counting.rendered.clear()
    apps[4] = {**apps[4], "tasks": [task("app4.9", 31999, host="agent-1")]}
    got = renderer.render(copy.deepcopy(apps), host_addresses={"agent-1": "127.0.0.1"})
    assert counting.rendered == ["team_app4_10104"]
    assert renderer.stats.parts_built == 31 and renderer.stats.full_settles == 1 and renderer.stats.patched == 1
    assert got.text == full(apps, host_addresses={"agent-1": "127.0.0.1"}).text
    assert "server app4.9 127.0.0.1:31999" in got.text


def test_an_event_sized_update_redoes_one_app() -> None:
    counting = CountingSections()
    renderer = IncrementalRenderer(SETTINGS, section_renderer=counting)
    apps = fleet()
    renderer.render(apps)
    counting.rendered.clear()
    apps[7] = copy.deepcopy(apps[7])
    apps[7]["labels"]["HAPROXY_0_BALANCE"] = "leastconn"
    got = renderer.update([apps[7]])
    assert counting.rendered == ["team_app7_10107"]
    assert renderer.stats.parts_built == 31 and renderer.stats.full_settles == 1
    assert got.text == full(apps).text and "  balance leastconn" in got.text


def test_unchanged_apps_render_nothing_and_give_the_same_text() -> None:
    counting = CountingSections()
    renderer = IncrementalRenderer(SETTINGS, section_renderer=counting)
    first = renderer.render(fleet())
    counting.rendered.clear()
    again = renderer.render(fleet())
    assert counting.rendered == [] and renderer.stats.parts_built == 30
    assert again.text == first.text


def test_a_new_vhost_settles_every_app_again_and_stays_identical() -> None:
    renderer = IncrementalRenderer(SETTINGS)
    apps = fleet()
    renderer.render(apps)
    apps[1] = copy.deepcopy(apps[1])
    apps[1]["labels"]["HAPROXY_0_VHOST"] = "app0.example.com"      # app0's vhost: app1 must lose
    got = renderer.update([apps[1]])
    assert renderer.stats.full_settles == 2
    expected = full(apps)
    assert got.text == expected.text and got.model == expected.model
    status = got.model.app("/team/app1")
    assert status is not None and status.state == "rejected"


def test_a_removed_app_takes_its_sections_out() -> None:
    renderer = IncrementalRenderer(SETTINGS)
    apps = fleet()
    renderer.render(apps)
    got = renderer.update([], removed=["/team/app5"])
    assert "team_app5_10105" not in got.text
    assert got.text == full(apps[:5] + apps[6:]).text


def test_kept_parts_are_rebuilt_when_what_they_read_changes() -> None:
    checked = app("/checked", [10100], {}, [task("c.1", 31000, host="agent-1")], healthChecks=HTTP_CHECK)
    renderer = IncrementalRenderer(SETTINGS)
    assert "server c.1" not in renderer.render([checked]).text          # no result, never seen healthy
    got = renderer.render([checked], known_healthy={"c.1"})
    assert "server c.1 127.0.0.1:31000" in got.text                      # seen healthy before: keeps its place
    got = renderer.render([checked], known_healthy={"c.1"}, host_addresses={"agent-1": "127.0.0.9"})
    assert "server c.1 127.0.0.9:31000" in got.text
    assert renderer.stats.parts_built == 3


def test_a_mutated_app_dict_is_seen_as_changed() -> None:
    renderer = IncrementalRenderer(SETTINGS)
    apps = fleet(4)
    renderer.render(apps)
    apps[2]["tasks"][0]["ports"] = [32000]          # the same dict, changed in place
    assert renderer.render(apps).text == full(apps).text


def test_duplicate_ids_then_unique_ids() -> None:
    renderer = IncrementalRenderer(SETTINGS)
    apps = fleet(4)
    assert renderer.render(apps + [apps[1]]).text == full(apps + [apps[1]]).text
    got = renderer.render(apps)
    assert got.text == full(apps).text and got.model == full(apps).model


def test_a_port_contest_follows_the_previous_model_even_when_no_footprint_changed() -> None:
    first = app("/a", [10100], {}, [task("a.1", 31000)])
    second = app("/b", [10100], {}, [task("b.1", 31001)])
    renderer = IncrementalRenderer(SETTINGS)
    renderer.render([first, second])                                   # no previous: the lower id wins
    held_by_b = build_model([second])                                  # HAProxy runs /b on the port
    moved = {**second, "tasks": [task("b.1", 31002)]}
    got = renderer.update([moved], previous=held_by_b)
    expected = full([first, moved], previous=held_by_b)
    assert got.text == expected.text and got.model == expected.model
    status = got.model.app("/a")
    assert status is not None and status.state == "rejected"
