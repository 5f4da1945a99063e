"""The pure parts of `pacer executor` (`executor.mesos_protocol`, `executor.recordio`) and the
scheduler's side of it (`"executor": "pacer"` TaskInfos, checked against the v1 protos)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app_definitions import parse_app_definition
from executor.errors import BadEnvironment, InvalidTaskSpec, RecordIOError
from executor.mesos_protocol import (
    ExecutorConfig,
    Ledger,
    backoff,
    config_from_env,
    exit_status,
    grace_seconds,
    launch_spec,
    parse_duration,
    subscribe_call,
    task_argv,
    task_status,
)
from executor.recordio import RecordIODecoder, encode
from executor.states import TaskExit
from scheduler.backends.mesos_launches import Attempt, Batch
from scheduler.backends.mesos_offers import HeldOffer
from scheduler.backends.mesos_tasks import executor_needs, launch_needs, task_info, unsupported
from scheduler.state.model import Instance

from .mesos_sim.executor_protocol import validate_call
from .mesos_sim.protocol import ProtocolError, validate

CONFIG = ExecutorConfig("fw", "ex", "127.0.0.1:5051", Path("/sandbox"))
ENV = {"MESOS_FRAMEWORK_ID": "fw", "MESOS_EXECUTOR_ID": "ex", "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
       "MESOS_DIRECTORY": "/sandbox"}


@pytest.mark.parametrize("text, seconds", [("15mins", 900.0), ("5secs", 5.0), ("250ms", 0.25), ("2", 2.0),
                                           ("1.5hrs", 5400.0), ("100us", 1e-4), ("1weeks", 604800.0)])
def test_durations_as_the_agent_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 parsecs", "secs", "-1secs"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_config_reads_the_agent_environment() -> None:
    config = config_from_env({**ENV, "MESOS_CHECKPOINT": "1", "MESOS_RECOVERY_TIMEOUT": "3secs",
                              "MESOS_SUBSCRIPTION_BACKOFF_MAX": "250ms", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "1mins"})
    assert config == ExecutorConfig("fw", "ex", "127.0.0.1:5051", Path("/sandbox"), True, 3.0, 0.25, 60.0)
    assert config.url == "http://127.0.0.1:5051/api/v1/executor"
    assert config_from_env(ENV).checkpoint is False


def test_config_names_what_is_missing_or_malformed() -> None:
    with pytest.raises(BadEnvironment, match="MESOS_EXECUTOR_ID"):
        config_from_env({k: v for k, v in ENV.items() if k != "MESOS_EXECUTOR_ID"})
    with pytest.raises(BadEnvironment, match="MESOS_RECOVERY_TIMEOUT"):
        config_from_env({**ENV, "MESOS_RECOVERY_TIMEOUT": "soon"})


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.01, max_value=60))
def test_backoff_never_exceeds_the_agents_maximum(attempt: int, maximum: float) -> None:
    assert 0 < backoff(attempt, maximum) <= maximum


@pytest.mark.parametrize("command, argv", [
    ({"value": "echo $X"}, ["/bin/sh", "-c", "echo $X"]),                      # shell defaults to true
    ({"shell": True, "value": "ls"}, ["/bin/sh", "-c", "ls"]),
    ({"shell": False, "value": "/bin/echo", "arguments": ["echo", "a b"]}, ["echo", "a b"]),
    ({"shell": False, "value": "/bin/true"}, ["/bin/true"]),
])
def test_command_info_becomes_an_argv(command: dict[str, Any], argv: list[str]) -> None:
    assert task_argv(command) == argv


def _task(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a"}, **extra}


def test_launch_spec_reads_the_command_from_data_with_env_and_grace() -> None:
    command = {"shell": True, "value": "sleep 1", "environment": {"variables": [{"name": "A", "value": "1"}]}}
    data = base64.b64encode(json.dumps(command).encode()).decode()
    spec = launch_spec(_task(data=data, kill_policy={"grace_period": {"nanoseconds": 2_500_000_000}}),
                       Path("/sandbox"))
    assert spec.argv == ["/bin/sh", "-c", "sleep 1"]
    assert spec.env == {"A": "1", "MESOS_SANDBOX": "/sandbox/tasks/t1"}
    assert spec.sandbox == Path("/sandbox/tasks/t1") and spec.kill_grace_seconds == 2.5
    assert launch_spec(_task(command=command), Path("/s")).argv == spec.argv     # a plain command works too


@pytest.mark.parametrize("task", [_task(), _task(data=base64.b64encode(b"[1]").decode()),
                                  _task(data=base64.b64encode(b"not json").decode()),
                                  _task(command={"value": "x"}, container={"type": "DOCKER"}),
                                  _task(command={"value": "x", "environment": {"variables": [
                                      {"name": "S", "type": "SECRET"}]}})])
def test_tasks_that_cannot_be_a_process_are_refused(task: dict[str, Any]) -> None:
    with pytest.raises(InvalidTaskSpec):
        launch_spec(task, Path("/s"))


def test_grace_period_of_a_kill_policy() -> None:
    assert grace_seconds(None, 3.0) == 3.0
    assert grace_seconds({"grace_period": {"nanoseconds": 0}}, 3.0) == 0.0
    assert grace_seconds({}, 1.0) == 1.0


@pytest.mark.parametrize("report, expected", [
    (TaskExit("t", "TASK_FINISHED", 0, None, "Command exited with status 0"),
     ("TASK_FINISHED", "Command exited with status 0", None)),
    (TaskExit("t", "TASK_FAILED", 3, None, "Command exited with status 3"),
     ("TASK_FAILED", "Command exited with status 3", "REASON_COMMAND_EXECUTOR_FAILED")),
    (TaskExit("t", "TASK_FAILED", None, 9, "memory limit of 32 MB exceeded"),
     ("TASK_FAILED", "memory limit of 32 MB exceeded", "REASON_CONTAINER_LIMITATION_MEMORY")),
    (TaskExit("t", "TASK_KILLED", None, 15, "Command terminated with signal SIGTERM"),
     ("TASK_KILLED", "Command terminated with signal SIGTERM", None)),
])
def test_exit_reports_become_terminal_updates(report: TaskExit, expected: tuple[str, str, str | None]) -> None:
    assert exit_status(report) == expected


def _status(task_id: str, state: str, n: int) -> dict[str, Any]:
    return task_status(CONFIG, task_id, state, uuid=bytes([n]) * 16, now=1.0, agent_id="a")


def test_ledger_drops_acknowledged_updates_and_resends_the_rest() -> None:
    ledger = Ledger()
    ledger.launched(_task())
    starting, running = _status("t1", "TASK_STARTING", 1), _status("t1", "TASK_RUNNING", 2)
    ledger.sent(starting)
    ledger.sent(running)
    assert ledger.unacknowledged_tasks() == [_task()]          # nothing of it acknowledged yet
    assert not ledger.acknowledge("t1", running["uuid"][:-4] + "AAA=")     # unknown uuid
    assert ledger.acknowledge("t1", starting["uuid"])
    assert not ledger.acknowledge("t1", starting["uuid"])      # a repeat
    assert ledger.updates == [running] and ledger.unacknowledged_tasks() == []
    call = subscribe_call(CONFIG, ledger.unacknowledged_tasks(), ledger.updates)
    assert call["subscribe"] == {"unacknowledged_updates": [{"status": running}]}
    validate_call(call)


def test_ledger_is_done_only_when_every_task_ended_and_was_acknowledged() -> None:
    ledger = Ledger()
    assert not ledger.all_done()                                # nothing launched yet: wait for LAUNCH
    ledger.launched(_task())
    ledger.sent(_status("t1", "TASK_RUNNING", 1))
    ledger.acknowledge("t1", _status("t1", "TASK_RUNNING", 1)["uuid"])
    assert ledger.live() == ["t1"] and not ledger.all_done()
    finished = _status("t1", "TASK_FINISHED", 2)
    ledger.sent(finished)
    assert ledger.live() == [] and not ledger.all_done()       # its terminal update is not acknowledged
    ledger.acknowledge("t1", finished["uuid"])
    assert ledger.all_done()


def test_calls_fit_executor_proto() -> None:
    status = task_status(CONFIG, "t1", "TASK_RUNNING", uuid=b"\x01" * 16, now=1.5, message="m",
                         reason="REASON_TASK_INVALID", data=b"{}", agent_id="a")
    validate_call({"executor_id": {"value": "ex"}, "framework_id": {"value": "fw"}, "type": "UPDATE",
                   "update": {"status": status}})
    validate_call(subscribe_call(CONFIG, [], []))
    with pytest.raises(ProtocolError, match="unknown field"):
        validate_call({**subscribe_call(CONFIG, [], []), "stream_id": "x"})


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=8), st.integers(min_value=1, max_value=7))
def test_recordio_decodes_whatever_the_chunking(records: list[bytes], step: int) -> None:
    stream = b"".join(encode(r) for r in records)
    decoder = RecordIODecoder()
    out = [r for i in range(0, len(stream), step) for r in decoder.feed(stream[i:i + step])]
    assert out == records and decoder.pending == 0


@pytest.mark.parametrize("stream", [b"x\n", b"0\n", b"9" * 30, b"100\n"])
def test_recordio_refuses_broken_framing(stream: bytes) -> None:
    with pytest.raises(RecordIOError):
        RecordIODecoder(max_record_bytes=50).feed(stream)


# -- the scheduler's side ----------------------------------------------------------------------

PACER_APP = {"id": "/shop/web", "cmd": "sleep 100", "executor": "pacer", "cpus": 0.5, "mem": 64}


def _instance() -> Instance:
    return Instance("shop_web.instance-1._app.1", "/shop/web", "2024-01-01T00:00:00.000Z", "v", "a1", "host-a1",
                    (31000,), (10000,))


def test_an_app_choosing_pacer_executor_gets_an_executor_info_and_its_command_in_data() -> None:
    app = parse_app_definition({**PACER_APP, "taskKillGracePeriodSeconds": 4})
    assert unsupported(app) is None
    info = task_info(_instance(), app, [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
                     [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}}])
    validate("TaskInfo", info)
    assert "command" not in info
    executor = info["executor"]
    assert executor["type"] == "CUSTOM" and executor["executor_id"] == {"value": "pacer-shop_web.instance-1._app.1"}
    assert executor["command"]["arguments"][-3:] == ["-m", "pacer.cli", "executor"]
    spec = launch_spec(info, Path("/s"))                        # what the executor will make of it
    assert spec.argv == ["/bin/sh", "-c", "sleep 100"] and spec.kill_grace_seconds == 4.0
    assert spec.env["MARATHON_APP_ID"] == "/shop/web" and spec.env["PORT0"] == "31000"


def test_other_apps_keep_mesos_own_executor() -> None:
    app = parse_app_definition({**PACER_APP, "executor": ""})
    info = task_info(_instance(), app, [])
    assert "executor" not in info and info["command"]["value"] == "sleep 100"
    assert executor_needs(app) == {}
    assert "executor '/opt/x'" in (unsupported(parse_app_definition({**PACER_APP, "executor": "/opt/x"})) or "")


def test_the_executor_share_is_claimed_from_the_offers_too() -> None:
    app = parse_app_definition(PACER_APP)
    assert launch_needs(app)["mem"] == 64 + 32 and launch_needs(app)["cpus"] == pytest.approx(0.51)
    custom = parse_app_definition({**PACER_APP, "executorResources": {"cpus": 0.2, "mem": 48, "disk": 0}})
    assert executor_needs(custom) == {"cpus": 0.2, "mem": 48, "disk": 0}
    offer = HeldOffer.of({"id": {"value": "o1"}, "framework_id": {"value": "f"}, "agent_id": {"value": "a1"},
                          "hostname": "h", "resources": [
                              {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 100.0}},
                              {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31000}]}}]})
    batch = Batch("a1", [offer], {"shop_web.instance-1._app.1"}, 1)
    attempt = Attempt(_instance(), app, outcome=None)  # type: ignore[arg-type]
    batch.claim(attempt)
    call = batch.accept_call()
    [info] = call["accept"]["operations"][0]["launch"]["task_infos"]
    assert {r["name"]: r.get("scalar", {}).get("value") for r in info["executor"]["resources"]} == \
        {"cpus": 0.01, "mem": 32.0}
    assert {r["name"]: r.get("scalar", {}).get("value") for r in info["resources"] if r["type"] == "SCALAR"} == \
        {"cpus": 0.5, "mem": 64.0}
    validate("Call", {**call, "framework_id": {"value": "f"}})
