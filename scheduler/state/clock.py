"""Time as the scheduler sees it: an injected `Clock`, so every decision takes `now` and
scenario tests drive time by hand instead of sleeping."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


def iso_timestamp(ts: float) -> str:
    """Marathon's version format: ISO-8601 in UTC with milliseconds, e.g. 2015-02-26T15:57:34.593Z."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> float:
    """Inverse of iso_timestamp; accepts any ISO-8601 form Python understands."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class VersionClock:
    """Hands out strictly increasing version timestamps.

    Two updates within the same millisecond must still get distinct versions, otherwise the
    version history (and rollback by version) would silently merge them.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0.0

    def next(self) -> str:
        ts = max(self._clock.now(), self._last + 0.001)
        self._last = ts
        return iso_timestamp(ts)
