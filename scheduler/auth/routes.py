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
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
UI_PATHS = frozenset({"/", "/ui", "/ui/", "/favicon.ico"})
"""The web UI's page (its modules are beneath ``/ui/static/``): served to anyone."""
_ROOT_ADMIN = Requirement("role", "admin", ("/",))


@dataclass(frozen=True)
class Lookups:
    """What `requirement` may ask of the scheduler's state (plain callables: pure for the caller)."""

    known_apps: Container[str] = frozenset()
    task_app: Callable[[str], str | None] = lambda task_id: None
    deployment_apps: Callable[[str], Sequence[str] | None] = lambda deployment_id: None
    allowed_host_paths: tuple[str, ...] = field(default=())
    stored_version: Callable[[str, str], Any] = lambda app_id, version: None   # app JSON of a stored version
    group_as_of: Callable[[str, str], Sequence[Any]] = lambda group_id, version: ()
    """The app definitions beneath a group as a group rollback to that version restores them."""


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


def _rollback_version(body: Any) -> str | None:
    """The version a ``{"version": ts}`` body (optionally with ``id``) restores, or None."""
    if isinstance(body, dict) and isinstance(body.get("version"), str) and set(body) <= {"id", "version"}:
        return str(body["version"])
    return None


def _as_written(app_id: str | None, body: Any, lookups: Lookups) -> Any:
    """The definition a write puts in place: for a rollback (`{"version": ts}`), the stored
    version it restores, so a deployer cannot roll an app back to a privileged version that
    only an admin could deploy."""
    version = _rollback_version(body)
    if app_id is not None and version is not None:
        stored = lookups.stored_version(app_id, version)
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
    if sub == "" and method in ("PUT", "PATCH", "POST"):      # POST: Pacer's scheduled ?at= write
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
    version = _rollback_version(body)
    if version is not None:
        # a group rollback restores the stored definitions beneath the group: judge those
        apps = list(lookups.group_as_of(group_id, version))
    else:
        apps = list(group_apps(body)) if body is not NO_BODY else []
    role, why = _write_role(apps, lookups.allowed_host_paths)
    return _role(role, [group_id], why, subtree=True)


def _tasks_delete(body: Any, lookups: Lookups) -> Requirement:
    if body is UNPARSABLE or not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        return AUTHENTICATED               # the handler answers 400/422
    app_ids = [a for t in body["ids"] if isinstance(t, str) and (a := lookups.task_app(t)) is not None]
    return _role("deployer", app_ids)      # unknown task ids are refused by the handler


def _task_files(path: str, lookups: Lookups) -> Requirement:
    """``/v2/tasks/{id}/files/{name}``: a task's output is as private as its app: `viewer` on it."""
    parts = path.split("/")              # "", "v2", "tasks", id, "files", name
    if len(parts) != 6 or parts[4] != "files":
        return AUTHENTICATED
    app_id = lookups.task_app(parts[3])
    return _role("viewer", [app_id]) if app_id is not None else AUTHENTICATED   # unknown task: 404


def _deployment(method: str, rest: str, lookups: Lookups) -> Requirement:
    """Cancelling or moving a deployment: `deployer` on its apps; approving or rejecting a
    held one (``POST …/approve``, ``…/reject``): `approver` on them (the handler refuses the
    author). Unknown ids go on to the handler's 404. A refusal does not name the apps of the
    deployment the caller may not view."""
    deployment_id, _, action = rest.partition("/")
    affected = lookups.deployment_apps(deployment_id)
    if not affected:
        return AUTHENTICATED
    if method == "POST" and action in ("promote", "abort"):      # steering a canary: as a DELETE
        need = _role("deployer", list(affected))
    elif method == "POST":
        if action not in ("approve", "reject"):
            return AUTHENTICATED                   # no such route: 404/405
        need = _role("approver", list(affected), f"to {action} a deployment")
    else:
        need = _role("deployer", list(affected))
    return replace(need, private_paths=True)


def _autoscaler(method: str, rest: str, body: Any, query: Mapping[str, str]) -> Requirement:
    """``/v2/autoscaler``: policies change how many instances run: `admin` on the app. An app's
    series (``/series?appId=``) shows its usage: `viewer` on it."""
    if rest == "/series" and method in READS:
        app_id = _app_id(query.get("appId", "")) if query.get("appId", "").strip("/ ") else None
        return _role("viewer", [app_id]) if app_id is not None else AUTHENTICATED   # the handler answers 400
    if rest == "/policies" and method == "POST":
        if body is UNPARSABLE or not isinstance(body, dict) or not isinstance(body.get("appId"), str):
            return _ROOT_ADMIN
        return _role("admin", ["/" + body["appId"].strip().strip("/")])
    if rest.startswith("/policies/"):
        app_id = "/" + rest.removeprefix("/policies/").strip().strip("/")
        return _role("viewer" if method in READS else "admin", [app_id])
    return AUTHENTICATED if method in READS else _ROOT_ADMIN


def requirement(method: str, path: str, body: Any = NO_BODY, lookups: Lookups | None = None,
                query: Mapping[str, str] | None = None) -> Requirement:
    """What the call ``method path`` (with its parsed ``body`` if `needs_body`, and its ``query``
    where it names the app) needs."""
    lookups = lookups or Lookups()
    method = "GET" if method == "HEAD" else method
    if path in ("/ping", "/metrics"):
        return OPEN
    if method == "GET" and (path in UI_PATHS or path.startswith("/ui/static/")):
        return OPEN                        # the web UI's files hold no data; it asks for credentials
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
    if path.startswith("/v2/tasks/") and method in READS:
        return _task_files(path, lookups)
    if path.startswith("/v2/queue/") and path.endswith("/delay") and method == "DELETE":
        app_id = _app_id(path.removeprefix("/v2/queue/").removesuffix("/delay"))
        return _role("admin", [app_id]) if app_id is not None else AUTHENTICATED
    if path.startswith("/v2/deployments/") and method in ("DELETE", "PUT", "POST"):
        return _deployment(method, path.removeprefix("/v2/deployments/"), lookups)
    if path == "/v2/autoscaler" or path.startswith("/v2/autoscaler/"):
        return _autoscaler(method, path.removeprefix("/v2/autoscaler"), body, query or {})
    if path == "/v2/haproxy" or path.startswith("/v2/haproxy/"):
        # the bridge's config and status describe every routed app
        return Requirement("role", "viewer", ("/",), subtree=True) if method in READS else _ROOT_ADMIN
    return AUTHENTICATED


def listing_kind(method: str, path: str) -> str | None:
    """Which listing a read answers that the middleware must filter after its handler (for
    `visibility.filter_listing`); None otherwise. Only the autoscaler's: the API's own listings
    (apps, groups, tasks, queue, deployments) filter at their source (`middleware.app_filter`)."""
    if method not in ("GET", "HEAD"):
        return None
    if path == "/v2/autoscaler/policies":
        return "policies"
    if path == "/v2/autoscaler/decisions":
        return "decisions"
    return None
