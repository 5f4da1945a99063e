"""Decoding request bodies and definition files into JSON values.

Kept apart from validation because the two fail differently: undecodable input
is Marathon's 400 "Invalid JSON", a decodable but wrong definition is a 422.
Python's ``json`` is laxer than JSON itself (it accepts ``NaN`` and
``Infinity``); those are refused here so no non-finite number ever reaches a
model or gets written back out as invalid JSON. It also decodes values nested
hundreds of levels deep that recursive code further in cannot walk; those are
refused here too (see ``depth.py``).
"""

from __future__ import annotations

import json
from typing import Any

from .depth import MAX_BODY_DEPTH, TOO_DEEP_BODY_MESSAGE, too_deep_at
from .errors import InvalidJSON

__all__ = ["parse_json_body"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def parse_json_body(raw: bytes | bytearray | str, *, source: str | None = None) -> Any:
    """Decode ``raw`` (UTF-8 bytes or text) as one JSON value.

    Raises :class:`InvalidJSON` for non-UTF-8 bytes, empty input, syntax errors,
    ``NaN``/``Infinity``, and nesting deeper than :data:`MAX_BODY_DEPTH` levels
    (naming the field it is under). ``source`` (a file name) is carried into
    the error for the CLI.
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
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}", source=source) from None
    except ValueError as exc:
        raise InvalidJSON(str(exc), source=source) from None
    except RecursionError:
        raise InvalidJSON(TOO_DEEP_BODY_MESSAGE, source=source) from None
    where = too_deep_at(value, MAX_BODY_DEPTH)
    if where is not None:
        raise InvalidJSON(TOO_DEEP_BODY_MESSAGE, path=where, source=source)
    return value
