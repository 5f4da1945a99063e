"""The simulated master speaks the v1 scheduler API as Mesos does, and refuses what the protos
do not allow, naming the field. Plain HTTP against it, no Pacer code involved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from .mesos_sim import AgentSpec, Cluster, SimulatedMaster
from .mesos_sim.protocol import MESSAGES, ProtocolError, validate

pytestmark = pytest.mark.timeout(60)

INFO = {"user": "nobody", "name": "test", "roles": ["*"], "failover_timeout": 60.0,
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}]}


@pytest.fixture
async def master() -> AsyncIterator[SimulatedMaster]:
    cluster = Cluster()
    cluster.add_agent(AgentSpec("agent-1", cpus=2, mem=512, ports=((31000, 31004),)))
    sim = await SimulatedMaster(cluster, heartbeat_interval=0.2, allocation_interval=0.05).start()
    yield sim
    await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, master: SimulatedMaster, call: Any,
               **headers: str) -> tuple[int, str]:
    async with http.post(master.url + "/api/v1/scheduler", data=json.dumps(call), allow_redirects=False,
                         headers={"Content-Type": "application/json", **headers}) as resp:
        return resp.status, await resp.text()


class Stream:
    """An open SUBSCRIBE response, read record by record as RecordIO."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.stream_id = resp.headers["Mesos-Stream-Id"]

    async def event(self, skip_heartbeats: bool = True) -> dict[str, Any]:
        while True:
            size = int((await self.resp.content.readuntil(b"\n")).strip())
            event = json.loads(await self.resp.content.readexactly(size))
            validate("Event", event)
            if not (skip_heartbeats and event["type"] == "HEARTBEAT"):
                return event

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            event = await asyncio.wait_for(self.event(), 5)
            if event["type"] == kind:
                return event


async def subscribe(http: aiohttp.ClientSession, master: SimulatedMaster, info: dict[str, Any] = INFO) -> Stream:
    resp = await http.post(master.url + "/api/v1/scheduler", data=json.dumps(
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}),
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    return Stream(resp)


async def test_subscribe_streams_recordio_events_with_a_stream_id(master: SimulatedMaster,
                                                                  http: aiohttp.ClientSession) -> None:
    stream = await subscribe(http, master)
    first = await stream.event()
    assert first["type"] == "SUBSCRIBED"
    assert first["subscribed"]["heartbeat_interval_seconds"] == 0.2
    assert first["subscribed"]["master_info"]["port"] == master.port
    seen: dict[str, dict[str, Any]] = {}
    while not {"HEARTBEAT", "OFFERS"} <= set(seen):
        event = await asyncio.wait_for(stream.event(skip_heartbeats=False), 5)
        seen.setdefault(event["type"], event)
    offers = seen["OFFERS"]["offers"]["offers"]
    assert offers[0]["hostname"] == "agent-1"
    assert {r["name"] for r in offers[0]["resources"]} == {"cpus", "mem", "disk", "ports"}
    assert all(r["allocation_info"] == {"role": "*"} for r in offers[0]["resources"])
    stream.resp.close()


@pytest.mark.parametrize("call, field", [
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**INFO, "nmae": "x"}}}, "subscribe.framework_info.nmae"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**INFO, "failover_timeout": "60"}}},
     "subscribe.framework_info.failover_timeout"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}, "subscribe.framework_info.user"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**INFO, "capabilities": [{"type": "FAST"}]}}},
     "subscribe.framework_info.capabilities[0].type"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**INFO, "roles": "*"}}}, "subscribe.framework_info.roles"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": INFO, "offer_constraints": {}}},
     "subscribe.offer_constraints"),
    ({"type": "DECLINE", "framework_id": {"value": "f"}, "decline": {"filters": {"refuse_seconds": True}}},
     "decline.filters.refuse_seconds"),
    ({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"},
      "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "not base64!"}},
     "acknowledge.uuid"),
])
async def test_a_call_outside_the_protos_is_a_400_naming_the_field(master: SimulatedMaster,
                                                                    http: aiohttp.ClientSession,
                                                                    call: dict[str, Any], field: str) -> None:
    status, body = await post(http, master, call)
    assert status == 400
    assert body.startswith("Failed to convert JSON into Call protobuf: ") and f"{field}:" in body
    assert master.rejections == [(400, body)]


async def test_mesos_call_validation(master: SimulatedMaster, http: aiohttp.ClientSession) -> None:
    assert (await post(http, master, {"type": "REVIVE"}))[1].endswith("Expecting 'framework_id' to be present")
    assert (await post(http, master, {"type": "KILL", "framework_id": {"value": "f"}}))[1].endswith(
        "Expecting 'kill' to be present")
    assert (await post(http, master, {"type": "SUBSCRIBE", "framework_id": {"value": "f"},
                                      "subscribe": {"framework_info": INFO}}))[1].endswith(
        "'framework_id' differs from 'subscribe.framework_info.id'")
    async with http.post(master.url + "/api/v1/scheduler", data="{}",
                         headers={"Content-Type": "application/x-protobuf"}) as resp:
        assert resp.status == 415


