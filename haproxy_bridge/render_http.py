"""The per-app HTTP rules of a backend, and their userlists (pure; part of render.py).

They sit in the backend, not in the shared frontends, so they hold on every way in to the app:
the vhost frontends, the app's own service port and the app-id frontend. Order matters, and is:

    network allow-list   HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL: anyone else gets 403 (tcp: reset)
    redirect to https    HAPROXY_{n}_REDIRECT_TO_HTTPS: only requests that came in through the
                         :80 vhost frontend (`fe_name`), i.e. routed there by the vhost (and path)
                         rule; the service port keeps serving plain HTTP, as with marathon-lb.
                         Before the password prompt, so no password is asked for over plain HTTP.
    basic auth           HAPROXY_{n}_AUTH: 401 with the realm until the userlist's user is given
    proxypass            HAPROXY_{n}_HTTP_BACKEND_PROXYPASS_PATH: the prefix is cut from the path
                         (/api/x -> /x, /api -> /; /apiary is left alone) and Host is set to the
                         first exact vhost, as marathon-lb's glue did with `reqirep`
    revproxy             HAPROXY_{n}_HTTP_BACKEND_REVPROXY_PATH: Location / Content-Location
                         pointing into the app (a bare path, or an absolute URL on one of its
                         vhosts) get the prefix put back in front (/x -> /api/x). marathon-lb's
                         template replaced the whole header by the prefix, which sent every
                         redirect to the root; the prefix plus the original path is what
                         ProxyPassReverse, which the label is named after, does.
    hsts                 HAPROXY_{n}_USE_HSTS: Strict-Transport-Security on every response

Regular expressions are built without backslashes (HAProxy's config parser would take them):
a literal character that means something to PCRE is written as a one-character class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Service

HTTP_FRONTEND = "pacer_http_in"
HSTS_VALUE = "max-age=15768000"           # marathon-lb's BACKEND_HSTS_OPTIONS
_PCRE_SPECIAL = set(".+*?()[]{}|^$")


def literal(text: str) -> str:
    """A regular expression matching `text` exactly, without a backslash."""
    return "".join(f"[{c}]" if c in _PCRE_SPECIAL else c for c in text)


def userlist_name(s: "Service") -> str:
    return f"pacer_auth_{s.backend}"


def userlist_lines(s: "Service") -> list[str]:
    """The userlist HAPROXY_{n}_AUTH names. The hash is single-quoted: it holds '$', which
    HAProxy would otherwise read as the start of a variable."""
    if s.auth is None:
        return []
    return ["", f"userlist {userlist_name(s)}", f"  user {s.auth.user} password '{s.auth.password_hash}'"]


def access_lines(s: "Service") -> list[str]:
    """Allow-list, redirect and password: what decides whether a request reaches the app."""
    lines: list[str] = []
    if s.networks_allowed:
        lines.append(f"  acl pacer_allowed_src src {' '.join(s.networks_allowed)}")
        lines.append("  http-request deny deny_status 403 unless pacer_allowed_src" if s.mode == "http"
                     else "  tcp-request content reject unless pacer_allowed_src")
    if s.mode != "http":
        return lines
    if s.redirect_to_https:
        lines.append(f"  http-request redirect scheme https code 301 if {{ fe_name {HTTP_FRONTEND} }}")
    if s.auth is not None:
        lines.append(f'  http-request auth realm "{s.auth.realm}" unless {{ http_auth({userlist_name(s)}) }}')
    return lines


def _host_pattern(vhost: str) -> str:
    if vhost.startswith("*."):
        return "[^/:]+" + literal(vhost[1:])
    return literal(vhost)


def rewrite_lines(s: "Service") -> list[str]:
    """Path rewriting both ways, and HSTS."""
    lines: list[str] = []
    if s.proxypass_path and s.proxypass_path != "/":
        exact = [h for h in s.vhosts if not h.startswith("*.")]
        if exact:
            lines.append(f"  http-request set-header Host {exact[0]}")
        lines.append(f"  http-request replace-path ^{literal(s.proxypass_path)}(?:/(.*))?$ /\\1")
    if s.revproxy_path and s.revproxy_path != "/":
        prefix = ""
        if s.vhosts:
            hosts = "|".join(_host_pattern(h) for h in s.vhosts)
            prefix = f"(?i:https?://(?:{hosts})(?::[0-9]+)?)?"
        for header in ("Location", "Content-Location"):
            lines.append(f"  http-response replace-header {header} ^{prefix}(/.*)$ {s.revproxy_path}\\1")
    if s.hsts:
        lines.append(f"  http-response set-header Strict-Transport-Security {HSTS_VALUE}")
    return lines
