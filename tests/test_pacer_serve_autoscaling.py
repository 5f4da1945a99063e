"""The autoscaler built into `pacer serve`: real CPU-burning processes, sampled, scaled."""

from __future__ import annotations

from .support import EventRecorder, wait_until


def test_builtin_autoscaler_scales_a_busy_app_out_and_back_in(pacer_factory, tmp_path):
    server = pacer_factory("--agent-resources", "cpus=16,mem=16384,disk=10000",
                           "--metrics-interval", "1", "--autoscale-interval", "1")
    flag = tmp_path / "calm-down"
    app = {"id": "/busy", "instances": 1, "cpus": 0.2, "mem": 16,
           "cmd": f"while [ ! -e {flag} ]; do :; done; exec sleep 1000",
           "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_METRIC": "cpu", "AUTOSCALE_TARGET": "50",
                      "AUTOSCALE_MIN": "1", "AUTOSCALE_MAX": "3", "AUTOSCALE_WINDOW": "5",
                      "AUTOSCALE_STABILIZATION_DOWN": "3"}}
    recorder = EventRecorder(server.url, "autoscaler_decision_event")
    try:
        assert server.request("POST", "/v2/apps", app)[0] == 201
        wait_until(lambda: server.get("/v2/apps/busy")[1]["app"]["instances"] == 3, timeout=45,
                   what="scale out to the max under load")
        decisions = server.get("/v2/autoscaler/decisions?appId=/busy")[1]
        entries = decisions["decisions"] if isinstance(decisions, dict) else decisions
        assert any(d["action"] == "scale_up" and d["desired"] > d["current"] for d in entries), entries[:3]
        flag.touch()
        wait_until(lambda: server.get("/v2/apps/busy")[1]["app"]["instances"] == 1, timeout=60,
                   what="scale back in once the load stopped")
    finally:
        recorder.close()
    streamed = recorder.of_type("autoscaler_decision_event")
    assert {"scale_up", "scale_down"} <= {e["action"] for e in streamed if e.get("appId", e.get("app_id")) == "/busy"}
