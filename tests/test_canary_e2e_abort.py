"""A bad canary aborted by its analysis, end to end: a real `pacer serve` with its embedded
HAProxy bridge judges the canary on HAProxy's own counters of real requests sent by the test
(and, for latency, on the p95 of the response times HAProxy logs per request), aborts it, and
the app is back on the stable version; the requests HAProxy sent to the stable instances never
failed."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from .canary_e2e_support import (
    FAILING_SERVER,
    FLAKY_SERVER,
    SLOW_SERVER,
    analysed,
    answer,
    fetch_status,
    put_canary_script,
    serve_with_stats,
    shop_tasks,
    stable_steps_app,
    static_cmd,
    traffic_until,
    wait_serving,
)
from .haproxy_support import needs_haproxy
from .support import EventRecorder, free_port, wait_until

pytestmark = needs_haproxy


def test_a_failing_canary_is_aborted_by_its_analysis_and_the_app_rolls_back(pacer_factory, tmp_path: Path) -> None:
    server, _ = serve_with_stats(pacer_factory)
    port = free_port()
    good = static_cmd(tmp_path, "v1")
    assert server.request("POST", "/v2/apps", analysed(good, port, 600))[0] == 201
    wait_serving(server, port)
    script = tmp_path / "failing.py"
    script.write_text(FAILING_SERVER)
    status, body, _ = server.request("PUT", "/v2/apps/shop", analysed(f"exec python3 {script} $PORT0", port, 600))
    assert status == 200, body
    seen = traffic_until(server, port, lambda: server.get("/v2/deployments")[1] == [])
    assert seen[500] > 0, seen                                   # the canary did get its share, and failed it
    assert set(seen) <= {"v1", 500}, seen                        # no request failed on the way (502, 503, reset)
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == good and "canaryTraffic" not in app       # the stable version is back
    wait_until(lambda: len(shop_tasks(server)) == 2, timeout=60, what="the canary instance to be gone")
    assert Counter(fetch_status(port) for _ in range(40)) == Counter({"v1": 40})


def test_a_canary_failing_a_fifth_of_its_requests_is_aborted_and_stable_clients_see_no_failure(
        pacer_factory, tmp_path: Path) -> None:
    analysis = {"intervalSeconds": 2, "minRequests": 20, "maxErrorRate": 0.05, "failureLimit": 2}
    steps = [{"setWeight": 30}, {"pause": {"seconds": 600}}]
    server, port, good = stable_steps_app(pacer_factory, tmp_path, steps, analysis)
    events = EventRecorder(server.url, "canary_aborted_event")
    deployment = put_canary_script(server, tmp_path, "flaky.py", FLAKY_SERVER, port, steps, analysis)
    seen: Counter[tuple[int, str]] = Counter()
    deadline = time.monotonic() + 120
    while server.get("/v2/deployments")[1] != [] and time.monotonic() < deadline:
        seen.update(answer(port) for _ in range(20))
    assert server.get("/v2/deployments")[1] == [], seen
    canary_ok, canary_failed = seen[(200, "v2")], seen[(500, "v2")]
    assert canary_failed > 0 and canary_ok > 0, seen                 # the canary got its share and failed a part
    assert set(seen) <= {(200, "v1"), (200, "v2"), (500, "v2")}, seen   # stable answered every request it got
    wait_until(lambda: events.of_type("canary_aborted_event"), timeout=30, what="the canary_aborted_event")
    events.close()
    (aborted,) = events.of_type("canary_aborted_event")
    assert aborted["id"] == deployment and "maxErrorRate" in aborted["reason"], aborted
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == good and "canaryTraffic" not in app
    wait_until(lambda: len(shop_tasks(server)) == 2, timeout=60, what="the canary instance to be gone")
    after = Counter(answer(port) for _ in range(100))
    assert after == Counter({(200, "v1"): 100}), after
    print(f"\nflaky canary {deployment}: stable 200s {seen[(200, 'v1')]}, canary 200s {canary_ok}, "
          f"canary 500s {canary_failed} ({100 * canary_failed / (canary_ok + canary_failed):.1f}%), "
          f"other failures {sum(n for k, n in seen.items() if k[1] not in ('v1', 'v2'))}")


def test_a_slow_canary_is_aborted_on_the_p95_of_the_response_times_haproxy_logged(
        pacer_factory, tmp_path: Path) -> None:
    """Every canary request takes 200 ms; the stable version answers in a few. The request log is
    turned on while the canary runs (a reload: the config then has the log lines) and off after."""
    analysis = {"intervalSeconds": 2, "minRequests": 5, "maxLatencyP95Ratio": 3, "failureLimit": 2}
    steps = [{"setWeight": 50}, {"pause": {"seconds": 600}}]
    server, port, good = stable_steps_app(pacer_factory, tmp_path, steps, analysis)
    assert "log-format" not in server.get("/v2/haproxy/config")[1]
    events = EventRecorder(server.url, "canary_analysis_event", "canary_aborted_event")
    put_canary_script(server, tmp_path, "slow.py", SLOW_SERVER, port, steps, analysis)
    logging: list[bool] = []

    def done() -> bool:
        logging.append('log-format "pacer1 ' in server.get("/v2/haproxy/config")[1])
        return server.get("/v2/deployments")[1] == []

    seen = traffic_until(server, port, done, limit=120)
    assert seen["v2"] > 0 and set(seen) <= {"v1", "v2"}, seen        # the canary was slow, never failing
    assert any(logging), "the request log was never on while the canary ran"
    wait_until(lambda: events.of_type("canary_aborted_event"), timeout=30, what="the canary_aborted_event")
    events.close()
    (aborted,) = events.of_type("canary_aborted_event")
    assert "maxLatencyP95Ratio" in aborted["reason"] and "canary p95 latency" in aborted["reason"], aborted
    last = events.of_type("canary_analysis_event")[-1]["analysis"]
    assert last["verdict"] == "fail" and last["latencyKind"] == "p95", last
    assert last["canary"]["latencyMs"] >= 150 and last["stable"]["latencyMs"] < 50, last
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == good and "canaryTraffic" not in app
    wait_until(lambda: "log-format" not in server.get("/v2/haproxy/config")[1], timeout=30,
               what="the request log to be turned off with the canary gone")
    kinds = [e["analysis"]["latencyKind"] for e in events.of_type("canary_analysis_event")]
    print(f"\nslow canary: {seen['v1']} stable and {seen['v2']} canary requests; analyses {kinds}; "
          f"p95 stable {last['stable']['latencyMs']:.1f} ms, canary {last['canary']['latencyMs']:.1f} ms")
