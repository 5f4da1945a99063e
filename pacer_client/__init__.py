"""The client of Pacer's (and Marathon's) /v2 API.

The `pacer deploy` command, the autoscaler and the HAProxy bridge reach the scheduler only
through this package, exactly as marathon-autoscale and marathon-lb reached Marathon, so they
run in-process or as separate processes unchanged.
"""

from .client import ClientError, PacerClient

__all__ = ["ClientError", "PacerClient"]
