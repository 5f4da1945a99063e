"""Partial updates, rollbacks, merge patches, restart-or-scale, environment files, JSON bodies, schema, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app_definitions import (
    DefinitionError,
    EnvironmentFileError,
    InvalidJSON,
    ValidationFailed,
    app_json_schema,
    apply_app_update,
    is_rollback_request,
    is_upgrade,
    load_environment_definition,
    merge_patch,
    parse_app_definition,
    parse_json_body,
)

STORED = parse_app_definition(
    {"id": "/web", "cmd": "serve", "instances": 2, "version": "2024-05-01T10:00:00.000Z"}
).to_json()


# --- apply_app_update ---------------------------------------------------------------------------


def test_update_replaces_top_level_keys_and_keeps_the_rest() -> None:
    merged = apply_app_update(STORED, {"instances": 5, "labels": {"a": "b"}})
    assert merged["instances"] == 5 and merged["labels"] == {"a": "b"} and merged["cmd"] == "serve"
    assert parse_app_definition(merged).instances == 5


def test_update_drops_server_fields_from_both() -> None:
    current = {**STORED, "tasksRunning": 2, "deployments": [], "versionInfo": {}}
    merged = apply_app_update(current, {"version": "2030-01-01T00:00:00Z", "lastTaskFailure": {}, "mem": 64})
    for field in ("version", "versionInfo", "tasksRunning", "deployments", "lastTaskFailure"):
        assert field not in merged
    assert merged["mem"] == 64


def test_update_without_current_is_a_create() -> None:
    assert apply_app_update(None, {"id": "/x", "cmd": "run"}) == {"id": "/x", "cmd": "run"}


@pytest.mark.parametrize(
    ("current", "update", "gone", "kept"),
    [
        ({"portDefinitions": [{"port": 1}]}, {"ports": [80]}, "portDefinitions", "ports"),
        ({"ports": [1]}, {"portDefinitions": [{"port": 80}]}, "ports", "portDefinitions"),
        ({"fetch": [{"uri": "a"}]}, {"uris": ["b"]}, "fetch", "uris"),
        ({"uris": ["a"]}, {"fetch": [{"uri": "b"}]}, "uris", "fetch"),
        ({"networks": [{"mode": "host"}]}, {"ipAddress": {"networkName": "n"}}, "networks", "ipAddress"),
        ({"ipAddress": {}}, {"networks": [{"mode": "host"}]}, "ipAddress", "networks"),
        ({"args": ["a"]}, {"cmd": "run"}, "args", "cmd"),
        ({"cmd": "run"}, {"args": ["a"]}, "cmd", "args"),
        (
            {"networks": [{"mode": "host"}]},
            {"container": {"docker": {"image": "x", "network": "BRIDGE"}}},
            "networks",
            "container",
        ),
    ],
)
def test_update_resolves_old_and_new_spellings(current: dict, update: dict, gone: str, kept: str) -> None:
    merged = apply_app_update({"id": "/x", **current}, update)
    assert gone not in merged and kept in merged


def test_switching_to_bridge_drops_host_port_definitions() -> None:
    update = {"networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "nginx"}}}
    app = parse_app_definition(apply_app_update(STORED, update))
    assert app.networking_mode == "container/bridge" and app.port_definitions == []
    assert [s.name for s in app.port_specs()] == ["default"]


def test_switching_to_host_drops_port_mappings() -> None:
    bridged = parse_app_definition(
        {"id": "/b", "networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "nginx"}}}
    ).to_json()
    app = parse_app_definition(apply_app_update(bridged, {"networks": [{"mode": "host"}]}))
    assert app.networking_mode == "host" and app.container is not None and app.container.port_mappings == []


def test_apply_app_update_does_not_mutate_inputs() -> None:
    current = json.loads(json.dumps(STORED))
    update = {"labels": {"x": "y"}, "networks": [{"mode": "container/bridge"}]}
    before = (json.dumps(current, sort_keys=True), json.dumps(update, sort_keys=True))
    merged = apply_app_update(current, update)
    merged["labels"]["x"] = "changed"
    assert (json.dumps(current, sort_keys=True), json.dumps(update, sort_keys=True)) == before


# --- rollback and restart-or-scale -----------------------------------------------------------------


def test_rollback_request_forms() -> None:
    assert is_rollback_request({"version": "2024-05-01T10:00:00.000Z"}) == "2024-05-01T10:00:00.000Z"
    assert is_rollback_request({"id": "/web", "version": "2024-05-01T10:00:00Z"}) == "2024-05-01T10:00:00Z"
    assert is_rollback_request({"instances": 3}) is None
    assert is_rollback_request({"version": None, "cmd": "x"}) is None
    assert is_rollback_request(["not", "a", "dict"]) is None


def test_version_may_only_be_combined_with_id() -> None:
    with pytest.raises(ValidationFailed) as err:
        is_rollback_request({"version": "2024-05-01T10:00:00Z", "instances": 3})
    assert err.value.details == [
        {"path": "/", "errors": ["The 'version' field may only be combined with the 'id' field."]}
    ]
    with pytest.raises(ValidationFailed) as err:
        is_rollback_request({"version": "last tuesday"})
    assert err.value.messages("/version") == ["must be an ISO-8601 date-time"]


def test_is_upgrade() -> None:
    app = parse_app_definition({"id": "/web", "cmd": "serve", "instances": 2})
    stamped = app.model_copy(update={"instances": 7, "version": "2024-05-01T10:00:00Z"})
    assert not is_upgrade(app, stamped)
    for change in ({"cmd": "serve --v2"}, {"labels": {"a": "b"}}, {"mem": 256}, {"upgradeStrategy": {"minimumHealthCapacity": 0.5}},
                   {"constraints": [["hostname", "UNIQUE"]]}, {"unreachableStrategy": "disabled"}):
        other = parse_app_definition({"id": "/web", "cmd": "serve", "instances": 2, **change})
        assert is_upgrade(app, other), change


# --- merge_patch (RFC 7386 appendix A) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


# --- environment files -------------------------------------------------------------------------------


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_no_env_reads_the_base_file(tmp_path: Path) -> None:
    base = write(tmp_path / "app.json", {"id": "/web", "cmd": "serve"})
    assert load_environment_definition(base, None) == {"id": "/web", "cmd": "serve"}


def test_env_overlay_is_merged_onto_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "app.json", {"id": "/web", "cmd": "serve", "instances": 1, "labels": {"a": "1", "b": "2"}})
    write(tmp_path / "app.prod.json", {"instances": 6, "labels": {"b": None, "tier": "prod"}})
    merged = load_environment_definition(base, "prod")
    assert merged == {"id": "/web", "cmd": "serve", "instances": 6, "labels": {"a": "1", "tier": "prod"}}
    assert parse_app_definition(merged).instances == 6


def test_env_naming_a_json_file_uses_it_alone(tmp_path: Path) -> None:
    base = write(tmp_path / "app.json", {"id": "/web", "cmd": "serve"})
    full = write(tmp_path / "prod-full.json", {"id": "/web-prod", "cmd": "serve --prod"})
    assert load_environment_definition(base, str(full)) == {"id": "/web-prod", "cmd": "serve --prod"}


def test_missing_overlay_names_the_expected_file(tmp_path: Path) -> None:
    base = write(tmp_path / "app.json", {"id": "/web", "cmd": "serve"})
    with pytest.raises(EnvironmentFileError) as err:
        load_environment_definition(base, "prdo")
    assert "app.prdo.json" in str(err.value)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    base = write(tmp_path / "app.json", "{not json")
    with pytest.raises(InvalidJSON) as err:
        load_environment_definition(base, None)
    assert str(base) in str(err.value) and err.value.source == str(base)
    listing = write(tmp_path / "list.json", "[1, 2]")
    with pytest.raises(EnvironmentFileError) as err2:
        load_environment_definition(listing, None)
    assert str(listing) in str(err2.value)
    with pytest.raises(EnvironmentFileError):
        load_environment_definition(tmp_path / "absent.json", None)
    with pytest.raises(EnvironmentFileError):
        load_environment_definition(write(tmp_path / "ok.json", "{}"), "../etc")


# --- JSON bodies --------------------------------------------------------------------------------------


def test_parse_json_body_accepts_bytes_and_text() -> None:
    assert parse_json_body(b'{"id": "/x"}') == {"id": "/x"}
    assert parse_json_body('\ufeff{"a": [1, 2.5]}') == {"a": [1, 2.5]}


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b'{"a": NaN}', b"[Infinity]", b"\xff\xfe{}", "{'a': 1}"])
def test_parse_json_body_rejects(raw: bytes | str) -> None:
    with pytest.raises(InvalidJSON) as err:
        parse_json_body(raw)
    body = err.value.to_body()
    assert body["message"] == "Invalid JSON" and body["details"][0]["path"] == "/"
    assert body["details"][0]["errors"]


# --- errors and schema ------------------------------------------------------------------------------


def test_error_hierarchy_and_bodies() -> None:
    assert issubclass(InvalidJSON, DefinitionError) and issubclass(ValidationFailed, DefinitionError)
    assert issubclass(EnvironmentFileError, DefinitionError)
    failed = ValidationFailed([("/b", "two"), ("/a", "one"), ("/b", "three"), ("/b", "two")])
    assert failed.to_body() == {
        "message": "Object is not valid",
        "details": [{"path": "/a", "errors": ["one"]}, {"path": "/b", "errors": ["two", "three"]}],
    }
    nested = failed.with_prefix("/apps(0)")
    assert [d["path"] for d in nested.details] == ["/apps(0)/a", "/apps(0)/b"]
    assert InvalidJSON("bad").to_body() == {"message": "Invalid JSON", "details": [{"path": "/", "errors": ["bad"]}]}


def test_app_json_schema() -> None:
    schema = app_json_schema()
    json.dumps(schema)
    properties = schema["properties"]
    for name in ("id", "cmd", "healthChecks", "portDefinitions", "upgradeStrategy", "taskKillGracePeriodSeconds",
                 "unreachableStrategy", "constraints"):
        assert name in properties, name
    assert properties["ports"]["deprecated"] and properties["uris"]["deprecated"]
    assert properties["version"]["readOnly"]
    assert schema["required"] == ["id"]
    strategy = schema["$defs"]["UpgradeStrategy"]["properties"]
    assert {"progressDeadlineSeconds", "autoRollback"} <= set(strategy)
    assert "ignoreHttp1xx" in schema["$defs"]["HealthCheck"]["properties"]
