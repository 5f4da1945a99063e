"""Property tests: to_json round-trips, no input escapes as anything but ValidationFailed, merge-patch laws."""

from __future__ import annotations

import copy
import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_definitions import ValidationFailed, apply_app_update, merge_patch, parse_app_definition
from app_definitions.path_id import RESERVED_LAST_SEGMENTS
from app_definitions.container import SUPPORTED_DOCKER_PARAMETERS
from app_definitions.container_rules import CONTEXT_DEPENDENT_DOCKER_PARAMETERS

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(SETTINGS, max_examples=50)  # supplementary properties

# --- generators of valid definitions ----------------------------------------------------------------

segments = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8).filter(
    lambda s: s not in RESERVED_LAST_SEGMENTS
)
ids = st.lists(segments, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
names = st.text(string.ascii_lowercase, min_size=1, max_size=8)
short_text = st.text(max_size=8)
parameter_keys = st.sampled_from(sorted(SUPPORTED_DOCKER_PARAMETERS - CONTEXT_DEPENDENT_DOCKER_PARAMETERS))
string_maps = st.dictionaries(st.text(min_size=1, max_size=10), short_text, max_size=3)
ports = st.integers(0, 65535)
protocols = st.sampled_from(["tcp", "udp", "tcp,udp", "udp,tcp"])
fractions = st.floats(0.0, 1.0)
timestamps = st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z")
valid_constraints = st.sampled_from(
    [
        ["hostname", "UNIQUE"],
        ["rack", "cluster", "r1"],
        ["rack", "GROUP_BY", "3"],
        ["zone", "LIKE", "us-.*"],
        ["zone", "UNLIKE", "eu-.*"],
        ["hostname", "MAX_PER", "2"],
        ["@zone", "IS", "a"],
    ]
)


def optional(draw: st.DrawFn, data: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        data[key] = draw(strategy)


@st.composite
def port_definitions(draw: st.DrawFn) -> list[dict[str, Any]]:
    port_names = draw(st.lists(names, max_size=3, unique=True))
    fixed = draw(st.lists(st.integers(1, 65535), min_size=len(port_names), max_size=len(port_names), unique=True))
    definitions = []
    for name, port in zip(port_names, fixed):
        definition: dict[str, Any] = {"port": draw(st.sampled_from([0, port]))}
        optional(draw, definition, "name", st.just(name))
        optional(draw, definition, "protocol", protocols)
        optional(draw, definition, "labels", string_maps)
        definitions.append(definition)
    return definitions


@st.composite
def port_mappings(draw: st.DrawFn, bridge: bool) -> list[dict[str, Any]]:
    mappings = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        mapping: dict[str, Any] = {"containerPort": draw(ports)}
        optional(draw, mapping, "hostPort", ports)
        optional(draw, mapping, "servicePort", ports)
        optional(draw, mapping, "name", st.just(name))
        optional(draw, mapping, "protocol", protocols)
        optional(draw, mapping, "labels", string_maps)
        mappings.append(mapping)
    return mappings


@st.composite
def networking(draw: st.DrawFn) -> dict[str, Any]:
    """Fields for one networking style, deprecated spellings included."""
    style = draw(st.sampled_from(["default", "host", "bridge", "container", "docker-bridge", "user", "ip"]))
    docker: dict[str, Any] = {"image": draw(st.sampled_from(["nginx", "busybox:1.36", "registry/x:tag"]))}
    optional(draw, docker, "forcePullImage", st.booleans())
    optional(draw, docker, "parameters", st.lists(st.fixed_dictionaries({"key": parameter_keys, "value": short_text}),
                                                  max_size=2))
    container: dict[str, Any] = {"type": "DOCKER", "docker": docker}
    optional(
        draw,
        container,
        "volumes",
        st.lists(st.fixed_dictionaries({"containerPath": st.just("/data"), "hostPath": st.just("/srv"),
                                        "mode": st.sampled_from(["RO", "RW"])}), max_size=2),
    )
    fields: dict[str, Any] = {}
    if style in ("default", "host"):
        if style == "host":
            fields["networks"] = [{"mode": "host"}]
        optional(draw, fields, "portDefinitions", port_definitions())
        optional(draw, fields, "requirePorts", st.booleans())
        optional(draw, fields, "container", st.just(container))
        return fields
    mappings = draw(st.none() | port_mappings(style in ("bridge", "docker-bridge")))
    if style == "bridge":
        fields["networks"] = [{"mode": "container/bridge"}]
    elif style == "container":
        fields["networks"] = [{"mode": "container", "name": draw(names)}]
    elif style == "docker-bridge":
        docker["network"] = "BRIDGE"
    elif style == "user":
        docker["network"] = "USER"
    else:
        fields["ipAddress"] = {"networkName": draw(names)}
    if mappings is not None:
        if draw(st.booleans()) and style in ("docker-bridge", "user"):
            docker["portMappings"] = mappings
        else:
            container["portMappings"] = mappings
    fields["container"] = container
    return fields


def port_count(app_fields: dict[str, Any]) -> tuple[int, list[str]]:
    """How many ports the generated app will have, and their names (mirrors the defaults)."""
    container = app_fields.get("container", {})
    mappings = container.get("portMappings", container.get("docker", {}).get("portMappings"))
    host = "networks" not in app_fields and "network" not in container.get("docker", {}) and "ipAddress" not in app_fields
    host = host or app_fields.get("networks") == [{"mode": "host"}]
    if host:
        definitions = app_fields.get("portDefinitions", [{"name": "default"}])
        return len(definitions), [d["name"] for d in definitions if "name" in d]
    if mappings is None:
        return 1, ["default"]
    return len(mappings), [m["name"] for m in mappings if "name" in m]


OPTIONAL_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "cpus": st.floats(0.001, 64),
        "mem": st.floats(0, 1e6),
        "disk": st.floats(0, 1e6),
        "instances": st.integers(0, 50),
        "executor": st.just("//cmd"),
        "labels": string_maps,
        "env": string_maps,
        "constraints": st.lists(valid_constraints, max_size=3),
        "acceptedResourceRoles": st.lists(names, min_size=1, max_size=2, unique=True),
        "role": names,
        "user": names,
        "backoffSeconds": st.integers(0, 600),
        "backoffFactor": st.floats(1.0, 10.0),
        "maxLaunchDelaySeconds": st.integers(0, 3600),
        "taskKillGracePeriodSeconds": st.integers(0, 600),
        "killSelection": st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST"]),
        "dependencies": st.lists(ids, max_size=2),
        "tty": st.booleans(),
        "upgradeStrategy": st.fixed_dictionaries(
            {},
            optional={
                "minimumHealthCapacity": fractions,
                "maximumOverCapacity": fractions,
                "progressDeadlineSeconds": st.integers(0, 3600),
                "autoRollback": st.booleans(),
            },
        ),
        "unreachableStrategy": st.just("disabled")
        | st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(
            lambda t: {"inactiveAfterSeconds": min(t), "expungeAfterSeconds": max(t)}
        ),
        "fetch": st.lists(st.fixed_dictionaries({"uri": names}, optional={"extract": st.booleans()}), max_size=2),
        "uris": st.lists(names, min_size=1, max_size=2),
        "version": timestamps,
        "versionInfo": st.fixed_dictionaries({"lastScalingAt": timestamps, "lastConfigChangeAt": timestamps}),
    },
)


