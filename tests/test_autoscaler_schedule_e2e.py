"""A scheduled window end to end: a real `pacer serve` (its own sampler and autoscaler, real
`sleep` tasks), a dated window a few seconds long raises the minimum from 1 to 2, and after it
ends the policy's ordinary scale-down brings the app back to 1; the decision log and
/v2/events name the window."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from .support import EventRecorder, wait_until

pytestmark = pytest.mark.timeout(120)

UTC8 = dt.timezone(dt.timedelta(hours=8))       # the team's offset; the host's zone plays no part


def test_a_dated_window_scales_an_app_up_and_back(pacer_factory):
    server = pacer_factory("--agent-resources", "cpus=8,mem=4096,disk=1000",
                           "--metrics-interval", "1", "--autoscale-interval", "1")
    opens = dt.datetime.now(UTC8).replace(microsecond=0) + dt.timedelta(seconds=5)
    closes = opens + dt.timedelta(seconds=6)
    window = {"name": "flash sale", "from": opens.isoformat(), "to": closes.isoformat(), "minInstances": 2}
    app = {"id": "/shop", "instances": 1, "cpus": 0.1, "mem": 16, "cmd": "sleep 1000",
           "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_TARGET": "50", "AUTOSCALE_MIN": "1",
                      "AUTOSCALE_MAX": "3", "AUTOSCALE_WINDOW": "3", "AUTOSCALE_STABILIZATION_DOWN": "2",
                      "AUTOSCALE_SCHEDULE": json.dumps([window])}}
    recorder = EventRecorder(server.url, "autoscaler_decision_event")
    try:
        assert server.request("POST", "/v2/apps", app)[0] == 201

        def instances() -> int:
            return server.get("/v2/apps/shop")[1]["app"]["instances"]

        policy = wait_until(lambda: server.get("/v2/autoscaler/policies/shop")[1].get("schedule"), timeout=4,
                            what="the label policy to be read (one autoscaler cycle)")
        assert policy == [window]
        while time.time() < opens.timestamp() - 0.5:
            assert instances() == 1, "scaled before the window opened"
            time.sleep(0.2)
        wait_until(lambda: instances() == 2, timeout=opens.timestamp() + 4 - time.time(),
                   what="the window's minimum to scale /shop to 2 at once")
        raised_at = time.time()
        assert raised_at - opens.timestamp() < 3.0
        wait_until(lambda: instances() == 1, timeout=20, what="/shop back to 1 after the window")
        assert time.time() >= closes.timestamp()
    finally:
        recorder.close()
    decisions = server.get("/v2/autoscaler/decisions?appId=/shop")[1]["decisions"]
    ups = [d for d in decisions if d["action"] == "scale_up"]
    downs = [d for d in decisions if d["action"] == "scale_down"]
    assert [(d["current"], d["desired"]) for d in ups] == [(1, 2)] and ups[0]["applied"]
    assert opens.timestamp() <= ups[0]["time"] < closes.timestamp()
    assert "raised to the scheduled minimum at once" in ups[0]["reason"]
    assert "min 2 from schedule[0] 'flash sale'" in ups[0]["reason"]
    [applied] = ups[0]["schedule"]["windows"]
    assert (applied["name"], applied["sets"], applied["minInstances"]) == ("flash sale", ["min"], 2)
    assert applied["from"] == opens.isoformat() and applied["to"] == closes.isoformat()
    assert [(d["current"], d["desired"]) for d in downs] == [(2, 1)] and downs[0]["time"] >= closes.timestamp()
    assert downs[0]["schedule"]["windows"] == [] and "scheduled bounds" not in downs[0]["reason"]
    streamed = [e for e in recorder.of_type("autoscaler_decision_event") if e.get("appId") == "/shop"]
    assert any(e["action"] == "scale_up" and e["schedule"]["windows"][0]["name"] == "flash sale" for e in streamed)
    assert any(e["action"] == "scale_down" for e in streamed)

    # the REST form: the `schedule` field of a policy; a bad window is a 422 naming it and the fix
    bad = {"target": 50, "max": 4, "schedule": [{"cron": "0 8 * * 1-5", "until": "0 20 * * 1-5",
                                                 "timezone": "Asia/Shangai", "minInstances": 2}]}
    status, body, _ = server.request("PUT", "/v2/autoscaler/policies/shop", bad)
    assert status == 422 and body["details"] == [
        {"path": "/schedule[0].timezone", "errors": ["unknown time zone 'Asia/Shangai'; did you mean Asia/Shanghai?"]}]
    good = {**bad, "schedule": [{**bad["schedule"][0], "timezone": "Asia/Shanghai"}]}
    status, body, _ = server.request("PUT", "/v2/autoscaler/policies/shop", good)
    assert status == 201 and body["schedule"] == good["schedule"] and body["source"] == "api"
