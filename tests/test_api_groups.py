"""/v2/groups over real HTTP: trees, relative ids, dry runs, scaleBy, dependencies, deletes."""

from __future__ import annotations

from .support import http, wait_until

GROUP = {"id": "/shopfront", "apps": [
    {"id": "db", "cmd": "sleep 1000", "instances": 0},
    {"id": "web", "cmd": "sleep 1000", "instances": 0, "dependencies": ["db"]}],
    "groups": [{"id": "batch", "apps": [{"id": "report", "cmd": "sleep 1000", "instances": 0}]}]}


def test_group_lifecycle(api):
    status, body, headers = http("POST", api.url, "/v2/groups", GROUP)
    assert status == 201, body
    assert headers["marathon-deployment-id"] == body["deploymentId"]
    status, tree, _ = http("GET", api.url, "/v2/groups/shopfront")
    assert status == 200
    assert [a["id"] for a in tree["apps"]] == ["/shopfront/db", "/shopfront/web"]
    assert tree["groups"][0]["id"] == "/shopfront/batch"
    assert tree["groups"][0]["apps"][0]["id"] == "/shopfront/batch/report"
    web = http("GET", api.url, "/v2/apps/shopfront/web")[1]["app"]
    assert web["dependencies"] == ["/shopfront/db"]
    root = http("GET", api.url, "/v2/groups")[1]
    assert "/shopfront" in [g["id"] for g in root["groups"]]

    status, body, _ = http("POST", api.url, "/v2/groups", GROUP)
    assert status == 409 and "already created" in body["message"]

    status, dry, _ = http("PUT", api.url, "/v2/groups/shopfront?dryRun=true&force=true",
                          {"apps": [{"id": "db", "cmd": "sleep 1000", "instances": 2},
                                    {"id": "web", "cmd": "sleep 2000", "instances": 1, "dependencies": ["db"]}]})
    assert status == 200, dry
    actions = [[a["action"] + " " + a["app"] for a in step["actions"]] for step in dry["steps"]]
    assert actions == [["ScaleApplication /shopfront/db"], ["RestartApplication /shopfront/web"]]
    assert http("GET", api.url, "/v2/apps/shopfront/db")[1]["app"]["instances"] == 0   # nothing changed

    status, body, _ = http("PUT", api.url, "/v2/groups/shopfront?force=true", {"scaleBy": 2})
    assert status == 200, body

    versions = http("GET", api.url, "/v2/groups/shopfront/versions")[1]
    assert versions and versions == sorted(versions, reverse=True)
    status, old, _ = http("GET", api.url, f"/v2/groups/shopfront/versions/{versions[-1]}")
    assert status == 200 and [a["id"] for a in old["apps"]] == ["/shopfront/db", "/shopfront/web"]

    status, body, _ = http("DELETE", api.url, "/v2/groups/shopfront?force=true")
    assert status == 200
    assert http("GET", api.url, "/v2/apps/shopfront/web")[0] == 404
    assert http("GET", api.url, "/v2/groups/shopfront")[0] == 404


def test_group_errors(api):
    cyclic = {"id": "/loop", "apps": [{"id": "a", "cmd": "x", "instances": 0, "dependencies": ["b"]},
                                      {"id": "b", "cmd": "x", "instances": 0, "dependencies": ["a"]}]}
    status, body, _ = http("POST", api.url, "/v2/groups", cyclic)
    assert status == 422 and "cyclic" in str(body["details"])
    status, body, _ = http("POST", api.url, "/v2/groups", {"id": "/bad", "apps": [{"id": "x", "cpus": "many"}]})
    assert status == 422 and body["details"][0]["path"].startswith("/apps(0)")
    assert http("GET", api.url, "/v2/groups/never")[0] == 404
    assert http("DELETE", api.url, "/v2/groups/never")[0] == 404
    status, body, _ = http("PUT", api.url, "/v2/groups/x", {"scaleBy": 2, "apps": []})
    assert status == 422
