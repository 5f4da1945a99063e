"""What a task receives besides its command: fetched artifacts, environment, secrets, limits."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from ._base import Model, NonEmptyStr, NonNegFloat

__all__ = [
    "EnvSecretRef",
    "EnvValue",
    "ExecutorResources",
    "FetchUri",
    "ResourceLimit",
    "ResourceLimits",
    "SecretDef",
]


class FetchUri(Model):
    """An artifact fetched into the sandbox before the task starts."""

    uri: Annotated[str, Field(min_length=1, max_length=1024)]
    extract: bool = True
    executable: bool = False
    cache: bool = False
    dest_path: NonEmptyStr | None = None


class EnvSecretRef(Model):
    """An environment value taken from a secret: ``{"secret": "<name in secrets>"}``."""

    secret: NonEmptyStr


class SecretDef(Model):
    """A secret the app may reference, ``{"source": "<store path>"}``."""

    source: NonEmptyStr


def _env_value(value: Any) -> str | EnvSecretRef:
    if isinstance(value, (str, EnvSecretRef)):
        return value
    if isinstance(value, dict) and set(value) == {"secret"} and isinstance(value["secret"], str) and value["secret"]:
        return EnvSecretRef(secret=value["secret"])
    raise PydanticCustomError("env_value", 'must be a string or a secret reference {"secret": "<name>"}')


def _env_json(value: str | EnvSecretRef) -> str | dict[str, str]:
    return value if isinstance(value, str) else {"secret": value.secret}


def _limit_json(value: float | str) -> float | str:
    return value


EnvValue = Annotated[
    str | EnvSecretRef,
    PlainValidator(_env_value),
    PlainSerializer(_env_json),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string"},
                {"type": "object", "properties": {"secret": {"type": "string"}}, "required": ["secret"]},
            ]
        }
    ),
]


def _limit(value: Any) -> float | Literal["unlimited"]:
    if value == "unlimited":
        return "unlimited"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number) and number >= 0:
            return number
    raise PydanticCustomError("resource_limit", 'must be a non-negative number or "unlimited"')


ResourceLimit = Annotated[
    float | Literal["unlimited"],
    PlainValidator(_limit),
    PlainSerializer(_limit_json),
    WithJsonSchema({"oneOf": [{"type": "number", "minimum": 0}, {"const": "unlimited"}]}),
]


class ResourceLimits(Model):
    """Upper bounds above the requested resources (each at least the request)."""

    cpus: ResourceLimit | None = None
    mem: ResourceLimit | None = None


class ExecutorResources(Model):
    """Resources reserved for the executor itself, on top of the task's."""

    cpus: NonNegFloat = 0.1
    mem: NonNegFloat = 32.0
    disk: NonNegFloat = 10.0
