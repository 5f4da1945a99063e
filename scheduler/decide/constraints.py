"""Marathon placement constraints: `[field, OPERATOR(, value)]`, decided on plain data.

Two evaluators with one meaning:

* `constraint_satisfied` is the reference: one agent, the agents of the instances already
  placed, written to read like Marathon's `Constraints.scala` (1.10) so the semantics can be
  checked line by line.
* `FieldTally` + `constraint_mask` answer the same question for every offered agent at once
  with numpy, so placement stays fast with thousands of agents. Tests hold the two equal.

Semantics (Marathon 1.10, with the one gap it leaves filled):

* The field is `hostname`/`@hostname`, `@region`/`@zone`, or an agent attribute. Attribute
  values are compared as strings; callers format scalars with `format_scalar` (Marathon's
  `0.###`, HALF_EVEN) before building an `AgentView`.
* An agent that lacks the field satisfies only `UNLIKE`.
* `LIKE`/`UNLIKE` are full-match regexes (Java's `String.matches`).
* `IS` is exact equality; a scalar-looking constraint value is formatted like an attribute.
* `UNIQUE`: no placed instance has the agent's value. `MAX_PER n`: fewer than n do.
* `CLUSTER v`: the value is v. `CLUSTER` without a value: the first placed instance fixes it.
* `GROUP_BY n`: Marathon's even spread over n groups for `target_instances` instances.
* `GROUP_BY` without a value (or with 0): Marathon divides by zero here (its "groups discovered from
  offers"); Pacer accepts a value not yet used, or a value whose group is among the least
  populated, and placement ranks least-populated groups first, so the spread is even and
  deterministic over the agents offered.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

import numpy as np

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
HOSTNAME_FIELDS = frozenset({"hostname", "@hostname"})
_SCALAR = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Operators whose answer depends on the agent's own value only, never on what is placed.
_STATIC_OPERATORS = frozenset({"LIKE", "UNLIKE", "IS"})


class ConstraintValueError(ValueError):
    """A constraint the API validation should have refused (bad regex, non-integer count,
    unknown operator). Raised, not answered as a Fit: it is a programmer error upstream."""


@dataclass(frozen=True)
class ConstraintSpec:
    """One constraint of an app; `operator` already upper-cased and validated."""

    field: str
    operator: str
    value: str | None = None

    def __str__(self) -> str:
        """Marathon's JSON shape, used in human messages: `[hostname, UNIQUE]`."""
        parts = [self.field, self.operator] + ([self.value] if self.value not in (None, "") else [])
        return "[" + ", ".join(parts) + "]"


@dataclass(frozen=True)
class AgentView:
    """What constraints may look at on an agent. Attribute values are strings."""

    agent_id: str
    hostname: str
    attributes: Mapping[str, str]

    def __hash__(self) -> int:
        # `attributes` is usually a dict; hashing the identity keeps views usable in sets.
        return hash((self.agent_id, self.hostname))


