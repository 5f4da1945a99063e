"""The API's gate: who is calling (authentication), may they (authorization), what they see.

`build_auth_middleware(state, ...)` returns the aiohttp middleware `build_api` lists between
`error_middleware` and the leadership proxy, so a follower checks credentials itself before
forwarding (the leader checks them again: every instance reads the same auth file). A
follower judges only by what the request itself shows (its copy of the state is not the
leader's: `AuthState.lookups`) and forwards the caller's ``Authorization`` unchanged; the
leader then authenticates and authorizes the caller with its own state. Nothing is trusted
for having passed through a follower (``X-Marathon-Via``, ``X-Forwarded-For`` and the
follower's address grant nothing). For each request it:

1. reads the body when the app ids it names decide (`routes.needs_body`; aiohttp keeps the
   bytes, so the handler reads the same ones);
2. finds the principal: HTTP basic (password checked against the scrypt hash, once per
   distinct password: verified ones are remembered as a keyed digest, never in clear),
   ``Authorization: Bearer TOKEN``, or, on the private in-process listener, this process
   itself (`local_peer`);
3. asks `policy.authorize` with `routes.requirement`: 401 with ``WWW-Authenticate`` when
   credentials are missing or wrong, 403 naming the missing role and path;
4. runs the handler; the API's listings leave out what the caller may not view at their
   source (`app_filter`, asked by the handlers before they render), the autoscaler's
   listings are filtered here after their handler (`visibility.filter_listing`);
5. records every write in the audit log, refused or not.

Secrets never leave this module: the 401 body does not say which of user or password was
wrong, and no log line carries a credential.

Exceptions: none of its own; a handler's exception passes through unchanged (after the
audit line is written with the status `error_middleware` will give it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from app_definitions import InvalidJSON, parse_json_body

from scheduler.auth.audit import AuditLog, audit_entry
from scheduler.auth.gates import unheld_gated_write
from scheduler.auth.local_peer import is_own_connection
from scheduler.auth.passwords import hash_token, verify_password
from scheduler.auth.policy import AuthConfig, Decision, Grant, User, authorize, may, sees_everything
from scheduler.auth.routes import NO_BODY, READS, UNPARSABLE, Lookups, listing_kind, needs_body, requirement
from scheduler.auth.visibility import event_visible, filter_listing

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[BaseException], tuple[int, dict[str, Any]]]

REALM = "pacer"
INTERNAL = User("pacer-internal", grants=(Grant("admin", "/**"),))
"""The principal of the in-process services (autoscaler, HAProxy bridge) on the private listener."""
PRINCIPAL = "pacer.auth.principal"
"""The request key holding the authenticated `User`."""
UNAUTHENTICATED = "Authentication required: send HTTP basic credentials or 'Authorization: Bearer TOKEN'"
INVALID = "Invalid username or password."       # Marathon's text
_CACHE_SIZE = 1024
_FILTER_MAX_BYTES = 64 * 1024 * 1024


class Authenticator:
    """Checks credentials against the current `AuthConfig` (replaced on SIGHUP by `reload`)."""

    def __init__(self, config: AuthConfig) -> None:
        self._key = secrets.token_bytes(32)     # keys the cache of verified passwords
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self.reload(config)

    def reload(self, config: AuthConfig) -> None:
        self.config = config
        self._by_token = {h: user for user in config.users.values() for h in user.token_hashes}
        self._verified.clear()
        # an unknown user is checked against this, so a miss takes as long as a wrong password
        self._decoy = next((u.password_hash for u in config.users.values() if u.password_hash), None)

    async def authenticate(self, header: str | None) -> User | None:
        """The user ``header`` (an Authorization value) proves to be, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._by_token.get(hash_token(value.strip()))
        if scheme != "basic":
            return None
        try:
            name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        user = self.config.users.get(name)
        stored = user.password_hash if user is not None else self._decoy
        if stored is None:
            return None
        digest = hmac.new(self._key, f"{name}\0{password}\0{stored}".encode(), hashlib.sha256).digest()
        if digest in self._verified and user is not None:
            self._verified.move_to_end(digest)
            return user
        ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or user is None or user.password_hash is None:
            return None
        self._verified[digest] = None
        while len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return user


