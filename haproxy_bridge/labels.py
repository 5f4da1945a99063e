"""The `HAPROXY_*` label vocabulary and its value checks (pure).

Label values are data, never config: every value is checked against a grammar made of
characters HAProxy cannot read as anything but a word (no whitespace where none is allowed,
no newline or control character, no quote, backslash, `#` or `$` — `$` only inside an AUTH
password hash, which is rendered single-quoted). A value outside its grammar rejects the app
it sits on — only that app — with a reason naming the label. The grammars live in
label_values.py; this module maps label names to them.

Supported (marathon-lb's names):

    HAPROXY_GROUP                 comma list of groups (app level)
    HAPROXY_DEPLOYMENT_GROUP      apps with the same value may share a vhost (app level; blue/green)
    HAPROXY_{n}_GROUP             comma list, overrides HAPROXY_GROUP for service port n
    HAPROXY_{n}_VHOST             comma list of host names (`*.example.com` matches subdomains)
    HAPROXY_{n}_PATH              space list of path prefixes (path_beg)
    HAPROXY_{n}_PORT              port to bind instead of the service port
    HAPROXY_{n}_MODE              tcp | http
    HAPROXY_{n}_BALANCE           roundrobin | static-rr | leastconn | first | source | uri | random
                                  | url_param <name> | hdr(<name>)
    HAPROXY_{n}_STICKY            true | false   (cookie-based stickiness)
    HAPROXY_{n}_REDIRECT_TO_HTTPS true | false
    HAPROXY_{n}_BIND_ADDR         an IPv4/IPv6 literal, or `*`
    HAPROXY_{n}_BIND_OPTIONS      bind options from an allow-list (see BIND_FLAGS / BIND_VALUES)
    HAPROXY_{n}_ENABLED           true | false
    HAPROXY_{n}_BACKEND_WEIGHT    integer -1000..1000, orders the vhost/path rules (higher first)
    HAPROXY_{n}_SSL_CERT          comma list of absolute paths to PEM files
    HAPROXY_{n}_AUTH              realm:user:password-hash (a crypt(3) hash: $6$..., $5$..., $y$..., $2b$...)
    HAPROXY_{n}_HTTP_BACKEND_PROXYPASS_PATH   path prefix stripped from requests before the app sees them
    HAPROXY_{n}_HTTP_BACKEND_REVPROXY_PATH    path prefix put back on the app's Location headers
                                  (`HAPROXY_{n}_PROXYPASS_PATH` / `_REVPROXY_PATH` are accepted as well)
    HAPROXY_{n}_USE_HSTS          true | false   (Strict-Transport-Security on responses)
    HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL   space list of IP addresses or networks allowed in

Labels that protect an app (AUTH, NETWORK_ALLOWED_ACL, REDIRECT_TO_HTTPS, USE_HSTS) are never
dropped quietly: a value that cannot be honoured rejects the app, so it is never served without
the protection it asked for.

marathon-lb's template-override labels (`*_HEAD`, `*_OPTIONS`, `*_ACL*`, `*_GLUE`…) are raw
config by design; they are ignored with a warning, never rendered. Other unknown `HAPROXY_`
labels are ignored with a warning too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .label_values import (BALANCE_HASHED, BALANCE_PLAIN, BIND_FLAGS, BIND_VALUES, BasicAuth, LabelError,
                           parse_auth, parse_balance, parse_bind_addr, parse_bind_options, parse_bool, parse_certs,
                           parse_deployment_group, parse_groups, parse_mode, parse_networks, parse_path, parse_paths,
                           parse_port, parse_vhosts, parse_weight)

__all__ = ["ALIASES", "AppLabels", "BALANCE_HASHED", "BALANCE_PLAIN", "BIND_FLAGS", "BIND_VALUES", "BasicAuth",
           "LabelError", "PortLabels", "SUPPORTED_PORT_LABELS", "bridge_groups", "group_matches", "parse_auth",
           "parse_balance", "parse_bind_addr", "parse_bind_options", "parse_bool", "parse_certs",
           "parse_deployment_group", "parse_groups", "parse_labels", "parse_mode", "parse_networks", "parse_path", "parse_paths",
           "parse_port", "parse_vhosts", "parse_weight"]

PORT_LABEL = re.compile(r"^HAPROXY_(\d{1,3})_([A-Z0-9_]+)$")

SUPPORTED_PORT_LABELS = frozenset({
    "GROUP", "VHOST", "PATH", "PORT", "MODE", "BALANCE", "STICKY", "REDIRECT_TO_HTTPS",
    "BIND_ADDR", "BIND_OPTIONS", "ENABLED", "BACKEND_WEIGHT", "SSL_CERT", "AUTH", "USE_HSTS",
    "HTTP_BACKEND_PROXYPASS_PATH", "HTTP_BACKEND_REVPROXY_PATH", "PROXYPASS_PATH", "REVPROXY_PATH",
    "BACKEND_NETWORK_ALLOWED_ACL",
})
#: the short names accepted for marathon-lb's long ones
ALIASES = {"PROXYPASS_PATH": "HTTP_BACKEND_PROXYPASS_PATH", "REVPROXY_PATH": "HTTP_BACKEND_REVPROXY_PATH"}
_TEMPLATE_HINTS = ("_HEAD", "_OPTIONS", "_ACL", "_GLUE", "_ROUTING")


@dataclass(frozen=True, slots=True)
class PortLabels:
    """The labels of one service port (index n), parsed; defaults when absent."""
    index: int
    groups: tuple[str, ...] | None = None     # None: inherit the app's HAPROXY_GROUP
    vhosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    port: int | None = None
    mode: str | None = None
    balance: str | None = None
    sticky: bool = False
    redirect_to_https: bool = False
    bind_addr: str | None = None
    bind_options: tuple[str, ...] = ()
    enabled: bool = True
    backend_weight: int = 0
    ssl_certs: tuple[str, ...] = ()
    auth: BasicAuth | None = None
    proxypass_path: str | None = None
    revproxy_path: str | None = None
    hsts: bool = False
    networks_allowed: tuple[str, ...] = ()


@functools.lru_cache(maxsize=128)
def _default_port_labels(index: int) -> PortLabels:
    return PortLabels(index=index)


_PARSERS = {
    "GROUP": ("groups", parse_groups), "VHOST": ("vhosts", parse_vhosts), "PATH": ("paths", parse_paths),
    "PORT": ("port", parse_port), "MODE": ("mode", parse_mode), "BALANCE": ("balance", parse_balance),
    "STICKY": ("sticky", parse_bool), "REDIRECT_TO_HTTPS": ("redirect_to_https", parse_bool),
    "BIND_ADDR": ("bind_addr", parse_bind_addr), "BIND_OPTIONS": ("bind_options", parse_bind_options),
    "ENABLED": ("enabled", parse_bool), "BACKEND_WEIGHT": ("backend_weight", parse_weight),
    "SSL_CERT": ("ssl_certs", parse_certs), "AUTH": ("auth", parse_auth), "USE_HSTS": ("hsts", parse_bool),
    "HTTP_BACKEND_PROXYPASS_PATH": ("proxypass_path", parse_path),
    "HTTP_BACKEND_REVPROXY_PATH": ("revproxy_path", parse_path),
    "BACKEND_NETWORK_ALLOWED_ACL": ("networks_allowed", parse_networks),
}


@dataclass(frozen=True, slots=True)
class AppLabels:
    """Every HAPROXY_* label of one app, parsed, plus what was wrong or ignored."""
    groups: tuple[str, ...] = ()
    deployment_group: str | None = None
    ports: Mapping[int, PortLabels] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    group_error: bool = False       # a GROUP label itself is bad: the app cannot be skipped safely

    def port(self, index: int) -> PortLabels:
        return self.ports.get(index) or _default_port_labels(index)

    def groups_of(self, index: int) -> tuple[str, ...]:
        own = self.port(index).groups
        return own if own is not None else self.groups


def parse_labels(labels: Mapping[str, object]) -> AppLabels:
    """Parse every HAPROXY_* label; the app is rejected when `errors` is not empty.

    Memoised on the (key, value) pairs: the bridge re-renders the same labels again and again."""
    try:
        key = tuple(sorted((k, v) for k, v in labels.items() if k.startswith("HAPROXY_")))
        return _parse_labels_cached(key)
    except TypeError:           # an unhashable value: no memo, same answer
        return _parse_labels(labels)


@functools.lru_cache(maxsize=16384)
def _parse_labels_cached(items: tuple[tuple[str, object], ...]) -> AppLabels:
    return _parse_labels(dict(items))


def _parse_labels(labels: Mapping[str, object]) -> AppLabels:
    errors: list[str] = []
    warnings: list[str] = []
    groups: tuple[str, ...] = ()
    deployment_group: str | None = None
    group_error = False
    fields: dict[int, dict[str, object]] = {}
    for key in sorted(labels):
        if not key.startswith("HAPROXY_"):
            continue
        value = labels[key]
        if not isinstance(value, str):
            errors.append(f"{key}: value must be a string")
            continue
        if key == "HAPROXY_GROUP":
            try:
                groups = parse_groups(key, value)
            except LabelError as exc:
                errors.append(str(exc))
                group_error = True
            continue
        if key == "HAPROXY_DEPLOYMENT_GROUP":
            try:
                deployment_group = parse_deployment_group(key, value)
            except LabelError as exc:
                errors.append(str(exc))
            continue
        m = PORT_LABEL.match(key)
        if not m:
            warnings.append(f"{key}: not supported by Pacer's bridge; ignored")
            continue
        index, name = int(m.group(1)), m.group(2)
        if name not in SUPPORTED_PORT_LABELS:
            why = ("template overrides are raw HAProxy config and are never rendered"
                   if any(name.endswith(h) or h + "_" in name for h in _TEMPLATE_HINTS) else "not supported")
            warnings.append(f"{key}: {why}; ignored")
            continue
        attr, parser = _PARSERS[ALIASES.get(name, name)]
        try:
            parsed = parser(key, value)
            if attr in fields.get(index, {}) and fields[index][attr] != parsed:
                raise LabelError(f"{key}: disagrees with HAPROXY_{index}_{ALIASES.get(name, name)}; set one of them")
            fields.setdefault(index, {})[attr] = parsed
        except LabelError as exc:
            errors.append(str(exc))
            group_error = group_error or name == "GROUP"
    ports = MappingProxyType({i: PortLabels(index=i, **kw) for i, kw in sorted(fields.items())})  # type: ignore[arg-type]
    return AppLabels(groups=groups, deployment_group=deployment_group, ports=ports, errors=tuple(errors),
                     warnings=tuple(warnings), group_error=group_error)


def group_matches(app_groups: tuple[str, ...], bridge_groups: frozenset[str]) -> bool:
    """marathon-lb's rule: `*` in the bridge's groups matches every app, even one without a group."""
    return "*" in bridge_groups or bool(bridge_groups.intersection(app_groups))


def bridge_groups(group: str) -> frozenset[str]:
    """`--group` value: `*` or a comma list."""
    return frozenset(g.strip() for g in group.split(",") if g.strip()) or frozenset({"*"})
