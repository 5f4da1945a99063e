"""Who a vhost belongs to (pure): the app that claimed it first keeps it.

Without this, any app could take another's traffic by naming its vhost: with a higher
`HAPROXY_{n}_BACKEND_WEIGHT`, or an id that sorts first, its rule came first in the shared
frontends and every request for the vhost went to it.

    route key   (host, path prefix): each HAPROXY_{n}_VHOST with each HAPROXY_{n}_PATH of a
                routed service port; '' for no path, and '/' counts as '' (it matches every
                request for the host). A path-only service claims ('', path): any host.
    first       a key in the record (kept on disk by the bridge, so a restart or a later config
                change of the owner hands nothing over) stays with its app while that app still
                claims it, or while its labels cannot be read (a broken label must not free its
                vhost for someone else). A key without a record goes to the claimant whose
                `versionInfo.lastConfigChangeAt` (else `version`) is earliest, then to the lower
                app id. That is the time of the configuration that made the claim, as far as the
                app JSON tells; the record is what makes the decision stick.
    others      left out, with the reason on them — unless they and the owner carry the same
                HAPROXY_DEPLOYMENT_GROUP (blue/green: both apps opted in to sharing).

Distinct keys on one host (example.com and example.com/api) are marathon-lb's path routing and
stay allowed; the shared frontends order exact hosts before wildcards before path-only rules,
so a wildcard or a path-only claim cannot outrank an owner's exact host (render.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RouteKey = tuple[str, str]       # (host or '' for any host, path prefix or '' for the whole host)


@dataclass(frozen=True, slots=True)
class Claim:
    """The record of one key's owner."""

    app_id: str
    since: str | None                   # the owner's lastConfigChangeAt when it was recorded
    deployment_group: str | None = None


@dataclass(frozen=True, slots=True)
class AppClaims:
    """What one app claims now."""

    app_id: str
    keys: frozenset[RouteKey]
    since: str | None
    deployment_group: str | None = None


def route_keys(hosts: Iterable[str], paths: Iterable[str]) -> frozenset[RouteKey]:
    """A path-only service claims ('', path): any host, so ('', '/') is the catch-all."""
    ps = list(paths) or [""]
    hs = list(hosts) or [""]
    return frozenset((h, "" if h and p == "/" else p) for h in hs for p in ps if h or p)


def describe(key: RouteKey) -> str:
    host, path = key
    return f"{host}{path}" if host else f"path {path} (any host)"


def _when(since: str | None) -> tuple[int, float]:
    """Earlier first; a missing or unreadable time after every readable one."""
    if since:
        try:
            return 0, datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return 1, 0.0


def settle(claims: Iterable[AppClaims], holding: Iterable[str],
           record: Mapping[RouteKey, Claim]) -> tuple[dict[RouteKey, Claim], dict[str, str]]:
    """(the new record, app id -> why it is left out). `holding`: apps present whose labels
    cannot be read; their recorded keys stay theirs."""
    by_app = {c.app_id: c for c in claims}
    held = frozenset(holding)
    out: dict[RouteKey, Claim] = {}
    for key, owner in record.items():
        current = by_app.get(owner.app_id)
        if current is not None and key in current.keys:
            out[key] = Claim(owner.app_id, owner.since, current.deployment_group)
        elif owner.app_id in held:
            out[key] = owner
    contenders: dict[RouteKey, list[AppClaims]] = {}
    for c in by_app.values():
        for key in c.keys:
            if key not in out:
                contenders.setdefault(key, []).append(c)
    for key, cs in contenders.items():
        first = min(cs, key=lambda c: (_when(c.since), c.app_id))
        out[key] = Claim(first.app_id, first.since, first.deployment_group)
    losers: dict[str, str] = {}
    for c in sorted(by_app.values(), key=lambda c: c.app_id):
        for key in sorted(c.keys):
            owner = out[key]
            shared = owner.deployment_group is not None and owner.deployment_group == c.deployment_group
            if owner.app_id != c.app_id and not shared:
                losers[c.app_id] = (f"vhost {describe(key)} belongs to {owner.app_id}, which claimed it first"
                                    + (f" (configuration of {owner.since})" if owner.since else "")
                                    + "; two apps share a vhost only with the same HAPROXY_DEPLOYMENT_GROUP")
                break
    return out, losers


def record_json(record: Mapping[RouteKey, Claim]) -> list[dict[str, Any]]:
    """The record as the bridge stores it and the status page shows it (sorted: stable bytes)."""
    return [{"host": host, "path": path, "app": c.app_id, "since": c.since, "deploymentGroup": c.deployment_group}
            for (host, path), c in sorted(record.items())]


def record_from_json(data: Any) -> dict[RouteKey, Claim]:
    """Tolerant: an entry that is not well formed is dropped, never fatal."""
    out: dict[RouteKey, Claim] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        host, path, app = item.get("host"), item.get("path"), item.get("app")
        since, group = item.get("since"), item.get("deploymentGroup")
        if (isinstance(host, str) and isinstance(path, str) and isinstance(app, str) and (host or path)
                and (since is None or isinstance(since, str)) and (group is None or isinstance(group, str))):
            out[(host, path)] = Claim(app, since, group)
    return out
