"""What each API call needs: the route table of authorization, as a pure function.

`requirement(call, lookups)` maps a request (method, path, parsed body) to a
`policy.Requirement`: open (``/ping``, ``/metrics``), any authenticated user (reads whose
answers are filtered to what the caller may view, see `visibility`), or a role on the app ids
the call touches. The app ids come from the path, the body (``POST /v2/apps``, list bodies of
``PUT``/``PATCH /v2/apps``, ``/v2/tasks/delete``'s task ids, an autoscaler policy's ``appId``),
or the scheduler's state through `Lookups` (a task's app, a deployment's affected apps).
Writes that would break a task's isolation from its host (`isolation`) need `admin` instead
of `deployer`.

When the body cannot be parsed, the calls whose handlers parse it with the same
``parse_json_body`` (apps, groups, tasks) go on and are refused with Marathon's 400 by the
handler, changing nothing; any other call then needs `admin` on ``/``: a handler with a more
lenient parser must not see a body whose app ids were never checked.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from app_definitions import ValidationFailed, canonical_path_id

from scheduler.auth.isolation import group_apps, isolation_breaches
from scheduler.auth.policy import AUTHENTICATED, OPEN, Requirement, Role

class Body(enum.Enum):
    """Bodies that are not JSON values: not read (``NO_BODY``), or not JSON (``UNPARSABLE``)."""

    NO_BODY = "no body"
    UNPARSABLE = "unparsable"


UNPARSABLE = Body.UNPARSABLE
NO_BODY = Body.NO_BODY

READS = frozenset({"GET", "HEAD", "OPTIONS"})
_ROOT_ADMIN = Requirement("role", "admin", ("/",))


@dataclass(frozen=True)
class Lookups:
    """What `requirement` may ask of the scheduler's state (plain callables: pure for the caller)."""

    known_apps: Container[str] = frozenset()
    task_app: Callable[[str], str | None] = lambda task_id: None
    deployment_apps: Callable[[str], Sequence[str] | None] = lambda deployment_id: None
    allowed_host_paths: tuple[str, ...] = field(default=())
    stored_version: Callable[[str, str], Any] = lambda app_id, version: None   # app JSON of a stored version


def needs_body(method: str, path: str) -> bool:
    """Whether the authorization of this call reads its body (writes naming app ids in it)."""
    if method not in ("POST", "PUT", "PATCH"):
        return False
    return (path in ("/v2/apps", "/v2/tasks/delete", "/v2/autoscaler/policies")
            or path.startswith(("/v2/apps/", "/v2/groups")))


def _app_id(raw: str) -> str | None:
    try:
        return canonical_path_id(raw or "/")
    except ValidationFailed:
        return None


def _role(role: Role, ids: Sequence[str], why: str = "", *, subtree: bool = False) -> Requirement:
    return Requirement("role", role, tuple(dict.fromkeys(ids)), subtree=subtree, why=why)


def _write_role(apps: Sequence[Any], allowed: tuple[str, ...]) -> tuple[Role, str]:
    """``deployer``, or ``admin`` with the first isolation breach when a definition has one."""
    for app in apps:
        breaches = isolation_breaches(app, allowed)
        if breaches:
            return "admin", breaches[0]
    return "deployer", ""


def _as_written(app_id: str | None, body: Any, lookups: Lookups) -> Any:
    """The definition a write puts in place: for a rollback (`{"version": ts}`), the stored
    version it restores, so a deployer cannot roll an app back to a privileged version that
    only an admin could deploy."""
    if (app_id is not None and isinstance(body, dict) and isinstance(body.get("version"), str)
            and set(body) <= {"id", "version"}):
        stored = lookups.stored_version(app_id, body["version"])
        return stored if stored is not None else body
    return body


def _split_app_tail(tail: str, known: Container[str]) -> tuple[str, str]:
    """(app id as written, sub-resource) of ``/v2/apps/<tail>``, split as `scheduler.api.apps` does."""
    parts = [p for p in tail.split("/") if p]
    for sub in ("tasks", "versions"):
        if len(parts) >= 2 and parts[-1] == sub:
            return "/" + "/".join(parts[:-1]), sub
        if len(parts) >= 3 and parts[-2] == sub and "/" + "/".join(parts) not in known:
            return "/" + "/".join(parts[:-2]), sub
    if len(parts) >= 2 and parts[-1] == "restart":
        return "/" + "/".join(parts[:-1]), "restart"
    if parts and parts[-1] == "*":
        return "/" + "/".join(parts[:-1]), "*"
    return "/" + "/".join(parts), ""


def _apps(method: str, body: Any, lookups: Lookups) -> Requirement:
    """``/v2/apps``: listing (filtered), create (the body's id), update many (each item's id)."""
    if method in READS:
        return AUTHENTICATED
    if body is UNPARSABLE:
        return AUTHENTICATED               # the handler answers 400
    items = body if method in ("PUT", "PATCH") and isinstance(body, list) else [body]
    ids = [_app_id(i["id"]) if isinstance(i, dict) and isinstance(i.get("id"), str) else None for i in items]
    if not items or any(i is None for i in ids):
        if method == "POST":
            return _role("deployer", ["/"], "the body names no valid app id")
        return AUTHENTICATED              # PUT/PATCH refuse bodies without valid ids (422)
    written = [_as_written(i, item, lookups) for i, item in zip(ids, items)]
    role, why = _write_role(written, lookups.allowed_host_paths)
    return _role(role, [i for i in ids if i is not None], why)