@st.composite
def valid_apps(draw: st.DrawFn) -> dict[str, Any]:
    app: dict[str, Any] = {"id": draw(ids | segments)}
    app.update(draw(networking()))
    command = draw(st.sampled_from(["cmd", "args", "none"] if "container" in app else ["cmd", "args"]))
    if command == "cmd":
        app["cmd"] = draw(st.text(min_size=1, max_size=20))
    elif command == "args":
        app["args"] = draw(st.lists(short_text, min_size=1, max_size=3))
    if command == "none" and app["container"]["type"] != "DOCKER":
        app["cmd"] = "run"
    count, port_names = port_count(app)
    app.update(draw(OPTIONAL_FIELDS))
    if "uris" in app:
        app.pop("fetch", None)
    checks = []
    for _ in range(draw(st.integers(0, 2))):
        check: dict[str, Any] = {"protocol": draw(st.sampled_from(["HTTP", "HTTPS", "TCP"]))}
        if count and draw(st.booleans()):
            check["portIndex"] = draw(st.integers(0, count - 1))
        elif not count or draw(st.booleans()):
            check["port"] = draw(ports)
        optional(draw, check, "gracePeriodSeconds", st.integers(0, 600))
        optional(draw, check, "intervalSeconds", st.integers(1, 600))
        optional(draw, check, "maxConsecutiveFailures", st.integers(0, 10))
        optional(draw, check, "ignoreHttp1xx", st.booleans())
        checks.append(check)
    if not checks and draw(st.booleans()):
        checks = [{"protocol": "COMMAND", "command": {"value": "true"}}]
    if checks:
        app["healthChecks"] = checks
    if port_names and draw(st.booleans()):
        app["readinessChecks"] = [
            {"portName": draw(st.sampled_from(port_names)), "intervalSeconds": 30, "timeoutSeconds": 5}
        ]
    return app


