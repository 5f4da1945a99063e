"""Decoding request bodies and definition files into JSON values.

Kept apart from validation because the two fail differently: undecodable input
is Marathon's 400 "Invalid JSON", a decodable but wrong definition is a 422.
Python's ``json`` is laxer than JSON itself (it accepts ``NaN`` and
``Infinity``); those are refused here so no non-finite number ever reaches a
model or gets written back out as invalid JSON.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidJSON

__all__ = ["parse_json_body"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def parse_json_body(raw: bytes | bytearray | str, *, source: str | None = None) -> Any:
    """Decode ``raw`` (UTF-8 bytes or text) as one JSON value.

    Raises :class:`InvalidJSON` for non-UTF-8 bytes, empty input, syntax errors,
    ``NaN``/``Infinity`` and nesting too deep to decode. ``source`` (a file
    name) is carried into the error for the CLI.
    """
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"Invalid UTF-8 at byte {exc.start}", source=source) from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InvalidJSON("No content to map due to end-of-input", source=source)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}", source=source) from None
    except ValueError as exc:
        raise InvalidJSON(str(exc), source=source) from None
    except RecursionError:
        raise InvalidJSON("JSON nested too deeply", source=source) from None