def _app_resource(method: str, tail: str, body: Any, lookups: Lookups) -> Requirement:
    raw_id, sub = _split_app_tail(tail, lookups.known_apps)
    if sub == "*":
        return AUTHENTICATED               # listing beneath a group: filtered
    app_id = _app_id(raw_id)
    if app_id is None:
        return AUTHENTICATED               # an invalid id: the handler answers 404/422
    if method in READS:
        return _role("viewer", [app_id])
    if sub == "" and method in ("PUT", "PATCH"):
        if body is UNPARSABLE:
            return AUTHENTICATED
        role, why = _write_role([_as_written(app_id, body, lookups)], lookups.allowed_host_paths)
        return _role(role, [app_id], why)
    return _role("deployer", [app_id])


def _group_id(tail: str) -> str | None:
    raw = tail or "/"
    return canonical_path_id(raw) if raw.strip("/") else "/"


def _groups(method: str, tail: str, body: Any, lookups: Lookups) -> Requirement:
    """Group writes may create, change or remove any app beneath the group: the role must cover
    all of it. Reads are filtered trees."""
    if method in READS:
        return AUTHENTICATED
    try:
        group_id = _group_id(tail)
    except ValidationFailed:
        return AUTHENTICATED               # the handler answers 404
    if body is UNPARSABLE:
        return AUTHENTICATED
    if method == "POST" and group_id == "/" and isinstance(body, dict) and "id" in body:
        try:
            group_id = canonical_path_id(str(body["id"]))
        except ValidationFailed:
            return AUTHENTICATED           # the handler answers 422
    apps = list(group_apps(body)) if body is not NO_BODY else []
    role, why = _write_role(apps, lookups.allowed_host_paths)
    return _role(role, [group_id], why, subtree=True)


def _tasks_delete(body: Any, lookups: Lookups) -> Requirement:
    if body is UNPARSABLE or not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        return AUTHENTICATED               # the handler answers 400/422
    app_ids = [a for t in body["ids"] if isinstance(t, str) and (a := lookups.task_app(t)) is not None]
    return _role("deployer", app_ids)      # unknown task ids are refused by the handler


def _autoscaler(method: str, rest: str, body: Any) -> Requirement:
    """``/v2/autoscaler``: policies change how many instances run: `admin` on the app."""
    if rest == "/policies" and method == "POST":
        if body is UNPARSABLE or not isinstance(body, dict) or not isinstance(body.get("appId"), str):
            return _ROOT_ADMIN
        return _role("admin", ["/" + body["appId"].strip().strip("/")])
    if rest.startswith("/policies/"):
        app_id = "/" + rest.removeprefix("/policies/").strip().strip("/")
        return _role("viewer" if method in READS else "admin", [app_id])
    return AUTHENTICATED if method in READS else _ROOT_ADMIN


def requirement(method: str, path: str, body: Any = NO_BODY, lookups: Lookups | None = None) -> Requirement:
    """What the call ``method path`` (with its parsed ``body`` if `needs_body`) needs."""
    lookups = lookups or Lookups()
    method = "GET" if method == "HEAD" else method
    if path in ("/ping", "/metrics"):
        return OPEN
    if path == "/v2/leader" and method == "DELETE":
        return _ROOT_ADMIN
    if path == "/v2/audit":
        return _ROOT_ADMIN
    if path == "/v2/apps":
        return _apps(method, body, lookups)
    if path.startswith("/v2/apps/"):
        return _app_resource(method, path.removeprefix("/v2/apps/"), body, lookups)
    if path == "/v2/groups" or path.startswith("/v2/groups/"):
        return _groups(method, path.removeprefix("/v2/groups").strip("/"), body, lookups)
    if path == "/v2/tasks/delete" and method == "POST":
        return _tasks_delete(body, lookups)
    if path.startswith("/v2/queue/") and path.endswith("/delay") and method == "DELETE":
        app_id = _app_id(path.removeprefix("/v2/queue/").removesuffix("/delay"))
        return _role("admin", [app_id]) if app_id is not None else AUTHENTICATED
    if path.startswith("/v2/deployments/") and method == "DELETE":
        affected = lookups.deployment_apps(path.removeprefix("/v2/deployments/"))
        return _role("deployer", list(affected)) if affected else AUTHENTICATED   # unknown: 404
    if path == "/v2/autoscaler" or path.startswith("/v2/autoscaler/"):
        return _autoscaler(method, path.removeprefix("/v2/autoscaler"), body)
    if path == "/v2/haproxy" or path.startswith("/v2/haproxy/"):
        # the bridge's config and status describe every routed app
        return Requirement("role", "viewer", ("/",), subtree=True) if method in READS else _ROOT_ADMIN
    return AUTHENTICATED


def listing_kind(method: str, path: str) -> str | None:
    """Which listing a read answers, for `visibility.filter_listing`; None if it is not one."""
    if method not in ("GET", "HEAD"):
        return None
    if path in ("/v2/apps", "/v2/tasks", "/v2/queue", "/v2/deployments"):
        return path.removeprefix("/v2/")
    if path.startswith("/v2/apps/") and path.rstrip("/").endswith("/*"):
        return "apps*"
    if path == "/v2/groups" or path.startswith("/v2/groups/"):
        return "groups"
    if path == "/v2/autoscaler/policies":
        return "policies"
    if path == "/v2/autoscaler/decisions":
        return "decisions"
    return None
