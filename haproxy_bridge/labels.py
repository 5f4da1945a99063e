"""The `HAPROXY_*` label vocabulary and its value checks (pure).

Label values are data, never config: every value is checked against a grammar made of
characters HAProxy cannot read as anything but a word (no whitespace where none is allowed,
no newline or control character, no quote, backslash, `#` or `$`). A value outside its
grammar rejects the app it sits on — only that app — with a reason naming the label.

Supported (marathon-lb's names):

    HAPROXY_GROUP                 comma list of groups (app level)
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

marathon-lb's template-override labels (`*_HEAD`, `*_OPTIONS`, `*_ACL*`, `*_GLUE`…) are raw
config by design; they are ignored with a warning, never rendered. Other unknown `HAPROXY_`
labels are ignored with a warning too.
"""

from __future__ import annotations

import functools
import ipaddress
from types import MappingProxyType
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

PORT_LABEL = re.compile(r"^HAPROXY_(\d{1,3})_([A-Z0-9_]+)$")

BALANCE_PLAIN = frozenset({"roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random"})
#: algorithms whose default map-based hashing would refuse runtime-added servers
BALANCE_HASHED = frozenset({"source", "uri", "url_param", "hdr"})

BIND_FLAGS = frozenset({
    "accept-proxy", "defer-accept", "tfo", "transparent", "v4v6", "v6only", "strict-sni",
    "prefer-client-ciphers", "no-tls-tickets", "allow-0rtt", "ssl", "no-sslv3", "no-tlsv10",
    "no-tlsv11", "no-tlsv12", "no-tlsv13", "force-tlsv12", "force-tlsv13",
})
_INT = r"\d{1,9}"
_TLS = r"(?:SSLv3|TLSv1\.[0-3])"
BIND_VALUES: Mapping[str, re.Pattern[str]] = {
    "maxconn": re.compile(_INT), "backlog": re.compile(_INT), "mss": re.compile(_INT),
    "nice": re.compile(r"-?\d{1,4}"), "tcp-ut": re.compile(r"\d{1,9}(?:ms|s|m)?"),
    "alpn": re.compile(r"[a-z0-9./-]+(?:,[a-z0-9./-]+)*"), "ssl-min-ver": re.compile(_TLS),
    "ssl-max-ver": re.compile(_TLS), "ciphers": re.compile(r"[A-Za-z0-9_:+!.-]+"),
    "ciphersuites": re.compile(r"[A-Za-z0-9_:+!.-]+"), "curves": re.compile(r"[A-Za-z0-9_:+.-]+"),
    "name": re.compile(r"[A-Za-z0-9_.:-]{1,64}"), "interface": re.compile(r"[A-Za-z0-9_.:-]{1,15}"),
    "verify": re.compile(r"none|optional|required"),
}

SUPPORTED_PORT_LABELS = frozenset({
    "GROUP", "VHOST", "PATH", "PORT", "MODE", "BALANCE", "STICKY", "REDIRECT_TO_HTTPS",
    "BIND_ADDR", "BIND_OPTIONS", "ENABLED", "BACKEND_WEIGHT", "SSL_CERT",
})
_TEMPLATE_HINTS = ("_HEAD", "_OPTIONS", "_ACL", "_GLUE", "_ROUTING")

_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*", re.IGNORECASE)
_PATH = re.compile(r"/[A-Za-z0-9._~%/:@+=,!*-]{0,1023}")
_CERT_PATH = re.compile(r"/[A-Za-z0-9._/+-]{1,1023}")
_WEIGHT = re.compile(r"-?\d{1,4}")
_BALANCE_ARG = re.compile(r"url_param ([A-Za-z0-9_.-]{1,64})|hdr\(([A-Za-z0-9_-]{1,64})\)")


class LabelError(ValueError):
    """One label's value is outside its grammar; the message names the label and why."""