@SETTINGS
@given(valid_apps())
def test_to_json_round_trips(data: dict[str, Any]) -> None:
    app = parse_app_definition(data)
    out = app.to_json()
    assert json.loads(json.dumps(out)) == out
    again = parse_app_definition(out)
    assert again == app
    assert again.to_json() == out
    assert len(app.port_specs()) == len((app.container.port_mappings if app.container else []) or app.port_definitions)


@QUICK
@given(valid_apps(), st.data())
def test_partial_update_of_a_stored_app_parses(data: dict[str, Any], draw: st.DataObject) -> None:
    stored = parse_app_definition(data).to_json()
    update = draw.draw(st.fixed_dictionaries({}, optional={"instances": st.integers(0, 9), "cmd": st.just("run"),
                                                           "labels": string_maps}))
    app = parse_app_definition(apply_app_update(stored, update))
    assert app.instances == update.get("instances", stored["instances"])


# --- arbitrary input never escapes as anything but ValidationFailed ---------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | short_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=8,
)
TOP_KEYS = [
    "id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus", "executor", "constraints",
    "acceptedResourceRoles", "role", "container", "networks", "portDefinitions", "requirePorts", "healthChecks",
    "readinessChecks", "check", "dependencies", "upgradeStrategy", "backoffSeconds", "backoffFactor",
    "maxLaunchDelaySeconds", "fetch", "labels", "taskKillGracePeriodSeconds", "killSelection",
    "unreachableStrategy", "residency", "secrets", "tty", "resourceLimits", "executorResources", "version",
    "versionInfo", "ports", "uris", "ipAddress",
]
CONTAINER_KEYS = ["type", "docker", "volumes", "portMappings", "linuxInfo"]
DOCKER_KEYS = ["image", "network", "portMappings", "parameters", "forcePullImage", "privileged", "pullConfig"]
CHECK_KEYS = ["protocol", "path", "portIndex", "port", "command", "intervalSeconds", "timeoutSeconds", "ipProtocol"]
PORT_KEYS = ["port", "containerPort", "hostPort", "servicePort", "name", "protocol", "labels", "networkNames"]


def keyed(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=6)


ports_like = st.lists(keyed(PORT_KEYS, json_scalars | st.lists(json_scalars, max_size=2)), max_size=2)
flat_values = json_scalars | st.lists(json_scalars, max_size=3) | ports_like
known_shapes = keyed(
    TOP_KEYS,  # known keys, each with a random value of a plausible or implausible shape
    flat_values
    | keyed(CONTAINER_KEYS, flat_values | keyed(DOCKER_KEYS, flat_values))
    | st.lists(keyed(CHECK_KEYS, json_scalars), max_size=2)
    | st.lists(st.lists(json_scalars, max_size=4), max_size=2),
)


def parse_or_validation_failed(data: Any) -> None:
    try:
        app = parse_app_definition(data)
    except ValidationFailed as exc:
        assert exc.details and all(d["path"].startswith("/") and d["errors"] for d in exc.details)
        json.dumps(exc.to_body())
    else:
        json.dumps(app.to_json())


@SETTINGS
@given(json_values)
def test_any_json_value_only_raises_validation_failed(data: Any) -> None:
    parse_or_validation_failed(data)


@SETTINGS
@given(known_shapes)
def test_known_keys_with_random_values_only_raise_validation_failed(data: dict[str, Any]) -> None:
    parse_or_validation_failed(data)


@QUICK
@given(valid_apps(), keyed(TOP_KEYS, json_values))
def test_valid_app_with_random_overrides_only_raises_validation_failed(
    data: dict[str, Any], overrides: dict[str, Any]
) -> None:
    parse_or_validation_failed({**data, **overrides})


# --- RFC 7386 merge patch laws -----------------------------------------------------------------------

json_objects = st.dictionaries(short_text, json_values, max_size=5)


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@SETTINGS
@given(json_objects, st.data())
def test_merge_patch_object_laws(target: dict[str, Any], data: st.DataObject) -> None:
    """{} is the identity; a null-free object patched with itself is unchanged; null deletes a member."""
    assert merge_patch(target, {}) == target
    plain = without_nulls(target)
    assert merge_patch(plain, plain) == plain
    key = data.draw(st.sampled_from(sorted(target)) if target else short_text)
    assert merge_patch(target, {key: None}) == {k: v for k, v in target.items() if k != key}


@SETTINGS
@given(json_values, json_values)
def test_merge_patch_is_idempotent_and_pure(target: Any, patch: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    assert (target, patch) == before
    if isinstance(patch, dict):
        assert all(once.get(k) is not None for k, v in patch.items() if v is not None)
        assert all(k not in once for k, v in patch.items() if v is None)
