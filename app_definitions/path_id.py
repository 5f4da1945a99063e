"""Path ids (``/group/app``): parsing, canonical form and Marathon's id rules.

Apps live in a tree of groups addressed like file paths. A relative id is
resolved against its parent group and ``.``/``..`` are folded, so every stored
id is absolute and canonical ("foo" under "/" becomes "/foo").

One deliberate departure from Marathon: segments may contain upper-case
letters. Marathon allows only ``[a-z0-9-.]``, but real definitions that
Pacer must accept unchanged (``"id": "/appName"``) use mixed case, so case is
allowed and kept as written.
"""

from __future__ import annotations

import re

from .errors import ValidationFailed, Violation

__all__ = [
    "RESERVED_LAST_SEGMENTS",
    "SEGMENT_PATTERN",
    "canonical_path_id",
    "parent_of",
    "path_id_violations",
]

_LABEL = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])"
SEGMENT_PATTERN = rf"^({_LABEL}\.)*{_LABEL}|(\.|\.\.)$"
_SEGMENT = re.compile(SEGMENT_PATTERN)
RESERVED_LAST_SEGMENTS = ("restart", "tasks", "versions", ".", "..")


def _split(raw: str) -> list[str]:
    return [segment for segment in raw.split("/") if segment]


def _fold(segments: list[str]) -> list[str]:
    """Resolve ``.`` and ``..`` (``..`` above the root stays at the root, as in Marathon)."""
    result: list[str] = []
    for segment in segments:
        if segment == "..":
            if result:
                result.pop()
        elif segment != ".":
            result.append(segment)
    return result


def path_id_violations(
    raw: object, parent: str = "/", *, path: str = "/id", within_parent: bool = True
) -> tuple[str | None, list[Violation]]:
    """Check and canonicalise ``raw``; returns ``(canonical_id or None, violations at path)``.

    The id must be non-empty, use valid segments, not end in a reserved word
    (``restart``, ``tasks``, ``versions``, ``.``, ``..``) and not be the root.
    With ``within_parent`` (ids of apps) it must also lie below ``parent``;
    references to other apps (``dependencies``) are only resolved against it.
    """
    if not isinstance(raw, str):
        return None, [Violation(path, "must be a string")]
    segments = _split(raw)
    if not segments:
        message = "Path must contain at least one path element" if not raw else "must not be root"
        return None, [Violation(path, message)]
    problems: list[str] = []
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        problems.append(f"must fully match regular expression '{SEGMENT_PATTERN}'")
    if segments[-1] in RESERVED_LAST_SEGMENTS:
        problems.append(
            "must not end with any of the following reserved keywords: " + ", ".join(RESERVED_LAST_SEGMENTS)
        )
    base = _fold(_split(parent))
    resolved = _fold(segments if raw.startswith("/") else base + segments)
    if not problems:
        if not resolved:
            problems.append("must not be root")
        elif within_parent and (len(resolved) <= len(base) or resolved[: len(base)] != base):
            problems.append(f"Identifier is not child of '{'/' + '/'.join(base)}'")
    if problems:
        return None, [Violation(path, message) for message in problems]
    return "/" + "/".join(resolved), []


def canonical_path_id(raw: str, parent: str = "/") -> str:
    """Absolute canonical form of ``raw`` resolved against ``parent``.

    Raises :class:`ValidationFailed` (path ``/id``) when the id breaks a rule.
    """
    canonical, violations = path_id_violations(raw, parent)
    if canonical is None:
        raise ValidationFailed(violations)
    return canonical


def parent_of(path_id: str) -> str:
    """The group holding ``path_id`` (``/a/b`` -> ``/a``, ``/a`` -> ``/``)."""
    segments = _split(path_id)
    return "/" + "/".join(segments[:-1])