async def test_calls_need_a_live_subscription_and_its_stream_id(master: SimulatedMaster,
                                                                http: aiohttp.ClientSession) -> None:
    revive = {"type": "REVIVE", "framework_id": {"value": "nobody-0001"}}
    assert await post(http, master, revive) == (400, "Framework cannot be found")
    stream = await subscribe(http, master)
    framework_id = (await stream.event())["subscribed"]["framework_id"]
    revive = {"type": "REVIVE", "framework_id": framework_id}
    status, body = await post(http, master, revive)
    assert status == 400 and "'Mesos-Stream-Id'" in body
    assert (await post(http, master, revive, **{"Mesos-Stream-Id": "other"}))[0] == 400
    assert (await post(http, master, revive, **{"Mesos-Stream-Id": stream.stream_id}))[0] == 202
    stream.resp.close()


async def test_multi_role_framework_must_not_set_role(master: SimulatedMaster, http: aiohttp.ClientSession) -> None:
    stream = await subscribe(http, master, {**INFO, "role": "*"})
    error = await stream.event()
    assert error == {"type": "ERROR", "error": {
        "message": "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"}}


async def test_a_master_that_does_not_lead_redirects_to_the_leader(master: SimulatedMaster,
                                                                   http: aiohttp.ClientSession) -> None:
    follower = await SimulatedMaster(master.cluster, "master-2").start(elected=False)
    try:
        assert (await post(http, follower, {"type": "REVIVE"}))[0] == 503        # no leader known
        follower.leader = master
        async with http.post(follower.url + "/api/v1/scheduler", data="{}", allow_redirects=False,
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 307
            assert resp.headers["Location"] == f"//127.0.0.1:{master.port}/api/v1/scheduler"
    finally:
        await follower.stop()


async def test_accept_with_a_rescinded_offer_drops_the_task(master: SimulatedMaster,
                                                            http: aiohttp.ClientSession) -> None:
    stream = await subscribe(http, master)
    framework_id = (await stream.event())["subscribed"]["framework_id"]
    offer = (await stream.until("OFFERS"))["offers"]["offers"][0]
    master.rescind(offer["id"]["value"])
    assert (await stream.until("RESCIND"))["rescind"]["offer_id"] == offer["id"]
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
            "resources": offer["resources"][:1], "command": {"value": "true"}}
    accept = {"type": "ACCEPT", "framework_id": framework_id, "accept": {
        "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}
    assert (await post(http, master, accept, **{"Mesos-Stream-Id": stream.stream_id}))[0] == 202
    status = (await stream.until("UPDATE"))["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_DROPPED", "REASON_INVALID_OFFERS")
    assert "uuid" not in status                  # the master's own update: nothing to acknowledge
    stream.resp.close()


async def test_a_task_asking_more_than_offered_is_task_error(master: SimulatedMaster,
                                                             http: aiohttp.ClientSession) -> None:
    stream = await subscribe(http, master)
    framework_id = (await stream.event())["subscribed"]["framework_id"]
    offer = (await stream.until("OFFERS"))["offers"]["offers"][0]
    greedy = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 99.0}, "allocation_info": {"role": "*"}}
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"], "resources": [greedy],
            "command": {"value": "true"}}
    accept = {"type": "ACCEPT", "framework_id": framework_id, "accept": {
        "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}
    await post(http, master, accept, **{"Mesos-Stream-Id": stream.stream_id})
    status = (await stream.until("UPDATE"))["update"]["status"]
    assert status["state"] == "TASK_ERROR" and "more resources" in status["message"]
    stream.resp.close()


async def test_explicit_reconciliation_of_an_unknown_task(master: SimulatedMaster,
                                                          http: aiohttp.ClientSession) -> None:
    stream = await subscribe(http, master)
    framework_id = (await stream.event())["subscribed"]["framework_id"]
    agent_id = next(iter(master.cluster.agents))
    reconcile = {"type": "RECONCILE", "framework_id": framework_id, "reconcile": {"tasks": [
        {"task_id": {"value": "ghost"}, "agent_id": {"value": agent_id}}, {"task_id": {"value": "nowhere"}}]}}
    await post(http, master, reconcile, **{"Mesos-Stream-Id": stream.stream_id})
    first = (await stream.until("UPDATE"))["update"]["status"]
    second = (await stream.until("UPDATE"))["update"]["status"]
    assert (first["state"], second["state"]) == ("TASK_GONE", "TASK_UNKNOWN")
    assert first["reason"] == second["reason"] == "REASON_RECONCILIATION"
    stream.resp.close()


def test_the_schema_tables_are_closed() -> None:
    """Every type a field names is a table of its own, a scalar, an enum, or marked unmodelled."""
    from .mesos_sim.protocol import ENUMS, SCALARS
    for message, fields in MESSAGES.items():
        for name, spec in fields.items():
            kind = spec.removeprefix("map:").rstrip("!*")
            assert (kind.startswith("~") or kind in SCALARS or kind in MESSAGES
                    or (kind.startswith("enum:") and kind[5:] in ENUMS)), (message, name, spec)


def test_validate_reports_the_path() -> None:
    with pytest.raises(ProtocolError) as err:
        validate("TaskInfo", {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                              "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": "1"}}]})
    assert err.value.path == "resources[0].scalar.value"
