"""The client of Pacer's (and Marathon's) /v2 API.

The `pacer deploy` command, the autoscaler and the HAProxy bridge reach the scheduler only
through this package, exactly as marathon-autoscale and marathon-lb reached Marathon, so they
run in-process or as separate processes unchanged.
"""

from .access import NO_ACCESS, Access, AccessError, access_from, access_from_args, add_access_arguments, redact_url
from .client import ClientError, PacerClient, session_for

__all__ = ["NO_ACCESS", "Access", "AccessError", "ClientError", "PacerClient", "access_from", "access_from_args",
           "add_access_arguments", "redact_url", "session_for"]
