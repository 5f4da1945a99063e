"""Marathon /v2 shapes: apps CRUD, versions and rollback, filters, system endpoints.

Runs against the in-process API (no tasks launch), so it checks what a Marathon client sees.
"""

from __future__ import annotations

import json
from pathlib import Path

from .support import http

SEED = Path(__file__).resolve().parent / "fixtures" / "seed-marathon-qa.json"


def test_system_endpoints(api):
    status, body, headers = http("GET", api.url, "/ping")
    assert status == 200 and body == "pong"
    assert headers["x-marathon-leader"] == f"http://127.0.0.1:{api.port}"
    status, info, _ = http("GET", api.url, "/v2/info")
    assert info["name"] == "pacer" and info["elected"] is True and info["frameworkId"]
    assert info["http_config"]["http_port"] == api.port
    assert http("GET", api.url, "/v2/leader")[1] == {"leader": f"127.0.0.1:{api.port}"}
    status, page, headers = http("GET", api.url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and "/ui/static/app.js" in page


def test_seed_example_is_accepted_as_written_and_normalised(api):
    seed = json.loads(SEED.read_text())
    status, body, headers = http("POST", api.url, "/v2/apps", seed)
    assert status == 201, body
    assert body["id"] == "/appName"
    assert body["networks"] == [{"mode": "container", "name": "calico-net"}]
    assert body["container"]["portMappings"][0]["containerPort"] == 12345
    assert body["container"]["portMappings"][0]["servicePort"] == 12345
    assert body["fetch"][0]["uri"] == "file:///etc/docker.tar.gz"
    assert body["tasksRunning"] == 0 and body["deployments"][0]["id"] == headers["marathon-deployment-id"]


def test_create_assigns_unique_service_ports(api):
    ports = []
    for name in ("svc-a", "svc-b"):
        status, body, _ = http("POST", api.url, "/v2/apps", {"id": name, "cmd": "true", "instances": 0,
                                                              "portDefinitions": [{"port": 0}, {"port": 0}]})
        assert status == 201, body
        ports += [p["port"] for p in body["portDefinitions"]]
    assert len(set(ports)) == 4 and all(10000 <= p < 20000 for p in ports)
    # an update that leaves the port at 0 keeps the port the app already had
    status, body, _ = http("PUT", api.url, "/v2/apps/svc-a?partialUpdate=false&force=true",
                           {"cmd": "true", "instances": 0, "portDefinitions": [{"port": 0}, {"port": 0}]})
    assert status == 200, body
    app = http("GET", api.url, "/v2/apps/svc-a")[1]["app"]
    assert [p["port"] for p in app["portDefinitions"]] == ports[:2]


def test_put_upserts_and_patch_requires_existing(api):
    status, body, headers = http("PUT", api.url, "/v2/apps/upsert?force=true", {"cmd": "sleep 1", "instances": 0})
    assert status == 201 and headers["location"] == "/v2/apps/upsert"
    status, body, headers = http("PUT", api.url, "/v2/apps/upsert?force=true", {"instances": 0, "mem": 64})
    assert status == 200 and set(body) == {"deploymentId", "version"}
    assert headers["marathon-deployment-id"] == body["deploymentId"]
    app = http("GET", api.url, "/v2/apps/upsert")[1]["app"]
    assert app["mem"] == 64 and app["cmd"] == "sleep 1"     # partial update kept cmd
    status, body, _ = http("PATCH", api.url, "/v2/apps/never-created", {"instances": 1})
    assert status == 404 and body["message"] == "App '/never-created' does not exist"


def test_versions_scale_keeps_config_version_and_rollback_restores(api):
    http("PUT", api.url, "/v2/apps/versioned?force=true", {"cmd": "sleep 1", "instances": 0})
    first = http("GET", api.url, "/v2/apps/versioned")[1]["app"]
    http("PUT", api.url, "/v2/apps/versioned?force=true", {"instances": 0, "cpus": 0.5})
    http("PUT", api.url, "/v2/apps/versioned?force=true", {"instances": 0, "labels": {"a": "b"}})
    versions = http("GET", api.url, "/v2/apps/versioned/versions")[1]["versions"]
    assert len(versions) == 3 and versions[-1] == first["version"] and versions == sorted(versions, reverse=True)
    status, old, _ = http("GET", api.url, f"/v2/apps/versioned/versions/{first['version']}")
    assert status == 200 and old["cpus"] == 1
    status, body, _ = http("PUT", api.url, "/v2/apps/versioned?force=true", {"version": first["version"]})
    assert status == 200, body
    app = http("GET", api.url, "/v2/apps/versioned")[1]["app"]
    assert app["cpus"] == 1 and app["labels"] == {} and app["version"] == body["version"]
    status, body, _ = http("PUT", api.url, "/v2/apps/versioned?force=true", {"version": "2001-01-01T00:00:00.000Z"})
    assert status == 404
    status, scaled, _ = http("PUT", api.url, "/v2/apps/versioned?force=true", {"instances": 0})
    after = http("GET", api.url, "/v2/apps/versioned")[1]["app"]
    assert after["versionInfo"]["lastScalingAt"] == scaled["version"]
    assert after["versionInfo"]["lastConfigChangeAt"] == app["versionInfo"]["lastConfigChangeAt"]


def test_list_filters_and_group_listing(api):
    for app_id, labels in (("/shop/cart", {"env": "prod", "tier": "web"}), ("/shop/db", {"env": "qa"})):
        assert http("POST", api.url, "/v2/apps", {"id": app_id, "cmd": f"run {app_id}", "instances": 0,
                                                    "labels": labels})[0] == 201
    ids = lambda q: [a["id"] for a in http("GET", api.url, f"/v2/apps{q}")[1]["apps"]]
    assert ids("?id=shop") == ["/shop/cart", "/shop/db"]
    assert ids("?cmd=run%20/shop/db") == ["/shop/db"]
    assert ids("?label=env==prod") == ["/shop/cart"]
    assert ids("?label=env%20in%20(prod,qa),tier") == ["/shop/cart"]
    assert ids("?label=env!=prod&id=shop") == ["/shop/db"]
    status, body, _ = http("GET", api.url, "/v2/apps/shop/*")
    assert [a["id"] for a in body["*"]] == ["/shop/cart", "/shop/db"]
    listed = http("GET", api.url, "/v2/apps?embed=apps.tasks&id=shop")[1]["apps"]
    assert all(a["tasks"] == [] and a["tasksRunning"] == 0 for a in listed)


def test_restart_creates_new_config_version(api):
    http("PUT", api.url, "/v2/apps/restartable?force=true", {"cmd": "sleep 1", "instances": 0})
    before = http("GET", api.url, "/v2/apps/restartable")[1]["app"]
    status, body, _ = http("POST", api.url, "/v2/apps/restartable/restart?force=true")
    assert status == 200 and set(body) == {"deploymentId", "version"}
    after = http("GET", api.url, "/v2/apps/restartable")[1]["app"]
    assert after["versionInfo"]["lastConfigChangeAt"] == body["version"] != before["version"]


def test_queue_delay_reset_needs_a_queued_app(api):
    status, body, _ = http("DELETE", api.url, "/v2/queue/existing/delay")
    assert status == 404 and "queue" in body["message"]
    status, body, _ = http("DELETE", api.url, "/v2/queue/unknown-app/delay")
    assert status == 404


def test_batch_put_gives_each_new_app_its_own_service_port(api):
    batch = [{"id": f"/batchports/a{i}", "cmd": "sleep 1000", "instances": 0, "portDefinitions": [{"port": 0}]}
             for i in range(3)]
    status, body, _ = http("PUT", api.url, "/v2/apps", batch)
    assert status == 200, body
    ports = [http("GET", api.url, f"/v2/apps/batchports/a{i}")[1]["app"]["portDefinitions"][0]["port"]
             for i in range(3)]
    assert len(set(ports)) == 3 and all(ports), ports
    status, body, _ = http("PUT", api.url, "/v2/apps/batchports/a1?force=true", {"cmd": "sleep 999"})
    assert status == 200, body
