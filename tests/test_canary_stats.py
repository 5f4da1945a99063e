"""`pacer serve`'s canary analysis source (pacer/canary_stats.py) on a scheduler core with a fake
clock: HAProxy's `show stat` counters and the metrics store's CPU, summed per version, judged by
the canary's thresholds. The real HAProxy path is in test_canary_e2e.py; here the bridge and the
metrics source are stand-ins whose answers the test writes, so every figure is known."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from haproxy_bridge.servers import server_name
from metrics.usage import Series
from pacer.canary_stats import TCP_ONLY, CanaryStats
from pacer.request_log import RequestLog

from .fakes import CHECK, EventLog, FakeClock, active, agent, build_scheduler, deployed, heal_new, service, shutdown, step
from .test_canary_haproxy import HEADER, row


class Process:
    def __init__(self) -> None:
        self.stat = HEADER + "\n"

    def alive(self) -> bool:
        return True

    async def runtime(self, command: str) -> str:
        return "Pid: 42\nStart_time_sec: 7\n" if command == "show info" else self.stat


class Bridge:
    def __init__(self) -> None:
        self.process = Process()


class Metrics:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    async def task_usage(self, metric: str, start: float, end: float, app_ids: Any = None) -> Any:
        return {"/web": {task: Series(np.array([start, end]), np.array([cores, cores]))
                         for task, cores in self.cpu.items()}}


ANALYSIS = {"intervalSeconds": 10, "minRequests": 20, "maxErrorRate": 0.05, "maxCpuRatio": 2.0, "failureLimit": 1}


@pytest.fixture
async def sched(tmp_path: Path) -> AsyncIterator[Any]:
    s, _ = build_scheduler(tmp_path / "state.db", FakeClock(), [agent(1), agent(2)])
    await s.start()
    yield s
    await shutdown(s)


async def canary_started(sched: Any, analysis: dict[str, Any] = ANALYSIS) -> tuple[list[str], str]:
    strategy = {"canary": {"instances": 1, "steps": [{"setWeight": 50}, {"pause": {"seconds": 60}}],
                           "analysis": analysis}}
    await deployed(sched, service("/web", 2, healthChecks=[CHECK], upgradeStrategy=strategy))
    sched.writes.update_apps([("/web", {"env": {"RELEASE": "2"}})])
    for _ in range(4):
        await step(sched)
        heal_new(sched, "/web")
    config = sched.state.apps["/web"].config_version
    tasks = [i.instance_id for i in active(sched, "/web")]
    (canary,) = [i.instance_id for i in active(sched, "/web") if i.config_version == config]
    return [t for t in tasks if t != canary], canary


def stat(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows, ""])


def counts(name: str, requests: int, errors: int) -> str:
    return row(server_name(name), requests, requests, requests, requests - errors, errors, 0, 0, 3)


async def test_failing_counters_and_cpu_abort_the_canary_with_both_reasons(sched: Any) -> None:
    events = EventLog(sched, "canary_analysis_event", "canary_aborted_event")
    (s1, s2), canary = await canary_started(sched)
    bridge, metrics = Bridge(), Metrics()
    stats = CanaryStats(sched, bridge, metrics)    # type: ignore[arg-type]
    sched.canary.analyse = stats.analyse
    bridge.process.stat = stat([counts(s1, 0, 0), counts(s2, 0, 0), counts(canary, 0, 0)])
    await stats.collect()                                       # the baseline, as the steps begin
    bridge.process.stat = stat([counts(s1, 40, 0), counts(s2, 40, 0), counts(canary, 80, 16)])
    metrics.cpu = {s1: 0.1, s2: 0.1, canary: 0.5}
    await stats.collect()
    sched.clock.advance(10)
    await step(sched)
    (judged,) = events.of("canary_analysis_event")
    figures = judged["analysis"]
    assert figures["verdict"] == "fail" and figures["latencyKind"] == "mean"
    assert figures["stable"] == {"requests": 80, "errors": 0, "errorRate": 0.0, "latencyMs": 3.0, "cpu": 0.1}
    assert figures["canary"]["requests"] == 80 and figures["canary"]["errors"] == 16
    assert figures["canary"]["cpu"] == pytest.approx(0.5)
    (aborted,) = events.of("canary_aborted_event")
    assert "error rate 20.00%" in aborted["reason"] and "maxCpuRatio failed too" in aborted["reason"]
    assert not sched.state.deployments or all(r.canary is None for r in sched.state.deployments.values())


async def test_a_healthy_interval_passes_and_too_few_requests_do_not(sched: Any) -> None:
    (s1, s2), canary = await canary_started(sched)
    bridge, metrics = Bridge(), Metrics()
    stats = CanaryStats(sched, bridge, metrics)    # type: ignore[arg-type]
    run = next(iter(sched.state.deployments.values()))
    bridge.process.stat = stat([counts(s1, 0, 0), counts(s2, 0, 0), counts(canary, 0, 0)])
    await stats.collect()
    bridge.process.stat = stat([counts(s1, 5, 0), counts(s2, 5, 0), counts(canary, 10, 0)])
    metrics.cpu = {s1: 0.2, s2: 0.2, canary: 0.25}
    await stats.collect()
    few = stats.analyse(run, run.canary, 0.0)
    assert few.outcome == "inconclusive" and "fewer than the minRequests 20" in few.reason
    bridge.process.stat = stat([counts(s1, 30, 0), counts(s2, 30, 0), counts(canary, 60, 1)])
    await stats.collect()
    good = stats.analyse(run, run.canary, 0.0)
    assert good.outcome == "pass", good.reason
    assert stats.analyse(run, run.canary, 0.0).outcome == "inconclusive"     # no new snapshot: no new interval


def tcp_row(name: str) -> str:
    """A TCP-mode server's row: HAProxy leaves its HTTP columns (req_tot, hrsp_*) empty."""
    columns = HEADER[2:].split(",")
    cells = row(server_name(name), 50, 50, 0, 0, 0, 0, 0, 0).split(",")
    for i, column in enumerate(columns):
        if column == "req_tot" or column.startswith("hrsp_"):
            cells[i] = ""
    return ",".join(cells)


