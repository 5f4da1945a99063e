"""Canary and blue/green releases: the pure core (no I/O, no clock, no engine).

* ``steps.py``: the release's progress as a value and :func:`~.steps.advance`, the
  transition that says what to do next (set a weight, wait, roll the rest, abort);
* ``analysis.py``: per-interval figures from cumulative counters and the pass / fail /
  inconclusive verdict of one interval;
* ``haproxy_stats.py``: HAProxy's ``show stat`` rows (parsed by ``metrics.haproxy_stats``)
  into per-server counters;
* ``weights.py``: the HAProxy server weights that give the canary W% of the traffic.
* ``latency.py``: the per-version p95 response time from per-request samples (for a source
  that has them, such as HAProxy's request log).

The spec (``upgradeStrategy.canary``) is :class:`app_definitions.strategies.Canary`. This
package imports ``app_definitions``, the pure ``metrics.haproxy_stats`` and the standard
library only; the engine wires it to
deployments, HAProxy's Runtime API and the metrics store. Its errors are one tree, rooted
at :class:`~.errors.CanaryError` (drawn in ``errors.py``).
"""

from __future__ import annotations

from .analysis import (
    Check,
    ServerCounters,
    ServerDelta,
    StatsSnapshot,
    Verdict,
    VersionSample,
    VersionTraffic,
    interval_deltas,
    judge,
    mean_by_version,
    sample,
    traffic_by_version,
)
from .errors import CanaryError, InvalidCounts, StateMismatch
from .haproxy_stats import (ServerStat, StatsFormatError, counters_of, parse_show_stat, version_of_servers,
                            worker_generation)
from .latency import percentile, percentile_by_version
from .steps import (
    Abort,
    Action,
    CanaryState,
    SetWeight,
    StartFullRoll,
    SwitchOver,
    Transition,
    Wait,
    abort,
    advance,
    begin,
)
from .weights import MAX_WEIGHT, ServerWeights, canary_share, canary_weights, weight_commands

__all__ = [
    "MAX_WEIGHT",
    "Abort",
    "Action",
    "CanaryError",
    "CanaryState",
    "Check",
    "InvalidCounts",
    "ServerCounters",
    "ServerDelta",
    "ServerStat",
    "ServerWeights",
    "SetWeight",
    "StartFullRoll",
    "StateMismatch",
    "StatsFormatError",
    "StatsSnapshot",
    "SwitchOver",
    "Transition",
    "Verdict",
    "VersionSample",
    "VersionTraffic",
    "Wait",
    "abort",
    "advance",
    "begin",
    "canary_share",
    "canary_weights",
    "counters_of",
    "interval_deltas",
    "judge",
    "mean_by_version",
    "parse_show_stat",
    "percentile",
    "percentile_by_version",
    "sample",
    "traffic_by_version",
    "version_of_servers",
    "weight_commands",
    "worker_generation",
]
