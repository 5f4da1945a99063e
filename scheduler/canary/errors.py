"""The errors of ``scheduler.canary``: one tree, rooted at :class:`CanaryError`::

    CanaryError                 root: anything this package refuses
    ├── InvalidCounts           negative server counts or a weight outside 0..100 (a caller bug)
    └── StateMismatch           a CanaryState advanced with a spec it does not belong to
                                (its step index lies past the spec's steps)

Expected outcomes are *not* errors: a failing or inconclusive analysis is a ``Verdict``, an
abort is an ``Abort`` action. Exceptions here mean the caller handed over something that
cannot be judged at all, so the wiring can catch ``CanaryError`` at its edge and report it.
A ``show stat`` answer that is not HAProxy's CSV raises ``metrics.haproxy_stats.StatsFormatError``
(a ``MetricsError``; the parser is shared with the HAProxy bridge), re-exported here.
"""

from __future__ import annotations

__all__ = ["CanaryError", "InvalidCounts", "StateMismatch"]


class CanaryError(Exception):
    """Root of the package's errors."""


class InvalidCounts(CanaryError, ValueError):
    """Server counts or a weight that no real app can have."""


class StateMismatch(CanaryError, ValueError):
    """A canary state that does not fit the spec it is advanced with."""
