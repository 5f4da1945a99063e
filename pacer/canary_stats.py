"""Canary analysis figures inside `pacer serve`: HAProxy's per-server counters and the tasks' CPU.

The scheduler judges an analysis interval synchronously, in its round; the figures need I/O
(the bridge's Runtime API, the metrics source). So a small loop here collects them while a
canary with an ``analysis`` runs, every ``COLLECT_SECONDS``: the latest ``show stat`` snapshot
(with ``show info``'s worker generation, so a reload is not read as negative traffic) and each
canary app's mean CPU per task over the analysis interval. :meth:`CanaryStats.analyse` is the
scheduler's ``analyse`` seam: it takes the counters since the interval before (the baseline is
the first snapshot seen once the steps began), sums them per version through the task each
server stands for, and hands the figures to the pure ``judge``.

Without a running HAProxy the verdict is inconclusive, which pauses the canary: missing data
is never a pass.

Latency: when the canary's analysis judges it (``maxLatencyP95Ratio``) the bridge has HAProxy log
each of the app's requests (:mod:`pacer.request_log` reads them), and the figure is the p95 of
each version's ``%Tr`` over the interval (``latency_kind="p95"``). ``%Tr`` rather than ``%Ta``:
it is the server's own response time (request sent to response headers received), which is what
tells a slow version from a fast one; ``%Ta`` adds the client's side (a slow client's upload or
download, HAProxy's queue), which is not the version's doing. It is also the quantity ``show
stat``'s ``rtime`` averages, so the fallback measures the same thing: while either version has no
logged sample in the interval (no reader, a canary without a latency check, the first interval
after the reload that turns the log on) the figure is HAProxy's mean ``rtime`` and the verdict
says ``"mean"``. The log interval runs from this canary's previous analysis to this one (on the
reader's clock); the counters' from the snapshots either side, which differ by at most one
``COLLECT_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping

from haproxy_bridge.errors import BridgeError
from haproxy_bridge.service import HaproxyBridge
from haproxy_bridge.servers import server_name
from metrics.base import MetricsSource
from metrics.haproxy_stats import StatsFormatError
from pacer.request_log import RequestLog
from periodic import run_periodically
from scheduler.canary import (CanaryError, ServerCounters, ServerStat, StatsSnapshot, Verdict, VersionSample, counters_of, interval_deltas,
                              judge, mean_by_version, parse_show_stat, percentile_by_version, sample, traffic_by_version,
                              worker_generation)
from scheduler.deploy.canary_run import CanaryRun, canary_spec
from scheduler.deploy.runs import DeploymentRun
from scheduler.engine.core import Scheduler

log = logging.getLogger(__name__)

COLLECT_SECONDS = 1.0
STABLE, CANARY = "stable", "canary"


TCP_ONLY = ("the app's HAProxy backends run in TCP mode, where HAProxy sees no HTTP status or response "
            "time to judge; route the app in http mode (HAPROXY_0_MODE=http or a HAPROXY_0_VHOST)")


def _by_backend(rows: tuple[ServerStat, ...]) -> dict[str, ServerCounters]:
    """``backend/server`` -> counters of the HTTP-mode servers: an app with several service
    ports has the same server names in each of its backends, and every one of them counts. A
    TCP-mode server shows no response counts (``hrsp_*`` empty): its failures cannot be told
    from its successes, so it is left out rather than counted as error-free."""
    backends: dict[str, list[ServerStat]] = {}
    for row in rows:
        if any(r is not None for r in row.responses):
            backends.setdefault(row.backend, []).append(row)
    return {f"{backend}/{name}": counters for backend, stats in backends.items()
            for name, counters in counters_of(stats).items()}


def _version_of_keys(keys: Iterable[str], by_name: Mapping[str, str]) -> dict[str, str]:
    """``backend/server`` -> version, through the server's name (the task it stands for); a
    server of no task of the app (another app's, ``<NOSRV>``) is left out."""
    return {key: by_name[key.rsplit("/", 1)[1]] for key in keys if key.rsplit("/", 1)[1] in by_name}


class CanaryStats:
    def __init__(self, scheduler: Scheduler, bridge: HaproxyBridge | None, metrics: MetricsSource | None,
                 request_log: RequestLog | None = None) -> None:
        self._scheduler = scheduler
        self._bridge = bridge
        self._metrics = metrics
        self._request_log = request_log
        self._log_marks: dict[tuple[str, str], float] = {}     # (deployment, app) -> its interval's start, log clock
        self.latest: StatsSnapshot | None = None
        self.last_error: str | None = None
        self._baselines: dict[tuple[str, str], StatsSnapshot] = {}   # (deployment, app) -> start of its interval
        self._cpu: dict[str, dict[str, float | None]] = {}  # app id -> task id -> mean cores over the interval

    def _analysed(self) -> list[tuple[DeploymentRun, CanaryRun]]:
        """Every canary with an analysis still in its steps (a deployment may run several)."""
        out = []
        for run in self._scheduler.state.deployments.values():
            for canary in run.canaries:
                spec = canary_spec(run.plan, canary.app_id)
                if canary.in_steps and spec is not None and spec.analysis is not None:
                    out.append((run, canary))
        return out

    async def collect(self) -> None:
        """One round: a ``show stat`` snapshot and the CPU means, if any canary is analysed."""
        runs = self._analysed()
        keys = {(r.id, c.app_id) for r, c in runs}
        self._baselines = {k: v for k, v in self._baselines.items() if k in keys}
        self._log_marks = {k: v for k, v in self._log_marks.items() if k in keys}
        if not runs:
            return
        bridge = self._bridge
        if bridge is not None and bridge.process.alive():
            try:
                info = await bridge.process.runtime("show info")
                stat = await bridge.process.runtime("show stat")
                self.latest = StatsSnapshot(time.time(), worker_generation(info), _by_backend(parse_show_stat(stat)))
                self.last_error = None
            except (BridgeError, CanaryError, StatsFormatError, OSError) as exc:
                self.last_error = f"HAProxy statistics unavailable: {exc}"
        else:
            self.latest = None
            self.last_error = "the HAProxy bridge of this process is not running: the canary cannot be measured"
        for run, canary in runs:
            if self.latest is not None and canary.state is not None:
                self._baselines.setdefault((run.id, canary.app_id), self.latest)
                if self._request_log is not None:
                    self._log_marks.setdefault((run.id, canary.app_id), self._request_log.now())
            await self._collect_cpu(run, canary)

    async def _collect_cpu(self, run: DeploymentRun, canary: CanaryRun) -> None:
        spec = canary_spec(run.plan, canary.app_id)
        if self._metrics is None or spec is None or spec.analysis is None or spec.analysis.max_cpu_ratio is None:
            return
        end = time.time()
        try:
            usage = await self._metrics.task_usage("cpu", end - spec.analysis.interval_seconds, end,
                                                   [canary.app_id])
        except Exception as exc:        # any source's failure only makes the CPU figure missing
            self._cpu.pop(canary.app_id, None)
            self.last_error = f"CPU figures unavailable: {exc}"
            return
        series = usage.get(canary.app_id, {})
        self._cpu[canary.app_id] = {task: float(s.values.mean()) if len(s) else None
                                    for task, s in series.items()}

    async def run(self) -> None:
        await run_periodically("canary analysis figures", self.collect, COLLECT_SECONDS, log=log)

    # -- the scheduler's `analyse` seam ---------------------------------------------------------
    def _versions(self, app_id: str) -> dict[str, str]:
        """Task id -> stable | canary, by the app's current config."""
        record = self._scheduler.state.apps.get(app_id)
        if record is None:
            return {}
        return {i.instance_id: CANARY if i.config_version == record.config_version else STABLE
                for i in self._scheduler.state.instances_of(app_id)}

    def analyse(self, run: DeploymentRun, canary: CanaryRun, now: float) -> Verdict:
        spec = canary_spec(run.plan, canary.app_id)
        assert spec is not None and spec.analysis is not None
        latest, before = self.latest, self._baselines.get((run.id, canary.app_id))
        if latest is None or before is None or latest is before:
            why = self.last_error or "no HAProxy statistics for this interval yet"
            return Verdict("inconclusive", why, VersionSample(), VersionSample())
        key = (run.id, canary.app_id)
        self._baselines[key] = latest
        task_version = self._versions(canary.app_id)
        by_name = {server_name(task): version for task, version in task_version.items()}
        p95 = self._p95(key, by_name)
        version_of_server = _version_of_keys(latest.servers, by_name)
        if not version_of_server:
            return Verdict("inconclusive", TCP_ONLY if any(task_version) else "the app has no HAProxy servers",
                           VersionSample(), VersionSample())
        traffic = traffic_by_version(interval_deltas(before, latest), version_of_server)
        cpu = mean_by_version(self._cpu.get(canary.app_id, {}), task_version)
        stable = sample(traffic.get(STABLE), cpu.get(STABLE))
        new = sample(traffic.get(CANARY), cpu.get(CANARY))
        if STABLE in p95 and CANARY in p95:
            return judge(dataclasses.replace(stable, latency_ms=p95[STABLE]),
                         dataclasses.replace(new, latency_ms=p95[CANARY]), spec.analysis, latency_kind="p95")
        return judge(stable, new, spec.analysis, latency_kind="mean")

    def _p95(self, key: tuple[str, str], by_name: Mapping[str, str]) -> dict[str, float]:
        """Version -> p95 of the ``%Tr`` HAProxy logged since this canary's previous analysis
        (empty without a reader or a mark); the next interval starts now."""
        reader, since = self._request_log, self._log_marks.get(key)
        if reader is None or since is None:
            return {}
        until = self._log_marks[key] = reader.now()
        samples = reader.samples_between(since, until)
        return percentile_by_version(samples, _version_of_keys({k for k, _ in samples}, by_name))

