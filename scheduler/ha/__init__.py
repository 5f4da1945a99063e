"""High availability: which of several `pacer serve` leads, as the rest of Pacer sees it.

ZooKeeper holds the election (`scheduler.ha.election`); the API (`scheduler.api.leadership`)
answers or proxies by what `Leadership` says; the scheduling loop and the Mesos subscription run
only while `is_leader()`. Without `--zk`, `SoleLeader`: this instance always leads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class Leadership(Protocol):
    """The election as seen from one instance."""

    @property
    def address(self) -> str:
        """This instance's own `host:port`, as others reach it (`--hostname` and the `--listen` port)."""

    def is_leader(self) -> bool:
        """True only while this instance holds the leadership (false at once on session loss)."""

    def leader_address(self) -> str | None:
        """The leader's `host:port` (this one's own when leading), None while there is none."""

    async def abdicate(self) -> None:
        """Give the leadership up (`DELETE /v2/leader`); another instance (or this one) is elected."""

    def on_change(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Call `callback(is_leader)` each time this instance gains or loses the leadership."""


class SoleLeader:
    """No election: the one instance leads, always (the embedded default)."""

    def __init__(self, address: str) -> None:
        self._address = address

    @property
    def address(self) -> str:
        return self._address

    def is_leader(self) -> bool:
        return True

    def leader_address(self) -> str | None:
        return self._address

    async def abdicate(self) -> None:
        """Nothing to give up to: Marathon without --ha answers the same way (no-op)."""

    def on_change(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Leadership never changes."""
