"""/v2/autoscaler over real HTTP on 127.0.0.1: policies CRUD, 422s naming fields, decisions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from autoscaler.api import build_autoscaler_app
from autoscaler.service import Autoscaler
from metrics import EmbeddedStore
from pacer_client import PacerClient

from .support import free_port


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Autoscaler, aiohttp.ClientSession]]:
    store = EmbeddedStore()
    client = PacerClient(f"http://127.0.0.1:{free_port()}", timeout=2)   # no scheduler: cycles record errors
    scaler = Autoscaler(client, store, store, tmp_path / "autoscaler", interval=1.0)
    parent = web.Application()
    parent.add_subapp("/v2/autoscaler", build_autoscaler_app(scaler))
    runner = web.AppRunner(parent)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = aiohttp.ClientSession()
    yield f"http://127.0.0.1:{port}/v2/autoscaler", scaler, session
    await session.close()
    await client.close()
    await runner.cleanup()


async def call(session, method, url, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    async with session.request(method, url, data=data, headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


async def test_policies_crud(served, tmp_path):
    base, scaler, s = served
    assert await call(s, "GET", base + "/policies") == (200, {"policies": []})
    status, body = await call(s, "POST", base + "/policies", {"appId": "/shop/web", "target": 60, "max": 5})
    assert status == 201 and body["appId"] == "/shop/web" and body["mode"] == "target" and body["min"] == 1
    status, body = await call(s, "POST", base + "/policies", {"appId": "/shop/web", "target": 60, "max": 5})
    assert status == 409 and "already exists" in body["message"]
    status, body = await call(s, "GET", base + "/policies/shop/web")
    assert status == 200 and body["target"] == 60 and body["source"] == "api"
    status, body = await call(s, "PUT", base + "/policies/shop/web",
                              {"scaleUpAbove": 80, "scaleDownBelow": 20, "max": 9, "metric": "mem"})
    assert status == 200 and body["mode"] == "threshold" and body["metric"] == "mem"
    status, body = await call(s, "PUT", base + "/policies/api", {"target": 50, "max": 2})
    assert status == 201 and body["appId"] == "/api"
    status, body = await call(s, "GET", base + "/policies")
    assert [p["appId"] for p in body["policies"]] == ["/api", "/shop/web"]
    assert json.loads((tmp_path / "autoscaler" / "policies.json").read_text())["policies"][1]["max"] == 9
    status, body = await call(s, "DELETE", base + "/policies/api")
    assert status == 200 and body["appId"] == "/api"
    assert (await call(s, "DELETE", base + "/policies/api"))[0] == 404
    assert (await call(s, "GET", base + "/policies/api"))[0] == 404
    assert set(scaler.store.all()) == {"/shop/web"}


@pytest.mark.parametrize("body, paths", [
    ({"appId": "/a", "target": 50, "min": 5, "max": 2}, ["/min"]),
    ({"appId": "/a", "target": 50, "max": 2, "metric": "disk"}, ["/metric"]),
    ({"appId": "/a", "target": 0, "max": 2}, ["/target"]),
    ({"appId": "/a", "target": -3, "max": "many"}, ["/target", "/max"]),
    ({"appId": "/a", "max": 2}, ["/target"]),
    ({"target": 50, "max": 2}, ["/appId"]),
    ({"appId": "/a", "target": 50, "max": 2, "colour": "red"}, ["/colour"]),
    ([1], ["/"]),
])
async def test_bad_policies_are_422_naming_the_field(served, body, paths):
    base, scaler, s = served
    status, reply = await call(s, "POST", base + "/policies", body)
    assert status == 422 and reply["message"] == "Object is not valid"
    assert sorted(d["path"] for d in reply["details"]) == sorted(paths)
    assert all(d["errors"] for d in reply["details"])
    assert scaler.store.all() == {}


async def test_bad_json_and_bad_path_ids(served):
    base, _, s = served
    async with s.post(base + "/policies", data="{nope", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    status, reply = await call(s, "PUT", base + "/policies/a", {"appId": "/b", "target": 50, "max": 2})
    assert status == 422 and reply["details"][0]["path"] == "/appId"


async def test_decisions_and_status_survive_an_unreachable_scheduler(served):
    base, scaler, s = served
    await scaler.run_once()
    status, body = await call(s, "GET", base + "/status")
    assert status == 200 and body["cycles"] == 1 and body["errors"] == 1 and "scheduler API" in body["lastError"]
    assert body["sink"]["backend"] == "embedded"
    assert await call(s, "GET", base + "/decisions") == (200, {"decisions": []})
    status, body = await call(s, "GET", base + "/decisions?limit=0")
    assert status == 400 and "limit" in body["message"]
