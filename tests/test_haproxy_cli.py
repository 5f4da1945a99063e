"""`pacer haproxy-bridge` flags, and the bridge as its own process (`python -m haproxy_bridge`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from haproxy_bridge.cli import add_arguments, options_from_args
from haproxy_bridge.options import BridgeOptions

from .haproxy_support import HAPROXY, Backends, RecordedMaster, app_json, free_port, get, needs_haproxy, wait_for

REPO = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> BridgeOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return options_from_args(parser.parse_args(list(argv)))


def test_flags_and_defaults() -> None:
    o = parse("--master", "http://127.0.0.1:8080")
    assert (o.group, o.http_port, o.https_port, o.stats_port, o.apps_port, o.status_port) == \
        ("*", 80, 443, 9090, 9091, 9092)
    assert o.bind_address == "127.0.0.1" and o.config_dir == Path("var/haproxy")
    o = parse("--master", "http://m:1", "--group", "external", "--http-port", "18080", "--https-port", "18443",
              "--stats-port", "19090", "--config-dir", "/tmp/x", "--bind-address", "*", "--ssl-cert", "/a.pem",
              "--ssl-cert", "/b.pem", "--poll-seconds", "1")
    assert (o.group, o.http_port, o.stats_port, o.status_port, o.bind_address, o.ssl_certs, o.poll_seconds) == \
        ("external", 18080, 19090, 19092, "*", ("/a.pem", "/b.pem"), 1.0)
    assert parse("--master", "http://m:1", "--apps-port", "0").apps_port is None
    assert parse("--master", "http://m:1", "--apps-port", "19091").apps_port == 19091


@pytest.mark.parametrize("argv,message", [
    (["--http-port", "0"], "--http-port must be a port"),
    (["--stats-port", "80"], "must differ"),
    (["--apps-port", "9090"], "must differ"),
    (["--apps-port", "70000"], "--apps-port must be a port"),
    (["--bind-address", "localhost"], "--bind-address must be an IP address"),
    (["--master", "127.0.0.1:8080"], "--master must be an http(s) URL"),
    (["--config-dir", "/tmp/a b"], "--config-dir must be a plain path"),
    (["--debounce-seconds", "0"], "--debounce-seconds must be positive"),
])
def test_bad_flags_name_themselves(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse("--master", "http://127.0.0.1:8080", *argv)
    assert message in str(err.value)


@needs_haproxy
def test_standalone_process_serves_and_stops_haproxy_by_pid(tmp_path: Path) -> None:
    backends = Backends()
    master = RecordedMaster().start()
    proc = None
    try:
        b1, sp = backends.start("one"), free_port()
        master.apps = [app_json("/web", sp, [b1], labels={"HAPROXY_0_VHOST": "web.example.com"})]
        http, https, stats = free_port(), free_port(), free_port()
        env = {**os.environ, "PATH": f"{Path(HAPROXY).parent}:{os.environ.get('PATH', '')}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "haproxy_bridge", "--master", master.url, "--http-port", str(http),
             "--https-port", str(https), "--stats-port", str(stats), "--status-port", str(free_port()),
             "--apps-port", str(free_port()),
             "--config-dir", str(tmp_path / "hx"), "--poll-seconds", "0.3", "--debounce-seconds", "0.1"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(lambda: get(f"http://127.0.0.1:{http}/", host="web.example.com")[0] == 200, 15, "routing")
        status = json.loads(get(f"http://127.0.0.1:{stats}/v2/haproxy")[1])
        master_pid = status["haproxy"]["masterPid"]
        assert status["apps"][0]["state"] == "included" and Path(f"/proc/{master_pid}").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, proc.stdout.read().decode() if proc.stdout else ""
        assert not Path(f"/proc/{master_pid}").exists(), "haproxy outlived the bridge"
        with pytest.raises(OSError):
            get(f"http://127.0.0.1:{http}/", timeout=1)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        master.stop()
        backends.stop_all()
