"""Parsing `--zk zk://[user:password@]host1:2181,host2:2181/path`, Marathon's form.

Pure: a string in, a `ZkUrl` (hosts, chroot path, digest credentials) out, or `InvalidOption`
naming `--zk` and saying what is wrong. Kept apart from the client so that `pacer serve` can
refuse a bad URL before it touches the network, and so the parsing is exhaustively tested.

Rules (Marathon's, made explicit): the scheme is `zk://`; at least one `host[:port]` (port
1-65535, 2181 when left out; IPv6 hosts in brackets); a path of at least one segment, without
empty, `.` or `..` segments (ZooKeeper refuses those) and without a trailing `/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler.errors import InvalidOption

DEFAULT_PORT = 2181
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


@dataclass(frozen=True)
class ZkUrl:
    """A parsed `--zk` URL."""

    hosts: tuple[tuple[str, int], ...]
    path: str                                   # the chroot, e.g. "/pacer"
    credentials: tuple[str, str] | None = None  # digest (user, password)

    @property
    def hosts_string(self) -> str:
        """kazoo's `hosts` argument: `h1:2181,h2:2181` (IPv6 hosts keep their brackets)."""
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)

    def redacted(self) -> str:
        """The URL for logs and error messages: the password never shows."""
        user = f"{self.credentials[0]}:***@" if self.credentials else ""
        return f"zk://{user}{self.hosts_string}{self.path}"


class _Refused(Exception):
    """Why the URL cannot be parsed; `parse_zk_url` names the flag and shows the URL."""


def _host(part: str) -> tuple[str, int]:
    if not part:
        raise _Refused("an empty host in the host list")
    m = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::([^:]*))?", part)
    if m is None:
        raise _Refused(f"host {part!r} is not host[:port]")
    host, port_text = m.group(1), m.group(2)
    v6 = _IPV6.fullmatch(host)
    if v6:
        host = v6.group(1)
    elif not _HOSTNAME.fullmatch(host):
        raise _Refused(f"host {host!r} is not a host name or address")
    if port_text is None:
        return host, DEFAULT_PORT
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise _Refused(f"port {port_text!r} of host {host!r} is not a number from 1 to 65535")
    return host, int(port_text)


def parse_zk_url(url: str, flag: str = "--zk") -> ZkUrl:
    """Parse a `--zk` URL (or another flag's: `--master zk://…`); raises `InvalidOption`
    naming the flag and the problem (the password hidden)."""
    try:
        return _parse(url)
    except _Refused as exc:
        shown = re.sub(r"(zk://[^:@/]*:)[^@/]*@", r"\1***@", url)
        raise InvalidOption(f"{flag} {shown!r} is not a ZooKeeper URL: {exc} "
                            "(expected zk://[user:password@]host1:2181,host2:2181/path)") from None


def _parse(url: str) -> ZkUrl:
    if not url.startswith("zk://"):
        raise _Refused("it must start with zk://")
    rest = url[len("zk://"):]
    slash = rest.find("/")
    if slash < 0:
        raise _Refused("it names no path (the ZooKeeper node under which Pacer keeps its state)")
    authority, path = rest[:slash], rest[slash:]
    credentials: tuple[str, str] | None = None
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        user, sep, password = userinfo.partition(":")
        if not sep or not user or not password:
            raise _Refused("credentials must be user:password@")
        credentials = (user, password)
    if not authority:
        raise _Refused("it names no host")
    hosts = tuple(_host(part) for part in authority.split(","))
    if path == "/" or path.endswith("/"):
        raise _Refused("the path must name a node and must not end with /")
    for segment in path[1:].split("/"):
        if segment in ("", ".", ".."):
            raise _Refused(f"the path {path!r} has an empty, '.' or '..' segment")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
            raise _Refused(f"the path {path!r} has a control character")
    if path.startswith("/zookeeper/") or path == "/zookeeper":
        raise _Refused("/zookeeper is reserved by ZooKeeper itself")
    return ZkUrl(hosts=hosts, path=path, credentials=credentials)
