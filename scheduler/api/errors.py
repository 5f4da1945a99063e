"""Marathon's status codes and bodies for every error a request can meet.

The domain raises `scheduler.errors` and `app_definitions` errors that say what went wrong;
this is the one place that knows how Marathon answers each, so a bad request never becomes a
500 or a traceback.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app_definitions import DefinitionError, InvalidJSON, ValidationFailed

from scheduler.errors import AppLocked, Conflict, Forbidden, InvalidRequest, NotFound, StoreError, StoreFull

INTERNAL_ERROR = {"message": "Internal error; see the scheduler log"}


def _locked_body(exc: AppLocked) -> dict[str, Any]:
    first = exc.deployment_ids[0]
    return {"message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                       f"View details at '/v2/deployments/{first}'.",
            "deployments": [{"id": d} for d in exc.deployment_ids]}


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for an exception; 500 only for what nobody expected."""
    match exc:
        case AppLocked():
            return 409, _locked_body(exc)
        case Conflict():
            return 409, {"message": exc.message}
        case NotFound():
            return 404, {"message": exc.message}
        case InvalidRequest():
            return 400, {"message": exc.message}
        case Forbidden():
            return 403, {"message": exc.message}
        case StoreFull():
            return 507, {"message": exc.message}
        case StoreError():
            return 503, {"message": f"the state store cannot take the change: {exc.message}"}
        case InvalidJSON():
            return 400, exc.to_body()
        case ValidationFailed():
            return 422, exc.to_body()
        case DefinitionError():
            return 422, {"message": str(exc)}
        case web.HTTPNotFound():
            return 404, {"message": "URI not found"}
        case web.HTTPMethodNotAllowed():
            return 405, {"message": f"HTTP 405 Method Not Allowed: {exc.method} is not allowed here; "
                                    f"allowed: {', '.join(sorted(exc.allowed_methods))}"}
        case web.HTTPNotAcceptable():
            return 406, {"message": exc.reason}
        case web.HTTPException():
            return exc.status, {"message": exc.reason}
    return 500, INTERNAL_ERROR


EXPECTED_ERRORS = (Conflict, NotFound, InvalidRequest, Forbidden, StoreError, DefinitionError, web.HTTPException)
