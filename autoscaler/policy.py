"""Autoscaling policies: the model, and parsing it from app labels or from REST JSON. Pure.

One policy per app, in one of two modes:

* **target tracking** (``AUTOSCALE_TARGET``): keep the mean utilisation of the app's tasks
  at TARGET % of their allocation, HPA-style (``ceil(current × observed / target)`` with a
  tolerance band, stabilization windows, bounded steps);
* **threshold** (``AUTOSCALE_SCALE_UP_ABOVE`` / ``AUTOSCALE_SCALE_DOWN_BELOW``), as
  marathon-autoscale: after SCALE_UP_CYCLES consecutive cycles above the upper bound,
  ``ceil(current × MULTIPLIER)``; after SCALE_DOWN_CYCLES below the lower one,
  ``floor(current / MULTIPLIER)``; a cycle in range resets both counters.

===============================  ==================  =============================================
label                            JSON field          meaning (default)
===============================  ==================  =============================================
AUTOSCALE_ENABLED                enabled             ``true`` to act (labels: required; JSON: true)
AUTOSCALE_METRIC                 metric              ``cpu`` or ``mem`` (cpu)
AUTOSCALE_TARGET                 target              target utilisation, % of the allocation
AUTOSCALE_MIN                    min                 fewest instances, ≥ 1 (1)
AUTOSCALE_MAX                    max                 most instances (required)
AUTOSCALE_SCALE_UP_ABOVE         scaleUpAbove        threshold mode: upper bound, %
AUTOSCALE_SCALE_DOWN_BELOW       scaleDownBelow      threshold mode: lower bound, %
AUTOSCALE_SCALE_UP_CYCLES        scaleUpCycles       consecutive cycles above before scaling up (3)
AUTOSCALE_SCALE_DOWN_CYCLES      scaleDownCycles     consecutive cycles below before scaling down (5)
AUTOSCALE_MULTIPLIER             multiplier          threshold mode step factor, > 1 (1.5)
AUTOSCALE_TOLERANCE              tolerance           target mode dead band, fraction (0.1)
AUTOSCALE_STABILIZATION_UP       stabilizationUp     seconds; scale up to the lowest recommendation
                                                     of the window (0)
AUTOSCALE_STABILIZATION_DOWN     stabilizationDown   seconds; scale down to the highest
                                                     recommendation of the window (target: 300,
                                                     threshold: 0 — its cycle counts stabilize)
AUTOSCALE_WINDOW                 window              seconds of samples averaged per task; a task
                                                     with no sample this recent counts as missing (30)
AUTOSCALE_SCHEDULE               schedule            scheduled windows that raise or lower
                                                     [min, max] while active: labels hold the JSON
                                                     text of the list, REST bodies the list (none);
                                                     see ``autoscaler.schedule``
===============================  ==================  =============================================

A schedule, e.g. ``AUTOSCALE_SCHEDULE='[{"cron": "0 8 * * 1-5", "until": "0 20 * * 1-5",
"timezone": "Asia/Shanghai", "minInstances": 6, "maxInstances": 20}, {"from":
"2026-11-10T00:00:00+08:00", "to": "2026-11-12T02:00:00+08:00", "minInstances": 30}]'``,
is checked here too: its errors name the window and key (``AUTOSCALE_SCHEDULE[0].cron``).

Bad values raise ``PolicyError`` listing every violation with the field named as the caller
spelt it (label name or JSON field), which the REST API turns into a 422.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .schedule import ScheduleError, Window, check_against_policy, parse_schedule

METRICS = ("cpu", "mem")
TARGET = "target"
THRESHOLD = "threshold"

# field -> (label, JSON name)
FIELDS: dict[str, tuple[str, str]] = {
    "enabled": ("AUTOSCALE_ENABLED", "enabled"),
    "metric": ("AUTOSCALE_METRIC", "metric"),
    "target": ("AUTOSCALE_TARGET", "target"),
    "min_instances": ("AUTOSCALE_MIN", "min"),
    "max_instances": ("AUTOSCALE_MAX", "max"),
    "scale_up_above": ("AUTOSCALE_SCALE_UP_ABOVE", "scaleUpAbove"),
    "scale_down_below": ("AUTOSCALE_SCALE_DOWN_BELOW", "scaleDownBelow"),
    "scale_up_cycles": ("AUTOSCALE_SCALE_UP_CYCLES", "scaleUpCycles"),
    "scale_down_cycles": ("AUTOSCALE_SCALE_DOWN_CYCLES", "scaleDownCycles"),
    "multiplier": ("AUTOSCALE_MULTIPLIER", "multiplier"),
    "tolerance": ("AUTOSCALE_TOLERANCE", "tolerance"),
    "stabilization_up": ("AUTOSCALE_STABILIZATION_UP", "stabilizationUp"),
    "stabilization_down": ("AUTOSCALE_STABILIZATION_DOWN", "stabilizationDown"),
    "window": ("AUTOSCALE_WINDOW", "window"),
    "schedule": ("AUTOSCALE_SCHEDULE", "schedule"),
}
LABEL_PREFIX = "AUTOSCALE_"
JSON_FIELDS = frozenset({"appId", *(json for _, json in FIELDS.values())})


class PolicyError(ValueError):
    """Every violation found, as (field as the caller named it, message)."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{field}: {message}" for field, message in violations))


