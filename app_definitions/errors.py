"""Errors raised by ``app_definitions``.

Every failure of this package is a :class:`DefinitionError`, so a caller that
only wants "was the definition usable?" catches one class. The tree::

    DefinitionError                 root: anything wrong with a definition
    ├── InvalidJSON                 the bytes are not JSON (REST: 400 "Invalid JSON")
    ├── ValidationFailed            JSON, but not a valid app (REST: 422 "Object is not valid")
    └── EnvironmentFileError        a per-environment definition file is missing or unusable

``InvalidJSON`` and ``ValidationFailed`` carry Marathon's error body (``details``
grouped by JSON path) so the REST API can answer with them unchanged. Both may
name the ``source`` file they came from, which the CLI prints.

Validation code does not raise on the first problem: it collects
:class:`Violation` values and raises one ``ValidationFailed`` holding all of
them, as Marathon does, so a user fixes a definition in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "DefinitionError",
    "EnvironmentFileError",
    "InvalidJSON",
    "ValidationFailed",
    "Violation",
]


class Violation(NamedTuple):
    """One broken rule: the JSON path it concerns (``/healthChecks(0)/portIndex``) and why."""

    path: str
    message: str


def _group(violations: Iterable[tuple[str, str]]) -> list[dict]:
    """Group messages by path (first-seen order inside a path, no repeats), sorted by path."""
    by_path: dict[str, list[str]] = {}
    for path, message in violations:
        messages = by_path.setdefault(path or "/", [])
        if message not in messages:
            messages.append(message)
    return [{"path": path, "errors": by_path[path]} for path in sorted(by_path)]


class DefinitionError(Exception):
    """Root of the package's errors; ``source`` names the file the definition came from, if any."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class EnvironmentFileError(DefinitionError):
    """A per-environment definition (``app.prod.json``) is missing, unreadable or not an object."""


class _DetailedError(DefinitionError):
    """Shared shape of the two errors that carry Marathon's ``{"message", "details"}`` body."""

    body_message = ""

    def __init__(self, details: list[dict], *, source: str | None = None) -> None:
        self.details = details
        summary = "; ".join(f"{d['path']}: {', '.join(d['errors'])}" for d in details)
        super().__init__(f"{self.body_message}: {summary}" if summary else self.body_message, source=source)

    def to_body(self) -> dict:
        """The JSON body Marathon answers with (a fresh dict, safe to mutate)."""
        return {
            "message": self.body_message,
            "details": [{"path": d["path"], "errors": list(d["errors"])} for d in self.details],
        }


class InvalidJSON(_DetailedError):
    """The input could not be decoded as JSON (HTTP 400).

    ``errors`` may be one message or several; they all concern ``path``.
    """

    body_message = "Invalid JSON"

    def __init__(self, errors: str | Iterable[str], *, path: str = "/", source: str | None = None) -> None:
        messages = [errors] if isinstance(errors, str) else list(errors)
        super().__init__(_group((path, m) for m in messages), source=source)


class ValidationFailed(_DetailedError):
    """The JSON is well formed but breaks one or more rules (HTTP 422).

    Built from ``(path, message)`` pairs; ``details`` groups them by path and
    sorts by path, so the body is deterministic.
    """

    body_message = "Object is not valid"

    def __init__(self, violations: Iterable[tuple[str, str]], *, source: str | None = None) -> None:
        self.violations = [Violation(p, m) for p, m in violations]
        super().__init__(_group(self.violations), source=source)

    def with_prefix(self, prefix: str) -> ValidationFailed:
        """The same violations nested under ``prefix`` (``/apps(0)`` for an app inside a group body)."""
        nested = [(prefix + ("" if p == "/" else p), m) for p, m in self.violations]
        return ValidationFailed(nested, source=self.source)

    def messages(self, path: str) -> list[str]:
        """Messages recorded for one path ([] if none); handy for callers and tests."""
        return next((list(d["errors"]) for d in self.details if d["path"] == path), [])