async def test_tcp_mode_backends_are_inconclusive_not_error_free(sched: Any) -> None:
    (s1, s2), canary = await canary_started(sched)
    bridge = Bridge()
    stats = CanaryStats(sched, bridge, None)    # type: ignore[arg-type]
    run = next(iter(sched.state.deployments.values()))
    bridge.process.stat = "\n".join([HEADER, *[tcp_row(t) for t in (s1, s2, canary)], ""])
    await stats.collect()
    await stats.collect()
    verdict = stats.analyse(run, run.canary, 0.0)
    assert (verdict.outcome, verdict.reason) == ("inconclusive", TCP_ONLY)


# -- latency: the p95 of HAProxy's logged %Tr, or the counters' mean ---------------------------------

LATENCY = {"intervalSeconds": 10, "minRequests": 20, "maxLatencyP95Ratio": 1.5, "failureLimit": 1}


class LogClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logged(reader: RequestLog, task: str, *times_ms: int) -> None:
    """Requests of `task` as HAProxy logs them (backend `be`, as the recorded `show stat` rows)."""
    for ms in times_ms:
        reader.feed(f"pacer1 be {server_name(task)} 200 {ms} {ms + 1}\n".encode())


async def test_a_canary_slow_in_its_tail_fails_on_the_logged_p95_where_the_mean_would_pass(sched: Any) -> None:
    events = EventLog(sched, "canary_analysis_event", "canary_aborted_event")
    (s1, s2), canary = await canary_started(sched, LATENCY)
    bridge, clock = Bridge(), LogClock()
    reader = RequestLog(Path("/unused"), clock=clock)
    stats = CanaryStats(sched, bridge, None, reader)    # type: ignore[arg-type]
    sched.canary.analyse = stats.analyse
    bridge.process.stat = stat([counts(s1, 0, 0), counts(s2, 0, 0), counts(canary, 0, 0)])
    await stats.collect()                               # the baseline, and the log's mark
    logged(reader, "gone.task", 5000)                   # a server of no task of the app: not counted
    clock.now += 1
    logged(reader, s1, *[10] * 40)
    logged(reader, s2, *[12] * 40)
    logged(reader, canary, *[10] * 36, 400, 420, 450, 480)      # 10% slow: the mean hides it, the p95 not
    bridge.process.stat = stat([counts(s1, 40, 0), counts(s2, 40, 0), counts(canary, 40, 0)])   # rtime 3 ms each
    await stats.collect()
    clock.now += 1
    sched.clock.advance(10)
    await step(sched)
    (judged,) = events.of("canary_analysis_event")
    figures = judged["analysis"]
    assert figures["latencyKind"] == "p95" and figures["verdict"] == "fail", figures
    assert figures["stable"]["latencyMs"] == 12.0 and figures["canary"]["latencyMs"] == pytest.approx(421.5)
    (aborted,) = events.of("canary_aborted_event")
    assert "canary p95 latency 421 ms is 35.12x the stable 12 ms, above maxLatencyP95Ratio 1.5" in aborted["reason"]


async def test_without_logged_samples_of_both_versions_the_mean_is_judged_and_said_so(sched: Any) -> None:
    (s1, s2), canary = await canary_started(sched, LATENCY)
    bridge, clock = Bridge(), LogClock()
    reader = RequestLog(Path("/unused"), clock=clock)
    stats = CanaryStats(sched, bridge, None, reader)    # type: ignore[arg-type]
    run = next(iter(sched.state.deployments.values()))
    bridge.process.stat = stat([counts(s1, 0, 0), counts(s2, 0, 0), counts(canary, 0, 0)])
    await stats.collect()
    clock.now += 1
    logged(reader, s1, *[10] * 30)                     # the canary's requests were not logged
    bridge.process.stat = stat([counts(s1, 30, 0), counts(s2, 30, 0), counts(canary, 30, 0)])
    await stats.collect()
    clock.now += 1
    verdict = stats.analyse(run, run.canary, 0.0)
    assert verdict.latency_kind == "mean" and verdict.outcome == "pass", verdict
    assert (verdict.stable.latency_ms, verdict.canary.latency_ms) == (3.0, 3.0)
    clock.now += 1
    # the next interval: both versions logged, and only what came after the last analysis counts
    logged(reader, s2, *[20] * 30)
    logged(reader, canary, *[25] * 30)
    bridge.process.stat = stat([counts(s1, 60, 0), counts(s2, 60, 0), counts(canary, 60, 0)])
    await stats.collect()
    clock.now += 1
    verdict = stats.analyse(run, run.canary, 0.0)
    assert verdict.latency_kind == "p95" and verdict.outcome == "pass", verdict
    assert (verdict.stable.latency_ms, verdict.canary.latency_ms) == (20.0, 25.0)   # s1's 10 ms were the last interval's
