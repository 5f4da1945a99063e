"""Judging one analysis interval of a canary, from per-version figures. Pure.

The figures come from two places, both fetched by the caller:

* traffic: HAProxy's per-server counters (``haproxy_stats.py`` parses them). They are
  cumulative, so an interval is the difference of two snapshots (:func:`interval_deltas`),
  and a version's figure is the sum over its servers (:func:`traffic_by_version`);
* resources: CPU (cores) and memory (bytes) per task from the metrics store, averaged per
  version (:func:`mean_by_version`).

Counters restart from zero when HAProxy's worker is replaced (a reload) or a server is
re-added; a naive difference would then be negative. A counter that went backwards, or a
snapshot from another worker (``generation``), counts as a restart: the interval gets what
was counted since, an undercount but never a negative rate, as Prometheus' ``increase`` does.

The verdict is one of ``pass``/``fail``/``inconclusive``. Missing figures and fewer than
``minRequests`` canary requests are *inconclusive*, never a pass: an unmeasured canary is
not a good canary. A breached threshold is a fail even when another one lacks data.

Latency: HAProxy's counters have no percentiles. ``rtime`` is the mean response time of a
server's last 1024 requests, so the latency taken from them is a request-weighted mean, and
the figures say so (``latency_kind="mean"``); a source that knows the real p95 (HAProxy logs,
the app's own metrics) passes ``latency_kind="p95"``. ``maxLatencyP95Ratio`` applies to
whichever it is, and the reason names which one was compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app_definitions.strategies import CanaryAnalysis

__all__ = [
    "Check",
    "LatencyKind",
    "Outcome",
    "ServerCounters",
    "ServerDelta",
    "StatsSnapshot",
    "Verdict",
    "VersionSample",
    "VersionTraffic",
    "interval_deltas",
    "judge",
    "mean_by_version",
    "sample",
    "traffic_by_version",
]

Outcome = Literal["pass", "fail", "inconclusive"]
LatencyKind = Literal["p95", "mean"]

LATENCY_FLOOR_MS = 1.0
"""HAProxy counts whole milliseconds: faster responses compare as 1 ms (no division by zero)."""
CPU_FLOOR_CORES = 0.001
"""An idle version compares as one millicore, so a ratio against it stays finite."""
_EPSILON = 1e-9


# -- counters and intervals ----------------------------------------------------------------------

@dataclass(frozen=True)
class ServerCounters:
    """One server's cumulative counters: requests routed to it, of which errors, and ``rtime``.

    ``response_ms`` is not cumulative: it is HAProxy's mean over the server's last 1024
    responses (None when HAProxy shows none).
    """

    requests: int
    errors: int
    response_ms: float | None = None


@dataclass(frozen=True)
class StatsSnapshot:
    """Every server's counters at one moment, from one HAProxy worker.

    ``generation`` identifies the worker whose counters these are (its pid and start time
    from ``show info``); snapshots of two generations never subtract.
    """

    taken_at: float
    generation: str
    servers: Mapping[str, ServerCounters]


@dataclass(frozen=True)
class ServerDelta:
    """What one server counted during an interval; ``restarted`` when its counters had restarted."""

    requests: int
    errors: int
    response_ms: float | None
    restarted: bool = False


def interval_deltas(before: StatsSnapshot | None, after: StatsSnapshot) -> dict[str, ServerDelta]:
    """Per-server counts between two snapshots; no baseline, no interval (empty).

    A server absent from ``after`` has left and is skipped; one absent from ``before`` is
    new and everything it counted belongs to the interval. A counter that went backwards,
    or a change of ``generation``, means the counters restarted: the interval gets the
    count since the restart. No delta is ever negative.
    """
    if before is None:
        return {}
    new_worker = before.generation != after.generation
    deltas: dict[str, ServerDelta] = {}
    for name, now in after.servers.items():
        then = before.servers.get(name)
        if then is None:
            deltas[name] = ServerDelta(max(now.requests, 0), max(now.errors, 0), now.response_ms, new_worker)
        elif new_worker or now.requests < then.requests or now.errors < then.errors:
            deltas[name] = ServerDelta(max(now.requests, 0), max(now.errors, 0), now.response_ms, True)
        else:
            deltas[name] = ServerDelta(now.requests - then.requests, now.errors - then.errors, now.response_ms)
    return deltas


@dataclass(frozen=True)
class VersionTraffic:
    """One version's interval, summed over its servers.

    ``latency_ms``: the servers' response times weighted by the requests each served in the
    interval (None when none served any, or none shows a time). ``errors`` never exceeds
    ``requests`` (HAProxy may count a refused connection without a request).
    """

    requests: int
    errors: int
    latency_ms: float | None
    servers: int


def traffic_by_version(deltas: Mapping[str, ServerDelta], version_of: Mapping[str, str]) -> dict[str, VersionTraffic]:
    """Sum server deltas per version; servers with no known version are left out."""
    sums: dict[str, list[float]] = {}
    for name, delta in deltas.items():
        version = version_of.get(name)
        if version is None:
            continue
        acc = sums.setdefault(version, [0, 0, 0.0, 0, 0])  # requests, errors, weighted ms, timed requests, servers
        acc[0] += delta.requests
        acc[1] += delta.errors
        acc[4] += 1
        if delta.response_ms is not None and delta.requests > 0:
            acc[2] += delta.response_ms * delta.requests
            acc[3] += delta.requests
    return {
        version: VersionTraffic(int(req), int(min(err, req)), (ms / timed) if timed else None, int(servers))
        for version, (req, err, ms, timed, servers) in sums.items()
    }


def mean_by_version(per_task: Mapping[str, float | None], version_of_task: Mapping[str, str]) -> dict[str, float]:
    """The mean of a per-task figure (CPU cores, memory bytes) per version; tasks without one are skipped."""
    totals: dict[str, tuple[float, int]] = {}
    for task_id, value in per_task.items():
        version = version_of_task.get(task_id)
        if version is None or value is None:
            continue
        total, count = totals.get(version, (0.0, 0))
        totals[version] = (total + value, count + 1)
    return {version: total / count for version, (total, count) in totals.items()}


# -- samples and the verdict ---------------------------------------------------------------------

@dataclass(frozen=True)
class VersionSample:
    """One version's figures for one interval; None where nothing was measured."""

    requests: int | None = None
    errors: int | None = None
    latency_ms: float | None = None
    cpu: float | None = None
    memory_bytes: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Errors per request (None without requests: 0 of 0 is not a 0% error rate)."""
        if self.requests is None or self.errors is None or self.requests <= 0:
            return None
        return min(self.errors, self.requests) / self.requests

    def to_json(self) -> dict[str, Any]:
        figures = {"requests": self.requests, "errors": self.errors, "errorRate": self.error_rate,
                   "latencyMs": self.latency_ms, "cpu": self.cpu, "memoryBytes": self.memory_bytes}
        return {k: v for k, v in figures.items() if v is not None}


def sample(traffic: VersionTraffic | None, cpu: float | None = None, memory_bytes: float | None = None) -> VersionSample:
    """A version's sample from its traffic (None: HAProxy showed none of its servers) and usage."""
    if traffic is None:
        return VersionSample(cpu=cpu, memory_bytes=memory_bytes)
    return VersionSample(traffic.requests, traffic.errors, traffic.latency_ms, cpu, memory_bytes)


