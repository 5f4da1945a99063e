"""The Mesos backend's exceptions: one hierarchy, so callers catch `MesosError` and nothing else.

Which errors end a subscription (the connection reconnects) and which fail one call or one
launch is decided by the type, not by parsing messages.
"""

from __future__ import annotations


class MesosError(Exception):
    """Anything the Mesos backend could not do."""


class MasterUnreachable(MesosError):
    """No configured master answered (refused, timed out, 503, or redirects without end)."""


class CallRejected(MesosError):
    """The master answered a call with an error status; it did nothing with it."""

    def __init__(self, call_type: str, status: int, body: str) -> None:
        super().__init__(f"{call_type} refused by the master ({status}): {body.strip()[:500]}")
        self.call_type = call_type
        self.status = status
        self.body = body


class SubscriptionLost(MesosError):
    """The event stream ended: closed by the master, undecodable, or silent for too long."""


class SubscriptionRefused(SubscriptionLost):
    """The master sent an ERROR event (a refused SUBSCRIBE, a failover to another scheduler)."""


class HeartbeatsMissed(SubscriptionLost):
    """No HEARTBEAT arrived within the allowed number of heartbeat intervals."""


class NotSubscribed(MesosError):
    """A call was attempted while no subscription is live, or for a subscription that ended."""


class LaunchAborted(MesosError):
    """A launch did not reach TASK_RUNNING: its offer vanished, or the task ended first."""
