"""The Mesos backend's pure mappings: offers to `AgentOffer`s, apps to TaskInfos (checked against
the v1 protos by the simulator's validator), and which status updates move a task on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from marathon.models.info import MarathonConfig

from app_definitions import parse_app_definition
from scheduler.api.system import marathon_config
from scheduler.backends import BackendInfo
from scheduler.backends.mesos import MesosBackend, MesosConfig
from scheduler.backends.mesos_errors import LaunchAborted
from scheduler.backends.mesos_offers import HeldOffer, OfferBook, ResourcePool, attribute_text
from scheduler.backends.mesos_tasks import status_update, supersedes, task_info, task_name, unsupported
from scheduler.state.model import Instance

from .fakes import FakeClock, agent, build_scheduler
from .mesos_sim.agents import ranges_attribute, scalar_attribute, set_attribute, text_attribute
from .mesos_sim.protocol import validate


def offer(offer_id: str, agent: str, resources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": {"value": offer_id}, "framework_id": {"value": "f"}, "agent_id": {"value": agent},
            "hostname": f"host-{agent}", "resources": resources, "allocation_info": {"role": "web"}, **extra}


def scalar(name: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "allocation_info": {"role": "web"}, **extra}


def ports(*ranges: tuple[int, int]) -> dict[str, Any]:
    return {"name": "ports", "type": "RANGES", "allocation_info": {"role": "web"},
            "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]}}


@pytest.mark.parametrize("attribute, text", [
    (text_attribute("rack", "r1"), "r1"),
    (scalar_attribute("weight", 2.0), "2"),
    (scalar_attribute("weight", 1.0005), "1"),
    (ranges_attribute("slots", [(20, 30), (1, 10)]), "[1-10,20-30]"),
    (set_attribute("disks", ["ssd", "hdd"]), "{hdd,ssd}"),
])
def test_attributes_read_as_marathon_writes_them(attribute: dict[str, Any], text: str) -> None:
    assert attribute_text(attribute) == text


def test_offers_of_one_agent_merge_and_agents_of_running_instances_stay_visible() -> None:
    book = OfferBook()
    book.add(offer("o1", "a1", [scalar("cpus", 1.0), scalar("mem", 256), ports((31000, 31001))],
                   attributes=[text_attribute("rack", "r1")]))
    book.add(offer("o2", "a1", [scalar("cpus", 0.5), ports((31005, 31005))], attributes=[text_attribute("rack", "r1")]))
    book.add(offer("o3", "a2", [scalar("cpus", 2.0), scalar("mem", 512)]))
    book.take_agent("a2")                        # a2 has nothing offered now
    [merged] = book.agent_offers()
    assert (merged.cpus, merged.mem, merged.free_ports) == (1.5, 256, ((31000, 31001), (31005, 31005)))
    assert merged.agent.attributes == {"rack": "r1"}
    with_a2 = {o.agent.agent_id: o for o in book.agent_offers(also={"a2"})}
    assert with_a2["a2"].cpus == 0 and with_a2["a2"].agent.hostname == "host-a2"
    book.take_all()
    assert book.agent_offers(also={"a1", "a2"}) == []      # nothing held: nothing to weigh


def test_a_launch_takes_resources_entry_by_entry_keeping_roles_and_reservations() -> None:
    reserved = scalar("cpus", 0.25, reservations=[{"type": "STATIC", "role": "web"}])
    held = HeldOffer.of(offer("o1", "a1", [reserved, scalar("cpus", 1.0), scalar("mem", 128),
                                           ports((31000, 31002))]))
    pool = ResourcePool([held])
    taken = pool.take({"cpus": 0.5, "mem": 64, "disk": 0, "gpus": 0}, [31001])
    cpus = [r for r in taken if r["name"] == "cpus"]
    assert [r["scalar"]["value"] for r in cpus] == [0.25, 0.25]
    assert cpus[0]["reservations"] == [{"type": "STATIC", "role": "web"}] and "reservations" not in cpus[1]
    assert [r for r in taken if r["name"] == "ports"][0]["ranges"] == {"range": [{"begin": 31001, "end": 31001}]}
    assert pool.scalar("cpus") == 0.75 and pool.ports() == [(31000, 31000), (31002, 31002)]
    with pytest.raises(LaunchAborted):
        pool.take({"cpus": 0.1, "mem": 1}, [31001])


def _instance(ports: tuple[int, ...] = (31000, 31001)) -> Instance:
    return Instance("shop_web.instance-1._app.1", "/shop/web", "2024-01-01T00:00:00.000Z", "v", "a1", "host-a1",
                    ports, (10000, 10001))


RESOURCES = [scalar("cpus", 0.5), scalar("mem", 64), ports((31000, 31001))]


@pytest.mark.parametrize("definition", [
    {"cmd": "python3 -m http.server $PORT0", "portDefinitions": [{"name": "http"}, {"protocol": "udp,tcp"}],
     "labels": {"HAPROXY_GROUP": "external"}, "taskKillGracePeriodSeconds": 5, "user": "www",
     "fetch": [{"uri": "https://example.org/a.tgz", "destPath": "a.tgz"}]},
    {"args": ["/bin/server", "--port", "8080"], "portDefinitions": [{}, {}]},
    {"container": {"type": "DOCKER", "docker": {"image": "nginx:1", "parameters": [{"key": "label", "value": "x"}]},
                   "portMappings": [{"containerPort": 80, "hostPort": 0}, {"containerPort": 443, "hostPort": 0}],
                   "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]},
     "networks": [{"mode": "container/bridge"}]},
    {"container": {"type": "MESOS", "docker": {"image": "busybox"},
                   "portMappings": [{"containerPort": 80, "hostPort": 0}, {"containerPort": 81, "hostPort": 0}]},
     "networks": [{"mode": "container/bridge"}], "cmd": "httpd -f -p 80"},
    {"cmd": "serve", "portDefinitions": [{}, {}],
     "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 1}]},
    {"cmd": "serve", "portDefinitions": [{}, {}], "healthChecks": [{"protocol": "COMMAND",
                                                                     "command": {"value": "true"}}]},
])
def test_task_infos_fit_the_v1_protos(definition: dict[str, Any]) -> None:
    app = parse_app_definition({"id": "/shop/web", "cpus": 0.5, "mem": 64, **definition})
    info = task_info(_instance(), app, RESOURCES)
    validate("TaskInfo", info)
    assert info["name"] == "web.shop" == task_name("/shop/web")
    variables = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert variables["PORT0"] == "31000" and variables["MESOS_TASK_ID"] == "shop_web.instance-1._app.1"


def test_task_info_details() -> None:
    app = parse_app_definition({"id": "/shop/web", "cmd": "serve", "portDefinitions": [{"name": "http"}],
                                "taskKillGracePeriodSeconds": 5, "labels": {"team": "a"}})
    info = task_info(_instance((31000,)), app, RESOURCES)
    assert info["command"]["shell"] is True and info["command"]["value"] == "serve"
    assert info["kill_policy"] == {"grace_period": {"nanoseconds": 5_000_000_000}}
    assert info["labels"] == {"labels": [{"key": "team", "value": "a"}]}
    assert info["discovery"]["ports"]["ports"] == [{"number": 31000, "protocol": "tcp", "name": "http"}]
    args = parse_app_definition({"id": "/a", "args": ["/bin/x", "-v"]})
    assert task_info(_instance((31000,)), args, RESOURCES)["command"] | {"environment": None} == {
        "shell": False, "value": "/bin/x", "arguments": ["/bin/x", "-v"], "environment": None}
    no_grace = parse_app_definition({"id": "/a", "cmd": "x"})
    assert "kill_policy" not in task_info(_instance((31000,)), no_grace, RESOURCES)


def test_what_a_mesos_cluster_cannot_run_waits_with_a_reason() -> None:
    pacer_executor = parse_app_definition({"id": "/a", "cmd": "x", "executor": "/opt/exec"})
    assert "executor" in (unsupported(pacer_executor) or "")
    persistent = parse_app_definition({"id": "/a", "cmd": "x", "container": {"type": "MESOS", "volumes": [
        {"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]},
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}, "unreachableStrategy": "disabled"})
    assert "host volumes" in (unsupported(persistent) or "")
    assert unsupported(parse_app_definition({"id": "/a", "cmd": "x"})) is None


@pytest.mark.parametrize("previous, new, moves", [
    (None, "TASK_RUNNING", True),
    ("TASK_STARTING", "TASK_RUNNING", True),
    ("TASK_RUNNING", "TASK_RUNNING", False),          # a duplicate
    ("TASK_RUNNING", "TASK_STARTING", False),         # an old one, late
    ("TASK_RUNNING", "TASK_UNREACHABLE", True),
    ("TASK_UNREACHABLE", "TASK_RUNNING", True),       # the agent came back
    ("TASK_KILLING", "TASK_RUNNING", False),
    ("TASK_RUNNING", "TASK_FAILED", True),
    ("TASK_FINISHED", "TASK_RUNNING", False),         # nothing after the end
    ("TASK_FINISHED", "TASK_FAILED", False),
])
def test_which_updates_move_a_task_on(previous: str | None, new: str, moves: bool) -> None:
    assert supersedes(previous, new) is moves


def test_status_updates_carry_the_exit_code_from_the_message() -> None:
    update = status_update({"task_id": {"value": "t"}, "state": "TASK_FAILED",
                            "message": "Command exited with status 3", "reason": "REASON_COMMAND_EXECUTOR_FAILED"})
    assert (update.instance_id, update.state, update.exit_code) == ("t", "TASK_FAILED", 3)
    assert status_update({"task_id": {"value": "t"}, "state": "TASK_LOST", "reason": "REASON_AGENT_REMOVED"}
                         ).message == "REASON_AGENT_REMOVED"


def test_the_subscribe_call_fits_the_protos_and_uses_roles_not_role() -> None:
    class Quiet:
        def on_status(self, update: Any) -> None: ...
        def on_offers(self) -> None: ...
    backend = MesosBackend(MesosConfig(masters=("http://127.0.0.1:1",), user="u", role="web"), Quiet())
    fresh = backend._subscribe_call(None)
    validate("Call", fresh)
    info = fresh["subscribe"]["framework_info"]
    assert "role" not in info and info["roles"] == ["web"] and "id" not in info and "framework_id" not in fresh
    assert {c["type"] for c in info["capabilities"]} == {"MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE"}
    again = backend._subscribe_call("f-1")
    validate("Call", again)
    assert again["framework_id"] == info_id(again) == {"value": "f-1"}


def info_id(call: dict[str, Any]) -> Any:
    return call["subscribe"]["framework_info"]["id"]


# -- /v2/info ----------------------------------------------------------------------------------

MESOS_INFO = BackendInfo(master="http://m1:5050,http://m2:5050", framework_id="fw-0001", role="web", user="svc",
                         framework_name="pacer", failover_timeout=3600.0, leader="http://m2:5050")


@pytest.mark.parametrize("backend", [BackendInfo(), MESOS_INFO])
def test_info_shows_only_keys_marathon_has(backend: BackendInfo) -> None:
    config = marathon_config(backend, "h", [])
    MarathonConfig(**config)                     # marathon-python refuses a key Marathon does not have
    assert (config["master"], config["mesos_role"], config["mesos_user"]) == (backend.master, backend.role,
                                                                              backend.user)


def test_the_framework_id_is_the_masters_on_mesos_and_the_schedulers_own_otherwise(tmp_path: Path) -> None:
    clock = FakeClock()
    sched, fake = build_scheduler(tmp_path / "state.db", clock, [agent(1)])
    sched.state.load(new_framework_id="pacer-own")
    assert sched.view.framework_id == "pacer-own"
    fake.info = MESOS_INFO
    assert sched.view.framework_id == "fw-0001"
    fake.info = BackendInfo(master="http://m1:5050")            # not subscribed yet: no id, as Marathon
    assert sched.view.framework_id is None
    sched.store.close()