@dataclass(frozen=True)
class Check:
    """One threshold as judged: its JSON name, its limit, the measured value (None: no data)."""

    name: str
    limit: float
    value: float | None
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "limit": self.limit, "outcome": self.outcome}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class Verdict:
    """The judgement of one interval, with the figures it was made from.

    ``reason`` is one sentence naming the threshold that failed (or the data that was
    missing); ``/v2/deployments`` and the ``canary_analysis`` event show it as is.
    """

    outcome: Outcome
    reason: str
    stable: VersionSample
    canary: VersionSample
    checks: tuple[Check, ...] = ()
    latency_kind: LatencyKind = "p95"
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.outcome, "reason": self.reason, "latencyKind": self.latency_kind,
                "stable": self.stable.to_json(), "canary": self.canary.to_json(),
                "checks": [c.to_json() for c in self.checks]}


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ratio(canary: float | None, stable: float | None, floor: float) -> float | None:
    if canary is None or stable is None:
        return None
    return max(canary, floor) / max(stable, floor)


def _judged(name: str, limit: float, value: float | None) -> Check:
    if value is None:
        return Check(name, limit, None, "inconclusive")
    return Check(name, limit, value, "fail" if value > limit + _EPSILON else "pass")


def _failure_text(check: Check, stable: VersionSample, canary: VersionSample, kind: LatencyKind) -> str:
    assert check.value is not None
    if check.name == "maxErrorRate":
        return (f"canary error rate {_pct(check.value)} ({canary.errors} of {canary.requests} requests) "
                f"is above maxErrorRate {_pct(check.limit)}")
    if check.name == "maxErrorRateIncrease":
        return (f"canary error rate {_pct(canary.error_rate or 0.0)} exceeds the stable "
                f"{_pct(stable.error_rate or 0.0)} by {_pct(check.value)}, above maxErrorRateIncrease "
                f"{_pct(check.limit)}")
    if check.name == "maxLatencyP95Ratio":
        return (f"canary {kind} latency {canary.latency_ms:.0f} ms is {check.value:.2f}x the stable "
                f"{stable.latency_ms:.0f} ms, above maxLatencyP95Ratio {check.limit:g}")
    return (f"canary CPU {canary.cpu:.3f} cores per instance is {check.value:.2f}x the stable "
            f"{stable.cpu:.3f}, above maxCpuRatio {check.limit:g}")


