"""How deeply a decoded JSON value nests, measured without recursion.

Python's stack holds about a thousand frames, and every recursive walk of a
decoded body (dropping nulls, copying, merging, validating, rendering) spends
at least one frame per level of nesting. ``json.loads`` itself only gives up
near the interpreter's limit, so a body nested a few hundred levels deep
decodes fine and then exhausts the stack somewhere further in: a 500 instead
of an answer. Bodies are therefore measured once, iteratively, where they come
in, and refused with an error naming where the nesting is, long before any
recursive code could run out of stack.

Two limits: :data:`MAX_BODY_DEPTH` for any request body or definition file
(deep enough for a group body nesting groups down to the longest app id a
task can launch with), and :data:`MAX_DEFINITION_DEPTH` for one app
definition, whose deepest real field needs fewer than ten levels.
"""

from __future__ import annotations

from typing import Any

from ._pydantic_errors import loc_to_path

__all__ = [
    "MAX_BODY_DEPTH",
    "MAX_DEFINITION_DEPTH",
    "SHOWN_SEGMENTS",
    "TOO_DEEP_BODY_MESSAGE",
    "TOO_DEEP_DEFINITION_MESSAGE",
    "too_deep_at",
]

MAX_BODY_DEPTH = 256
MAX_DEFINITION_DEPTH = 32
TOO_DEEP_BODY_MESSAGE = f"JSON nested more than {MAX_BODY_DEPTH} levels deep"
TOO_DEEP_DEFINITION_MESSAGE = (
    f"nested more than {MAX_DEFINITION_DEPTH} levels deep; no field of an app definition needs that many"
)
SHOWN_SEGMENTS = 2
"""How many leading path segments an error names: enough to say which field (``/env/NAME``)."""


def _first_too_deep(value: Any, limit: int, keep: int) -> tuple[int | str, ...] | None:
    """The first ``keep`` segments of the location of the first object or array nested more
    than ``limit`` levels deep, or None when there is none.

    The outermost object or array is level 1; scalars add no level. Depth-first with an
    explicit stack, so any nesting is measured in constant stack space; only the segments
    that will be named are kept, so each step costs the same at any depth.
    """
    stack: list[tuple[Any, int, tuple[int | str, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, loc = stack.pop()
        if depth > limit:
            return loc
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1, loc if len(loc) >= keep else (*loc, key)))
    return None


def too_deep_at(value: Any, limit: int) -> str | None:
    """The path (Marathon's form, ``/env/NAME``, ``/apps(0)``, ``/(0)/env``) under which ``value`` nests
    more than ``limit`` levels deep, or None when it does not.

    Only the first :data:`SHOWN_SEGMENTS` segments are named: they say which field to fix,
    and the full location would be hundreds of segments long.
    """
    if not isinstance(value, (dict, list)):
        return None
    loc = _first_too_deep(value, limit, SHOWN_SEGMENTS)
    if loc is None:
        return None
    path = loc_to_path(loc)
    return path if path.startswith("/") else "/" + path   # an item of a top-level array: /(0)/id
