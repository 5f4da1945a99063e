"""Placement constraints: ``["hostname", "UNIQUE"]`` in JSON, :class:`Constraint` in Python.

The JSON form stays Marathon's 2- or 3-element array; placement code gets a
typed value whose operator is already upper-cased and whose value is already
checked (a valid regex for LIKE/UNLIKE, an integer for MAX_PER...), so it never
has to re-validate or guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = ["CONSTRAINT_OPERATORS", "Constraint", "ConstraintField", "parse_constraint"]

CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "MAX_PER", "UNLIKE", "IS")
OPERATOR_MESSAGE = (
    "Constraint operator must be one of the following: UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"
)
_IS_TEXT = re.compile(r"[a-zA-Z0-9_/.\-]*")


@dataclass(frozen=True)
class Constraint:
    """One constraint. ``field`` is ``hostname``/``@hostname``/``@region``/``@zone`` or an agent attribute."""

    field: str
    operator: str
    value: str | None = None

    def to_json(self) -> list[str]:
        """Marathon's array form."""
        return [self.field, self.operator] if self.value is None else [self.field, self.operator, self.value]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_scalar(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _value_problem(operator: str, value: str | None) -> str | None:
    """Why ``value`` does not suit ``operator`` (None when it does)."""
    if operator == "UNIQUE":
        return "UNIQUE does not accept a value" if value is not None else None
    if operator == "GROUP_BY":
        ok = value is None or _is_int(value)
        return None if ok else "GROUP BY must define an integer value or else no value at all"
    if operator == "MAX_PER":
        return None if value is not None and _is_int(value) else "MAX_PER requires an integer value"
    if operator in ("LIKE", "UNLIKE"):
        if value is None:
            return "A regular expression value must be provided"
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError):
            return f"'{value}' is not a valid regular expression"
        return None
    if operator == "IS":
        if value is None:
            return "IS requires a value"
        ok = _IS_TEXT.fullmatch(value) is not None or _is_scalar(value)
        return None if ok else "IS value must be text of [a-zA-Z0-9_/.-] or a number"
    return None  # CLUSTER: value optional


def parse_constraint(raw: Any) -> Constraint:
    """Build a :class:`Constraint` from its JSON array, raising a pydantic custom error with Marathon's text."""
    if isinstance(raw, Constraint):
        return raw
    if not isinstance(raw, list):
        raise PydanticCustomError("constraint", "Each constraint must be an array of strings")
    if not 2 <= len(raw) <= 3:
        raise PydanticCustomError("constraint", "Each constraint must have either 2 or 3 fields")
    items = list(raw)
    if len(items) == 3 and isinstance(items[2], (int, float)) and not isinstance(items[2], bool):
        items[2] = str(items[2])  # ["rack", "MAX_PER", 2] is a common spelling of "2"
    if not all(isinstance(item, str) for item in items):
        raise PydanticCustomError("constraint", "Each constraint must be an array of strings")
    field_name, operator = items[0], items[1].upper()
    value = items[2] if len(items) == 3 else None
    if not field_name:
        raise PydanticCustomError("constraint", "Missing field and operator")
    if operator not in CONSTRAINT_OPERATORS:
        raise PydanticCustomError("constraint", OPERATOR_MESSAGE)
    problem = _value_problem(operator, value)
    if problem is not None:
        raise PydanticCustomError("constraint", problem)
    return Constraint(field_name, operator, value)


ConstraintField = Annotated[
    Constraint,
    PlainValidator(parse_constraint),
    PlainSerializer(Constraint.to_json, return_type=list[str]),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 2,
            "maxItems": 3,
            "description": "[field, OPERATOR] or [field, OPERATOR, value]; OPERATOR one of "
            + ", ".join(CONSTRAINT_OPERATORS),
        }
    ),
]
