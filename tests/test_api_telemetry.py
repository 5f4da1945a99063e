"""Pacer's own metrics at `GET /metrics`, scraped over real HTTP and parsed as Prometheus does.

Counters are compared before and after what a test does, so each assertion says how much one
action moved them; labels are checked to stay bounded (route templates, never app ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.api.telemetry import wants_dropwizard_json
from scheduler.state.sqlite_store import SqliteStore
from scheduler.state.store import PutMeta
from scheduler.telemetry import Telemetry, TimedStore

from .support import EventRecorder, InProcessApi, PacerServer, http, kill_task_processes, wait_until

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""What Prometheus 2.x sends when it scrapes."""


def scrape(url: str) -> Samples:
    """Every sample of `url`/metrics, keyed by sample name and sorted labels."""
    status, body, headers = http("GET", url, "/metrics", headers={"Accept": "text/plain"})
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def request_count(samples: Samples, method: str, route: str, status: str) -> float:
    return value(samples, "pacer_api_request_duration_seconds_count", method=method, route=route, status=status)


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[InProcessApi]:
    """A scheduler and its API in this process; its agents offer nothing, so nothing launches."""
    home = tmp_path / "home"
    server = InProcessApi(home).start()
    yield server
    server.stop()
    kill_task_processes(home)


def test_requests_are_counted_by_route_template_never_by_app_id(fresh_api: InProcessApi) -> None:
    before = scrape(fresh_api.url)
    for name in ("alpha", "beta", "gamma"):
        status, body, _ = http("POST", fresh_api.url, "/v2/apps", {"id": f"/shop/{name}", "cmd": "sleep 1000",
                                                                     "instances": 0})
        assert status == 201, body
        assert http("GET", fresh_api.url, f"/v2/apps/shop/{name}")[0] == 200
    assert http("GET", fresh_api.url, "/v2/apps/shop/missing")[0] == 404
    assert http("GET", fresh_api.url, "/no/such/route")[0] == 404
    assert http("PROPFIND", fresh_api.url, "/v2/apps")[0] == 405
    after = scrape(fresh_api.url)

    def moved(method: str, route: str, status: str) -> float:
        return request_count(after, method, route, status) - request_count(before, method, route, status)

    assert moved("POST", "/v2/apps", "201") == 3
    assert moved("GET", "/v2/apps/{tail}", "200") == 3
    assert moved("GET", "/v2/apps/{tail}", "404") == 1
    assert moved("GET", "unmatched", "404") == 1
    assert moved("other", "unmatched", "405") == 1
    routes = {dict(labels)["route"] for name, labels in after if name.startswith("pacer_api_request_duration")}
    assert not any(app in route for route in routes for app in ("alpha", "beta", "gamma", "missing", "shop")), routes
    assert "/no/such/route" not in routes
    # each request's histogram has the full set of buckets, and the +Inf bucket equals the count
    assert value(after, "pacer_api_request_duration_seconds_bucket", method="POST", route="/v2/apps",
                 status="201", le="+Inf") == request_count(after, "POST", "/v2/apps", "201")
    assert value(after, "pacer_apps") == 3
    # the writes went to the store, each timed
    stored = "pacer_store_write_duration_seconds_count"
    assert value(after, stored) >= value(before, stored) + 3


