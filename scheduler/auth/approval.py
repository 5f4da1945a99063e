"""Approval gates at the API: whether a request's change must wait for an approver.

The rules are the auth file's ``[[approval]]`` tables (`policy.approval_need` decides,
purely); this module only finds them and the caller on the request. A change is never held
when authentication is off (nobody could approve it), nor for Pacer's own in-process services
(the autoscaler resizing an app must not wait for a person).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from scheduler.auth.middleware import AUTH_KEY, INTERNAL, principal_of
from scheduler.auth.policy import approval_need
from scheduler.deploy.pending import ApprovalNeed


def approvals_configured(request: web.Request) -> bool:
    state = request.config_dict.get(AUTH_KEY)
    return state is not None and bool(state.authenticator.config.approvals)


def approval_for(request: web.Request, app_ids: Iterable[str]) -> ApprovalNeed | None:
    """What a change of ``app_ids`` by this request's caller must wait for, or None."""
    state = request.config_dict.get(AUTH_KEY)
    if state is None or not state.authenticator.config.approvals:
        return None
    principal = principal_of(request)
    if principal is INTERNAL:
        return None
    need = approval_need(state.authenticator.config, app_ids, principal.name if principal else None)
    if need is None:
        return None
    paths, expiry, approvers = need
    return ApprovalNeed(paths=paths, expiry_seconds=expiry, approvers=approvers)