_MISSING = {
    "maxErrorRate": "no error count for {who}, needed for maxErrorRate",
    "maxErrorRateIncrease": "the stable version served too few requests to compare error rates",
    "maxLatencyP95Ratio": "no {kind} latency for {who}, needed for maxLatencyP95Ratio",
    "maxCpuRatio": "no CPU figures for {who}, needed for maxCpuRatio",
}


def _who(stable_missing: bool, canary_missing: bool) -> str:
    if stable_missing and canary_missing:
        return "either version"
    return "the stable version" if stable_missing else "the canary"


def judge(stable: VersionSample, canary: VersionSample, analysis: CanaryAnalysis, *,
          latency_kind: LatencyKind = "p95") -> Verdict:
    """Pass, fail or inconclusive for one interval, by the thresholds ``analysis`` sets.

    Fewer than ``minRequests`` canary requests (or none measured) is inconclusive before
    any threshold is looked at. Then every set threshold is checked; the error-rate
    increase also needs ``minRequests`` stable requests. Any breach fails; otherwise any
    threshold without data makes the interval inconclusive; otherwise it passes.
    """
    min_requests = analysis.min_requests
    if canary.requests is None or canary.requests < max(min_requests, 1):
        served = "no measured requests" if canary.requests is None else f"{canary.requests} requests"
        reason = f"the canary served {served}, fewer than the minRequests {max(min_requests, 1)} needed to judge it"
        return Verdict("inconclusive", reason, stable, canary, (), latency_kind)
    stable_ok = stable.requests is not None and stable.requests >= max(min_requests, 1)
    canary_rate = canary.error_rate
    values: dict[str, float | None] = {
        "maxErrorRate": canary_rate,
        "maxErrorRateIncrease": (canary_rate - stable.error_rate)
        if stable_ok and canary_rate is not None and stable.error_rate is not None else None,
        "maxLatencyP95Ratio": _ratio(canary.latency_ms, stable.latency_ms, LATENCY_FLOOR_MS),
        "maxCpuRatio": _ratio(canary.cpu, stable.cpu, CPU_FLOOR_CORES),
    }
    checks = tuple(_judged(name, limit, values[name]) for name, limit in analysis.thresholds.items())
    failed = tuple(c for c in checks if c.outcome == "fail")
    if failed:
        reason = _failure_text(failed[0], stable, canary, latency_kind)
        if len(failed) > 1:
            reason += f", and {', '.join(c.name for c in failed[1:])} failed too"
        return Verdict("fail", reason, stable, canary, checks, latency_kind, tuple(c.name for c in failed))
    missing = [c for c in checks if c.outcome == "inconclusive"]
    if missing:
        first = missing[0].name
        fields = {"maxLatencyP95Ratio": ("latency_ms",), "maxCpuRatio": ("cpu",)}.get(first, ())
        who = _who(any(getattr(stable, f) is None for f in fields), any(getattr(canary, f) is None for f in fields))
        reason = _MISSING.get(first, "no data for {who}").format(kind=latency_kind, who=who)
        return Verdict("inconclusive", reason, stable, canary, checks, latency_kind)
    reason = (f"all {len(checks)} thresholds held over {canary.requests} canary requests" if checks
              else f"the canary served {canary.requests} requests and no threshold is set")
    return Verdict("pass", reason, stable, canary, checks, latency_kind)
