"""One analysis interval: deltas of cumulative counters, sums per version, and the verdict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app_definitions.strategies import CanaryAnalysis
from scheduler.canary import (
    ServerCounters,
    StatsSnapshot,
    VersionSample,
    interval_deltas,
    judge,
    mean_by_version,
    sample,
    traffic_by_version,
)
from scheduler.canary.analysis import ServerDelta, VersionTraffic

ALL = CanaryAnalysis.model_validate({"minRequests": 50, "maxErrorRate": 0.02, "maxErrorRateIncrease": 0.01,
                                     "maxLatencyP95Ratio": 1.5, "maxCpuRatio": 2.0})


def analysis(**fields: Any) -> CanaryAnalysis:
    return CanaryAnalysis.model_validate({"minRequests": 50, **fields})


GOOD_STABLE = VersionSample(requests=900, errors=9, latency_ms=100.0, cpu=0.5)
GOOD_CANARY = VersionSample(requests=100, errors=1, latency_ms=110.0, cpu=0.6)

# name, analysis, stable, canary, expected outcome, failed thresholds, words the reason must hold
TABLE: list[tuple[str, CanaryAnalysis, VersionSample, VersionSample, str, tuple[str, ...], tuple[str, ...]]] = [
    ("healthy canary passes", ALL, GOOD_STABLE, GOOD_CANARY, "pass", (), ("all 4 thresholds held", "100")),
    ("too few canary requests", ALL, GOOD_STABLE, VersionSample(requests=49, errors=0, latency_ms=1, cpu=0.1),
     "inconclusive", (), ("49 requests", "minRequests 50")),
    ("no canary traffic measured", ALL, GOOD_STABLE, VersionSample(cpu=0.1), "inconclusive", (),
     ("no measured requests",)),
    ("minRequests 0 still needs one request", analysis(minRequests=0, maxErrorRate=0.5), GOOD_STABLE,
     VersionSample(requests=0, errors=0), "inconclusive", (), ("0 requests",)),
    ("error rate above the limit", ALL, GOOD_STABLE, VersionSample(requests=100, errors=3, latency_ms=100, cpu=0.5),
     "fail", ("maxErrorRate", "maxErrorRateIncrease"), ("3.00%", "3 of 100", "maxErrorRate 2.00%",
                                                        "maxErrorRateIncrease failed too")),
    ("error rate exactly at the limit passes", analysis(maxErrorRate=0.02), GOOD_STABLE,
     VersionSample(requests=100, errors=2), "pass", (), ()),
    ("error rate increase only", analysis(maxErrorRateIncrease=0.01), VersionSample(requests=1000, errors=0),
     VersionSample(requests=100, errors=2), "fail", ("maxErrorRateIncrease",), ("exceeds the stable 0.00%",)),
    ("increase needs enough stable requests", analysis(maxErrorRateIncrease=0.01), VersionSample(requests=10, errors=0),
     VersionSample(requests=100, errors=0), "inconclusive", (), ("stable version served too few",)),
    ("slow canary (p95)", ALL, GOOD_STABLE, VersionSample(requests=100, errors=0, latency_ms=200, cpu=0.5),
     "fail", ("maxLatencyP95Ratio",), ("p95 latency 200 ms", "2.00x", "maxLatencyP95Ratio 1.5")),
    ("sub-millisecond stable compares as 1 ms", analysis(maxLatencyP95Ratio=1.5),
     VersionSample(requests=100, errors=0, latency_ms=0), VersionSample(requests=100, errors=0, latency_ms=1),
     "pass", (), ()),
    ("hungry canary", ALL, GOOD_STABLE, VersionSample(requests=100, errors=0, latency_ms=100, cpu=1.5),
     "fail", ("maxCpuRatio",), ("CPU 1.500 cores", "3.00x", "maxCpuRatio 2")),
    ("no CPU figures for the canary", ALL, GOOD_STABLE, VersionSample(requests=100, errors=0, latency_ms=100),
     "inconclusive", (), ("no CPU figures for the canary",)),
    ("no latency for either", analysis(maxLatencyP95Ratio=2), VersionSample(requests=100, errors=0),
     VersionSample(requests=100, errors=0), "inconclusive", (), ("latency for either version",)),
    ("a breach fails even when other data is missing", ALL, VersionSample(requests=1000, errors=0),
     VersionSample(requests=100, errors=50), "fail", ("maxErrorRate", "maxErrorRateIncrease"), ("50.00%",)),
    ("no threshold set passes on traffic alone", analysis(), GOOD_STABLE, GOOD_CANARY, "pass", (),
     ("no threshold is set",)),
]


@pytest.mark.parametrize(("spec", "stable", "canary", "outcome", "failed", "words"), [t[1:] for t in TABLE],
                         ids=[t[0] for t in TABLE])
def test_judge_table(spec: CanaryAnalysis, stable: VersionSample, canary: VersionSample, outcome: str,
                     failed: tuple[str, ...], words: tuple[str, ...]) -> None:
    verdict = judge(stable, canary, spec)
    assert verdict.outcome == outcome, verdict.reason
    assert verdict.failed == failed
    for word in words:
        assert word in verdict.reason, (word, verdict.reason)
    assert verdict.reason.count(". ") == 0  # one sentence
    body = verdict.to_json()
    assert body["verdict"] == outcome and body["reason"] == verdict.reason
    assert body["canary"].get("requests") == canary.requests


def test_latency_kind_is_named() -> None:
    verdict = judge(GOOD_STABLE, VersionSample(requests=100, errors=0, latency_ms=400, cpu=0.5), ALL,
                    latency_kind="mean")
    assert "mean latency 400 ms" in verdict.reason and verdict.to_json()["latencyKind"] == "mean"


samples = st.builds(
    VersionSample,
    requests=st.none() | st.integers(0, 10_000),
    errors=st.none() | st.integers(0, 10_000),
    latency_ms=st.none() | st.floats(0, 10_000),
    cpu=st.none() | st.floats(0, 64),
)
analyses = st.fixed_dictionaries({"minRequests": st.integers(0, 500)}, optional={
    "maxErrorRate": st.floats(0, 1), "maxErrorRateIncrease": st.floats(0, 1),
    "maxLatencyP95Ratio": st.floats(0.1, 10), "maxCpuRatio": st.floats(0.1, 10)}).map(CanaryAnalysis.model_validate)


@settings(max_examples=500, deadline=None)
@given(samples, samples, analyses)
def test_missing_data_is_never_a_pass(stable: VersionSample, canary: VersionSample, spec: CanaryAnalysis) -> None:
    verdict = judge(stable, canary, spec)
    if canary.requests is None or canary.requests < max(spec.min_requests, 1):
        assert verdict.outcome == "inconclusive"
    if verdict.outcome == "pass":
        assert all(c.outcome == "pass" and c.value is not None for c in verdict.checks)
        assert {c.name for c in verdict.checks} == set(spec.thresholds)
    if verdict.outcome == "fail":
        assert verdict.failed and all(c.value is not None and c.value > c.limit for c in verdict.checks
                                      if c.name in verdict.failed)
        assert verdict.failed[0] in verdict.reason
    assert verdict.reason and "\n" not in verdict.reason


@settings(max_examples=300, deadline=None)
@given(st.integers(100, 10_000), st.integers(0, 100), st.integers(0, 100), st.floats(0, 1))
def test_more_canary_errors_never_turn_a_fail_into_a_pass(requests: int, errors: int, more: int, limit: float) -> None:
    spec = analysis(maxErrorRate=limit)
    base = judge(GOOD_STABLE, VersionSample(requests=requests, errors=errors), spec)
    worse = judge(GOOD_STABLE, VersionSample(requests=requests, errors=errors + more), spec)
    if base.outcome == "fail":
        assert worse.outcome == "fail"


# -- counters: intervals and sums ---------------------------------------------------------------

def snap(generation: str = "1@100", **servers: tuple[int, int]) -> StatsSnapshot:
    return StatsSnapshot(0.0, generation, {n: ServerCounters(r, e, 5.0) for n, (r, e) in servers.items()})


def test_deltas_table() -> None:
    before = snap(a=(100, 5), b=(50, 0), gone=(10, 0))
    after = snap(a=(160, 6), b=(20, 1), new=(7, 7))
    deltas = interval_deltas(before, after)
    assert deltas == {
        "a": ServerDelta(60, 1, 5.0),
        "b": ServerDelta(20, 1, 5.0, restarted=True),  # went backwards: the server restarted
        "new": ServerDelta(7, 7, 5.0),
    }
    assert interval_deltas(None, after) == {}


def test_a_new_worker_restarts_every_counter_even_when_they_climbed_past() -> None:
    deltas = interval_deltas(snap("1@100", a=(100, 5)), snap("2@160", a=(130, 5)))
    assert deltas["a"] == ServerDelta(130, 5, 5.0, restarted=True)


counters = st.builds(ServerCounters, st.integers(0, 10**9), st.integers(0, 10**9), st.none() | st.floats(0, 1e4))
server_maps = st.dictionaries(st.sampled_from("abcdefgh"), counters, max_size=8)


@settings(max_examples=500, deadline=None)
@given(server_maps, server_maps, st.booleans())
def test_deltas_are_never_negative(before: dict[str, ServerCounters], after: dict[str, ServerCounters],
                                   same_worker: bool) -> None:
    deltas = interval_deltas(StatsSnapshot(0, "w1", before), StatsSnapshot(10, "w1" if same_worker else "w2", after))
    assert set(deltas) == set(after)
    for name, delta in deltas.items():
        assert delta.requests >= 0 and delta.errors >= 0
        then, now = before.get(name), after[name]
        if same_worker and then is not None and now.requests >= then.requests and now.errors >= then.errors:
            assert (delta.requests, delta.errors, delta.restarted) == (now.requests - then.requests,
                                                                       now.errors - then.errors, False)
        else:
            assert (delta.requests, delta.errors) == (now.requests, now.errors)


deltas_st = st.dictionaries(st.sampled_from("abcdefgh"),
                            st.builds(ServerDelta, st.integers(0, 1000), st.integers(0, 1500),
                                      st.none() | st.floats(0, 1e4)), max_size=8)


@settings(max_examples=500, deadline=None)
@given(deltas_st, st.dictionaries(st.sampled_from("abcdefghxyz"), st.sampled_from(["v1", "v2"]), max_size=10))
def test_sums_by_version_conserve_requests(deltas: dict[str, ServerDelta], version_of: dict[str, str]) -> None:
    sums = traffic_by_version(deltas, version_of)
    for version, traffic in sums.items():
        mine = [d for n, d in deltas.items() if version_of.get(n) == version]
        assert traffic.requests == sum(d.requests for d in mine)
        assert traffic.servers == len(mine)
        assert traffic.errors == min(sum(d.errors for d in mine), traffic.requests)
        timed = [d for d in mine if d.response_ms is not None and d.requests > 0]
        if timed:
            assert traffic.latency_ms is not None
            assert min(d.response_ms for d in timed) - 1e-6 <= traffic.latency_ms  # type: ignore[type-var]
            assert traffic.latency_ms <= max(d.response_ms for d in timed) + 1e-6  # type: ignore[type-var]
        else:
            assert traffic.latency_ms is None
    assert set(sums) == {version_of[n] for n in deltas if n in version_of}


def test_sums_weight_latency_by_requests_and_skip_unknown_servers() -> None:
    deltas = {"s1": ServerDelta(300, 3, 10.0), "s2": ServerDelta(100, 0, 30.0), "c1": ServerDelta(50, 5, 80.0),
              "stray": ServerDelta(999, 999, 1.0)}
    sums = traffic_by_version(deltas, {"s1": "v1", "s2": "v1", "c1": "v2"})
    assert sums == {"v1": VersionTraffic(400, 3, 15.0, 2), "v2": VersionTraffic(50, 5, 80.0, 1)}


def test_usage_means_and_samples() -> None:
    cpu = mean_by_version({"t1": 0.2, "t2": 0.4, "t3": None, "t4": 1.0, "orphan": 9.0},
                          {"t1": "v1", "t2": "v1", "t3": "v1", "t4": "v2"})
    assert cpu == pytest.approx({"v1": 0.3, "v2": 1.0})
    assert sample(None, cpu=0.3) == VersionSample(cpu=0.3)
    assert sample(VersionTraffic(10, 1, 5.0, 2), 0.3, 1e6) == VersionSample(10, 1, 5.0, 0.3, 1e6)
    assert VersionSample(requests=0, errors=0).error_rate is None
