"""Turning change notices into refreshes: gathered, one at a time, spaced.

Notices (events, polls, resyncs, the status API, a deferred reload) are gathered for 20 ms,
and refreshes start at most every 100 ms (`debounce_seconds` if smaller), so a burst of events
makes few fetches of `/v2/apps`. Reloads are what `debounce_seconds` spaces out (the applier
defers them); server changes are applied at once, because when Pacer reports a new instance
healthy it kills an old one right away, and every moment the new server is missing from
HAProxy is a window for failed requests.

This loop waits for notices rather than for a period, so it is not a `run_periodically` loop;
like one, it outlives any single failed refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pacer_client import ClientError

from .errors import BridgeError
from .state import BridgeState

log = logging.getLogger(__name__)

Refresh = Callable[[bool, list[str]], Awaitable[object]]     # (full, reasons)


class RefreshLoop:
    def __init__(self, refresh: Refresh, state: BridgeState, debounce_seconds: float) -> None:
        self._refresh = refresh
        self._state = state
        self._gather = min(0.02, debounce_seconds)
        self._spacing = min(0.1, debounce_seconds)
        self._wake = asyncio.Event()
        self._reasons: list[str] = []
        self._full = False
        self._later: asyncio.TimerHandle | None = None

    def request(self, reason: str, full: bool = False) -> None:
        """Ask for a refresh (a full one forgets the apps left out and the held config)."""
        self._reasons.append(reason)
        self._full = self._full or full
        self._wake.set()

    @property
    def pending(self) -> bool:
        """A refresh is asked for, now or later (a reload deferred by the debounce): what the
        bridge runs is not yet what it was last told."""
        return self._wake.is_set() or (self._later is not None and not self._later.cancelled())

    def request_later(self, delay: float, reason: str) -> None:
        """Ask for a refresh in `delay` seconds, unless one is already asked for later."""
        if self._later is not None and not self._later.cancelled():
            return

        def fire() -> None:
            self._later = None
            self.request(reason)

        self._later = asyncio.get_running_loop().call_later(delay, fire)

    def cancel_later(self) -> None:
        if self._later is not None:
            self._later.cancel()

    async def run(self) -> None:
        last_start = -1e9
        while True:
            await self._wake.wait()
            await asyncio.sleep(max(self._gather, last_start + self._spacing - time.monotonic()))
            self._wake.clear()
            last_start = time.monotonic()
            reasons, self._reasons = self._reasons, []
            full, self._full = self._full, False
            await self._guarded(full, reasons)

    async def _guarded(self, full: bool, reasons: list[str]) -> None:
        try:
            await self._refresh(full, reasons)
        except ClientError as exc:
            self._state.counters.fetch_errors += 1
            self._state.last_error = str(exc)
            log.warning("cannot read apps: %s", exc)
        except BridgeError as exc:
            self._state.last_error = str(exc)
            log.error("%s", exc)
        except Exception as exc:  # the loop must outlive any single bad refresh
            self._state.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("refresh failed")
