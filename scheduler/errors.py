"""Errors raised by the scheduler package.

Every error the REST API can answer with carries its HTTP status and Marathon's body, so the
API layer translates exceptions in one place and never leaks a traceback::

    SchedulerError                 (500, only for bugs and storage failures)
    +-- ApiError                   (an answer to a client: status + Marathon body)
    |   +-- NotFound               404 {"message": "App '/x' does not exist"}
    |   +-- Conflict               409 (id exists, service port taken, locked app)
    |   +-- BadRequest             400 (scale and wipe together, unknown task ids)
    +-- StoreError                 the durable store could not be read or written
"""

from __future__ import annotations

from typing import Any


class SchedulerError(Exception):
    """Root of the scheduler's own errors."""


class ApiError(SchedulerError):
    """An error that is an answer: it knows its HTTP status and Marathon-shaped body."""

    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class BadRequest(ApiError):
    status = 400


class StoreError(SchedulerError):
    """The SQLite store failed; the change it carried was not acknowledged."""


def app_not_found(app_id: str) -> NotFound:
    return NotFound(f"App '{app_id}' does not exist")