def format_scalar(value: float) -> str:
    """Marathon's `DecimalFormat("0.###")` with HALF_EVEN on the exact binary value, as Java
    does: 1.0005 -> "1", 1.00051 -> "1.001", 1.1005 -> "1.101", 2.50 -> "2.5"."""
    text = format(Decimal(float(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN), "f")
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def constraint_value(agent: AgentView, field: str) -> str | None:
    """The agent's value for a constraint field, or None when it has none.

    `@region`/`@zone` are the fault domain: read from the attribute of that exact name, or,
    failing that, from the plain `region`/`zone` attribute (Pacer agents carry fault domains
    as attributes).
    """
    if field in HOSTNAME_FIELDS:
        return agent.hostname
    value = agent.attributes.get(field)
    if value is None and field in ("@region", "@zone"):
        value = agent.attributes.get(field[1:])
    return value


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConstraintValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def _count_value(c: ConstraintSpec) -> int | None:
    """The integer of MAX_PER/GROUP_BY; None when GROUP_BY has no (or a zero) value."""
    if c.value in (None, ""):
        if c.operator == "MAX_PER":
            raise ConstraintValueError("MAX_PER requires an integer value")
        return None
    try:
        number = int(c.value)
    except ValueError:
        raise ConstraintValueError(f"{c.operator} needs an integer value, got {c.value!r}") from None
    if number < 0:
        raise ConstraintValueError(f"{c.operator} needs a non-negative integer, got {number}")
    return number if number > 0 or c.operator == "MAX_PER" else None


def _is_target(value: str) -> str:
    return format_scalar(float(value)) if _SCALAR.fullmatch(value) else value


def _static_match(c: ConstraintSpec, value: str) -> bool:
    """LIKE/UNLIKE/IS (and CLUSTER with a value) for a present value."""
    if c.operator in ("LIKE", "UNLIKE"):
        if not c.value:
            return False  # Marathon logs "value is required" and refuses
        matched = _regex(c.value).fullmatch(value) is not None
        return matched if c.operator == "LIKE" else not matched
    if c.operator == "IS":
        return value == _is_target(c.value or "")
    if c.operator == "CLUSTER":
        return value == c.value
    raise ConstraintValueError(f"{c.operator} is not a static operator")


def _group_by_accepts(count: int, groups: Mapping[str | None, int], k: int | None, target: int) -> bool:
    """Marathon's `checkGroupBy` for one value whose group currently holds `count` instances."""
    if k is None:
        if count == 0:
            return True
        return count == min(groups.values())
    desired, remainder = divmod(target, k)
    consumed = sum(max(0, n - desired) for n in groups.values())
    if count > 0:
        return count < desired or (count == desired and remainder - consumed > 0)
    return len(groups) < k


def constraint_satisfied(c: ConstraintSpec, agent: AgentView, placed: Sequence[AgentView],
                         target_instances: int) -> bool:
    """Whether one more instance may go on `agent`, given the agents of those already placed."""
    if c.operator not in OPERATORS:
        raise ConstraintValueError(f"unknown constraint operator {c.operator!r}")
    value = constraint_value(agent, c.field)
    if value is None:
        return c.operator == "UNLIKE"
    if c.operator in _STATIC_OPERATORS:
        return _static_match(c, value)
    placed_values = [constraint_value(p, c.field) for p in placed]
    if c.operator == "UNIQUE":
        return all(v != value for v in placed_values)
    if c.operator == "MAX_PER":
        limit = _count_value(c)
        return placed_values.count(value) < (limit or 0)
    if c.operator == "CLUSTER":
        if c.value:
            return value == c.value
        return not placed_values or placed_values[0] == value
    groups = Counter(placed_values)  # GROUP_BY; instances lacking the field form a group too
    return _group_by_accepts(groups.get(value, 0), groups, _count_value(c), target_instances)


class FieldTally:
    """One field's values over the offered agents, as integer codes, plus how many placed
    instances hold each value. Owned by one placement call, which feeds it through `add`."""

    def __init__(self, field: str, agents: Sequence[AgentView], placed: Sequence[AgentView]) -> None:
        self.field = field
        vocabulary: dict[str, int] = {}
        codes = []
        for agent in agents:
            value = constraint_value(agent, field)
            codes.append(-1 if value is None else vocabulary.setdefault(value, len(vocabulary)))
        placed_codes = []
        for agent in placed:
            value = constraint_value(agent, field)
            placed_codes.append(-1 if value is None else vocabulary.setdefault(value, len(vocabulary)))
        self.values: tuple[str, ...] = tuple(vocabulary)
        self.codes = np.asarray(codes, dtype=np.int64)           # per offered agent, -1 = lacks it
        self.counts = np.zeros(len(vocabulary), dtype=np.int64)  # placed instances per value
        self.missing = 0                                         # placed instances lacking it
        self.first: int | None = None                            # code of the first placed one
        self._static: dict[ConstraintSpec, np.ndarray] = {}
        for code in placed_codes:
            self.add(code)

    def add(self, code: int) -> None:
        """Record one more placed instance with value `code` (-1 = lacking the field)."""
        if self.first is None:
            self.first = code
        if code < 0:
            self.missing += 1
        else:
            self.counts[code] += 1

    def add_agent(self, index: int) -> None:
        self.add(int(self.codes[index]))

    def groups(self) -> int:
        return int(np.count_nonzero(self.counts)) + (1 if self.missing else 0)

    def load(self) -> np.ndarray:
        """Placed instances in each offered agent's group (0 for agents lacking the field)."""
        return np.where(self.codes >= 0, self.counts[np.maximum(self.codes, 0)], 0) if len(self.counts) \
            else np.zeros(len(self.codes), dtype=np.int64)

    def static_mask(self, c: ConstraintSpec) -> np.ndarray:
        mask = self._static.get(c)
        if mask is None:
            per_value = np.array([_static_match(c, v) for v in self.values] + [c.operator == "UNLIKE"], dtype=bool)
            mask = per_value[self.codes]  # code -1 picks the trailing "lacks the field" entry
            self._static[c] = mask
        return mask


def constraint_mask(c: ConstraintSpec, tally: FieldTally, target_instances: int) -> np.ndarray:
    """`constraint_satisfied` for every agent of `tally` at once (same answers, as a bool array)."""
    if c.operator not in OPERATORS:
        raise ConstraintValueError(f"unknown constraint operator {c.operator!r}")
    if tally.field != c.field:
        raise ValueError(f"tally is for field {tally.field!r}, constraint for {c.field!r}")
    if c.operator in _STATIC_OPERATORS or (c.operator == "CLUSTER" and c.value):
        return tally.static_mask(c)
    present = tally.codes >= 0
    load = tally.load()
    if c.operator == "UNIQUE":
        return present & (load == 0)
    if c.operator == "MAX_PER":
        return present & (load < (_count_value(c) or 0))
    if c.operator == "CLUSTER":
        if tally.first is None:
            return present
        return present & (tally.codes == tally.first) if tally.first >= 0 else np.zeros_like(present)
    k = _count_value(c)  # GROUP_BY
    used = tally.counts[tally.counts > 0]
    if tally.missing:
        used = np.append(used, tally.missing)
    if k is None:
        smallest = int(used.min()) if len(used) else 0
        return present & ((load == 0) | (load == smallest))
    desired, remainder = divmod(target_instances, k)
    remainder_unused = remainder - int(np.maximum(used - desired, 0).sum()) > 0
    existing = (load < desired) | ((load == desired) & remainder_unused)
    return present & np.where(load > 0, existing, len(used) < k)
