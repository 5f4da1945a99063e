"""``GET /v2/auth/whoami``: who the API takes the caller for, and what they may do.

The web UI hides the actions a user's role does not allow; it needs the caller's grants to
decide that, and nothing else in the API says who the caller is. The answer carries the user
name and the grants only (never a password hash or a token hash)::

    {"authEnabled": true, "user": "alice", "grants": [{"role": "deployer", "pattern": "/team-a/**"}]}

Without authentication everyone may do everything: ``user`` is null and the one grant is
``admin on /**``. The route needs an authenticated caller like every other read, so an
anonymous call with authentication on gets the middleware's 401 (which is how the UI learns
it must ask for credentials).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from scheduler.auth.middleware import auth_enabled, principal_of
from scheduler.auth.policy import Grant, User

EVERYTHING = (Grant("admin", "/**"),)


def whoami_body(user: User | None, enabled: bool) -> dict[str, Any]:
    """The answer for ``user`` (None: nobody authenticated), authentication on or off."""
    grants = EVERYTHING if not enabled else (user.grants if user is not None else ())
    return {"authEnabled": enabled, "user": user.name if enabled and user is not None else None,
            "grants": [{"role": g.role, "pattern": g.pattern} for g in grants]}


async def whoami(request: web.Request) -> web.Response:
    body = whoami_body(principal_of(request), auth_enabled(request))
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json",
                        headers={"Cache-Control": "no-store"})
