"""Path ids (``/group/app``): parsing, canonical form and Marathon's id rules.

Apps live in a tree of groups addressed like file paths. A relative id is
resolved against its parent group and ``.``/``..`` are folded, so every stored
id is absolute and canonical ("foo" under "/" becomes "/foo").

One deliberate departure from Marathon: segments may contain upper-case
letters. Marathon allows only ``[a-z0-9-.]``, but real definitions that
Pacer must accept unchanged (``"id": "/appName"``) use mixed case, so case is
allowed and kept as written.

One addition: an app id is at most :data:`MAX_APP_ID_LENGTH` characters.
Each task runs in a sandbox directory named after its task id,
``<id without the leading / and with / as _>.instance-<uuid>._app.<n>``, and
a file name holds at most 255 bytes; an app with a longer id would be stored
and then fail every launch with "File name too long".
"""

from __future__ import annotations

import re

from .errors import ValidationFailed, Violation

__all__ = [
    "APP_ID_LENGTH_MESSAGE",
    "MAX_APP_ID_LENGTH",
    "RESERVED_LAST_SEGMENTS",
    "SEGMENT_PATTERN",
    "app_id_violations",
    "canonical_path_id",
    "parent_of",
    "path_id_violations",
]

_LABEL = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])"
SEGMENT_PATTERN = rf"^({_LABEL}\.)*{_LABEL}|(\.|\.\.)$"
_SEGMENT = re.compile(SEGMENT_PATTERN)
RESERVED_LAST_SEGMENTS = ("restart", "tasks", "versions", ".", "..")

_TASK_ID_SUFFIX = len(".instance-") + 36 + len("._app.")   # 36: a UUID's text form
_INCARNATION_DIGITS = 4
MAX_APP_ID_LENGTH = 255 - _TASK_ID_SUFFIX - _INCARNATION_DIGITS + 1   # +1: the leading / is not in the name
"""200: the sandbox name of any task of the app, up to its 9999th incarnation, fits in 255 bytes."""
APP_ID_LENGTH_MESSAGE = (
    f"must be at most {MAX_APP_ID_LENGTH} characters long, so that the name of each task's sandbox "
    "directory ('<id with / as _>.instance-<uuid>._app.1') fits in the 255 bytes a file name may have"
)


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


def app_id_violations(raw: object, parent: str = "/", *, path: str = "/id") -> tuple[str | None, list[Violation]]:
    """:func:`path_id_violations` for the id of an app, which must also fit :data:`MAX_APP_ID_LENGTH`.

    The length is that of the canonical id: a relative id grows by its group's path.
    """
    canonical, violations = path_id_violations(raw, parent, path=path)
    if canonical is not None and len(canonical) > MAX_APP_ID_LENGTH:
        return None, [Violation(path, f"{APP_ID_LENGTH_MESSAGE} (got {len(canonical)})")]
    return canonical, violations


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
