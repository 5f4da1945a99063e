"""The Marathon task environment table and the argv builder (pure, no processes)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor import InvalidTaskSpec, marathon_task_env, process_environment, task_command
from executor.env import env_name, jvm_number, label_variables


def build(**overrides: Any) -> dict[str, str]:
    arguments: dict[str, Any] = {
        "app_id": "/prod/web",
        "app_version": "2024-01-02T03:04:05.678Z",
        "task_id": "prod_web.1f2e3d",
        "host": "agent-1.local",
        "ports": [31000, 31001],
        "port_names": ["http", None],
        "cpus": 1,
        "mem": 128,
        "disk": 0,
        "gpus": 0,
        "labels": {},
        "user_env": {},
    }
    arguments.update(overrides)
    return marathon_task_env(**arguments)


def test_ports_give_indexed_default_list_and_named_variables() -> None:
    env = build()
    assert env["PORT0"] == "31000"
    assert env["PORT1"] == "31001"
    assert env["PORT"] == "31000"
    assert env["PORTS"] == "31000,31001"
    assert env["PORT_HTTP"] == "31000"
    assert [key for key in env if key.startswith("PORT_")] == ["PORT_HTTP"]


def test_portless_task_has_no_port_variables() -> None:
    env = build(ports=[], port_names=[])
    assert not [key for key in env if key.startswith("PORT")]


def test_port_names_are_upper_cased_and_sanitised() -> None:
    env = build(ports=[1, 2, 3], port_names=["http-api", "admin.v2", "ok_name"])
    assert env["PORT_HTTP_API"] == "1"
    assert env["PORT_ADMIN_V2"] == "2"
    assert env["PORT_OK_NAME"] == "3"


def test_port_names_may_be_shorter_but_not_longer_than_ports() -> None:
    assert "PORT_WEB" in build(ports=[5, 6], port_names=["web"])
    assert build(ports=[5, 6], port_names=[])["PORTS"] == "5,6"
    with pytest.raises(InvalidTaskSpec):
        build(ports=[5], port_names=["a", "b"])


def test_task_and_app_context_variables() -> None:
    env = build(cpus=0.1, mem=128, disk=0, gpus=0)
    assert env["HOST"] == "agent-1.local"
    assert env["MESOS_TASK_ID"] == "prod_web.1f2e3d"
    assert env["MARATHON_APP_ID"] == "/prod/web"
    assert env["MARATHON_APP_VERSION"] == "2024-01-02T03:04:05.678Z"
    assert env["MARATHON_APP_RESOURCE_CPUS"] == "0.1"
    assert env["MARATHON_APP_RESOURCE_MEM"] == "128.0"
    assert env["MARATHON_APP_RESOURCE_DISK"] == "0.0"
    assert env["MARATHON_APP_RESOURCE_GPUS"] == "0"
    assert "MARATHON_APP_DOCKER_IMAGE" not in env
    assert "MESOS_SANDBOX" not in env


def test_docker_image_only_when_given() -> None:
    assert build(docker_image="nginx:1.25")["MARATHON_APP_DOCKER_IMAGE"] == "nginx:1.25"


def test_labels_are_listed_and_sanitised() -> None:
    env = build(labels={"HAPROXY_GROUP": "external", "my.label-x": "v", "a..b": "c"})
    assert env["MARATHON_APP_LABELS"] == "HAPROXY_GROUP MY_LABEL_X A_B"
    assert env["MARATHON_APP_LABEL_HAPROXY_GROUP"] == "external"
    assert env["MARATHON_APP_LABEL_MY_LABEL_X"] == "v"
    assert env["MARATHON_APP_LABEL_A_B"] == "c"


def test_no_labels_still_sets_an_empty_list() -> None:
    env = build(labels={})
    assert env["MARATHON_APP_LABELS"] == ""
    assert not [key for key in env if key.startswith("MARATHON_APP_LABEL_")]


@pytest.mark.parametrize(
    ("key_length", "value_length", "kept"),
    [(492, 1, True), (493, 1, False), (1, 511, True), (1, 512, False), (1, 600, False)],
)
def test_labels_beyond_marathons_512_limit_are_dropped(
    key_length: int, value_length: int, kept: bool
) -> None:
    env = build(labels={"K" * key_length: "v" * value_length, "small": "x"})
    assert ("MARATHON_APP_LABEL_" + "K" * key_length in env) is kept
    assert env["MARATHON_APP_LABELS"].split() == (["K" * key_length] if kept else []) + ["SMALL"]


def test_marathon_variables_win_over_user_env_and_other_user_keys_pass() -> None:
    env = build(user_env={"PORT0": "1", "HOST": "spoofed", "MARATHON_APP_ID": "/x", "FOO": "bar"})
    assert env["PORT0"] == "31000"
    assert env["HOST"] == "agent-1.local"
    assert env["MARATHON_APP_ID"] == "/prod/web"
    assert env["FOO"] == "bar"


def test_user_key_that_marathon_sets_only_conditionally_passes() -> None:
    env = build(ports=[], port_names=[], user_env={"PORT": "8080"})
    assert env["PORT"] == "8080"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1.0"),
        (0.1, "0.1"),
        (128, "128.0"),
        (0.0, "0.0"),
        (1.5, "1.5"),
        (1e-3, "0.001"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (5e-4, "5.0E-4"),
        (-0.25, "-0.25"),
    ],
)
def test_numbers_are_printed_like_the_jvm(value: float, text: str) -> None:
    assert jvm_number(value) == text


@given(st.text(max_size=40))
def test_env_name_gives_a_valid_suffix_and_is_stable(raw: str) -> None:
    name = env_name(raw)
    assert re.fullmatch(r"[A-Z0-9_]*", name)
    assert env_name(name) == name


@given(st.dictionaries(st.text(min_size=1, max_size=600), st.text(max_size=600), max_size=4))
def test_every_label_variable_fits_the_limit(labels: dict[str, str]) -> None:
    variables = label_variables(labels)
    for name, value in variables.items():
        if name != "MARATHON_APP_LABELS":
            assert len(name) < 512
            assert len(value) < 512


def test_cmd_runs_through_the_shell() -> None:
    assert task_command("echo $PORT0", None) == ["/bin/sh", "-c", "echo $PORT0"]


def test_args_are_exec_d_and_win_over_cmd() -> None:
    assert task_command(None, ["python3", "-m", "http.server"]) == ["python3", "-m", "http.server"]
    assert task_command("ignored", ["a"]) == ["a"]


@pytest.mark.parametrize(("cmd", "args"), [(None, None), ("", None), (None, []), ("", [])])
def test_no_command_is_an_invalid_spec(cmd: str | None, args: list[str] | None) -> None:
    with pytest.raises(InvalidTaskSpec):
        task_command(cmd, args)


def test_process_environment_inherits_only_the_allowlist() -> None:
    inherited = {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "AWS_SECRET": "s"}
    env = process_environment({"PORT0": "1"}, inherited)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "PORT0": "1"}


def test_process_environment_defaults_path_and_lets_the_task_override_it() -> None:
    assert process_environment({}, {})["PATH"]
    assert process_environment({"PATH": "/opt/bin"}, {"PATH": "/usr/bin"})["PATH"] == "/opt/bin"
