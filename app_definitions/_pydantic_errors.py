"""Turning pydantic's errors into Marathon-style violations.

pydantic reports ``loc=('healthChecks', 0, 'portIndex')`` and messages like
"Input should be greater than or equal to 0"; Marathon clients expect
``/healthChecks(0)/portIndex`` and short messages. This is the only place
that knows pydantic's error shape, so no pydantic error ever leaves the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .errors import Violation

__all__ = ["loc_to_path", "validate_with", "violations_from"]


def loc_to_path(loc: Iterable[int | str], prefix: str = "") -> str:
    """``('healthChecks', 0, 'portIndex')`` -> ``/healthChecks(0)/portIndex`` (after ``prefix``)."""
    path = prefix
    for item in loc:
        path += f"({item})" if isinstance(item, int) else f"/{item}"
    return path or "/"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


_MESSAGES: dict[str, Callable[[dict[str, Any], Any], str]] = {
    "missing": lambda ctx, value: "is required",
    "model_type": lambda ctx, value: "must be a JSON object",
    "model_attributes_type": lambda ctx, value: "must be a JSON object",
    "dict_type": lambda ctx, value: "must be a JSON object",
    "list_type": lambda ctx, value: "must be a JSON array",
    "string_type": lambda ctx, value: "must be a string",
    "int_type": lambda ctx, value: "must be an integer",
    "float_type": lambda ctx, value: "must be a number",
    "bool_type": lambda ctx, value: "must be a boolean",
    "finite_number": lambda ctx, value: "must be a finite number",
    "greater_than_equal": lambda ctx, value: f"got {_show(value)}, expected {ctx['ge']} or more",
    "less_than_equal": lambda ctx, value: f"got {_show(value)}, expected {ctx['le']} or less",
    "greater_than": lambda ctx, value: f"got {_show(value)}, expected more than {ctx['gt']}",
    "less_than": lambda ctx, value: f"got {_show(value)}, expected less than {ctx['lt']}",
    "string_too_short": lambda ctx, value: (
        "must not be empty" if ctx["min_length"] == 1 else f"must have at least {ctx['min_length']} characters"
    ),
    "string_too_long": lambda ctx, value: f"must have at most {ctx['max_length']} characters",
    "literal_error": lambda ctx, value: f"got {_show(value)}, expected one of {ctx['expected']}",
    "value_error": lambda ctx, value: str(ctx.get("error", "invalid value")),
}


def violations_from(exc: ValidationError, prefix: str = "") -> list[Violation]:
    """One :class:`Violation` per pydantic error, paths prefixed with ``prefix``."""
    result = []
    for error in exc.errors(include_url=False):
        render = _MESSAGES.get(error["type"])
        message = render(error.get("ctx") or {}, error.get("input")) if render else error["msg"]
        result.append(Violation(loc_to_path(error["loc"], prefix), message))
    return result


def validate_with(adapter: TypeAdapter[Any], value: Any, path: str) -> tuple[Any, list[Violation]]:
    """Validate ``value`` strictly; returns ``(validated or None, violations under path)``."""
    try:
        return adapter.validate_python(value, strict=True), []
    except ValidationError as exc:
        return None, violations_from(exc, "" if path == "/" else path)
