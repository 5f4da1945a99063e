"""The HAProxy bridge's half of a canary: `canaryTraffic` on an app becomes per-server weights,
in the rendered file (a reload keeps them) and as Runtime API commands (a step needs no reload)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from haproxy_bridge.model import build_model
from haproxy_bridge.plan import plan_commands, plan_runtime
from haproxy_bridge.render import render_haproxy_config

from .haproxy_support import HAPROXY, needs_haproxy
from .test_haproxy_render import SETTINGS, app, task


def shop(traffic: dict[str, Any] | None) -> dict[str, Any]:
    tasks = [task("shop.1", 31001), task("shop.2", 31002), task("shop.3", 31003)]
    extra = {} if traffic is None else {"canaryTraffic": traffic}
    return app("/shop", [10080], {"HAPROXY_GROUP": "external"}, tasks, **extra)


HALF = {"percent": 50, "canaryTasks": ["shop.3"], "canaryWeight": 2, "stableWeight": 1, "canaryShare": 50.0}
TEN = {"percent": 10, "canaryTasks": ["shop.3"], "canaryWeight": 1, "stableWeight": 9, "canaryShare": 10.0}


def weights(model_apps: list[dict[str, Any]]) -> dict[str, int | None]:
    (service,) = build_model(model_apps).services
    return {s.task_id: s.weight for s in service.servers}


def test_canary_traffic_weighs_the_servers_by_version() -> None:
    assert weights([shop(HALF)]) == {"shop.1": 1, "shop.2": 1, "shop.3": 2}
    assert weights([shop(None)]) == {"shop.1": None, "shop.2": None, "shop.3": None}


def test_a_malformed_block_is_ignored_not_guessed_at() -> None:
    for bad in ({"canaryTasks": "shop.3", "canaryWeight": 2, "stableWeight": 1},
                {"canaryTasks": ["shop.3"], "canaryWeight": 999, "stableWeight": 1},
                {"canaryTasks": ["shop.3"], "canaryWeight": "2", "stableWeight": 1}, "50%"):
        assert set(weights([shop(bad)]).values()) == {None}      # type: ignore[arg-type]


def test_the_rendered_file_carries_the_weights() -> None:
    text = render_haproxy_config(build_model([shop(HALF)]), SETTINGS)
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server shop.")]
    assert servers == ["server shop.1 127.0.0.1:31001 weight 1", "server shop.2 127.0.0.1:31002 weight 1",
                       "server shop.3 127.0.0.1:31003 weight 2"]
    assert " weight " not in render_haproxy_config(build_model([shop(None)]), SETTINGS)


def test_a_step_is_a_runtime_change_with_the_zero_weight_last() -> None:
    before, after = build_model([shop(TEN)]), build_model([shop(HALF)])
    plan = plan_runtime(before, after)
    assert plan is not None and [s.name for _, s in plan.reweigh] == ["shop.1", "shop.2", "shop.3"]
    assert plan_commands(plan, after) == ["set server shop_10080/shop.3 weight 2",
                                          "set server shop_10080/shop.1 weight 1",
                                          "set server shop_10080/shop.2 weight 1"]
    start = {"percent": 0, "canaryTasks": ["shop.3"], "canaryWeight": 0, "stableWeight": 1, "canaryShare": 0.0}
    plan = plan_runtime(build_model([shop(start)]), build_model([shop(None)]))     # cleared: back to 1
    assert plan is not None and plan_commands(plan, build_model([shop(None)])) == [
        "set server shop_10080/shop.3 weight 1"]


@needs_haproxy
def test_haproxy_accepts_the_weighted_file(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    text = render_haproxy_config(build_model([shop(HALF)]), SETTINGS)
    cfg.write_text(text.replace("/run/pacer-haproxy/admin.sock", str(tmp_path / "admin.sock")))
    result = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
