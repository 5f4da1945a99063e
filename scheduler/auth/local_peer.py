"""Is this TCP connection one this very process opened? (the in-process services' way in)

`pacer serve` runs the autoscaler and the HAProxy bridge in its own process; they reach the
API over HTTP like any client, and must not need a password written somewhere. With
authentication or TLS on, they talk to a private plain-HTTP listener on loopback that answers
only connections whose client socket belongs to this process: the kernel's socket table
(``/proc/net/tcp``, ``tcp6``) gives the client socket's inode, and ``/proc/self/fd`` says
whether this process holds it. Another local user cannot open a socket in this process, so
the check cannot be talked around, and no secret exists to leak.

`find_inode` is pure (parsing the table); `is_own_connection` reads ``/proc``. Where ``/proc``
is missing the answer is False: the services are then refused like any stranger.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

_TABLES = (Path("/proc/self/net/tcp"), Path("/proc/self/net/tcp6"))


def _hex_endpoint(host: str, port: int) -> str:
    """The kernel's ``ADDR:PORT`` hex form: IPv4 as a little-endian word, IPv6 as four of them."""
    addr = ipaddress.ip_address(host.split("%")[0])
    packed = addr.packed
    words = [packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4)]
    return f"{''.join(words)}:{port:04X}"


def find_inode(table: str, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the socket bound to ``local`` and connected to ``remote`` in a
    ``/proc/net/tcp``-format table, or None."""
    want_local, want_remote = _hex_endpoint(*local), _hex_endpoint(*remote)
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 10 and fields[1] == want_local and fields[2] == want_remote:
            return int(fields[9])
    return None


def _own_socket_inodes() -> set[int]:
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def is_own_connection(server_end: tuple[str, int], client_end: tuple[str, int]) -> bool:
    """Whether the client end of a connection accepted at ``server_end`` is a socket of this process."""
    try:
        if not ipaddress.ip_address(client_end[0].split("%")[0]).is_loopback:
            return False
        inode = None
        for table in _TABLES:
            try:
                inode = find_inode(table.read_text(), client_end, server_end)
            except (OSError, ValueError):
                continue
            if inode is not None:
                break
        return inode is not None and inode != 0 and inode in _own_socket_inodes()
    except (OSError, ValueError):
        return False
