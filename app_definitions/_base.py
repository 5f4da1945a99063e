"""The base model and the small field types every model of the package shares.

Models are frozen and *strict*: JSON types are not coerced (``"2"`` is not a
number, ``1`` is not ``true``), because Marathon's JSON reader does not coerce
either and a silently coerced definition is a definition nobody wrote. The one
leniency is an integral float for an integer field (``"instances": 2.0``),
which Marathon accepts and JSON producers that only know doubles emit.

Python names are snake_case; the JSON names are Marathon's camelCase aliases.
Unknown keys are ignored, as Marathon ignores them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_serializer

__all__ = [
    "Fraction",
    "Int",
    "Labels",
    "Model",
    "OmitEmptyModel",
    "NonEmptyStr",
    "NonNegFloat",
    "NonNegInt",
    "Port",
    "PortProtocol",
    "PositiveInt",
    "camel",
]

INT32_MAX = 2**31 - 1


def camel(name: str) -> str:
    """``task_kill_grace_period_seconds`` -> ``taskKillGracePeriodSeconds`` (digits kept as is)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _integral_float_to_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**63:
        return int(value)
    return value


class Model(BaseModel):
    """Frozen, strict, camelCase-aliased model; treat list and dict fields as immutable too."""

    model_config = ConfigDict(
        frozen=True,
        strict=True,
        extra="ignore",
        populate_by_name=True,
        alias_generator=camel,
        allow_inf_nan=False,
    )


class OmitEmptyModel(Model):
    """A model whose JSON leaves out the keys in ``_omit_when_empty`` when they are empty.

    For the few places where Marathon's own output omits empty members
    (``labels`` of ports and networks); a separate base so the other models keep
    pydantic's plain, fast serialisation.
    """

    _omit_when_empty: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self._omit_when_empty:
                if key in data and not data[key]:
                    del data[key]
        return data


Int = Annotated[int, BeforeValidator(_integral_float_to_int), Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
NonNegInt = Annotated[Int, Field(ge=0)]
PositiveInt = Annotated[Int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Port = Annotated[Int, Field(ge=0, le=65535)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Labels = dict[str, str]
PortProtocol = Literal["tcp", "udp", "tcp,udp", "udp,tcp"]
