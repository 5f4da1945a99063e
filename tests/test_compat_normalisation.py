"""Definitions Marathon accepts and normalises are accepted and normalised the same way.

Two families: dependencies on apps that do not exist (yet), which Marathon takes and orders
around; and the deprecated ``ports``/``portDefinitions`` that definitions exported from Marathon
carry for bridged Docker apps, which Marathon's ``AppNormalization`` drops in favour of the port
mappings. Checked at the definition level and through the API.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app_definitions import ValidationFailed, parse_app_definition

from .support import http, wait_until

# --- dependencies on apps that do not exist ------------------------------------------------------

MISSING = "/other/namespace/or/app"

# The batch PUT /v2/apps example of Marathon's REST documentation (numbers as numbers, and
# no instances so the in-process API, whose agents offer nothing, can finish the deployment).
BATCH = [
    {"id": "/test/sleep60", "cmd": "sleep 60", "cpus": 0.3, "instances": 0, "mem": 9,
     "dependencies": ["/test/sleep120", MISSING]},
    {"id": "/test/sleep120", "cmd": "sleep 120", "cpus": 0.3, "instances": 0, "mem": 9},
]

def _deployments_done(api: Any) -> bool:
    status, body, _ = http("GET", api.url, "/v2/deployments")
    return status == 200 and body == []


def test_a_dependency_on_a_missing_app_is_valid_and_canonical() -> None:
    app = parse_app_definition({"id": "/prod/web", "cmd": "x", "dependencies": ["db", "../shared/cache", MISSING]})
    assert app.dependencies == ["/prod/db", "/shared/cache", MISSING]


def test_planning_orders_around_a_missing_dependency() -> None:
    from scheduler.deploy.plan import build_plan

    target = {a.id: a for a in (parse_app_definition(raw) for raw in BATCH)}
    plan = build_plan({}, target, plan_id="p", version="2024-01-01T00:00:00.000Z")
    steps = [[(a.action, a.app_id) for a in step.actions] for step in plan.steps]
    # the missing app neither blocks /test/sleep60 nor counts as a level of its own
    assert steps == [
        [("StartApplication", "/test/sleep120"), ("StartApplication", "/test/sleep60")],
        [("ScaleApplication", "/test/sleep120")],
        [("ScaleApplication", "/test/sleep60")],
    ]
    alone = {"/web": parse_app_definition({"id": "/web", "cmd": "x", "dependencies": [MISSING]})}
    plan = build_plan({}, alone, plan_id="q", version="2024-01-01T00:00:00.000Z")
    assert [[a.action for a in step.actions] for step in plan.steps] == [["StartApplication"], ["ScaleApplication"]]


def test_documented_batch_with_a_missing_dependency_deploys(api) -> None:
    status, body, _ = http("PUT", api.url, "/v2/apps", BATCH)
    assert status in (200, 201), body
    wait_until(lambda: _deployments_done(api), timeout=20, what="the batch deployment to finish")
    app = http("GET", api.url, "/v2/apps/test/sleep60")[1]["app"]
    assert app["dependencies"] == ["/test/sleep120", MISSING]

    # a POST and a group naming something missing deploy too
    status, body, _ = http("POST", api.url, "/v2/apps", {"id": "/lonely", "cmd": "x", "instances": 0,
                                                        "dependencies": ["/nowhere"]})
    assert status == 201, body
    group = {"id": "/grp", "dependencies": ["/elsewhere"],
             "apps": [{"id": "a", "cmd": "x", "instances": 0, "dependencies": ["missing-sibling"]}]}
    status, body, _ = http("POST", api.url, "/v2/groups", group)
    assert status == 201, body
    wait_until(lambda: _deployments_done(api), timeout=20, what="those deployments to finish")

    # the dependency arriving later, changing the dependent app, and the dependency leaving again
    assert http("POST", api.url, "/v2/apps", {"id": "/nowhere", "cmd": "x", "instances": 0})[0] == 201
    wait_until(lambda: _deployments_done(api), timeout=20)
    assert http("PUT", api.url, "/v2/apps/lonely", {"cmd": "y"})[0] == 200
    wait_until(lambda: _deployments_done(api), timeout=20)
    assert http("DELETE", api.url, "/v2/apps/nowhere")[0] == 200
    wait_until(lambda: _deployments_done(api), timeout=20)
    assert http("PUT", api.url, "/v2/apps/lonely", {"cmd": "z"})[0] == 200
    wait_until(lambda: _deployments_done(api), timeout=20)
    assert http("GET", api.url, "/v2/apps/lonely")[1]["app"]["dependencies"] == ["/nowhere"]


# --- deprecated ports on bridged Docker apps -----------------------------------------------------

def exported_bridge_app(app_id: str, service_ports: tuple[int, ...] = (0, 0)) -> dict[str, Any]:
    """A bridged Docker app as Marathon 1.4 exported it: ``ports`` and ``portDefinitions`` echo
    the service ports of the (docker-level) port mappings."""
    mappings = [{"containerPort": 8080, "hostPort": 0, "servicePort": service_ports[0], "protocol": "tcp"},
                {"containerPort": 161, "hostPort": 0, "servicePort": service_ports[1], "protocol": "udp"}]
    return {
        "id": app_id, "cmd": "serve", "instances": 0, "cpus": 0.1, "mem": 32,
        "container": {"type": "DOCKER", "docker": {"image": "group/image", "network": "BRIDGE",
                                                   "portMappings": mappings}},
        "ports": list(service_ports),
        "portDefinitions": [{"port": p, "protocol": "tcp", "labels": {}} for p in service_ports],
        "requirePorts": False,
        "healthChecks": [{"protocol": "TCP", "portIndex": 1}],
    }


def test_bridge_app_drops_ports_and_port_definitions_and_keeps_the_mappings() -> None:
    app = parse_app_definition(exported_bridge_app("/web", (10101, 10102)))
    out = app.to_json()
    assert out["networks"] == [{"mode": "container/bridge"}]
    assert out["portDefinitions"] == [] and "ports" not in out
    assert out["container"]["portMappings"] == [
        {"containerPort": 8080, "hostPort": 0, "servicePort": 10101, "protocol": "tcp"},
        {"containerPort": 161, "hostPort": 0, "servicePort": 10102, "protocol": "udp"},
    ]
    assert "network" not in out["container"]["docker"] and "portMappings" not in out["container"]["docker"]
    assert out["healthChecks"][0]["portIndex"] == 1
    assert [(p.container_port, p.service_port) for p in app.port_specs()] == [(8080, 10101), (161, 10102)]
    assert parse_app_definition(out) == app
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("ports", [
    {"ports": [0]},
    {"portDefinitions": [{"port": 0, "name": "http"}]},
    {"ports": [], "portDefinitions": []},
])
def test_any_port_declaration_is_dropped_under_the_networks_api(ports: dict[str, Any]) -> None:
    app = parse_app_definition({"id": "/web", "container": {"type": "DOCKER", "docker": {"image": "x"},
                                                           "portMappings": [{"containerPort": 80}]},
                                "networks": [{"mode": "container/bridge"}], **ports})
    assert app.port_definitions == []
    assert [(m.container_port, m.host_port) for m in app.container.port_mappings] == [(80, 0)]


def test_more_ports_than_mappings_adds_plain_mappings_as_marathon_does() -> None:
    app = parse_app_definition({"id": "/web", "ports": [0, 0, 0],
                                "container": {"docker": {"image": "x", "network": "BRIDGE",
                                                         "portMappings": [{"containerPort": 80}]}}})
    assert app.port_definitions == []
    assert [m.model_dump(by_alias=True, exclude_none=True) for m in app.container.port_mappings] == [
        {"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp"},
        {"containerPort": 0, "hostPort": 0, "servicePort": 0, "protocol": "tcp"},
        {"containerPort": 0, "hostPort": 0, "servicePort": 0, "protocol": "tcp"},
    ]
    defaulted = parse_app_definition({"id": "/web", "ports": [0, 0],
                                      "container": {"docker": {"image": "x", "network": "BRIDGE"}}})
    assert [m.name for m in defaulted.container.port_mappings] == ["default", None]


def test_container_network_app_drops_ports_too() -> None:
    app = parse_app_definition({"id": "/web", "cmd": "x", "portDefinitions": [{"port": 0}],
                                "networks": [{"mode": "container", "name": "overlay"}],
                                "container": {"type": "MESOS", "portMappings": [{"containerPort": 80}]}})
    assert app.port_definitions == [] and len(app.container.port_mappings) == 1


def test_host_networking_keeps_its_rules() -> None:
    app = parse_app_definition({"id": "/web", "cmd": "x", "ports": [0, 0]})
    assert [d.port for d in app.port_definitions] == [0, 0]
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition({"id": "/web", "cmd": "x", "networks": [{"mode": "host"}],
                              "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]}})
    assert caught.value.messages("/") == ["portMappings are not allowed with host-networking"]


def test_exported_bridge_app_posts_with_201(api) -> None:
    status, body, _ = http("POST", api.url, "/v2/apps", exported_bridge_app("/exported/web"))
    assert status == 201, body
    assert body["portDefinitions"] == [] and "ports" not in body
    assert [m["containerPort"] for m in body["container"]["portMappings"]] == [8080, 161]
    assert all(m["servicePort"] for m in body["container"]["portMappings"])   # assigned, as usual
    stored = http("GET", api.url, "/v2/apps/exported/web")[1]["app"]
    assert stored["portDefinitions"] == [] and stored["networks"] == [{"mode": "container/bridge"}]


def test_group_of_exported_bridge_apps_posts_with_201(api) -> None:
    group = {"id": "/exported-group", "apps": [exported_bridge_app("web"), exported_bridge_app("api")]}
    status, body, _ = http("POST", api.url, "/v2/groups", group)
    assert status == 201, body
    for app_id in ("/exported-group/web", "/exported-group/api"):
        app = http("GET", api.url, f"/v2/apps{app_id}")[1]["app"]
        assert app["portDefinitions"] == [] and len(app["container"]["portMappings"]) == 2


def test_update_to_bridge_with_ports_is_accepted(api) -> None:
    assert http("POST", api.url, "/v2/apps", {"id": "/switch", "cmd": "x", "instances": 0, "ports": [0]})[0] == 201
    wait_until(lambda: _deployments_done(api), timeout=20, what="the create to finish")
    update = {"ports": [0], "networks": [{"mode": "container/bridge"}],
              "container": {"type": "DOCKER", "docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]}}
    status, body, _ = http("PUT", api.url, "/v2/apps/switch", update)
    assert status == 200, body
    app = http("GET", api.url, "/v2/apps/switch")[1]["app"]
    assert app["portDefinitions"] == [] and app["container"]["portMappings"][0]["containerPort"] == 80
