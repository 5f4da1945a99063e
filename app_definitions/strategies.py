"""How an app is replaced, what happens to unreachable instances, and version stamps.

``UpgradeStrategy`` carries Marathon's two fractions plus two Pacer
extensions that answer Marathon's worst pain point (deployments stuck
forever): ``progressDeadlineSeconds`` and ``autoRollback``. They are
serialised only when set to something other than their defaults, so the JSON
of an app that does not use them is Marathon's.

``upgradeStrategy.canary`` (a Pacer extension, absent from the JSON when unset)
describes a canary or blue/green release: how many new-version instances
start beside the old ones, the steps (``setWeight``/``pause``) that move
traffic to them through HAProxy, and the thresholds the analysis judges each
interval by. The models here only check shapes and per-field bounds; the rules
that span fields (one kind per step, increasing weights, at least one
threshold) live in :func:`canary_violations` so each violation names its exact
path, as Marathon's validators do. ``scheduler.canary`` runs the steps.

``unreachableStrategy`` is either an object or the string ``"disabled"``; both
are one :class:`UnreachableStrategy` type here (``is_disabled`` tells them
apart) so callers never branch on ``str``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, WithJsonSchema, model_serializer

from ._base import Fraction, Int, Model, NonNegInt, PositiveInt
from .errors import Violation

__all__ = [
    "PACER_UPGRADE_FIELDS",
    "Canary",
    "CanaryAnalysis",
    "CanaryPause",
    "CanaryStep",
    "canary_violations",
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


PACER_UPGRADE_FIELDS: tuple[str, ...] = ("progress_deadline_seconds", "auto_rollback", "canary")
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


def _without_none(data: Any) -> Any:
    """``data`` without None-valued members: optional canary fields are absent, never ``null``."""
    if isinstance(data, dict):
        for key in [k for k, v in data.items() if v is None]:
            del data[key]
    return data


class _OmitNoneModel(Model):
    """A model whose unset optional fields are left out of its JSON whatever the caller asks.

    The canary block is new to clients; ``{"setWeight": 10, "pause": null}`` would read as a
    step of two kinds, so the serialised form never carries ``null``, even through a plain
    ``model_dump()`` (the store, the event bus) rather than ``AppDefinition.to_json``.
    """

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        return _without_none(handler(self))


class CanaryPause(_OmitNoneModel):
    """``{"seconds": N}`` waits N seconds (while analysis runs); ``{}`` waits for a person."""

    seconds: NonNegInt | None = None

    @property
    def is_manual(self) -> bool:
        """True for ``{}``: only ``POST /v2/deployments/{id}/promote`` ends this pause."""
        return self.seconds is None


class CanaryStep(_OmitNoneModel):
    """One step: ``{"setWeight": 0..100}`` or ``{"pause": {...}}`` (exactly one, see the rules).

    One model with two optional members rather than a union of two models, so a bad value is
    reported at ``/upgradeStrategy/canary/steps(2)/setWeight`` and not once per union member.
    """

    set_weight: Annotated[Int, Field(ge=0, le=100)] | None = None
    pause: CanaryPause | None = None


Ratio = Annotated[float, Field(gt=0.0)]


class CanaryAnalysis(_OmitNoneModel):
    """What one analysis interval is judged by; an unset threshold is not checked.

    ``failureLimit`` failing intervals abort the release (the count is not reset by passing
    intervals, as in Flagger). ``minRequests``: an interval in which the canary served fewer
    requests is inconclusive, never a pass.
    """

    interval_seconds: PositiveInt = 60
    min_requests: NonNegInt = 50
    max_error_rate: Fraction | None = None
    max_error_rate_increase: Fraction | None = None
    max_latency_p95_ratio: Ratio | None = None
    max_cpu_ratio: Ratio | None = None
    failure_limit: PositiveInt = 1

    @property
    def thresholds(self) -> dict[str, float]:
        """The thresholds that are set, by JSON name (``maxErrorRate``: 0.02...)."""
        names = ("max_error_rate", "max_error_rate_increase", "max_latency_p95_ratio", "max_cpu_ratio")
        fields = type(self).model_fields
        return {fields[n].alias or n: getattr(self, n) for n in names if getattr(self, n) is not None}


class Canary(_OmitNoneModel):
    """A canary (or, with ``blueGreen``, a blue/green) release of every change to the app.

    ``instances``: new-version instances started beside the old ones before any traffic
    moves (blue/green starts a full set and ignores it). The steps run in order; after the
    last one the rest of the app rolls under ``minimumHealthCapacity``/``maximumOverCapacity``
    (blue/green: traffic switches to the new set in one step and the old set is drained).
    """

    instances: PositiveInt = 1
    blue_green: bool = False
    steps: list[CanaryStep] = Field(default_factory=list)
    analysis: CanaryAnalysis | None = None


def canary_violations(canary: Canary | None, prefix: str = "/upgradeStrategy/canary") -> Iterator[Violation]:
    """The rules of a canary block that span fields, each at the path it concerns.

    * each step is exactly one of ``setWeight`` and ``pause``;
    * ``setWeight`` strictly increases from step to step (traffic only ever moves towards
      the new version; going back is what an abort does);
    * an ``analysis`` sets at least one threshold, and has a timed or manual ``pause`` to
      run in (analysis only runs while a pause waits).
    """
    if canary is None:
        return
    last: tuple[int, int] | None = None
    for index, step in enumerate(canary.steps):
        path = f"{prefix}/steps({index})"
        if (step.set_weight is None) == (step.pause is None):
            yield Violation(path, "must have exactly one of setWeight or pause")
        if step.set_weight is not None:
            if last is not None and step.set_weight <= last[1]:
                yield Violation(
                    f"{path}/setWeight",
                    f"got {step.set_weight}, expected more than {last[1]} (the setWeight of steps({last[0]}))",
                )
            last = (index, step.set_weight)
    analysis = canary.analysis
    if analysis is not None:
        if not analysis.thresholds:
            yield Violation(
                f"{prefix}/analysis",
                "must set at least one of maxErrorRate, maxErrorRateIncrease, maxLatencyP95Ratio, maxCpuRatio",
            )
        if not any(step.pause is not None for step in canary.steps):
            yield Violation(f"{prefix}/analysis", "analysis runs during pause steps, but steps has no pause")


class UpgradeStrategy(Model):
    """Restart math bounds (fractions of ``instances``) plus Pacer's deadline and rollback.

    ``progress_deadline_seconds``: a deployment step that makes no progress for
    this long fails (0 = wait forever, Marathon's behaviour). ``auto_rollback``:
    a failed deployment is rolled back to the previous version automatically.

    ``canary``: a canary or blue/green release (see :class:`Canary`), None when unset.

    Serialised, the extensions appear only when they differ from their
    defaults: Marathon's clients build strict objects from this block
    (marathon-python raises on a key it does not know), so an app that does not
    use the extensions must look exactly like Marathon's. Reading the JSON back
    restores the defaults, so the round trip is exact either way.
    """

    minimum_health_capacity: Fraction = 1.0
    maximum_over_capacity: Fraction = 1.0
    progress_deadline_seconds: NonNegInt = 600
    auto_rollback: bool = False
    canary: Canary | None = None

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
