"""Label values: the grammar each `HAPROXY_*` value must fit (pure).

Values are data, never config. Each parser takes the label's name (for the message) and its
text, and returns the parsed value or raises `LabelError` naming the label and why. labels.py
maps label names to these parsers; the split keeps the vocabulary readable apart from the
character-level rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

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

_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*", re.IGNORECASE)
_PATH = re.compile(r"/[A-Za-z0-9._~%/:@+=,!*-]{0,1023}")
_CERT_PATH = re.compile(r"/[A-Za-z0-9._/+-]{1,1023}")
_WEIGHT = re.compile(r"-?\d{1,4}")
_BALANCE_ARG = re.compile(r"url_param ([A-Za-z0-9_.-]{1,64})|hdr\(([A-Za-z0-9_-]{1,64})\)")
_DEPLOYMENT_GROUP = re.compile(r"/?[A-Za-z0-9_.-]{1,64}(?:/[A-Za-z0-9_.-]{1,64}){0,7}")
_REALM = re.compile(r"[A-Za-z0-9_.,@()/ -]{1,64}")
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
#: crypt(3) as HAProxy's libc reads it: $id$[params$]salt$hash — never a clear-text password
_CRYPT = re.compile(r"\$[0-9a-z]{1,6}\$[A-Za-z0-9./$=,]{8,512}")


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


def parse_path(name: str, value: str) -> str:
    """One path prefix; a trailing '/' is dropped ('/' itself stays)."""
    text = _plain(name, value)
    if not _PATH.fullmatch(text):
        raise LabelError(f"{name}: {_describe(value)} is not a path starting with '/' (URL characters only)")
    return text.rstrip("/") or "/"


def parse_networks(name: str, value: str) -> tuple[str, ...]:
    items = _plain(name, value, spaces=True).split()
    if not items:
        raise LabelError(f"{name}: empty; list the IP addresses or networks allowed in")
    out = []
    for item in items:
        try:
            net = ipaddress.ip_network(item, strict=False)
            out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
        except ValueError:
            raise LabelError(f"{name}: {_describe(item)} is not an IP address or network") from None
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class BasicAuth:
    realm: str
    user: str
    password_hash: str


def parse_auth(name: str, value: str) -> BasicAuth:
    """marathon-lb's `realm:user:password-hash`. The hash holds '$', which no other label may."""
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) >= 0x7F or ch in "\"'`\\#":
            raise LabelError(f"{name}: value contains {ch!r}, which is not allowed in this label")
    parts = value.strip(" ").split(":")
    if len(parts) != 3:
        raise LabelError(f"{name}: not realm:user:password-hash ({len(parts) - 1} ':' found, 2 expected)")
    realm, user, password = (p.strip(" ") for p in parts)
    if not _REALM.fullmatch(realm):
        raise LabelError(f"{name}: realm {_describe(realm)} is not 1-64 of [A-Za-z0-9_.,@()/ -]")
    if not _USER.fullmatch(user):
        raise LabelError(f"{name}: user {_describe(user)} is not 1-64 of [A-Za-z0-9_.@-]")
    if not _CRYPT.fullmatch(password):
        raise LabelError(f"{name}: the password must be a crypt(3) hash such as $6$salt$hash "
                         "(mkpasswd -m sha-512, or openssl passwd -6), never the password itself")
    return BasicAuth(realm, user, password)


def parse_deployment_group(name: str, value: str) -> str:
    """A deployment group: one name, or a path of names as marathon-lb's app ids; '/shop' and
    'shop' are the same group (marathon-lb puts the leading '/' on itself)."""
    text = _plain(name, value)
    if not _DEPLOYMENT_GROUP.fullmatch(text):
        raise LabelError(f"{name}: {_describe(value)} is not a group name ([A-Za-z0-9_.-], '/' between parts)")
    return text.lstrip("/")
