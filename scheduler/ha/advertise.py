"""The address other instances reach this one at: `--hostname` with the `--listen` port.

Pure (the machine's hostname is passed in): followers proxy to the leader at this address and it
is what `X-Marathon-Leader`, `GET /v2/leader` and the election node carry, so it must name a host
the other instances can connect to, which a wildcard listen address (`0.0.0.0`) is not.
"""

from __future__ import annotations

from collections.abc import Callable

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
"""Listen hosts that mean "every interface": no other machine can connect to them by that name."""


def advertised_address(listen_host: str, port: int, hostname: str | None,
                       machine_hostname: Callable[[], str]) -> str:
    """`host:port` as others reach this instance.

    `hostname` (the `--hostname` flag) wins; else the listen host, unless it is a wildcard, then
    `machine_hostname()` (`socket.gethostname` in `pacer serve`). An IPv6 literal is bracketed so
    the result is usable in a URL (`http://[::1]:8080`).
    """
    host = (hostname or "").strip()
    if not host:
        host = machine_hostname() if listen_host in WILDCARD_HOSTS else listen_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"
