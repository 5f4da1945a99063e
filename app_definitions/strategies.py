"""How an app is replaced, what happens to unreachable instances, and version stamps.

``UpgradeStrategy`` carries Marathon's two fractions plus two Pacer
extensions that answer Marathon's worst pain point (deployments stuck
forever): ``progressDeadlineSeconds`` and ``autoRollback``. They are
serialised only when set to something other than their defaults, so the JSON
of an app that does not use them is Marathon's.

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
    "PACER_UPGRADE_FIELDS",
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


PACER_UPGRADE_FIELDS: tuple[str, ...] = ("progress_deadline_seconds", "auto_rollback")
"""``UpgradeStrategy`` fields Marathon does not have; serialised only when not at their default."""


def _without_defaults(model: Model, data: Any, names: tuple[str, ...]) -> Any:
    """``data`` (``model`` serialised) without the fields of ``names`` that hold their default.

    Works for both key spellings, since ``model_dump`` gives Python names and
    ``model_dump(by_alias=True)`` (the JSON form) gives camelCase ones.
    """
    if not isinstance(data, dict):
        return data
    fields = type(model).model_fields
    for name in names:
        if getattr(model, name) == fields[name].default:
            data.pop(name, None)
            data.pop(fields[name].alias or name, None)
    return data


class UpgradeStrategy(Model):
    """Restart math bounds (fractions of ``instances``) plus Pacer's deadline and rollback.

    ``progress_deadline_seconds``: a deployment step that makes no progress for
    this long fails (0 = wait forever, Marathon's behaviour). ``auto_rollback``:
    a failed deployment is rolled back to the previous version automatically.

    Serialised, the two extensions appear only when they differ from their
    defaults: Marathon's clients build strict objects from this block
    (marathon-python raises on a key it does not know), so an app that does not
    use the extensions must look exactly like Marathon's. Reading the JSON back
    restores the defaults, so the round trip is exact either way.
    """

    minimum_health_capacity: Fraction = 1.0
    maximum_over_capacity: Fraction = 1.0
    progress_deadline_seconds: NonNegInt = 600
    auto_rollback: bool = False

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        return _without_defaults(self, handler(self), PACER_UPGRADE_FIELDS)


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