@dataclass
class AuthState:
    """What the middleware needs, kept on the aiohttp app under `AUTH_KEY`."""

    authenticator: Authenticator
    audit: AuditLog | None = None
    allowed_host_paths: tuple[str, ...] = ()
    view: Any = None
    """The scheduler's read view (`SchedulerView`), set by `build_api`."""
    leads: Callable[[], bool] = field(default=lambda: True)
    """Whether this instance leads (set by `build_api`): a follower's view of the state is not
    the leader's, so it decides only what the request itself shows and forwards."""
    internal_port: int | None = None
    home: Path | None = None
    _own: weakref.WeakKeyDictionary[Any, bool] = field(default_factory=weakref.WeakKeyDictionary)

    def lookups(self) -> Lookups:
        """What the route table may ask of the scheduler's state (empty on a follower: it forwards,
        and the leader decides again with its own)."""
        view = self.view
        if view is None or not self.leads():
            return Lookups(allowed_host_paths=self.allowed_host_paths)

        def task_app(task_id: str) -> str | None:
            inst = view.instances.get(task_id)
            return inst.app_id if inst is not None else None

        def deployment_apps(deployment_id: str) -> tuple[str, ...] | None:
            run = view.deployments.get(deployment_id)
            if run is not None:
                return tuple(run.plan.affected_app_ids)
            pending = getattr(view, "pending", {}).get(deployment_id)     # scheduled, held for approval
            return pending.app_ids if pending is not None else None

        def group_as_of(group_id: str, version: str) -> list[Any]:
            prefix = group_id.rstrip("/") + "/"
            return [app for app_id, app in view.apps_as_of(version).items() if app_id.startswith(prefix)]

        return Lookups(known_apps=view.apps, task_app=task_app, deployment_apps=deployment_apps,
                       allowed_host_paths=self.allowed_host_paths, stored_version=view.app_version,
                       group_as_of=group_as_of)

    def internal(self, request: web.Request) -> bool | None:
        """None: not the private listener; else whether the connection is this process's own."""
        if self.internal_port is None or request.transport is None:
            return None
        sockname = request.transport.get_extra_info("sockname")
        if not sockname or sockname[1] != self.internal_port:
            return None
        transport = request.transport
        if transport not in self._own:
            peer = transport.get_extra_info("peername")
            self._own[transport] = bool(peer) and is_own_connection(tuple(sockname[:2]), tuple(peer[:2]))
        return self._own[transport]


AUTH_KEY = web.AppKey("auth", AuthState)


