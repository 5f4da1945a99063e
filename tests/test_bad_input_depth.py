"""Pathological input is refused with Marathon's error bodies, never a 500.

Two kinds: JSON nested so deeply that recursive code would exhaust the stack, anywhere in an
app definition (a known field or one Pacer ignores, an object or an array, alone or inside a
group), and app ids too long for the task sandbox directory named after them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app_definitions import InvalidJSON, ValidationFailed, apply_app_update, parse_app_definition, parse_json_body
from app_definitions.depth import MAX_BODY_DEPTH, MAX_DEFINITION_DEPTH
from app_definitions.parse import strip_nulls
from app_definitions.path_id import MAX_APP_ID_LENGTH

from .support import http

DEPTHS = (100, 500, 985, 1000, 5000)
FIELDS = ("env", "labels", "unknownField")


def nested(kind: str, depth: int) -> str:
    """JSON text of an object or array nested ``depth`` levels deep."""
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def app_text(app_id: str, field: str, kind: str, depth: int) -> str:
    value = nested(kind, depth)
    inner = value if field == "unknownField" else '{"KEY":' + value + "}"
    return '{"id":"%s","cmd":"true","instances":0,"%s":%s}' % (app_id, field, inner)


def assert_marathon_error(status: int, body: Any, *, names: str = "/") -> None:
    """A 400 or 422 with Marathon's body, naming ``names`` (or, when JSON itself gave up
    decoding, the whole document: its decoder cannot say where)."""
    assert status in (400, 422), (status, body)
    expected = "Invalid JSON" if status == 400 else "Object is not valid"
    assert body["message"] == expected, body
    assert body["details"] and all(d["path"].startswith("/") and d["errors"] for d in body["details"]), body
    path = body["details"][0]["path"]
    assert path.startswith(names) or (status == 400 and path == "/"), body


# --- through the API ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ("object", "array"))
@pytest.mark.parametrize("field", FIELDS)
def test_deep_nesting_in_an_app_is_a_4xx(api, field: str, kind: str, depth: int) -> None:
    before = api.snapshot()
    status, body, _ = http("POST", api.url, "/v2/apps", raw=app_text("/deep", field, kind, depth).encode())
    assert_marathon_error(status, body, names=f"/{field}")
    assert api.snapshot() == before


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ("object", "array"))
@pytest.mark.parametrize("field", FIELDS)
def test_deep_nesting_in_a_group_is_a_4xx(api, field: str, kind: str, depth: int) -> None:
    before = api.snapshot()
    raw = '{"id":"/deep-group","apps":[' + app_text("member", field, kind, depth) + "]}"
    status, body, _ = http("POST", api.url, "/v2/groups", raw=raw.encode())
    assert_marathon_error(status, body, names="/apps(0)")
    assert api.snapshot() == before


@pytest.mark.parametrize("method, path", [("PUT", "/v2/apps/existing"), ("PATCH", "/v2/apps/existing"),
                                          ("PUT", "/v2/apps")])
@pytest.mark.parametrize("depth", (100, 500, 985))
def test_deep_nesting_in_updates_is_a_4xx(api, method: str, path: str, depth: int) -> None:
    before = api.snapshot()
    update = '{"id":"/existing","labels":{"KEY":' + nested("array", depth) + "}}"
    raw = f"[{update}]" if path == "/v2/apps" else update
    status, body, _ = http(method, api.url, path, raw=raw.encode())
    assert_marathon_error(status, body)
    assert api.snapshot() == before


def test_deeply_nested_groups_are_a_4xx(api) -> None:
    body: dict[str, Any] = {"id": "g", "apps": [{"id": "a", "cmd": "true", "instances": 0}]}
    for _ in range(400):
        body = {"id": "g", "groups": [body]}
    status, answer, _ = http("POST", api.url, "/v2/groups", raw=json.dumps({**body, "id": "/deep"}).encode())
    assert_marathon_error(status, answer)


def test_long_app_ids_are_a_422_naming_the_limit(api) -> None:
    eight_segments = "/" + "/".join(["a" * 60] * 8)
    for app_id in (eight_segments, "/" + "a" * (MAX_APP_ID_LENGTH + 20)):
        status, body, _ = http("POST", api.url, "/v2/apps", {"id": app_id, "cmd": "true", "instances": 0})
        assert status == 422, body
        assert body["details"][0]["path"] == "/id"
        assert f"at most {MAX_APP_ID_LENGTH} characters" in body["details"][0]["errors"][0]
        assert "255 bytes" in body["details"][0]["errors"][0]
    group = {"id": "/" + "g" * 150, "apps": [{"id": "b" * 60, "cmd": "true", "instances": 0}]}
    status, body, _ = http("POST", api.url, "/v2/groups", group)
    assert status == 422 and body["details"][0]["path"] == "/apps(0)/id", body

    longest = "/" + "a" * (MAX_APP_ID_LENGTH - 1)
    status, body, _ = http("POST", api.url, "/v2/apps", {"id": longest, "cmd": "true", "instances": 0})
    assert status == 201, body
    assert http("DELETE", api.url, f"/v2/apps{longest}")[0] == 200


# --- the pieces ----------------------------------------------------------------------------------

def test_the_longest_app_id_leaves_room_for_the_task_sandbox_name() -> None:
    app_id = "/" + "/".join(["a" * 49] * 4)
    assert len(app_id) == MAX_APP_ID_LENGTH
    assert parse_app_definition({"id": app_id, "cmd": "x"}).id == app_id
    sandbox = f"{app_id.strip('/').replace('/', '_')}.instance-{'0' * 8}-{'0' * 4}-{'0' * 4}-{'0' * 4}-{'0' * 12}._app.9999"
    assert len(sandbox.encode()) <= 255
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition({"id": app_id + "b", "cmd": "x"})
    assert caught.value.messages("/id") and "got 201" in caught.value.messages("/id")[0]
    with pytest.raises(ValidationFailed) as caught:   # a relative id is measured once resolved
        parse_app_definition({"id": "a" * 150, "cmd": "x"}, parent="/" + "g" * 60)
    assert caught.value.messages("/id")


@pytest.mark.parametrize("depth", (MAX_DEFINITION_DEPTH, 100, 5000))
def test_strip_nulls_walks_any_depth_without_recursion(depth: int) -> None:
    value: Any = {"keep": 1, "drop": None, "list": [None, 2]}
    for _ in range(depth):
        value = {"x": [value], "gone": None}
    stripped = strip_nulls(value)
    for _ in range(depth):
        assert set(stripped) == {"x"}
        stripped = stripped["x"][0]
    assert stripped == {"keep": 1, "list": [None, 2]}


def test_definitions_are_bounded_by_depth_and_name_the_field() -> None:
    fine: Any = "v"
    for _ in range(MAX_DEFINITION_DEPTH - 2):   # app object, labels object, then the nesting
        fine = [fine]
    with pytest.raises(ValidationFailed) as caught:   # a list is no label value, but nothing is too deep
        parse_app_definition({"id": "/x", "cmd": "x", "labels": {"K": fine}})
    assert caught.value.messages("/labels/K") == ["must be a string"]
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition({"id": "/x", "cmd": "x", "labels": {"K": [fine]}})
    assert caught.value.messages("/labels/K") == [
        f"nested more than {MAX_DEFINITION_DEPTH} levels deep; no field of an app definition needs that many"]
    deep: Any = 1
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition({"id": "/x", "cmd": "x", "whatever": deep})
    assert [d["path"] for d in caught.value.details] == ["/whatever/a"]
    with pytest.raises(ValidationFailed) as caught:
        apply_app_update({"id": "/x", "cmd": "x"}, {"env": {"K": deep}})
    assert [d["path"] for d in caught.value.details] == ["/env/K"]


@pytest.mark.parametrize("kind", ("object", "array"))
@pytest.mark.parametrize("depth", (MAX_BODY_DEPTH + 1, 985, 5000, 100_000))
def test_bodies_are_bounded_by_depth(kind: str, depth: int) -> None:
    with pytest.raises(InvalidJSON) as caught:
        parse_json_body('{"apps":[{"env":' + nested(kind, depth) + "}]}")
    body = caught.value.to_body()
    assert body["message"] == "Invalid JSON"
    assert body["details"][0]["errors"] == [f"JSON nested more than {MAX_BODY_DEPTH} levels deep"]
    assert parse_json_body(nested(kind, MAX_BODY_DEPTH)) is not None
