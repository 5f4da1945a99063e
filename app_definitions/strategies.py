"""How an app is replaced, what happens to unreachable instances, and version stamps.

``UpgradeStrategy`` carries Marathon's two fractions plus two Pacer
extensions that answer Marathon's worst pain point (deployments stuck
forever): ``progressDeadlineSeconds`` and ``autoRollback``.

``unreachableStrategy`` is either an object or the string ``"disabled"``; both
are one :class:`UnreachableStrategy` type here (``is_disabled`` tells them
apart) so callers never branch on ``str``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, PrivateAttr, WithJsonSchema, model_serializer

from ._base import Fraction, Model, NonNegInt

__all__ = [
    "KillSelection",
    "Residency",
    "Timestamp",
    "UnreachableStrategy",
    "UnreachableStrategyField",
    "UpgradeStrategy",
    "VersionInfo",
    "is_timestamp",
]

KillSelection = Literal["YOUNGEST_FIRST", "OLDEST_FIRST"]


def is_timestamp(value: object) -> bool:
    """True for an ISO-8601 date-time string such as ``2024-05-01T10:00:00.000Z``."""
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_timestamp(value: str) -> str:
    if not is_timestamp(value):
        raise ValueError("must be an ISO-8601 date-time")
    return value


Timestamp = Annotated[str, AfterValidator(_check_timestamp)]


class UpgradeStrategy(Model):
    """Restart math bounds (fractions of ``instances``) plus Pacer's deadline and rollback.

    ``progress_deadline_seconds``: a deployment step that makes no progress for
    this long fails (0 = wait forever, Marathon's behaviour). ``auto_rollback``:
    a failed deployment is rolled back to the previous version automatically.
    """

    minimum_health_capacity: Fraction = 1.0
    maximum_over_capacity: Fraction = 1.0
    progress_deadline_seconds: NonNegInt = 600
    auto_rollback: bool = False


class UnreachableStrategy(Model):
    """When an unreachable instance is replaced (inactive) and forgotten (expunged).

    A ``"disabled"`` strategy (required for resident apps) never replaces; see
    :meth:`disabled`.
    """

    inactive_after_seconds: NonNegInt = 300
    expunge_after_seconds: NonNegInt = 600
    _disabled: bool = PrivateAttr(default=False)

    @classmethod
    def disabled(cls) -> UnreachableStrategy:
        """The ``"disabled"`` strategy."""
        strategy = cls(inactive_after_seconds=0, expunge_after_seconds=0)
        strategy._disabled = True
        return strategy

    @property
    def is_disabled(self) -> bool:
        return self._disabled

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        return "disabled" if self._disabled else handler(self)

    def __repr__(self) -> str:
        return "UnreachableStrategy.disabled()" if self._disabled else super().__repr__()


def _disabled_to_model(value: Any) -> Any:
    return UnreachableStrategy.disabled() if value == "disabled" else value


UnreachableStrategyField = Annotated[
    UnreachableStrategy,
    BeforeValidator(_disabled_to_model),
    WithJsonSchema(
        {
            "oneOf": [
                {"const": "disabled"},
                {
                    "type": "object",
                    "properties": {
                        "inactiveAfterSeconds": {"type": "integer", "minimum": 0, "default": 300},
                        "expungeAfterSeconds": {"type": "integer", "minimum": 0, "default": 600},
                    },
                },
            ],
            "default": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
        }
    ),
]


class Residency(Model):
    """Deprecated in Marathon and without effect; kept so definitions that carry it round-trip."""

    relaunch_escalation_timeout_seconds: NonNegInt = 3600
    task_lost_behavior: Literal["WAIT_FOREVER", "RELAUNCH_AFTER_TIMEOUT"] = "WAIT_FOREVER"


class VersionInfo(Model):
    """Server-set stamps: a scale changes ``lastScalingAt``, a config change both."""

    last_scaling_at: Timestamp
    last_config_change_at: Timestamp
