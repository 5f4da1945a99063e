"""Pacer's own metrics, in Prometheus form: what operators graph next to their apps' metrics.

One `Telemetry` per scheduler owns its own `CollectorRegistry` (not prometheus-client's global
one: a process may hold several schedulers, as tests do, and each must count only its own).
The parts feed it with one call at their edges:

    API middleware        observe_request      pacer_api_request_duration_seconds{method,route,status}
    SchedulingLoop        observe_pass         pacer_scheduling_pass_duration_seconds
    TaskRunner            count_launch/kill    pacer_launches_total, pacer_kills_total
    TimedStore            (wraps the Store)    pacer_store_write_duration_seconds
    the election          (read at scrape)     pacer_leader
    HealthChecker         count_health_check   pacer_health_checks_total{result}
    the garbage collector (gc.callbacks)       pacer_gc_pause_seconds{generation}

What mirrors state (apps, instances by state, deployments, the launch queue, event-stream
subscribers, events published) is not updated on every change: `StateCollector` reads the
scheduler's read-only view when Prometheus scrapes, so the hot paths pay nothing for it.
Labels stay bounded: a route is its template (`/v2/apps/{app_id}`), never the raw path, and an
unknown method is `other`.

This module imports nothing of the scheduler's (the parts import it), so the readings it takes
are described by the small protocols below.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.state.model import ACTIVE_STATES
from scheduler.state.store import Fence, Store, StoredState, Write

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""API requests and passes: the aim is milliseconds, a slow one takes seconds."""
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""A store commit is one fsync (SQLite) or one round trip (ZooKeeper): sub-millisecond to seconds."""

GC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""A young collection takes microseconds; a full one walks every tracked object (tens of ms at
1,000 apps), and the event loop waits for it."""

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"
HEALTH_RESULTS: dict[bool | None, str] = {True: "healthy", False: "unhealthy", None: "ignored"}
"""A probe's verdict as a label; `None` is a probe that gave none (an ignored 1xx answer)."""


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


class _HasCount(Protocol):
    @property
    def count(self) -> int: ...


class StateReadings(Protocol):
    """What the scrape reads of the scheduler: its read-only view (`SchedulerView`)."""

    @property
    def apps(self) -> Mapping[str, Any]: ...
    @property
    def instances(self) -> Mapping[str, _HasState]: ...
    @property
    def deployments(self) -> Mapping[str, Any]: ...
    @property
    def queue(self) -> Mapping[str, _HasCount]: ...


class EventReadings(Protocol):
    """What the scrape reads of the event bus."""

    published: int
    slow_clients_dropped: int

    @property
    def subscriber_count(self) -> int: ...


class StateCollector(Collector):
    """The gauges that mirror state, computed at scrape time from the scheduler's view."""

    def __init__(self, view: StateReadings, events: EventReadings,
                 leads: Callable[[], bool] = lambda: True) -> None:
        self._view = view
        self._events = events
        self._leads = leads

    def describe(self) -> Iterable[Metric]:
        return []   # no names known up front: the registry then calls collect only when scraped

    def collect(self) -> Iterator[Metric]:
        view = self._view
        yield GaugeMetricFamily("pacer_leader", "1 while this instance leads (and may act), else 0: exactly one "
                                "instance of an HA set should show 1.", value=1 if self._leads() else 0)
        yield GaugeMetricFamily("pacer_apps", "Apps defined.", value=len(view.apps))
        by_state = dict.fromkeys(ACTIVE_STATES, 0)    # the usual states are series even at zero
        for inst in view.instances.values():
            by_state[inst.state] = by_state.get(inst.state, 0) + 1
        instances = GaugeMetricFamily("pacer_instances", "Instances known, by task state.", labels=["state"])
        for state, count in sorted(by_state.items()):
            instances.add_metric([state], count)
        yield instances
        yield GaugeMetricFamily("pacer_deployments", "Deployments running.", value=len(view.deployments))
        queue = view.queue
        yield GaugeMetricFamily("pacer_queue_apps", "Apps with instances waiting to launch.", value=len(queue))
        yield GaugeMetricFamily("pacer_queue_instances", "Instances waiting to launch.",
                                value=sum(entry.count for entry in queue.values()))
        events = self._events
        yield GaugeMetricFamily("pacer_event_subscribers", "Clients reading /v2/events.",
                                value=events.subscriber_count)
        yield CounterMetricFamily("pacer_events_published", "Events published on the event bus.",
                                  value=events.published)
        yield CounterMetricFamily("pacer_event_subscribers_dropped", "Event-stream clients dropped for "
                                  "falling behind.", value=events.slow_clients_dropped)


