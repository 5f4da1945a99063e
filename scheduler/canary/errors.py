"""The errors of ``scheduler.canary``: one tree, rooted at :class:`CanaryError`::

    CanaryError                 root: anything this package refuses
    ├── StatsFormatError        a ``show stat`` answer that is not HAProxy's CSV (no header,
    │                           no pxname/svname column, a counter that is not a number)
    ├── InvalidCounts           negative server counts or a weight outside 0..100 (a caller bug)
    └── StateMismatch           a CanaryState advanced with a spec it does not belong to
                                (its step index lies past the spec's steps)

Expected outcomes are *not* errors: a failing or inconclusive analysis is a ``Verdict``, an
abort is an ``Abort`` action. Exceptions here mean the caller handed over something that
cannot be judged at all, so the wiring can catch ``CanaryError`` at its edge and report it.
"""

from __future__ import annotations

__all__ = ["CanaryError", "InvalidCounts", "StateMismatch", "StatsFormatError"]


class CanaryError(Exception):
    """Root of the package's errors."""


class StatsFormatError(CanaryError, ValueError):
    """The text is not the CSV HAProxy's ``show stat`` answers with."""


class InvalidCounts(CanaryError, ValueError):
    """Server counts or a weight that no real app can have."""


class StateMismatch(CanaryError, ValueError):
    """A canary state that does not fit the spec it is advanced with."""
