"""A canary release promoted end to end: a real `pacer serve` with its embedded HAProxy bridge,
two versions of a small HTTP server, real requests through HAProxy counted by the version that
answered them, at each step's weight, then the full roll (by a person's promote or by the
analysis). Aborts are in test_canary_e2e_abort.py, blue/green releases in
test_canary_e2e_blue_green.py."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from .canary_e2e_support import (
    assert_no_reload_since,
    settled_reloads,
    analysed,
    answer,
    fetch,
    serve_with_stats,
    shop,
    shop_tasks,
    site,
    static_cmd,
    stats_weights,
    steps_app,
    traffic_until,
    wait_serving,
)
from .haproxy_support import needs_haproxy
from .support import free_port, wait_until

pytestmark = needs_haproxy


def measured_share(port: int, requests: int = 200) -> float:
    """Percent of `requests` sequential requests through HAProxy that the new version answered."""
    answers = Counter(fetch(port) for _ in range(requests))
    assert answers[None] == 0, answers                             # none failed on the way
    return 100 * answers["v2"] / requests


def test_a_canary_gets_its_weight_of_real_requests_at_each_step_then_is_promoted(pacer_factory, tmp_path: Path) -> None:
    server, _ = serve_with_stats(pacer_factory)
    service_port = free_port()
    v1, v2 = site(tmp_path, "v1"), site(tmp_path, "v2")
    status, body, _ = server.request("POST", "/v2/apps", shop(v1, service_port))
    assert status == 201, body
    wait_serving(server, service_port)
    reloads = settled_reloads(server)

    status, body, headers = server.request("PUT", "/v2/apps/shop", shop(v2, service_port))
    assert status == 200, body
    deployment = body["deploymentId"]

    def canary() -> dict[str, Any] | None:
        rows = [d for d in server.get("/v2/deployments")[1] if d["id"] == deployment]
        return rows[0].get("canary") if rows else None

    def weights_applied(stable: int, new: int) -> bool:
        config = server.get("/v2/haproxy/config")[1]
        return config.count(f" weight {stable}") == 2 and config.count(f" weight {new}") == 1

    wait_until(lambda: (canary() or {}).get("weight") == 10, timeout=60, what="the canary to reach its 10% step")
    wait_until(lambda: weights_applied(9, 2), timeout=30, what="the 10% weights to reach HAProxy")
    wait_until(lambda: fetch(service_port) == "v2", timeout=60, what="the canary to answer through HAProxy")
    shares = {10: measured_share(service_port)}

    status, body, _ = server.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "next"})
    assert status == 200 and body["canary"]["weight"] == 50, body
    block = canary()
    assert block is not None and block["waitingForPromotion"] is True and block["app"] == "/shop"
    app = server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"]
    assert app["canaryTraffic"]["percent"] == 50 and len(app["canaryTraffic"]["canaryTasks"]) == 1
    assert len(app["tasks"]) == 3                                  # two stable, one canary beside them
    wait_until(lambda: weights_applied(1, 2), timeout=30, what="the 50% weights to reach HAProxy")
    shares[50] = measured_share(service_port)
    assert all(abs(share - weight) <= 5 for weight, share in shares.items()), shares
    assert_no_reload_since(server, reloads)                                     # weights, no reload

    status, body, _ = server.request("POST", f"/v2/deployments/{deployment}/promote", {"mode": "full"})
    assert status == 200, body
    assert body["canary"]["phase"] == "promoted"
    wait_until(lambda: server.get("/v2/deployments")[1] == [], timeout=90, what="the full roll to finish")
    assert "canaryTraffic" not in server.get("/v2/apps/shop")[1]["app"]
    wait_until(lambda: len(shop_tasks(server)) == 2, timeout=60, what="the stable instances to be drained and gone")
    wait_until(lambda: " weight " not in server.get("/v2/haproxy/config")[1], timeout=30,
               what="the weights to be cleared from the HAProxy config")
    assert Counter(fetch(service_port) for _ in range(30)) == Counter({"v2": 30})


def test_a_good_canary_passes_its_analysis_and_rolls_on_by_itself(pacer_factory, tmp_path: Path) -> None:
    server, _ = serve_with_stats(pacer_factory)
    port = free_port()
    v1, v2 = static_cmd(tmp_path, "v1"), static_cmd(tmp_path, "v2")
    assert server.request("POST", "/v2/apps", analysed(v1, port, 3))[0] == 201
    wait_serving(server, port)
    assert server.request("PUT", "/v2/apps/shop", analysed(v2, port, 3))[0] == 200
    seen = traffic_until(server, port, lambda: server.get("/v2/deployments")[1] == [])
    assert seen["v2"] > 0 and not {k for k in seen if isinstance(k, int)}, seen     # no failed request
    assert server.get("/v2/apps/shop")[1]["app"]["cmd"] == v2


def test_a_good_canary_is_promoted_by_its_analysis_through_every_weight_and_each_share_matches(
        pacer_factory, tmp_path: Path) -> None:
    """Requests are counted for a step only in batches that HAProxy's runtime weights and the
    app's ``canaryTraffic`` did not change around: each step's share is measured at that step."""
    server, stats_port = serve_with_stats(pacer_factory)
    port = free_port()
    v1, v2 = static_cmd(tmp_path, "v1"), static_cmd(tmp_path, "v2")
    analysis = {"intervalSeconds": 2, "minRequests": 10, "maxErrorRate": 0.01, "failureLimit": 1}
    steps = [{"setWeight": 20}, {"pause": {"seconds": 4}}, {"setWeight": 50}, {"pause": {"seconds": 4}},
             {"setWeight": 100}, {"pause": {"seconds": 4}}]
    assert server.request("POST", "/v2/apps", steps_app(v1, port, steps, analysis))[0] == 201
    wait_serving(server, port)

    def snapshot() -> tuple[int, tuple[int, ...]] | None:
        """The canary's percent, if HAProxy carries out the weights the app shows for it."""
        traffic = server.get("/v2/apps/shop?embed=apps.tasks")[1]["app"].get("canaryTraffic")
        if traffic is None or len(traffic["canaryTasks"]) != 1:
            return None
        weights = stats_weights(stats_port)
        if len(weights) != 3:
            return None
        wanted = sorted([traffic["stableWeight"]] * 2 + [traffic["canaryWeight"]])
        return (traffic["percent"], tuple(sorted(weights.values()))) if sorted(weights.values()) == wanted else None

    status, body, _ = server.request("PUT", "/v2/apps/shop", steps_app(v2, port, steps, analysis))
    assert status == 200, body
    per_step: dict[int, Counter[tuple[int, str]]] = {}
    everything: Counter[tuple[int, str]] = Counter()
    deadline = time.monotonic() + 180
    while server.get("/v2/deployments")[1] != [] and time.monotonic() < deadline:
        before = snapshot()
        batch = Counter(answer(port) for _ in range(20))
        everything.update(batch)
        if before is not None and snapshot() == before:
            per_step.setdefault(before[0], Counter()).update(batch)
    assert server.get("/v2/deployments")[1] == [], everything
    assert set(everything) <= {(200, "v1"), (200, "v2")}, everything       # no request failed on the way
    shares = {weight: 100 * seen[(200, "v2")] / sum(seen.values()) for weight, seen in sorted(per_step.items())}
    counts = {weight: sum(seen.values()) for weight, seen in sorted(per_step.items())}
    print(f"\nmeasured canary shares by weight: "
          + ", ".join(f"{w}%: {s:.1f}% of {counts[w]}" for w, s in shares.items())
          + f"; failed requests {sum(n for k, n in everything.items() if k[0] != 200)} of {sum(everything.values())}")
    assert {20, 50, 100} <= set(shares), counts
    assert all(counts[w] >= 200 for w in (20, 50, 100)), counts
    assert all(abs(shares[w] - w) <= 5 for w in (20, 50, 100)), shares
    app = server.get("/v2/apps/shop")[1]["app"]
    assert app["cmd"] == v2 and "canaryTraffic" not in app
    wait_until(lambda: len(shop_tasks(server)) == 2, timeout=60, what="the stable instances to be gone")
    assert Counter(answer(port) for _ in range(50)) == Counter({(200, "v2"): 50})