class GcPauses:
    """How long the garbage collector stopped this process, by generation.

    Why: an API p99 far above its p50 with nothing slow in the handlers is often a full
    collection, and only timing the collector tells. The callback runs wherever a collection
    starts, maybe while a metric's lock is held, so it only adds to plain lists; the histogram
    is built when Prometheus scrapes. One per process (the collector is), read by every
    scheduler's registry.
    """

    def __init__(self) -> None:
        self.counts = [[0] * (len(GC_BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = info.get("generation", 2)
        self.sums[generation] += seconds
        self.counts[generation][bisect_left(GC_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily("pacer_gc_pause_seconds", "Garbage collections, by generation, and how "
                                       "long each stopped the process.", labels=["generation"])
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip((*GC_BUCKETS, float("inf")), self.counts[generation]):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            family.add_metric([str(generation)], buckets, self.sums[generation])
        yield family


_GC_PAUSES: GcPauses | None = None


def gc_pauses() -> GcPauses:
    """The process's collector timing, installed on first use."""
    global _GC_PAUSES
    if _GC_PAUSES is None:
        _GC_PAUSES = GcPauses()
        gc.callbacks.append(_GC_PAUSES)
    return _GC_PAUSES


class Telemetry:
    """One scheduler's metrics: the counters its parts feed, and the registry a scrape reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.api_request_seconds = Histogram(
            "pacer_api_request_duration_seconds", "API requests by method, route template and status.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pass_seconds = Histogram(
            "pacer_scheduling_pass_duration_seconds", "Scheduling passes: view, decide and apply.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.launches = Counter("pacer_launches", "Task launches handed to the cluster backend.",
                                registry=self.registry)
        self.launch_failures = Counter("pacer_launch_failures", "Launches the cluster backend refused.",
                                       registry=self.registry)
        self.kills = Counter("pacer_kills", "Task kills handed to the cluster backend.", registry=self.registry)
        self.store_write_seconds = Histogram(
            "pacer_store_write_duration_seconds", "Durable store commits (one transaction each).",
            buckets=STORE_BUCKETS, registry=self.registry)
        health_checks = Counter("pacer_health_checks", "Health check verdicts, by result.", ["result"],
                                registry=self.registry)
        # every result is a series from the start: a rate over a series that appears later starts wrong
        self._health_checks = {ok: health_checks.labels(result) for ok, result in HEALTH_RESULTS.items()}
        self._requests: dict[tuple[str, str, int], Histogram] = {}
        ProcessCollector(registry=self.registry)    # process_cpu_seconds_total, process_resident_memory_bytes…
        self.registry.register(gc_pauses())

    def watch(self, view: StateReadings, events: EventReadings, leads: Callable[[], bool] = lambda: True) -> None:
        """Expose the state gauges of `view` and `events`, and whether this instance `leads`
        (once per scheduler)."""
        self.registry.register(StateCollector(view, events, leads))

    # -- the edges' calls: on a repeat, one dict lookup and one observe or inc ------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._requests.get(key)
        if child is None:
            label = method if method in KNOWN_METHODS else OTHER_METHOD
            child = self._requests[key] = self.api_request_seconds.labels(label, route, str(status))
        child.observe(seconds)

    def observe_pass(self, seconds: float) -> None:
        self.pass_seconds.observe(seconds)

    def count_launch(self) -> None:
        self.launches.inc()

    def count_launch_failure(self) -> None:
        self.launch_failures.inc()

    def count_kill(self) -> None:
        self.kills.inc()

    def count_health_check(self, ok: bool | None) -> None:
        self._health_checks[ok].inc()


class TimedStore:
    """A `Store` whose commits are timed into `pacer_store_write_duration_seconds`.

    It wraps whichever store the scheduler runs on (SQLite, ZooKeeper), so neither needs to know
    about metrics. Anything beyond the protocol is passed through to the wrapped store.
    """

    def __init__(self, store: Store, telemetry: Telemetry) -> None:
        self._store = store
        self._seconds = telemetry.store_write_seconds
        self.location = store.location

    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        started = time.perf_counter()
        try:
            self._store.commit(writes, fence)
        finally:
            self._seconds.observe(time.perf_counter() - started)

    def load(self) -> StoredState:
        return self._store.load()

    def app_versions(self, app_id: str) -> list[str]:
        return self._store.app_versions(app_id)

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        return self._store.app_version(app_id, version)

    def close(self) -> None:
        self._store.close()

    def __getattr__(self, name: str) -> Any:
        # only reached for names this class lacks: a store's extras keep working through the wrapper
        return getattr(self._store, name)
