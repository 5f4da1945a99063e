"""Parsing and normalisation of app definitions: the seed example, defaults, deprecated forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_definitions import (
    AppDefinition,
    Constraint,
    EnvSecretRef,
    PortSpec,
    UnreachableStrategy,
    ValidationFailed,
    parse_app_definition,
)

SEED = Path(__file__).resolve().parent / "fixtures" / "seed-marathon-qa.json"


def parse(**fields: object) -> AppDefinition:
    return parse_app_definition({"id": "/app", "cmd": "sleep 100", **fields})


def test_seed_example_is_accepted_and_normalised() -> None:
    raw = json.loads(SEED.read_text())
    app = parse_app_definition(raw)
    out = app.to_json()

    assert app.id == "/appName"
    assert app.args == ["--spring.profiles.active=qa"] and app.cmd is None
    assert (app.cpus, app.mem, app.instances) == (2.0, 2048.0, 2)
    assert out["networks"] == [{"mode": "container", "name": "calico-net"}]
    assert app.networking_mode == "container" and app.network_names == ["calico-net"]
    assert out["container"]["docker"] == {
        "image": "imageName",
        "forcePullImage": True,
        "privileged": False,
        "parameters": [],
    }
    assert out["container"]["portMappings"] == [
        {"containerPort": 12345, "hostPort": 0, "servicePort": 12345, "protocol": "tcp"}
    ]
    assert out["container"]["volumes"] == [
        {"containerPath": "/app/log", "hostPath": "/home/logs/appName", "mode": "RW"}
    ]
    assert out["fetch"] == [{"uri": "file:///etc/docker.tar.gz", "extract": True, "executable": False, "cache": False}]
    assert out["portDefinitions"] == []
    assert out["healthChecks"][0]["portIndex"] == 0 and out["healthChecks"][0]["ignoreHttp1xx"] is True
    assert out["labels"] == {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "xxx.hujiang.com"}
    for deprecated in ("uris", "ipAddress", "ports"):
        assert deprecated not in out
    assert app.port_specs() == [
        PortSpec(index=0, name=None, host_port=0, container_port=12345, service_port=12345, protocol="tcp")
    ]
    assert parse_app_definition(out) == app
    assert json.loads(json.dumps(out)) == out


def test_seed_example_is_not_mutated() -> None:
    raw = json.loads(SEED.read_text())
    before = json.dumps(raw, sort_keys=True)
    parse_app_definition(raw)
    assert json.dumps(raw, sort_keys=True) == before


def test_minimal_app_gets_marathon_defaults() -> None:
    out = parse_app_definition({"id": "web", "cmd": "python3 -m http.server $PORT0"}).to_json()
    assert out["id"] == "/web"
    assert out["cpus"] == 1.0 and out["mem"] == 128.0 and out["disk"] == 0.0 and out["gpus"] == 0
    assert out["instances"] == 1 and out["executor"] == ""
    assert out["networks"] == [{"mode": "host"}]
    assert out["portDefinitions"] == [{"port": 0, "protocol": "tcp", "name": "default"}]
    assert out["requirePorts"] is False
    # Pacer's progressDeadlineSeconds/autoRollback appear only when not at their defaults
    assert out["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert (out["backoffSeconds"], out["backoffFactor"], out["maxLaunchDelaySeconds"]) == (1, 1.15, 300)
    assert out["killSelection"] == "YOUNGEST_FIRST"
    assert out["unreachableStrategy"] == {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    for omitted in ("args", "container", "user", "taskKillGracePeriodSeconds", "version", "versionInfo", "role"):
        assert omitted not in out


def test_explicit_empty_port_definitions_mean_no_ports() -> None:
    assert parse(portDefinitions=[]).port_specs() == []
    assert parse(ports=[]).port_specs() == []


def test_deprecated_ports_become_port_definitions() -> None:
    app = parse(ports=[8080, 0])
    assert app.to_json()["portDefinitions"] == [
        {"port": 8080, "protocol": "tcp"},
        {"port": 0, "protocol": "tcp"},
    ]
    assert [s.service_port for s in app.port_specs()] == [8080, 0]
    assert [s.host_port for s in app.port_specs()] == [0, 0]


def test_ports_equivalent_to_port_definitions_are_accepted() -> None:
    app = parse(ports=[80], portDefinitions=[{"port": 80, "name": "http"}])
    assert app.to_json()["portDefinitions"] == [{"port": 80, "protocol": "tcp", "name": "http"}]


def test_require_ports_uses_the_ports_as_host_ports() -> None:
    app = parse(portDefinitions=[{"port": 8080, "name": "http"}], requirePorts=True)
    assert app.port_specs() == [
        PortSpec(index=0, name="http", host_port=8080, container_port=None, service_port=8080, protocol="tcp")
    ]


def test_bridge_network_gets_default_port_mapping_and_host_port_zero() -> None:
    app = parse_app_definition(
        {"id": "/b", "container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE"}}}
    )
    out = app.to_json()
    assert out["networks"] == [{"mode": "container/bridge"}]
    assert out["container"]["portMappings"] == [
        {"containerPort": 0, "hostPort": 0, "servicePort": 0, "protocol": "tcp", "name": "default"}
    ]
    assert out["portDefinitions"] == []
    mapped = parse_app_definition(
        {
            "id": "/b",
            "networks": [{"mode": "container/bridge"}],
            "container": {"docker": {"image": "nginx"}, "portMappings": [{"containerPort": 80}]},
        }
    )
    assert mapped.port_specs()[0].host_port == 0 and mapped.port_specs()[0].container_port == 80


def test_explicit_empty_port_mappings_mean_no_ports() -> None:
    app = parse_app_definition(
        {
            "id": "/b",
            "networks": [{"mode": "container/bridge"}],
            "container": {"docker": {"image": "nginx"}, "portMappings": []},
        }
    )
    assert app.port_specs() == [] and app.to_json()["container"]["portMappings"] == []


def test_container_network_without_host_port_allocates_none() -> None:
    app = parse_app_definition(
        {
            "id": "/c",
            "networks": [{"mode": "container", "name": "overlay"}],
            "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 80, "name": "http"}]},
        }
    )
    assert app.port_specs()[0].host_port is None
    assert app.network_names == ["overlay"]


@pytest.mark.parametrize(
    ("docker_network", "ip_address", "networks"),
    [
        ("HOST", None, [{"mode": "host"}]),
        ("BRIDGE", None, [{"mode": "container/bridge"}]),
        ("USER", None, [{"mode": "container", "name": "default"}]),
        ("USER", {"networkName": "calico-net"}, [{"mode": "container", "name": "calico-net"}]),
        (None, {"networkName": "calico-net"}, [{"mode": "container", "name": "calico-net"}]),
        (None, {"networkName": "mesos-bridge"}, [{"mode": "container/bridge"}]),
        (None, {"labels": {"a": "b"}}, [{"mode": "container", "name": "default", "labels": {"a": "b"}}]),
    ],
)
def test_deprecated_networking_becomes_networks(
    docker_network: str | None, ip_address: dict | None, networks: list
) -> None:
    docker: dict = {"image": "x"}
    if docker_network:
        docker["network"] = docker_network
    data: dict = {"id": "/n", "cmd": "run", "container": {"type": "DOCKER", "docker": docker}}
    if ip_address is not None:
        data["ipAddress"] = ip_address
    out = parse_app_definition(data).to_json()
    assert out["networks"] == networks
    assert "network" not in out["container"]["docker"] and "ipAddress" not in out


def test_ip_address_without_container_implies_a_mesos_container_with_discovery_ports() -> None:
    app = parse_app_definition(
        {
            "id": "/ip",
            "cmd": "run",
            "ipAddress": {"networkName": "dev", "discovery": {"ports": [{"number": 80, "name": "http"}]}},
        }
    )
    out = app.to_json()
    assert out["container"]["type"] == "MESOS"
    assert out["container"]["portMappings"] == [
        {"containerPort": 80, "servicePort": 0, "protocol": "tcp", "name": "http"}
    ]


def test_docker_port_mappings_move_to_the_container() -> None:
    out = parse_app_definition(
        {
            "id": "/d",
            "container": {"docker": {"image": "x", "network": "BRIDGE", "portMappings": [{"containerPort": 8080}]}},
        }
    ).to_json()
    assert out["container"]["portMappings"] == [
        {"containerPort": 8080, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}
    ]
    assert "portMappings" not in out["container"]["docker"]


def test_uris_become_fetch() -> None:
    out = parse(uris=["https://example.com/app.jar"]).to_json()
    assert out["fetch"] == [
        {"uri": "https://example.com/app.jar", "extract": True, "executable": False, "cache": False}
    ]


def test_health_check_defaults() -> None:
    http, tcp = parse(healthChecks=[{}, {"protocol": "TCP"}]).health_checks
    command = parse(healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}}]).health_checks[0]
    assert (http.protocol, http.path, http.port_index) == ("HTTP", "/", 0)
    assert (http.grace_period_seconds, http.interval_seconds, http.timeout_seconds) == (300, 60, 20)
    assert (http.max_consecutive_failures, http.delay_seconds, http.ip_protocol) == (3, 15, "IPv4")
    assert (tcp.path, tcp.port_index) == (None, 0)
    assert (command.path, command.port_index) == (None, None)


def test_health_check_with_port_gets_no_port_index() -> None:
    check = parse(healthChecks=[{"protocol": "MESOS_TCP", "port": 9000}]).health_checks[0]
    assert check.port == 9000 and check.port_index is None


def test_readiness_check_defaults() -> None:
    check = parse(portDefinitions=[{"port": 0, "name": "http-api"}], readinessChecks=[{}]).readiness_checks[0]
    assert (check.name, check.protocol, check.path, check.port_name) == ("readinessCheck", "HTTP", "/", "http-api")
    assert (check.interval_seconds, check.timeout_seconds) == (30, 10)
    assert check.http_status_codes_for_ready == [200] and check.preserve_last_response is False


def test_nulls_mean_defaults() -> None:
    assert parse(mem=None, container=None, labels={"a": None}) == parse()


def test_unknown_fields_are_ignored() -> None:
    app = parse(tasksRunning=3, somethingNew={"x": 1}, deployments=[])
    assert app == parse()


def test_integral_floats_are_accepted_for_integers() -> None:
    assert parse(instances=3.0).instances == 3


@pytest.mark.parametrize(("field", "value"), [("instances", "3"), ("instances", True), ("instances", 2.5)])
def test_no_other_coercion(field: str, value: object) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse(**{field: value})
    assert err.value.messages(f"/{field}") == ["must be an integer"]


def test_relative_ids_resolve_against_the_parent_group() -> None:
    app = parse_app_definition({"id": "api", "cmd": "x", "dependencies": ["db", "../cache", "/ops/log"]}, parent="/prod")
    assert app.id == "/prod/api"
    assert app.dependencies == ["/prod/db", "/cache", "/ops/log"]


def test_constraints_are_typed_and_keep_marathon_json() -> None:
    app = parse(constraints=[["hostname", "unique"], ["rack", "GROUP_BY", "3"], ["zone", "MAX_PER", 2]])
    assert app.constraints == [
        Constraint("hostname", "UNIQUE"),
        Constraint("rack", "GROUP_BY", "3"),
        Constraint("zone", "MAX_PER", "2"),
    ]
    assert app.to_json()["constraints"] == [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"], ["zone", "MAX_PER", "2"]]


def test_env_secrets_and_plain_values() -> None:
    app = parse(env={"A": "1", "PW": {"secret": "db"}}, secrets={"db": {"source": "/vault/db"}})
    assert app.env == {"A": "1", "PW": EnvSecretRef(secret="db")}
    assert app.to_json()["env"] == {"A": "1", "PW": {"secret": "db"}}


def test_unreachable_strategy_disabled_round_trips() -> None:
    app = parse(unreachableStrategy="disabled")
    assert app.unreachable_strategy.is_disabled and app.unreachable_strategy == UnreachableStrategy.disabled()
    assert app.to_json()["unreachableStrategy"] == "disabled"
    assert parse_app_definition(app.to_json()) == app


def test_single_instance_label_defaults_the_upgrade_strategy() -> None:
    strategy = parse(labels={"MARATHON_SINGLE_INSTANCE_APP": "true"}).upgrade_strategy
    assert (strategy.minimum_health_capacity, strategy.maximum_over_capacity) == (0.0, 0.0)


def test_resident_app_defaults() -> None:
    app = parse(
        container={
            "type": "MESOS",
            "volumes": [{"containerPath": "data", "persistent": {"size": 100}, "mode": "RW"}],
        }
    )
    assert app.is_resident
    assert (app.upgrade_strategy.minimum_health_capacity, app.upgrade_strategy.maximum_over_capacity) == (0.5, 0.0)
    assert app.unreachable_strategy.is_disabled
    assert app.residency is not None and app.to_json()["residency"]["taskLostBehavior"] == "WAIT_FOREVER"


def test_pacer_upgrade_strategy_extensions() -> None:
    strategy = parse(upgradeStrategy={"progressDeadlineSeconds": 120, "autoRollback": True}).upgrade_strategy
    assert (strategy.progress_deadline_seconds, strategy.auto_rollback) == (120, True)
    assert strategy.minimum_health_capacity == 1.0


@pytest.mark.parametrize(("given", "shown"), [
    ({}, {}),
    ({"progressDeadlineSeconds": 600, "autoRollback": False}, {}),
    ({"progressDeadlineSeconds": 0}, {"progressDeadlineSeconds": 0}),
    ({"autoRollback": True}, {"autoRollback": True}),
    ({"progressDeadlineSeconds": 90, "autoRollback": True}, {"progressDeadlineSeconds": 90, "autoRollback": True}),
])
def test_pacer_extensions_are_shown_only_when_not_default(given: dict, shown: dict) -> None:
    app = parse(upgradeStrategy=given)
    out = app.to_json()
    assert out["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0, **shown}
    assert parse_app_definition(out) == app


def test_task_kill_grace_seconds() -> None:
    assert parse().task_kill_grace_seconds == 3.0
    assert parse(taskKillGracePeriodSeconds=30).task_kill_grace_seconds == 30.0


def test_version_fields_are_accepted_and_kept() -> None:
    stamps = {"lastScalingAt": "2024-05-01T10:00:00.000Z", "lastConfigChangeAt": "2024-04-01T10:00:00.000Z"}
    app = parse(version="2024-05-01T10:00:00.000Z", versionInfo=stamps)
    assert app.version == "2024-05-01T10:00:00.000Z"
    assert app.version_info is not None and app.version_info.last_scaling_at == stamps["lastScalingAt"]
    assert app.to_json()["versionInfo"] == stamps


def test_models_are_frozen() -> None:
    app = parse()
    with pytest.raises(Exception):
        app.instances = 3  # type: ignore[misc]
    assert app.model_copy(update={"instances": 3}).instances == 3


def test_snake_case_names_populate_models() -> None:
    app = AppDefinition(id="/x", cmd="run", task_kill_grace_period_seconds=5)
    assert app.to_json()["taskKillGracePeriodSeconds"] == 5
