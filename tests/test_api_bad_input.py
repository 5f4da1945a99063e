"""Bad input never becomes a 5xx, and a rejected write leaves the store as it was.

The API runs in-process on a real loopback socket (see `InProcessApi`) so that hypothesis can
throw many generated bodies at it quickly.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import http


def _assert_error_shape(status: int, body: object) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body


@pytest.mark.parametrize("raw, status, message", [
    (b"{not json", 400, "Invalid JSON"),
    (b"\xff\xfe", 400, "Invalid JSON"),
    (b'{"id": "/Bad_ID", "cmd": "true"}', 422, "Object is not valid"),
    (b'{"id": "/x", "cmd": "true", "args": ["a"]}', 422, "Object is not valid"),
    (b'{"id": "/x", "cmd": "true", "instances": -1}', 422, "Object is not valid"),
    (b'{"id": "/x", "cmd": "true", "cpus": "lots"}', 422, "Object is not valid"),
    (b'{"id": "/x/tasks", "cmd": "true"}', 422, "Object is not valid"),
    (b'{"id": "/x", "cmd": "true", "constraints": [["hostname", "NEAR"]]}', 422, "Object is not valid"),
    (b'[1, 2]', 422, "Object is not valid"),
])
def test_bad_bodies_get_marathon_errors(api, raw, status, message):
    before = api.snapshot()
    got, body, _ = http("POST", api.url, "/v2/apps", raw=raw)
    assert got == status, body
    assert body["message"] == message
    if status == 422:
        assert body["details"] and all(d["path"].startswith("/") and d["errors"] for d in body["details"])
    assert api.snapshot() == before


def test_error_paths_name_the_field(api):
    got, body, _ = http("POST", api.url, "/v2/apps", {"id": "/x", "cmd": "true", "healthChecks": [{"portIndex": 5}]})
    assert got == 422
    assert any(d["path"].startswith("/healthChecks(0)") for d in body["details"]), body


def test_conflicts_and_missing_resources(api):
    got, body, _ = http("POST", api.url, "/v2/apps", {"id": "/existing", "cmd": "true"})
    assert got == 409 and body["message"] == "An app with id [/existing] already exists."
    got, body, _ = http("GET", api.url, "/v2/apps/nope")
    assert got == 404 and body["message"] == "App '/nope' does not exist"
    got, body, _ = http("DELETE", api.url, "/v2/apps/nope")
    assert got == 404
    got, body, _ = http("GET", api.url, "/v2/nothing-here")
    assert got == 404 and body["message"] == "URI not found"
    got, body, _ = http("DELETE", api.url, "/v2/apps")
    assert got == 405
    got, body, _ = http("POST", api.url, "/v2/tasks/delete?scale=true&wipe=true", {"ids": []})
    assert got == 400 and "scale and wipe" in body["message"]
    got, body, _ = http("POST", api.url, "/v2/tasks/delete", {"ids": ["nope.instance-1._app.1"]})
    assert got == 400
    got, body, _ = http("GET", api.url, "/v2/apps?force=maybe&label=a%20in%20(")
    assert got in (400, 422)


def test_service_port_collision_is_a_conflict(api):
    first = {"id": "/ports-a", "cmd": "true", "instances": 0, "portDefinitions": [{"port": 15000}]}
    assert http("POST", api.url, "/v2/apps", first)[0] == 201
    second = {"id": "/ports-b", "cmd": "true", "instances": 0, "portDefinitions": [{"port": 15000}]}
    got, body, _ = http("POST", api.url, "/v2/apps", second)
    assert got == 409 and "15000" in body["message"] and "/ports-a" in body["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
app_fields = ["cmd", "args", "cpus", "mem", "disk", "instances", "env", "labels", "constraints",
              "portDefinitions", "ports", "container", "healthChecks", "upgradeStrategy", "networks",
              "backoffFactor", "fetch", "uris", "ipAddress", "killSelection", "dependencies", "version"]
app_like = st.fixed_dictionaries({"id": st.sampled_from(["/fuzz", "fuzz", "/Fuzz", "", "/a/b"])},
                                 optional={f: json_values for f in app_fields})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(app_like, json_values), method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_generated_bodies_never_5xx_and_rejections_change_nothing(api, body, method):
    path = "/v2/apps" if method == "POST" else "/v2/apps/existing"
    before = api.snapshot()
    status, resp, _ = http(method, api.url, path, body)
    assert status < 500, (status, resp, body)
    if status >= 400:
        _assert_error_shape(status, resp)
        assert api.snapshot() == before
    elif method == "POST":
        created = resp["id"]
        assert http("DELETE", api.url, f"/v2/apps{created}")[0] == 200
