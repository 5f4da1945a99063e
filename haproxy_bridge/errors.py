"""The bridge's exception tree (drawn in the package docstring)."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of everything the bridge raises on purpose."""


class HaproxyError(BridgeError):
    """HAProxy failed to start, answer, or reload."""


class SocketError(HaproxyError):
    """A master CLI or Runtime API socket could not be reached or answered badly."""


class ConfigRejected(BridgeError):
    """No valid configuration could be produced; the last good one stays loaded."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output