def _describe(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return repr(shown)


_SUSPECT = re.compile(r"[^\x20-\x7e]|[\"'`\\#$]")


def _plain(name: str, value: str, *, spaces: bool = False) -> str:
    """The value stripped, refused if it holds a character HAProxy could read as syntax."""
    for ch in value if _SUSPECT.search(value) else "":
        if ch in "\r\n":
            raise LabelError(f"{name}: value contains a newline (label values are data, never config)")
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise LabelError(f"{name}: value contains a control character {ch!r}")
        if ord(ch) > 0x7E:
            raise LabelError(f"{name}: value contains a non-ASCII character {ch!r}")
        if ch in "\"'`\\#$":
            raise LabelError(f"{name}: value contains {ch!r}, which is not allowed in this label")
    stripped = value.strip(" ")
    if not spaces and " " in stripped:
        raise LabelError(f"{name}: value {_describe(value)} must not contain spaces")
    return stripped


def _list(name: str, value: str, pattern: re.Pattern[str], what: str, sep: str = ",") -> tuple[str, ...]:
    text = _plain(name, value, spaces=True)
    items = [item.strip(" ") for item in text.split(sep)] if sep != " " else text.split()
    if not items or any(not item for item in items):
        raise LabelError(f"{name}: {_describe(value)} is not a {sep!r}-separated list of {what}")
    for item in items:
        if sep == "," and " " in item:
            raise LabelError(f"{name}: {_describe(item)} is not a {what}")
        if not pattern.fullmatch(item):
            raise LabelError(f"{name}: {_describe(item)} is not a {what}")
    return tuple(dict.fromkeys(items))


def parse_groups(name: str, value: str) -> tuple[str, ...]:
    return _list(name, value, _TOKEN, "group name ([A-Za-z0-9_.-])")


def parse_vhosts(name: str, value: str) -> tuple[str, ...]:
    hosts = _list(name, value, _HOSTNAME, "host name")
    for host in hosts:
        if len(host) > 253:
            raise LabelError(f"{name}: host name {_describe(host)} is longer than 253 characters")
    return tuple(dict.fromkeys(h.lower() for h in hosts))


def parse_paths(name: str, value: str) -> tuple[str, ...]:
    return _list(name, value, _PATH, "path prefix starting with '/' (URL characters only)", sep=" ")


def parse_port(name: str, value: str) -> int:
    text = _plain(name, value)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise LabelError(f"{name}: {_describe(value)} is not a port number 1..65535")
    return int(text)


def parse_mode(name: str, value: str) -> str:
    text = _plain(name, value).lower()
    if text not in ("tcp", "http"):
        raise LabelError(f"{name}: {_describe(value)} is not 'tcp' or 'http'")
    return text


def parse_balance(name: str, value: str) -> str:
    text = _plain(name, value, spaces=True)
    if text in BALANCE_PLAIN or _BALANCE_ARG.fullmatch(text):
        return text
    raise LabelError(f"{name}: {_describe(value)} is not one of {', '.join(sorted(BALANCE_PLAIN))}, "
                     "'url_param <name>' or 'hdr(<name>)'")


def parse_bool(name: str, value: str) -> bool:
    text = _plain(name, value).lower()
    if text not in ("true", "false"):
        raise LabelError(f"{name}: {_describe(value)} is not 'true' or 'false'")
    return text == "true"


def parse_bind_addr(name: str, value: str) -> str:
    text = _plain(name, value)
    if text == "*":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise LabelError(f"{name}: {_describe(value)} is not an IP address literal or '*'") from None


def parse_bind_options(name: str, value: str) -> tuple[str, ...]:
    words = _plain(name, value, spaces=True).split()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in BIND_FLAGS:
            out.append(word)
            i += 1
        elif word in BIND_VALUES:
            if i + 1 >= len(words) or not BIND_VALUES[word].fullmatch(words[i + 1]):
                raise LabelError(f"{name}: bind option '{word}' needs a valid value")
            out += [word, words[i + 1]]
            i += 2
        else:
            raise LabelError(f"{name}: bind option {_describe(word)} is not allowed "
                             f"(allowed: {', '.join(sorted(BIND_FLAGS | set(BIND_VALUES)))})")
    return tuple(out)


def parse_weight(name: str, value: str) -> int:
    text = _plain(name, value)
    if not _WEIGHT.fullmatch(text) or not -1000 <= int(text) <= 1000:
        raise LabelError(f"{name}: {_describe(value)} is not an integer -1000..1000")
    return int(text)


def parse_certs(name: str, value: str) -> tuple[str, ...]:
    certs = _list(name, value, _CERT_PATH, "absolute path to a PEM file")
    for cert in certs:
        if "/../" in cert + "/" or cert.endswith("/"):
            raise LabelError(f"{name}: {_describe(cert)} is not a plain absolute file path")
    return certs


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


@functools.lru_cache(maxsize=128)
def _default_port_labels(index: int) -> PortLabels:
    return PortLabels(index=index)


_PARSERS = {
    "GROUP": ("groups", parse_groups), "VHOST": ("vhosts", parse_vhosts), "PATH": ("paths", parse_paths),
    "PORT": ("port", parse_port), "MODE": ("mode", parse_mode), "BALANCE": ("balance", parse_balance),
    "STICKY": ("sticky", parse_bool), "REDIRECT_TO_HTTPS": ("redirect_to_https", parse_bool),
    "BIND_ADDR": ("bind_addr", parse_bind_addr), "BIND_OPTIONS": ("bind_options", parse_bind_options),
    "ENABLED": ("enabled", parse_bool), "BACKEND_WEIGHT": ("backend_weight", parse_weight),
    "SSL_CERT": ("ssl_certs", parse_certs),
}


@dataclass(frozen=True, slots=True)
class AppLabels:
    """Every HAPROXY_* label of one app, parsed, plus what was wrong or ignored."""
    groups: tuple[str, ...] = ()
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
        attr, parser = _PARSERS[name]
        try:
            fields.setdefault(index, {})[attr] = parser(key, value)
        except LabelError as exc:
            errors.append(str(exc))
            group_error = group_error or name == "GROUP"
    ports = MappingProxyType({i: PortLabels(index=i, **kw) for i, kw in sorted(fields.items())})  # type: ignore[arg-type]
    return AppLabels(groups=groups, ports=ports, errors=tuple(errors), warnings=tuple(warnings),
                     group_error=group_error)


def group_matches(app_groups: tuple[str, ...], bridge_groups: frozenset[str]) -> bool:
    """marathon-lb's rule: `*` in the bridge's groups matches every app, even one without a group."""
    return "*" in bridge_groups or bool(bridge_groups.intersection(app_groups))


def bridge_groups(group: str) -> frozenset[str]:
    """`--group` value: `*` or a comma list."""
    return frozenset(g.strip() for g in group.split(",") if g.strip()) or frozenset({"*"})
