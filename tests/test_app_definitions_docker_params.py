"""`container.docker.parameters`: supported keys pass, any other key is a 422 naming it at submission."""

from __future__ import annotations

from typing import Any

import pytest

from app_definitions import ValidationFailed, parse_app_definition
from app_definitions.container import (
    DOCKER_PARAMETER_ALIASES,
    SUPPORTED_DOCKER_PARAMETERS,
    canonical_docker_parameter,
)


def app_with(*keys: str) -> dict[str, Any]:
    return {"id": "/app", "args": ["run"],
            "container": {"type": "DOCKER", "docker": {"image": "img",
                                                       "parameters": [{"key": k, "value": "v"} for k in keys]}}}


@pytest.mark.parametrize("key", sorted(SUPPORTED_DOCKER_PARAMETERS))
def test_every_supported_key_is_accepted(key: str) -> None:
    app = parse_app_definition(app_with(key))
    assert app.container is not None and app.container.docker is not None
    assert [(p.key, p.value) for p in app.container.docker.parameters] == [(key, "v")]


CANONICAL = [
    ("volume", "volume"), ("--volume", "volume"), ("v", "volume"), ("-v", "volume"),
    ("e", "env"), ("-e", "env"), ("l", "label"), ("u", "user"), ("w", "workdir"), ("h", "hostname"),
    ("memory-swap", "memory-swap"), ("--cap-add", "cap-add"),
    ("publish", None), ("p", None), ("net", None), ("network", None), ("name", None), ("rm", None),
    ("Volume", None), ("", None), ("--", None), ("privileged", None),
]


@pytest.mark.parametrize(("key", "canonical"), CANONICAL)
def test_keys_are_read_with_or_without_dashes_and_in_short_form(key: str, canonical: str | None) -> None:
    assert canonical_docker_parameter(key) == canonical


REFUSED = [
    ("publish", 0, ("publish", "v")),
    ("net", 1, ("volume", "net")),
    ("privileged", 0, ("privileged", "env", "oops")),
    ("Volume", 0, ("Volume",)),
]


@pytest.mark.parametrize(("key", "index", "keys"), REFUSED, ids=[r[0] for r in REFUSED])
def test_an_unsupported_key_is_refused_at_its_path_naming_it_and_listing_the_supported_keys(
        key: str, index: int, keys: tuple[str, ...]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition(app_with(*keys))
    body = caught.value.to_body()
    path = f"/container/docker/parameters({index})/key"
    messages = caught.value.messages(path)
    assert len(messages) == 1, body
    assert messages[0].startswith(f"docker parameter '{key}' is not supported; supported keys: ")
    assert all(supported in messages[0] for supported in SUPPORTED_DOCKER_PARAMETERS)
    assert all(f"{short} ({long})" in messages[0] for short, long in DOCKER_PARAMETER_ALIASES.items())


def test_every_unsupported_key_is_reported_in_one_answer() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition(app_with("publish", "env", "expose"))
    paths = [d["path"] for d in caught.value.to_body()["details"]]
    assert paths == ["/container/docker/parameters(0)/key", "/container/docker/parameters(2)/key"]


def test_a_missing_key_is_still_reported_as_required() -> None:
    data = app_with()
    data["container"]["docker"]["parameters"] = [{"value": "1"}]
    with pytest.raises(ValidationFailed) as caught:
        parse_app_definition(data)
    assert caught.value.messages("/container/docker/parameters(0)/key") == ["is required"]
