"""The metrics package's exception tree.

    MetricsError                  anything the metrics layer raises on purpose
    ├── LineProtocolError         a point that cannot be encoded, or a line that cannot be parsed
    ├── MetricsQueryError         a source could not answer: unreachable, HTTP error, garbage reply
    └── MetricsConfigError        contradictory or incomplete options (e.g. v1 and v2 flags at once)

Third-party errors (aiohttp, influxdb_client) are translated into these at the boundary, so
the autoscaler catches one type and records the message as the reason for holding an app.
"""

from __future__ import annotations


class MetricsError(Exception):
    """Base of every error raised on purpose by the metrics package."""


class LineProtocolError(MetricsError, ValueError):
    """A point that cannot be written as line protocol, or a line that is not line protocol."""


class MetricsQueryError(MetricsError):
    """A source could not produce the series asked for (unreachable, error status, garbage)."""


class MetricsConfigError(MetricsError, ValueError):
    """Options that cannot describe one metrics backend."""
