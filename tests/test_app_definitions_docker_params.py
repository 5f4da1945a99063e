"""`container.docker.parameters`: every key the engine's API can express passes; the others are a 422
naming the parameter and saying why, at submission."""

from __future__ import annotations

from typing import Any

import pytest

from app_definitions import ValidationFailed, parse_app_definition
from app_definitions.container import (
    DOCKER_PARAMETER_ALIASES,
    REFUSED_DOCKER_PARAMETERS,
    SUPPORTED_DOCKER_PARAMETERS,
    canonical_docker_parameter,
)
from app_definitions.container_rules import CONTEXT_DEPENDENT_DOCKER_PARAMETERS


def app_with(*keys: str, **fields: Any) -> dict[str, Any]:
    return {"id": "/app", "args": ["run"], **fields,
            "container": {"type": "DOCKER", "docker": {"image": "img",
                                                       "parameters": [{"key": k, "value": "v"} for k in keys]}}}


def problems(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition(data)
    return {d["path"]: d["errors"] for d in caught.value.to_body()["details"]}


@pytest.mark.parametrize("key", sorted(SUPPORTED_DOCKER_PARAMETERS - CONTEXT_DEPENDENT_DOCKER_PARAMETERS))
def test_every_supported_key_is_accepted(key: str) -> None:
    app = parse_app_definition(app_with(key))
    assert app.container is not None and app.container.docker is not None
    assert [(p.key, p.value) for p in app.container.docker.parameters] == [(key, "v")]


@pytest.mark.parametrize("key", sorted(CONTEXT_DEPENDENT_DOCKER_PARAMETERS))
def test_endpoint_and_entrypoint_keys_are_accepted_where_they_apply(key: str) -> None:
    parse_app_definition(app_with(key, networks=[{"mode": "container", "name": "backend"}]))


CANONICAL = [
    ("volume", "volume"), ("--volume", "volume"), ("v", "volume"), ("-v", "volume"),
    ("e", "env"), ("-e", "env"), ("l", "label"), ("u", "user"), ("w", "workdir"), ("h", "hostname"),
    ("m", "memory"), ("c", "cpu-shares"), ("t", "tty"), ("i", "interactive"), ("d", "detach"),
    ("memory-swap", "memory-swap"), ("--cap-add", "cap-add"), ("name", "name"), ("--name", "name"),
    ("volumes-from", "volumes-from"), ("privileged", "privileged"), ("rm", "rm"), ("mount", "mount"),
    ("dns-opt", "dns-option"), ("net-alias", "network-alias"),
    ("publish", None), ("p", None), ("P", None), ("net", None), ("network", None), ("lxc-conf", None),
    ("restart", None), ("Volume", None), ("", None), ("--", None), ("colour", None),
]


@pytest.mark.parametrize(("key", "canonical"), CANONICAL)
def test_keys_are_read_with_or_without_dashes_and_in_short_form(key: str, canonical: str | None) -> None:
    assert canonical_docker_parameter(key) == canonical


@pytest.mark.parametrize("key", sorted(REFUSED_DOCKER_PARAMETERS))
def test_a_key_that_cannot_be_honoured_is_refused_with_the_reason(key: str) -> None:
    path = "/container/docker/parameters(1)/key"
    assert problems(app_with("env", key)) == {
        path: [f"docker parameter '{key}' is not supported: {REFUSED_DOCKER_PARAMETERS[key]}"]}


def test_lxc_conf_and_the_cli_only_keys_say_why() -> None:
    found = problems(app_with("lxc-conf", "-p", "env-file", "--restart"))
    assert "the LXC execution driver was removed from Docker" in found["/container/docker/parameters(0)/key"][0]
    assert "use portMappings instead" in found["/container/docker/parameters(1)/key"][0]
    assert "use env instead" in found["/container/docker/parameters(2)/key"][0]
    assert "Pacer restarts tasks itself" in found["/container/docker/parameters(3)/key"][0]


@pytest.mark.parametrize("key", ["Volume", "colour", "--", "vol"])
def test_a_key_that_is_no_docker_run_option_is_refused_listing_the_supported_ones(key: str) -> None:
    found = problems(app_with(key))
    message = found["/container/docker/parameters(0)/key"][0]
    assert message.startswith(f"docker parameter '{key}' is not supported; it is not a docker run option. ")
    assert all(supported in message for supported in SUPPORTED_DOCKER_PARAMETERS)
    assert all(f"{short} ({long})" in message for short, long in DOCKER_PARAMETER_ALIASES.items())


def test_every_refused_key_is_reported_in_one_answer() -> None:
    assert list(problems(app_with("publish", "env", "expose", "lxc-conf", "colour"))) == [
        "/container/docker/parameters(0)/key", "/container/docker/parameters(3)/key",
        "/container/docker/parameters(4)/key"]


def test_a_missing_key_is_still_reported_as_required() -> None:
    data = app_with()
    data["container"]["docker"]["parameters"] = [{"value": "1"}]
    assert problems(data) == {"/container/docker/parameters(0)/key": ["is required"]}


def test_entrypoint_cannot_be_combined_with_cmd() -> None:
    data = app_with("entrypoint")
    del data["args"]
    data["cmd"] = "serve"
    message = problems(data)["/container/docker/parameters(0)/key"][0]
    assert message.startswith("docker parameter 'entrypoint' cannot be combined with cmd")
    parse_app_definition(app_with("entrypoint"))     # with args: the entrypoint runs the args


@pytest.mark.parametrize("key", ["ip", "ip6", "link-local-ip", "network-alias", "--net-alias"])
@pytest.mark.parametrize("networks", [None, [{"mode": "host"}], [{"mode": "container/bridge"}]])
def test_endpoint_keys_need_a_user_defined_network(key: str, networks: list[dict[str, str]] | None) -> None:
    data = app_with(key, **({"networks": networks} if networks else {}))
    mode = networks[0]["mode"] if networks else "host"
    assert problems(data) == {"/container/docker/parameters(0)/key": [
        f"docker parameter '{key}' needs container networking (a user-defined network); this app uses {mode} "
        "networking"]}


def test_mac_address_needs_a_network_of_its_own() -> None:
    assert list(problems(app_with("mac-address"))) == ["/container/docker/parameters(0)/key"]
    parse_app_definition(app_with("mac-address", networks=[{"mode": "container/bridge"}]))