def _json(body: Any, status: int, headers: CIMultiDict[str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)


def _refusal(decision: Decision, principal: User | None, had_credentials: bool) -> web.Response:
    if decision.status == 401:
        headers: CIMultiDict[str] = CIMultiDict()
        headers.add("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        headers.add("WWW-Authenticate", f'Bearer realm="{REALM}"')
        return _json({"message": INVALID if had_credentials else UNAUTHENTICATED}, 401, headers)
    who = f"user '{principal.name}'" if principal is not None else "the caller"
    return _json({"message": f"Not Authorized to perform this action: {who} needs {decision.missing}"}, 403)


def principal_of(request: web.Request) -> User | None:
    """The authenticated caller, or None (no authentication configured, or not authenticated)."""
    value = request.get(PRINCIPAL)
    return value if isinstance(value, User) else None


def auth_enabled(request: web.Request) -> bool:
    return request.config_dict.get(AUTH_KEY) is not None


def is_admin(request: web.Request) -> bool:
    """Whether the caller may see everything about this instance: no authentication configured,
    or `admin` on ``/``."""
    if not auth_enabled(request):
        return True
    principal = principal_of(request)
    return principal is not None and may(principal, "admin", "/")


def app_filter(request: web.Request) -> Callable[[str], bool] | None:
    """Which app ids this caller may view, for the listings to leave the others out before
    they render (None: every app, so a handler filters nothing and its cached bytes serve
    as they are). A request without a principal while authentication is on sees no app."""
    if not auth_enabled(request):
        return None
    principal = principal_of(request)
    if principal is None:
        return lambda app_id: False
    if sees_everything(principal):
        return None
    user = principal
    return lambda app_id: may(user, "viewer", app_id)


def event_filter(request: web.Request) -> Callable[[Any], bool] | None:
    """Which events of /v2/events this caller may see (None: all of them)."""
    principal = principal_of(request)
    if principal is None or sees_everything(principal):
        return None
    user = principal

    def visible(event: Any) -> bool:
        data = getattr(event, "data", None)
        if not isinstance(data, str):
            return True
        return event_visible(data, lambda a: may(user, "viewer", a),
                             lambda g: may(user, "viewer", g, subtree=True))
    return visible


def _filtered(response: web.StreamResponse, kind: str, user: User) -> web.StreamResponse:
    if (not isinstance(response, web.Response) or response.status != 200 or response.content_type != "application/json"
            or "Content-Encoding" in response.headers or not isinstance(response.body, (bytes, bytearray))
            or len(response.body) > _FILTER_MAX_BYTES):
        return response
    try:
        body = json.loads(response.body)
    except ValueError:
        return response
    kept = filter_listing(kind, body, lambda a: may(user, "viewer", a))
    headers = CIMultiDict((k, v) for k, v in response.headers.items() if k not in ("Content-Length", "Content-Type"))
    return _json(kept, 200, headers)


def _result_of(response: web.StreamResponse | None) -> dict[str, Any] | None:
    if not isinstance(response, web.Response) or not isinstance(response.body, (bytes, bytearray)):
        return None
    if "Content-Encoding" in response.headers or len(response.body) > 1024 * 1024:
        return None
    try:
        parsed = json.loads(response.body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def build_auth_middleware(error_body: ErrorBody) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware; ``error_body`` is the API's exception -> (status, body) translation, used
    to audit a write whose handler raised."""

    def audit(request: web.Request, state: AuthState, principal: User | None, app_ids: tuple[str, ...],
              status: int, result: dict[str, Any] | None, deployment_id: str | None) -> None:
        if state.audit is None:
            return
        state.audit.record(audit_entry(
            when=datetime.now(timezone.utc), user=principal.name if principal else None, source=request.remote,
            forwarded_for=request.headers.get("X-Forwarded-For"), method=request.method, path=request.path_qs,
            app_ids=app_ids, status=status, result=result, deployment_id=deployment_id))

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = request.config_dict[AUTH_KEY]
        method, path = request.method, request.path
        body: Any = NO_BODY
        if needs_body(method, path):
            try:
                body = parse_json_body(await request.read())
            except InvalidJSON:
                body = UNPARSABLE
        own = state.internal(request)
        if own is False:
            return _json({"message": "This port serves Pacer's own in-process services only; use the API port"},
                         403)
        header = request.headers.get("Authorization")
        principal = INTERNAL if own else await state.authenticator.authenticate(header)
        needed = requirement(method, path, body, state.lookups(), request.query)
        app_ids = needed.paths if needed.kind == "role" else ()
        decision = authorize(principal, needed)
        mutation = method not in READS
        if not decision.allowed:
            refusal = _refusal(decision, principal, bool(header))
            if mutation:
                audit(request, state, principal, app_ids, refusal.status, _result_of(refusal), None)
            return refusal
        gated = None if principal is INTERNAL or not mutation else unheld_gated_write(
            state.authenticator.config, method, path, needed,
            scale=request.query.get("scale", "").strip().lower() in ("true", "1", "yes"))
        if gated is not None:         # a deployment on an approval path that cannot be held
            refusal = _json({"message": f"Not Authorized to perform this action: {gated}"}, 403)
            audit(request, state, principal, app_ids, refusal.status, _result_of(refusal), None)
            return refusal
        request[PRINCIPAL] = principal
        try:
            response = await handler(request)
        except Exception as exc:
            if mutation and not (isinstance(exc, web.HTTPException) and exc.status < 400):
                status, error = error_body(exc)
                audit(request, state, principal, app_ids, status, error, None)
            raise
        if mutation:
            audit(request, state, principal, app_ids, response.status, _result_of(response),
                  response.headers.get("Marathon-Deployment-Id"))
        kind = listing_kind(method, path)
        if kind is not None and principal is not None and not sees_everything(principal):
            return _filtered(response, kind, principal)
        return response

    return auth_middleware


async def audit_handler(request: web.Request) -> web.Response:
    """``GET /v2/audit?limit=N[&user=NAME]``: the newest N audit entries (default 100), oldest
    first, of NAME only if given (admins)."""
    state = request.config_dict[AUTH_KEY]
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        return _json({"message": f"limit must be an integer from 1 to 100000 (got '{raw}')"}, 400)
    if state.audit is None:
        return _json({"entries": []}, 200)
    await asyncio.to_thread(state.audit.flush)
    entries = await asyncio.to_thread(state.audit.tail, int(raw), request.query.get("user") or None)
    return _json({"entries": entries}, 200)
