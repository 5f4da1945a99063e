"""InfluxDB line protocol: encoding (and a strict parser, for tests and fakes). Pure.

    measurement[,tag=value...] field=value[,field=value...] [timestamp-ns]

Escaping follows the maintained `influxdb-client` encoder, so lines mean the same to InfluxDB
1.x, 2.x and 3.x:

* measurement: backslash, comma, space, and the control characters newline/CR/tab
  (written ``\\n``, ``\\r``, ``\\t``);
* tag keys, tag values, field keys: the same plus ``=``;
* string field values: double-quoted, with backslash and double quote escaped; newlines
  and carriage returns are replaced by spaces (a 1.x server would end the line there).

Integers get the ``i`` suffix; floats are written with ``repr`` (shortest round-trip form)
and always carry a ``.`` or an exponent; NaN and infinities cannot be stored and are dropped
from the point (a point left without fields is not written). Tags with an empty value are
omitted, as InfluxDB rejects them. Tags are sorted by key, as InfluxDB recommends.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping

from .errors import LineProtocolError
from .schema import FieldValue, Point

_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_CONTROL})
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "=": "\\=", **_CONTROL})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": " ", "\r": " "})
_UNCONTROL = {"n": "\n", "r": "\r", "t": "\t"}


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY)


def format_field(value: FieldValue) -> str | None:
    """A field value in line protocol, or None when it cannot be stored (NaN, infinity)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}")


def _tag_text(tags: Mapping[str, str]) -> str:
    out = ""
    for key in sorted(tags):
        value = tags[key]
        if not key:
            raise LineProtocolError("tag keys must not be empty")
        if value:
            out += f",{escape_key(key)}={escape_key(value)}"
    return out


def encode_point(point: Point, _tag_cache: dict[int, tuple[Mapping[str, str], str]] | None = None) -> str | None:
    """One line (without newline), or None when the point has no storable field."""
    if not point.measurement:
        raise LineProtocolError("a point needs a measurement name")
    fields = []
    for key in sorted(point.fields):
        if not key:
            raise LineProtocolError("field keys must not be empty")
        text = format_field(point.fields[key])
        if text is not None:
            fields.append(f"{_escape_key_cached(key)}={text}")
    if not fields:
        return None
    tags = point.tags
    if _tag_cache is None:
        tag_text = _tag_text(tags)
    else:   # points of one sample share their tags mapping: escape it once
        hit = _tag_cache.get(id(tags))
        if hit is None or hit[0] is not tags:
            hit = (tags, _tag_text(tags))
            _tag_cache[id(tags)] = hit
        tag_text = hit[1]
    return f"{_escape_measurement_cached(point.measurement)}{tag_text} {','.join(fields)} {int(point.time_ns)}"


def encode_points(points: Iterable[Point]) -> list[str]:
    out = []
    cache: dict[int, tuple[Mapping[str, str], str]] = {}
    for point in points:
        line = encode_point(point, cache)
        if line is not None:
            out.append(line)
    return out


@functools.lru_cache(maxsize=1024)
def _escape_measurement_cached(name: str) -> str:
    return escape_measurement(name)


@functools.lru_cache(maxsize=1024)
def _escape_key_cached(key: str) -> str:
    return escape_key(key)


# -- parsing (the inverse of the encoder above) --------------------------------------------
def _scan(text: str, i: int, stops: str) -> tuple[str, int]:
    """Read an escaped token from text[i:] up to an unescaped char of `stops` (or the end)."""
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_UNCONTROL.get(nxt, nxt) if nxt in "nrt\\,= \"" else c + nxt)
            i += 2
            continue
        if c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _parse_value(text: str) -> FieldValue:
    if text in ("true", "t", "T", "True", "TRUE"):
        return True
    if text in ("false", "f", "F", "False", "FALSE"):
        return False
    if text.endswith("i"):
        try:
            return int(text[:-1])
        except ValueError:
            raise LineProtocolError(f"bad integer field value {text!r}") from None
    try:
        return float(text)
    except ValueError:
        raise LineProtocolError(f"bad field value {text!r}") from None


def parse_line(line: str) -> Point:
    """Parse one line of line protocol (timestamp required, nanoseconds)."""
    measurement, i = _scan(line, 0, ", ")
    if not measurement:
        raise LineProtocolError(f"no measurement in {line!r}")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        key, i = _scan(line, i + 1, "=")
        if i >= len(line):
            raise LineProtocolError(f"tag without value in {line!r}")
        value, i = _scan(line, i + 1, ", ")
        tags[key] = value
    if i >= len(line) or line[i] != " ":
        raise LineProtocolError(f"no fields in {line!r}")
    i += 1
    fields: dict[str, FieldValue] = {}
    while True:
        key, i = _scan(line, i, "=")
        if i >= len(line) or not key:
            raise LineProtocolError(f"bad field in {line!r}")
        i += 1
        if i < len(line) and line[i] == '"':
            i += 1
            chars = []
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in '"\\':
                    i += 1
                chars.append(line[i])
                i += 1
            if i >= len(line):
                raise LineProtocolError(f"unterminated string in {line!r}")
            fields[key] = "".join(chars)
            i += 1
        else:
            raw, i = _scan(line, i, ", ")
            fields[key] = _parse_value(raw)
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    if i >= len(line) or line[i] != " ":
        raise LineProtocolError(f"no timestamp in {line!r}")
    try:
        time_ns = int(line[i + 1:])
    except ValueError:
        raise LineProtocolError(f"bad timestamp in {line!r}") from None
    return Point(measurement, tags, fields, time_ns)
