"""Validation rules, one row each: the input, the JSON path reported and Marathon's message."""

from __future__ import annotations

from typing import Any

import pytest

from app_definitions import ValidationFailed, canonical_path_id, parse_app_definition
from app_definitions.path_id import SEGMENT_PATTERN

CMD_MSG = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
HC_PORT_MSG = "Health check port indices must address an element of the ports array or container port mappings."
OPERATOR_MSG = (
    "Constraint operator must be one of the following: UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"
)
RESERVED_MSG = "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
MODES_MSG = "May specify a single host network, single bridge network, or else 1-to-n container networks"

BASE: dict[str, Any] = {"id": "/app", "cmd": "sleep 100"}
DOCKER = {"type": "DOCKER", "docker": {"image": "nginx"}}
BRIDGE = {"networks": [{"mode": "container/bridge"}], "container": DOCKER}


def docker_with(**container: Any) -> dict[str, Any]:
    return {"container": {**DOCKER, **container}}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # id
    ("reserved last segment", {"id": "/app/tasks"}, "/id", RESERVED_MSG),
    ("reserved dot-dot", {"id": "/app/.."}, "/id", RESERVED_MSG),
    ("bad characters", {"id": "/my_app"}, "/id", f"must fully match regular expression '{SEGMENT_PATTERN}'"),
    ("leading dash", {"id": "/-app"}, "/id", f"must fully match regular expression '{SEGMENT_PATTERN}'"),
    ("empty id", {"id": ""}, "/id", "Path must contain at least one path element"),
    ("root id", {"id": "/"}, "/id", "must not be root"),
    ("id not a string", {"id": 5}, "/id", "must be a string"),
    ("missing id", {"id": None}, "/id", "is required"),
    ("bad dependency", {"dependencies": ["/db/versions"]}, "/dependencies(0)", RESERVED_MSG),
    # command
    ("cmd and args", {"args": ["x"]}, "/", CMD_MSG),
    ("neither cmd, args nor container", {"cmd": None}, "/", CMD_MSG),
    ("empty cmd", {"cmd": ""}, "/cmd", "must not be empty"),
    ("args not strings", {"cmd": None, "args": ["a", 1]}, "/args(1)", "must be a string"),
    # resources and numbers
    ("cpus too small", {"cpus": 0}, "/cpus", "got 0, expected 0.001 or more"),
    ("cpus not a number", {"cpus": "2"}, "/cpus", "must be a number"),
    ("negative mem", {"mem": -1}, "/mem", "got -1, expected 0.0 or more"),
    ("negative disk", {"disk": -0.5}, "/disk", "got -0.5, expected 0.0 or more"),
    ("negative gpus", {"gpus": -1}, "/gpus", "got -1, expected 0 or more"),
    ("negative instances", {"instances": -1}, "/instances", "got -1, expected 0 or more"),
    ("backoff factor below 1", {"backoffFactor": 0.9}, "/backoffFactor", "got 0.9, expected 1.0 or more"),
    ("negative backoff", {"backoffSeconds": -1}, "/backoffSeconds", "got -1, expected 0 or more"),
    ("negative max delay", {"maxLaunchDelaySeconds": -1}, "/maxLaunchDelaySeconds", "got -1, expected 0 or more"),
    ("negative kill grace", {"taskKillGracePeriodSeconds": -1}, "/taskKillGracePeriodSeconds",
     "got -1, expected 0 or more"),
    ("gpus with docker", {"gpus": 1, **docker_with()}, "/", "GPU resources only work with the Mesos containerizer"),
    ("limit below request", {"mem": 256, "resourceLimits": {"mem": 128}}, "/resourceLimits/mem",
     "got 128.0, expected 256.0 (the requested mem) or more"),
    ("bad limit", {"resourceLimits": {"cpus": "lots"}}, "/resourceLimits/cpus",
     'must be a non-negative number or "unlimited"'),
    # upgrade strategy
    ("min health above 1", {"upgradeStrategy": {"minimumHealthCapacity": 1.5}},
     "/upgradeStrategy/minimumHealthCapacity", "got 1.5, expected 1.0 or less"),
    ("max over below 0", {"upgradeStrategy": {"maximumOverCapacity": -0.1}},
     "/upgradeStrategy/maximumOverCapacity", "got -0.1, expected 0.0 or more"),
    ("negative deadline", {"upgradeStrategy": {"progressDeadlineSeconds": -1}},
     "/upgradeStrategy/progressDeadlineSeconds", "got -1, expected 0 or more"),
    ("auto rollback not bool", {"upgradeStrategy": {"autoRollback": "yes"}}, "/upgradeStrategy/autoRollback",
     "must be a boolean"),
    # networking and ports
    ("port mappings with host networking",
     {"networks": [{"mode": "host"}], **docker_with(portMappings=[{"containerPort": 80}])},
     "/", "portMappings are not allowed with host-networking"),
    ("ports and port definitions differ", {"ports": [80], "portDefinitions": [{"port": 81}]},
     "/", "cannot specify both ports and port definitions"),
    ("duplicate ports", {"ports": [80, 80]}, "/", "ports must be unique"),
    ("ports not integers", {"ports": ["80"]}, "/ports(0)", "must be an integer"),
    ("networks and ipAddress", {"networks": [{"mode": "container", "name": "a"}], "ipAddress": {}},
     "/", "must not specify both networks and ipAddress"),
    ("networks and docker network",
     {"networks": [{"mode": "host"}], "container": {"docker": {"image": "x", "network": "HOST"}}},
     "/", "must not specify both container.docker.network and networks"),
    ("ipAddress and ports", {"ipAddress": {"networkName": "a"}, "ports": [80]},
     "/", "cannot specify both an IP address and port"),
    ("ipAddress discovery with docker",
     {"ipAddress": {"discovery": {"ports": [{"number": 80, "name": "http"}]}}, **docker_with()},
     "/ipAddress", "ipAddress/discovery is not allowed for Docker containers"),
    ("docker network NONE", {"container": {"docker": {"image": "x", "network": "NONE"}}},
     "/container/docker/network", "unsupported docker network type NONE"),
    ("docker network unknown", {"container": {"docker": {"image": "x", "network": "OVERLAY"}}},
     "/container/docker/network", "got 'OVERLAY', expected one of 'BRIDGE', 'HOST', 'NONE' or 'USER'"),
    ("both port mapping locations",
     {"container": {"docker": {"image": "x", "portMappings": [{"containerPort": 1}]},
                    "portMappings": [{"containerPort": 2}]}},
     "/container", "cannot specify both portMappings and docker.portMappings"),
    ("uris and fetch", {"uris": ["a"], "fetch": [{"uri": "b"}]}, "/uris", "may not be set in conjunction with fetch"),
    ("mixed network modes", {"networks": [{"mode": "host"}, {"mode": "container", "name": "a"}]},
     "/networks", MODES_MSG),
    ("two bridges", {"networks": [{"mode": "container/bridge"}, {"mode": "container/bridge"}]},
     "/networks", MODES_MSG),
    ("host network with name", {"networks": [{"mode": "host", "name": "x"}]},
     "/networks", "Host networks may not have names or labels"),
    ("bridge network with name", {"networks": [{"mode": "container/bridge", "name": "x"}]},
     "/networks", "Bridge networks may not have names"),
    ("duplicate networks", {"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "a"}]},
     "/networks", "Duplicate networks are not allowed"),
    ("docker on two container networks",
     {"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}], **docker_with()},
     "/", "may only specify a single container network when using the Docker container engine"),
    ("bad network mode", {"networks": [{"mode": "overlay"}]}, "/networks(0)/mode",
     "got 'overlay', expected one of 'host', 'container/bridge' or 'container'"),
    ("duplicate port names", {"portDefinitions": [{"name": "http"}, {"name": "http"}]},
     "/portDefinitions", "Port names must be unique."),
    ("duplicate fixed ports", {"portDefinitions": [{"port": 80}, {"port": 80}]},
     "/portDefinitions", "Ports must be unique."),
    ("duplicate mapping names",
     {**BRIDGE, "container": {**DOCKER, "portMappings": [{"name": "a"}, {"name": "a"}]}},
     "/container/portMappings", "Port names must be unique."),
    ("duplicate docker mapping names",
     {"container": {"docker": {"image": "x", "network": "BRIDGE", "portMappings": [{"name": "a"}, {"name": "a"}]}}},
     "/container/docker/portMappings", "Port names must be unique."),
    ("port out of range", {"portDefinitions": [{"port": 70000}]}, "/portDefinitions(0)/port",
     "got 70000, expected 65535 or less"),
    ("negative host port", {**BRIDGE, "container": {**DOCKER, "portMappings": [{"hostPort": -1}]}},
     "/container/portMappings(0)/hostPort", "got -1, expected 0 or more"),
    ("bad port protocol", {"portDefinitions": [{"protocol": "sctp"}]}, "/portDefinitions(0)/protocol",
     "got 'sctp', expected one of 'tcp', 'udp', 'tcp,udp' or 'udp,tcp'"),
    # health checks
    ("port index out of range", {"healthChecks": [{"portIndex": 1}]}, "/healthChecks(0)/portIndex", HC_PORT_MSG),
    ("health check without ports", {"portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]},
     "/healthChecks(0)/portIndex", HC_PORT_MSG),
    ("bad health protocol", {"healthChecks": [{"protocol": "UDP"}]}, "/healthChecks(0)/protocol",
     "got 'UDP', expected one of 'HTTP', 'HTTPS', 'TCP', 'COMMAND', 'MESOS_HTTP', 'MESOS_HTTPS' or 'MESOS_TCP'"),
    ("two mesos checks", {"healthChecks": [{"protocol": "MESOS_TCP"}, {"protocol": "MESOS_HTTP"}]},
     "/healthChecks", "AppDefinition can contain at most one Mesos health check"),
    ("mesos and marathon checks", {"healthChecks": [{"protocol": "MESOS_TCP"}, {"protocol": "HTTP"}]},
     "/healthChecks", "AppDefinition cannot mix Mesos and Marathon health checks"),
    ("command check without command", {"healthChecks": [{"protocol": "COMMAND"}]},
     "/healthChecks(0)/command", "is required for COMMAND health checks"),
    ("command on an http check", {"healthChecks": [{"command": {"value": "true"}}]},
     "/healthChecks(0)/command", "is only used by COMMAND health checks"),
    ("ipv6 marathon check", {"healthChecks": [{"ipProtocol": "IPv6"}]}, "/healthChecks(0)/ipProtocol",
     "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"),
    ("zero interval", {"healthChecks": [{"intervalSeconds": 0}]}, "/healthChecks(0)/intervalSeconds",
     "got 0, expected 1 or more"),
    ("port index a string", {"healthChecks": [{"portIndex": "0"}]}, "/healthChecks(0)/portIndex",
     "must be an integer"),
    # readiness checks
    ("two readiness checks",
     {"portDefinitions": [{"name": "http-api"}], "readinessChecks": [{}, {}]},
     "/readinessChecks", "AppDefinition can contain at most one readiness check"),
    ("readiness timeout not below interval",
     {"portDefinitions": [{"name": "http-api"}], "readinessChecks": [{"timeoutSeconds": 30}]},
     "/readinessChecks(0)/timeoutSeconds", "got 30, expected less than intervalSeconds (30)"),
    ("readiness unknown port name", {"readinessChecks": [{"portName": "admin"}]},
     "/readinessChecks(0)/portName", "No port definition reference for portName admin"),
    ("readiness bad status", {"portDefinitions": [{"name": "http-api"}],
                              "readinessChecks": [{"httpStatusCodesForReady": [42]}]},
     "/readinessChecks(0)/httpStatusCodesForReady(0)", "got 42, expected 100 or more"),
    # constraints
    ("constraint with one field", {"constraints": [["hostname"]]}, "/constraints(0)",
     "Each constraint must have either 2 or 3 fields"),
    ("constraint with four fields", {"constraints": [["a", "b", "c", "d"]]}, "/constraints(0)",
     "Each constraint must have either 2 or 3 fields"),
    ("unknown operator", {"constraints": [["hostname", "UNIQUE"], ["rack", "IN", "a"]]}, "/constraints(1)",
     OPERATOR_MSG),
    ("unique with value", {"constraints": [["hostname", "UNIQUE", "x"]]}, "/constraints(0)",
     "UNIQUE does not accept a value"),
    ("like without value", {"constraints": [["rack", "LIKE"]]}, "/constraints(0)",
     "A regular expression value must be provided"),
    ("unlike bad regex", {"constraints": [["rack", "UNLIKE", "("]]}, "/constraints(0)",
     "'(' is not a valid regular expression"),
    ("max per without value", {"constraints": [["rack", "MAX_PER"]]}, "/constraints(0)",
     "MAX_PER requires an integer value"),
    ("max per not integer", {"constraints": [["rack", "MAX_PER", "two"]]}, "/constraints(0)",
     "MAX_PER requires an integer value"),
    ("group by not integer", {"constraints": [["rack", "GROUP_BY", "x"]]}, "/constraints(0)",
     "GROUP BY must define an integer value or else no value at all"),
    ("is without value", {"constraints": [["rack", "IS"]]}, "/constraints(0)", "IS requires a value"),
    ("constraint not strings", {"constraints": [["rack", 1]]}, "/constraints(0)",
     "Each constraint must be an array of strings"),
    # scheduling
    ("bad kill selection", {"killSelection": "RANDOM"}, "/killSelection",
     "got 'RANDOM', expected one of 'YOUNGEST_FIRST' or 'OLDEST_FIRST'"),
    ("inactive after expunge", {"unreachableStrategy": {"inactiveAfterSeconds": 700}},
     "/unreachableStrategy/inactiveAfterSeconds", "got 700, expected expungeAfterSeconds (600) or less"),
    ("unreachable bad string", {"unreachableStrategy": "off"}, "/unreachableStrategy", "must be a JSON object"),
    ("single instance with two", {"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}, "instances": 2},
     "/", "Single instance app may only have one instance"),
    ("single instance strategy", {"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"},
                                  "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}},
     "/upgradeStrategy/minimumHealthCapacity", "got 0.5, expected 0.0 for a single instance app"),
    ("empty roles", {"acceptedResourceRoles": []}, "/acceptedResourceRoles", "must not be empty"),
    ("residency without volumes", {"residency": {}}, "/", "App must contain persistent volumes and define residency"),
    # container
    ("docker without image", {"container": {"type": "DOCKER"}}, "/container/docker", "not defined"),
    ("docker empty image", {"container": {"docker": {"image": ""}}}, "/container/docker/image", "must not be empty"),
    ("bad container type", {"container": {"type": "RKT"}}, "/container/type",
     "got 'RKT', expected one of 'DOCKER' or 'MESOS'"),
    ("docker parameter without key", docker_with(docker={"image": "x", "parameters": [{"value": "1"}]}),
     "/container/docker/parameters(0)/key", "is required"),
    ("volume mode", docker_with(volumes=[{"containerPath": "/a", "hostPath": "/b", "mode": "RX"}]),
     "/container/volumes(0)/mode", "got 'RX', expected one of 'RO' or 'RW'"),
    ("volume without kind", docker_with(volumes=[{"containerPath": "/a", "mode": "RO"}]),
     "/container/volumes(0)", "must declare exactly one of hostPath, persistent, external or secret"),
    ("volume without container path", docker_with(volumes=[{"hostPath": "/b", "mode": "RO"}]),
     "/container/volumes(0)/containerPath", "is required"),
    ("persistent volume read only",
     {"container": {"type": "MESOS", "volumes": [{"containerPath": "d", "persistent": {"size": 1}, "mode": "RO"}]}},
     "/container/volumes(0)/mode", "got 'RO', expected 'RW' for a persistent volume"),
    ("resident app over capacity",
     {"container": {"type": "MESOS", "volumes": [{"containerPath": "d", "persistent": {"size": 1}}]},
      "upgradeStrategy": {"maximumOverCapacity": 0.5}},
     "/upgradeStrategy/maximumOverCapacity", "got 0.5, expected 0.0 for a resident app"),
    ("secret volume undefined", docker_with(volumes=[{"containerPath": "/s", "secret": "tls"}]),
     "/container/volumes(0)/secret", "volume.secret must refer to an existing secret"),
    # env, labels, secrets, checks, misc
    ("env secret undefined", {"env": {"PW": {"secret": "db"}}}, "/env/PW", "references an undefined secret named 'db'"),
    ("env value not a string", {"env": {"N": 1}}, "/env/N", 'must be a string or a secret reference {"secret": "<name>"}'),
    ("label value not a string", {"labels": {"HAPROXY_0_PORT": 80}}, "/labels/HAPROXY_0_PORT", "must be a string"),
    ("labels not an object", {"labels": ["a"]}, "/labels", "must be a JSON object"),
    ("fetch without uri", {"fetch": [{"extract": False}]}, "/fetch(0)/uri", "is required"),
    ("uri too long", {"uris": ["x" * 1025]}, "/uris(0)", "must have at most 1024 characters"),
    ("check with two kinds", {"check": {"http": {}, "tcp": {}}}, "/check",
     "Must specify a single type of check, http, tcp, or exec"),
    ("bad version", {"version": "yesterday"}, "/version", "must be an ISO-8601 date-time"),
    ("container not an object", {"container": "docker"}, "/container", "must be a JSON object"),
    ("non-finite number", {"cpus": float("inf")}, "/cpus", "must be a finite number"),
]


@pytest.mark.parametrize(("change", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(change: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition({**BASE, **change})  # a None value removes the base field (null = absent)
    assert message in err.value.messages(path), err.value.details


def test_all_violations_are_reported_together_grouped_and_sorted() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition(
            {
                "id": "/app/restart",
                "cmd": "x",
                "args": ["y"],
                "healthChecks": [{"portIndex": 5}],
                "portDefinitions": [{"name": "a"}, {"name": "a"}],
            }
        )
    body = err.value.to_body()
    assert body["message"] == "Object is not valid"
    assert [d["path"] for d in body["details"]] == ["/", "/healthChecks(0)/portIndex", "/id", "/portDefinitions"]


def test_shape_errors_are_reported_together() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition({"id": "/app", "cmd": "x", "cpus": "1", "constraints": [["a", "NEAR"]], "ports": ["x"]})
    assert [d["path"] for d in err.value.details] == ["/constraints(0)", "/cpus", "/ports(0)"]


def test_id_errors_are_reported_alongside_type_errors() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition({"id": "/Bad_Id", "cmd": "x", "cpus": "1"})
    assert {d["path"] for d in err.value.details} == {"/id", "/cpus"}


@pytest.mark.parametrize("data", [None, [], "app", 3, True])
def test_non_objects_are_rejected(data: Any) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition(data)
    assert err.value.details == [{"path": "/", "errors": ["must be a JSON object"]}]


def test_app_must_lie_below_its_parent() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_app_definition({"id": "/other/app", "cmd": "x"}, parent="/prod")
    assert err.value.messages("/id") == ["Identifier is not child of '/prod'"]
    with pytest.raises(ValidationFailed):
        parse_app_definition({"id": "../app", "cmd": "x"}, parent="/prod")


@pytest.mark.parametrize(
    ("raw", "parent", "expected"),
    [
        ("foo", "/", "/foo"),
        ("/foo/bar/", "/", "/foo/bar"),
        ("//foo//bar", "/", "/foo/bar"),
        ("bar", "/foo", "/foo/bar"),
        ("./bar", "/foo", "/foo/bar"),
        ("a/../b", "/g", "/g/b"),
        ("/appName", "/", "/appName"),
        ("web.v2", "/", "/web.v2"),
    ],
)
def test_canonical_path_id(raw: str, parent: str, expected: str) -> None:
    assert canonical_path_id(raw, parent) == expected


@pytest.mark.parametrize("raw", ["", "/", "/a/tasks", "/a b", "/a/-b", "/a./b", "/a..b"])
def test_canonical_path_id_rejects(raw: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        canonical_path_id(raw)
    assert [d["path"] for d in err.value.details] == ["/id"]


@pytest.mark.parametrize(
    "constraint",
    [
        ["hostname", "UNIQUE"],
        ["@hostname", "unique"],
        ["rack", "CLUSTER"],
        ["rack", "CLUSTER", "r1"],
        ["rack", "GROUP_BY"],
        ["rack", "GROUP_BY", "3"],
        ["rack", "LIKE", "r[1-3]"],
        ["rack", "UNLIKE", "r4"],
        ["rack", "MAX_PER", "2"],
        ["@zone", "IS", "us-east-1a"],
        ["cores", "IS", "4.5"],
    ],
)
def test_valid_constraints(constraint: list[str]) -> None:
    parse_app_definition({**BASE, "constraints": [constraint]})
