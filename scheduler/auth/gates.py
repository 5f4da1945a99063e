"""Approval gates for the writes that cannot be held: refused, never let through unapproved.

Creating and updating apps (``POST``/``PUT``/``PATCH`` of ``/v2/apps`` and ``/v2/apps/{id}``)
is held for approval when the auth file's ``[[approval]]`` paths match (see
`scheduler.api.pending`). Other writes that start a deployment — deleting or restarting an
app, a group write, killing tasks with ``scale=true`` — are not held by this version of Pacer;
on a gated path they are refused with 403 and the reason, so a gate cannot be walked around
through another endpoint. Cancelling, moving, approving and rejecting deployments, killing
tasks without scaling, queue delays and autoscaler policies are not deployments and pass.

Pure: `unheld_gated_write` takes the auth config, the call and its `Requirement`.
"""

from __future__ import annotations

from scheduler.auth.policy import AuthConfig, Requirement, pattern_matches

_HELD_NOTE = ("this version of Pacer holds only app creations and updates for approval "
              "(POST/PUT/PATCH /v2/apps[/{id}])")


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def reaches_beneath(pattern: str, group: str) -> bool:
    """Whether ``pattern`` matches the group itself or some id beneath it (a group write may
    touch any of them)."""
    if pattern_matches(pattern, group):
        return True
    pat, base = _segments(pattern), _segments(group)
    for i, segment in enumerate(base):
        if i >= len(pat):
            return False
        if pat[i] == "**":
            return True
        if not pattern_matches("/" + pat[i], "/" + segment):
            return False
    return len(pat) > len(base)


def _kind(method: str, path: str, scale: bool) -> str | None:
    """What an unholdable deployment-starting call does, or None when the call is not one."""
    if path.startswith("/v2/groups") and method in ("POST", "PUT", "PATCH", "DELETE"):
        return "a group write"
    if path == "/v2/tasks/delete" and method == "POST" and scale:
        return "killing tasks with scale=true"
    if not path.startswith("/v2/apps/"):
        return None
    tail = path.rstrip("/")
    if method == "POST" and tail.endswith("/restart"):
        return "a restart"
    if method == "DELETE" and ("/tasks" in tail):
        return "killing tasks with scale=true" if scale else None
    if method == "DELETE":
        return "deleting an app"
    return None


def unheld_gated_write(config: AuthConfig, method: str, path: str, needed: Requirement, *,
                       scale: bool = False) -> str | None:
    """Why this call is refused (it would start a deployment on a gated path that cannot be
    held for approval), or None."""
    if not config.approvals or needed.kind != "role":
        return None
    what = _kind(method, path, scale)
    if what is None:
        return None
    for rule in config.approvals:
        for pattern in rule.paths:
            for target in needed.paths:
                hit = reaches_beneath(pattern, target) if needed.subtree else pattern_matches(pattern, target)
                if hit:
                    return (f"{what} on {target} needs an approval ([[approval]] paths {pattern} in the auth file), "
                            f"and {_HELD_NOTE}; change the apps one by one through /v2/apps, or have an admin "
                            "lift the approval rule for the operation")
    return None


__all__ = ["reaches_beneath", "unheld_gated_write"]