def test_content_negotiation_keeps_marathon_clients_on_dropwizard_json(fresh_api: InProcessApi) -> None:
    status, body, headers = http("GET", fresh_api.url, "/metrics", headers={"Accept": "application/json"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert body["version"] == "4.0.0" and "marathon.apps.active.gauge" in body["gauges"]
    status, body, headers = http("GET", fresh_api.url, "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.rstrip().endswith("# EOF") and "pacer_scheduling_pass_duration_seconds_bucket" in body
    status, body, headers = http("GET", fresh_api.url, "/metrics", headers={"Accept": "*/*"})
    assert headers["content-type"].startswith("text/plain; version=0.0.4") and "# TYPE pacer_apps gauge" in body


def test_accept_rules() -> None:
    assert wants_dropwizard_json("application/json")
    assert wants_dropwizard_json("application/json, */*;q=0.1")
    assert not wants_dropwizard_json("")
    assert not wants_dropwizard_json("*/*")
    assert not wants_dropwizard_json(PROMETHEUS_ACCEPT)
    assert not wants_dropwizard_json("text/plain, application/json")


def test_event_stream_subscribers_are_a_gauge(fresh_api: InProcessApi) -> None:
    assert value(scrape(fresh_api.url), "pacer_event_subscribers") == 0
    recorder = EventRecorder(fresh_api.url)
    try:
        wait_until(lambda: value(scrape(fresh_api.url), "pacer_event_subscribers") == 1, what="one subscriber")
        published = value(scrape(fresh_api.url), "pacer_events_published_total")
        assert http("POST", fresh_api.url, "/v2/apps", {"id": "/ev", "cmd": "sleep 1", "instances": 0})[0] == 201
        assert value(scrape(fresh_api.url), "pacer_events_published_total") > published
    finally:
        recorder.close()
    wait_until(lambda: value(scrape(fresh_api.url), "pacer_event_subscribers") == 0, what="no subscriber")


def test_schedulers_in_one_process_count_apart(tmp_path: Path) -> None:
    """Each scheduler owns its registry: one's requests never show in the other's scrape."""
    first = InProcessApi(tmp_path / "one").start()
    second = InProcessApi(tmp_path / "two").start()
    try:
        assert http("POST", first.url, "/v2/apps", {"id": "/only-here", "cmd": "sleep 1", "instances": 0})[0] == 201
        assert request_count(scrape(first.url), "POST", "/v2/apps", "201") == 1
        assert request_count(scrape(second.url), "POST", "/v2/apps", "201") == 0
        assert value(scrape(second.url), "pacer_apps") == 0
    finally:
        first.stop()
        second.stop()


def test_full_collections_are_timed_by_generation() -> None:
    import gc

    registry = Telemetry().registry
    full = "pacer_gc_pause_seconds_count"
    before = registry.get_sample_value(full, {"generation": "2"}) or 0
    gc.collect()
    gc.collect()
    assert registry.get_sample_value(full, {"generation": "2"}) == before + 2
    assert registry.get_sample_value("pacer_gc_pause_seconds_sum", {"generation": "2"}) > 0
    assert registry.get_sample_value("pacer_gc_pause_seconds_bucket", {"generation": "2", "le": "+Inf"}) == before + 2


def test_timed_store_times_commits_and_passes_the_rest_through(tmp_path: Path) -> None:
    telemetry = Telemetry()
    store = SqliteStore(tmp_path / "state.sqlite")
    timed = TimedStore(store, telemetry)
    try:
        timed.commit([PutMeta("framework_id", "f-1")])
        timed.commit([PutMeta("framework_id", "f-2")])
        assert timed.load().meta["framework_id"] == "f-2" and timed.location == store.location
        assert telemetry.registry.get_sample_value("pacer_store_write_duration_seconds_count") == 2
    finally:
        timed.close()


def test_launches_kills_queue_and_health_checks_of_real_tasks(pacer: PacerServer) -> None:
    before = scrape(pacer.url)
    app = {"id": "/metered", "cmd": "exec python3 -m http.server --bind 127.0.0.1 $PORT0", "instances": 2,
           "cpus": 0.1, "mem": 32, "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 0,
                                                     "intervalSeconds": 1, "timeoutSeconds": 1}]}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: pacer.get("/v2/apps/metered")[1]["app"]["tasksHealthy"] == 2, what="2 healthy tasks")
    running = scrape(pacer.url)
    assert value(running, "pacer_launches_total") - value(before, "pacer_launches_total") == 2
    assert value(running, "pacer_launch_failures_total") == value(before, "pacer_launch_failures_total")
    assert value(running, "pacer_instances", state="TASK_RUNNING") == 2
    assert value(running, "pacer_queue_apps") == 0 and value(running, "pacer_queue_instances") == 0
    assert value(running, "pacer_health_checks_total", result="healthy") >= 2
    assert value(running, "pacer_scheduling_pass_duration_seconds_count") > \
        value(before, "pacer_scheduling_pass_duration_seconds_count")
    assert value(running, "process_resident_memory_bytes") > 0

    assert pacer.request("PUT", "/v2/apps/metered", {"instances": 0})[0] == 200
    wait_until(lambda: pacer.tasks("/metered") == [], what="the tasks to end")
    stopped = scrape(pacer.url)
    assert value(stopped, "pacer_kills_total") - value(before, "pacer_kills_total") == 2
    assert value(stopped, "pacer_instances", state="TASK_RUNNING") == 0
    assert request_count(stopped, "PUT", "/v2/apps/{tail}", "200") == 1


def test_failing_health_checks_are_counted_unhealthy(pacer: PacerServer) -> None:
    failed = value(scrape(pacer.url), "pacer_health_checks_total", result="unhealthy")
    app = {"id": "/sick", "cmd": "exec python3 -m http.server --bind 127.0.0.1 $PORT0", "instances": 1,
           "cpus": 0.1, "mem": 32, "healthChecks": [{"protocol": "HTTP", "path": "/does-not-exist",
                                                     "gracePeriodSeconds": 0, "intervalSeconds": 1,
                                                     "maxConsecutiveFailures": 0}]}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201
    wait_until(lambda: pacer.running("/sick"), what="the task to run")
    wait_until(lambda: value(scrape(pacer.url), "pacer_health_checks_total", result="unhealthy") >= failed + 2,
               what="failing checks counted")


def test_apps_that_cannot_be_placed_show_in_the_queue(pacer: PacerServer) -> None:
    app = {"id": "/too-big", "cmd": "sleep 1000", "instances": 3, "cpus": 1000, "mem": 32}
    assert pacer.request("POST", "/v2/apps", app)[0] == 201

    def three_waiting() -> Samples | None:
        samples = scrape(pacer.url)
        return samples if value(samples, "pacer_queue_instances") == 3 else None

    samples = wait_until(three_waiting, what="3 instances waiting")
    assert value(samples, "pacer_queue_apps") == 1
    assert value(samples, "pacer_launches_total") == 0