@dataclass(frozen=True)
class Policy:
    app_id: str
    max_instances: int
    min_instances: int = 1
    metric: str = "cpu"
    mode: str = TARGET
    target: float | None = None
    scale_up_above: float | None = None
    scale_down_below: float | None = None
    scale_up_cycles: int = 3
    scale_down_cycles: int = 5
    multiplier: float = 1.5
    tolerance: float = 0.1
    stabilization_up: float = 0.0
    stabilization_down: float = 300.0
    window: float = 30.0
    enabled: bool = True
    source: str = "api"        # "api" (REST, persisted) or "labels"
    schedule: tuple[Window, ...] = ()   # windows that move [min, max] while active

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"appId": self.app_id, "source": self.source, "mode": self.mode}
        for name, (_, json_name) in FIELDS.items():
            value = getattr(self, name)
            if name == "schedule":
                if value:
                    out[json_name] = [window.to_json() for window in value]
            elif value is not None:
                out[json_name] = value
        return out


def is_autoscale_label(key: str) -> bool:
    return key.startswith(LABEL_PREFIX)


# -- value parsing ---------------------------------------------------------------------------
def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _int(value: Any) -> int:
    number = _number(value)
    if number != int(number):
        raise ValueError("must be a whole number")
    return int(number)


def _metric(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value.strip().lower()


_PARSERS = {
    "enabled": _bool, "metric": _metric,
    "target": _number, "min_instances": _int, "max_instances": _int, "scale_up_above": _number,
    "scale_down_below": _number, "scale_up_cycles": _int, "scale_down_cycles": _int,
    "multiplier": _number, "tolerance": _number, "stabilization_up": _number,
    "stabilization_down": _number, "window": _number,
}


def parse_policy(app_id: str, raw: Mapping[str, Any], *, style: str = "json") -> Policy:
    """Build a policy from `raw`, keyed by JSON names (style "json") or labels (style "labels").

    Raises PolicyError naming every bad field in the caller's spelling.
    """
    index = 0 if style == "labels" else 1
    name_of = {field: names[index] for field, names in FIELDS.items()}
    violations: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for field, parse in _PARSERS.items():
        key = name_of[field]
        if key not in raw or raw[key] is None or (style == "labels" and raw[key] == "" and field != "enabled"):
            continue
        try:
            values[field] = parse(raw[key])
        except ValueError as exc:
            violations.append((key, str(exc)))
    schedule_key = name_of["schedule"]
    if raw.get(schedule_key) is not None and not (style == "labels" and raw[schedule_key] == ""):
        try:
            values["schedule"] = parse_schedule(raw[schedule_key], schedule_key)
        except ScheduleError as exc:
            violations += exc.violations
    if style == "json":
        unknown = sorted(k for k in raw if k not in JSON_FIELDS and k not in ("source", "mode"))
        violations += [(k, "unknown field") for k in unknown]

    def bad(field: str, message: str) -> None:
        violations.append((name_of[field], message))

    if "metric" in values and values["metric"] not in METRICS:
        bad("metric", f"unknown metric '{values['metric']}' (expected one of {', '.join(METRICS)})")
    if "max_instances" not in values and not any(name_of["max_instances"] == k for k, _ in violations):
        bad("max_instances", "is required")
    minimum, maximum = values.get("min_instances", 1), values.get("max_instances")
    if minimum < 1:
        bad("min_instances", "must be at least 1 (the autoscaler never scales to zero)")
    if maximum is not None and maximum < 1:
        bad("max_instances", "must be at least 1")
    if maximum is not None and minimum > maximum:
        bad("min_instances", f"must not exceed {name_of['max_instances']} ({minimum} > {maximum})")
    threshold = "scale_up_above" in values or "scale_down_below" in values
    if "target" in values and threshold:
        bad("target", f"give either {name_of['target']} or {name_of['scale_up_above']}/"
                      f"{name_of['scale_down_below']}, not both")
    elif threshold:
        for field, other in (("scale_up_above", "scale_down_below"), ("scale_down_below", "scale_up_above")):
            if field not in values and not any(k == name_of[field] for k, _ in violations):
                bad(field, f"is required with {name_of[other]}")
        up, down = values.get("scale_up_above"), values.get("scale_down_below")
        if down is not None and down < 0:
            bad("scale_down_below", "must not be negative")
        if up is not None and up <= 0:
            bad("scale_up_above", "must be greater than 0")
        if up is not None and down is not None and down >= up:
            bad("scale_down_below", f"must be below {name_of['scale_up_above']} ({down} >= {up})")
    elif "target" not in values:
        if not any(k == name_of["target"] for k, _ in violations):
            bad("target", f"is required (or {name_of['scale_up_above']}/{name_of['scale_down_below']})")
    elif values["target"] <= 0:
        bad("target", "must be greater than 0")
    for field in ("scale_up_cycles", "scale_down_cycles"):
        if field in values and values[field] < 1:
            bad(field, "must be at least 1")
    if "multiplier" in values and values["multiplier"] <= 1:
        bad("multiplier", "must be greater than 1")
    if "tolerance" in values and not 0 <= values["tolerance"] < 1:
        bad("tolerance", "must be at least 0 and below 1")
    for field in ("stabilization_up", "stabilization_down"):
        if field in values and not 0 <= values[field] <= 3600:
            bad(field, "must be between 0 and 3600 seconds")
    if "window" in values and not 0 < values["window"] <= 3600:
        bad("window", "must be more than 0 and at most 3600 seconds")
    if "schedule" in values:
        violations += check_against_policy(values["schedule"], minimum, schedule_key)
    if violations:
        raise PolicyError(violations)
    mode = THRESHOLD if threshold else TARGET
    if mode == THRESHOLD:
        values.setdefault("stabilization_down", 0.0)
    values.setdefault("enabled", True)
    return Policy(app_id=app_id, mode=mode, source="labels" if style == "labels" else "api", **values)


def policy_from_labels(app_id: str, labels: Mapping[str, str]) -> Policy | None:
    """The app's label policy; None when AUTOSCALE_ENABLED is absent or false.

    Raises PolicyError (field = label name) when enabled but invalid.
    """
    enabled = labels.get(FIELDS["enabled"][0])
    if enabled is None:
        return None
    try:
        if not _bool(enabled):
            return None
    except ValueError:
        raise PolicyError([(FIELDS["enabled"][0], "must be true or false")]) from None
    return parse_policy(app_id, labels, style="labels")


def policy_from_json(body: Any, *, app_id: str | None = None) -> Policy:
    """A REST body -> Policy. `app_id` (from the URL) wins over/needs to agree with body.appId."""
    if not isinstance(body, Mapping):
        raise PolicyError([("/", "expected a JSON object")])
    body_id = body.get("appId")
    if body_id is not None and not isinstance(body_id, str):
        raise PolicyError([("appId", "must be a string")])
    ident = app_id or body_id
    if not ident:
        raise PolicyError([("appId", "is required")])
    ident = canonical_app_id(ident)
    if body_id and app_id and canonical_app_id(body_id) != ident:
        raise PolicyError([("appId", f"does not match the path ({body_id} != {ident})")])
    return parse_policy(ident, body, style="json")


def canonical_app_id(app_id: str) -> str:
    return "/" + app_id.strip().strip("/")


def with_source(policy: Policy, source: str) -> Policy:
    return replace(policy, source=source)
