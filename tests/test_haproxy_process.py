"""The bridge against a real master-worker HAProxy, fed by a small aiohttp app serving recorded
/v2/apps JSON (the test edits it) and real HTTP backends, all on 127.0.0.1 free ports."""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import datetime
from pathlib import Path

import pytest

from haproxy_bridge.haproxy import HaproxyProcess

from .haproxy_support import (HAPROXY, BridgeThread, LoadLoop, RecordedMaster, app_json, bridge_options,
                              free_port, get, needs_haproxy, running_bridge, wait_for)

pytestmark = [pytest.mark.timeout(120), needs_haproxy]




@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    return tmp_path / "hx"


def names(bt: BridgeThread, backend: str) -> set[str]:
    out = bt.runtime(f"show servers state {backend}")
    return {line.split()[3] for line in out.splitlines()[2:] if line.strip()}


def served_by(url: str, n: int = 8, host: str | None = None) -> set[str]:
    return {get(url, host=host)[1].split(" ")[0] for _ in range(n)}


def test_server_changes_go_through_the_runtime_api_without_reload(backends, master, cfg_dir) -> None:
    b1, b2, b3 = backends.start("one"), backends.start("two"), backends.start("three")
    sp = free_port()
    master.apps = [app_json("/web", sp, [b1, b2])]
    with running_bridge(bridge_options(cfg_dir, master.url)) as bt:
        url = f"http://127.0.0.1:{sp}/"
        assert served_by(url) == {"name=one", "name=two"}
        before = bt.processes()
        reloads = bt.status()["counters"]["reloads"]

        master.apps = [app_json("/web", sp, [b1, b3])]
        wait_for(lambda: names(bt, f"web_{sp}") == {f"web.instance-{b1}._app.1", f"web.instance-{b3}._app.1"},
                 5, "the server list to change")
        after = bt.processes()
        assert (after.master_pid, after.workers, after.reloads) == (before.master_pid, before.workers, before.reloads)
        assert bt.status()["counters"]["reloads"] == reloads
        assert bt.status()["counters"]["runtimeUpdates"] >= 1
        assert served_by(url) == {"name=one", "name=three"}
        # the file on disk follows, so a later reload keeps the same servers
        text = (cfg_dir / "haproxy.cfg").read_text()
        assert f"127.0.0.1:{b3}" in text and f"127.0.0.1:{b2}" not in text


def test_config_change_reloads_through_the_master(backends, master, cfg_dir) -> None:
    b1 = backends.start("one")
    sp = free_port()
    master.apps = [app_json("/web", sp, [b1])]
    opts = bridge_options(cfg_dir, master.url)
    with running_bridge(opts) as bt:
        before = bt.processes()
        master.apps = [app_json("/web", sp, [b1], labels={"HAPROXY_0_VHOST": "web.example.com"})]
        wait_for(lambda: get(f"http://127.0.0.1:{opts.http_port}/", host="web.example.com:80")[0] == 200, 5,
                 "the vhost to route")
        after = bt.processes()
        assert after.master_pid == before.master_pid and after.workers != before.workers
        status = wait_for(lambda: (st := bt.status())["lastReload"]["workerPid"] in after.workers and st, 5,
                          "the bridge to see the new worker")
        assert status["lastReload"]["ok"]
        assert get(f"http://127.0.0.1:{opts.http_port}/", host="other.example.com")[0] == 503


def test_invalid_config_never_reaches_haproxy(backends, master, cfg_dir) -> None:
    b1, b2 = backends.start("good"), backends.start("other")
    sp_good, sp_cert, sp_evil = free_port(), free_port(), free_port()
    missing = cfg_dir.parent / "no-such-cert.pem"
    master.apps = [app_json("/good", sp_good, [b1], labels={"HAPROXY_0_VHOST": "good.example.com"})]
    opts = bridge_options(cfg_dir, master.url)
    with running_bridge(opts) as bt:
        assert get(f"http://127.0.0.1:{sp_good}/")[0] == 200
        master.apps = master.apps + [
            app_json("/cert", sp_cert, [b2], labels={"HAPROXY_0_VHOST": "cert.example.com",
                                                     "HAPROXY_0_SSL_CERT": str(missing)}),
            app_json("/evil", sp_evil, [b2], labels={"HAPROXY_0_VHOST": "evil.example.com\n  bind 127.0.0.1:22"}),
        ]
        verdicts = wait_for(lambda: {a["id"]: a for a in bt.status()["apps"] if a["state"] == "rejected"}
                            if len([a for a in bt.status()["apps"] if a["state"] == "rejected"]) == 2 else None,
                            10, "both bad apps to be rejected")
        assert "haproxy -c rejected" in verdicts["/cert"]["reasons"][0] and "SSL certificate" in verdicts["/cert"]["reasons"][0]
        assert "newline" in verdicts["/evil"]["reasons"][0]
        status = bt.status()
        assert status["counters"]["failedReloads"] == 0
        live = (cfg_dir / "haproxy.cfg").read_text()
        assert str(missing) not in live and ":22" not in live and "evil" not in live
        assert get(f"http://127.0.0.1:{sp_good}/")[0] == 200
        assert get(f"http://127.0.0.1:{opts.http_port}/", host="good.example.com")[0] == 200
        # fixing the app brings it in
        missing.write_text(_self_signed(cfg_dir.parent))
        master.apps = [a for a in master.apps if a["id"] != "/evil"]
        bt.loop.call_soon_threadsafe(bt.bridge.request_refresh, "test", True)
        wait_for(lambda: {a["id"]: a["state"] for a in bt.status()["apps"]}.get("/cert") == "included", 10,
                 "the fixed app to be included")


def _self_signed(d: Path) -> str:
    import shutil
    import subprocess
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=cert.example.com", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return key.read_text() + crt.read_text()


def test_a_port_held_by_another_process_rejects_only_that_app(backends, master, cfg_dir) -> None:
    b1 = backends.start("one")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        sp = free_port()
        master.apps = [app_json("/ok", sp, [b1]), app_json("/blocked", taken, [b1])]
        with running_bridge(bridge_options(cfg_dir, master.url)) as bt:
            verdict = {a["id"]: a for a in bt.status()["apps"]}
            assert verdict["/blocked"]["state"] == "rejected"
            assert f"cannot bind 127.0.0.1:{taken}" in verdict["/blocked"]["reasons"][0]
            assert verdict["/ok"]["state"] == "included"
            assert get(f"http://127.0.0.1:{sp}/")[0] == 200
            assert bt.status()["counters"]["failedReloads"] == 0


def test_removed_server_drains_before_it_goes(backends, master, cfg_dir) -> None:
    """The drain deadline is far beyond the waits here: the server must go because it is idle."""
    b1, b2 = backends.start("old"), backends.start("new")
    sp = free_port()
    master.apps = [app_json("/slow", sp, [b1])]
    with running_bridge(bridge_options(cfg_dir, master.url, drain_seconds=60)) as bt:
        old = (f"slow_{sp}", f"slow.instance-{b1}._app.1")
        result: dict[str, object] = {}
        t = threading.Thread(target=lambda: result.update(r=get(f"http://127.0.0.1:{sp}/sleep/1.5", timeout=10)))
        t.start()
        wait_for(lambda: bt.call(bt.bridge.process.server_sessions()).get(old, 0) >= 1, 5,
                 "the slow request to hold a session on the old server")
        master.apps = [app_json("/slow", sp, [b2])]
        draining = wait_for(lambda: bt.status()["draining"], 5, "the old server to drain")
        assert draining[0]["server"] == old[1]
        state = bt.runtime(f"show servers state slow_{sp}")
        assert f"slow.instance-{b1}._app.1" in state
        assert get(f"http://127.0.0.1:{sp}/")[1].startswith("name=new"), "no new request goes to a draining server"
        t.join(10)
        status, body, _ = result["r"]  # type: ignore[misc]
        assert status == 200 and body.startswith("name=old"), "the session on the draining server finished"
        wait_for(lambda: not bt.status()["draining"], 15, "the idle drained server to be deleted")
        assert bt.status()["counters"]["drained"] == 1
        assert names(bt, f"slow_{sp}") == {f"slow.instance-{b2}._app.1"}


def test_zero_drop_through_reloads_and_runtime_changes(backends, master, cfg_dir) -> None:
    """4 threads loop requests (fresh connection each) while the bridge reloads 24 times and
    changes servers through the Runtime API 12 times: not one request may fail."""
    ports = [backends.start(f"s{i}") for i in range(4)]
    sp, other = free_port(), free_port()
    opts = bridge_options(cfg_dir, master.url)
    web_labels = {"HAPROXY_0_VHOST": "web.example.com"}
    master.apps = [app_json("/web", sp, ports, labels=web_labels), app_json("/other", other, ports[:1])]
    with running_bridge(opts) as bt:
        start = bt.status()["counters"]

        def counted(key: str, n: int) -> bool:
            return bt.status()["counters"][key] >= start[key] + n

        with LoadLoop(f"http://127.0.0.1:{sp}/", threads=2, max_seconds=40) as direct, \
                LoadLoop(f"http://127.0.0.1:{opts.http_port}/", threads=2, host="web.example.com", max_seconds=40) as vhost:
            for i in range(12):
                web = master.apps[0]
                master.apps = [web, app_json("/other", other, ports[:1], labels={"HAPROXY_0_VHOST": f"o{i}.example.com"})]
                wait_for(lambda: counted("reloads", 2 * i + 1), 5, f"reload {i}")           # a label change: reload
                web = app_json("/web", sp, [p for k, p in enumerate(ports) if k != i % 4], labels=web_labels)
                master.apps = [web, master.apps[1]]
                wait_for(lambda: counted("runtimeUpdates", i + 1), 5, f"runtime update {i}")  # servers only
                master.apps = [web, app_json("/other", other, ports[:2], labels={
                    "HAPROXY_0_VHOST": f"o{i}.example.com", "HAPROXY_0_BALANCE": "leastconn"})]
                wait_for(lambda: counted("reloads", 2 * i + 2), 5, f"reload {i}b")
            results = [direct.stop(), vhost.stop()]
        end = bt.status()["counters"]
    assert end["reloads"] - start["reloads"] >= 24 and end["runtimeUpdates"] - start["runtimeUpdates"] >= 12
    assert end["failedReloads"] == 0
    for r in results:
        assert r.ok > 100 and r.failures == [], r.failures[:5]
    assert len(results[0].seen) == 4


def test_stats_page_metrics_and_status_on_one_port(backends, master, cfg_dir) -> None:
    b1 = backends.start("one")
    master.apps = [app_json("/web", free_port(), [b1], labels={"HAPROXY_0_VHOST": "x.example.com\nbad"})]
    opts = bridge_options(cfg_dir, master.url, status_port=free_port())
    with running_bridge(opts, status=True) as bt:
        base = f"http://127.0.0.1:{opts.stats_port}"
        status, body, _ = get(base + "/haproxy?stats;csv")
        assert status == 200 and "pacer_stats" in body
        assert get(base + "/_haproxy_health_check")[0] == 200
        assert "haproxy_process" in get(base + "/metrics")[1]
        import json
        for path in ("/v2/haproxy", "/v2/haproxy/"):
            st = json.loads(get(base + path)[1])
            assert st["apps"][0]["state"] == "rejected" and st["haproxy"]["masterPid"] == bt.master_pid()
        assert "listen pacer_stats" in get(base + "/v2/haproxy/config")[1]
        rejected = json.loads(get(base + "/v2/haproxy/apps?state=rejected")[1])["apps"]
        assert [a["id"] for a in rejected] == ["/web"]
        assert get(base + "/v2/haproxy/refresh", method="POST")[0] == 202


def test_events_drive_updates_when_the_stream_exists(backends, cfg_dir) -> None:
    b1, b2 = backends.start("one"), backends.start("two")
    sp = free_port()
    master = RecordedMaster([app_json("/web", sp, [b1])], with_events=True).start()
    try:
        with running_bridge(bridge_options(cfg_dir, master.url, poll_seconds=60)) as bt:
            wait_for(lambda: bt.status()["stream"]["mode"] == "sse", 5, "the stream to connect")
            requests = master.requests
            master.apps = [app_json("/web", sp, [b2])]
            master.publish("status_update_event", taskStatus="TASK_RUNNING", appId="/web")
            wait_for(lambda: served_by(f"http://127.0.0.1:{sp}/", 2) == {"name=two"}, 10, "the event to apply")
            assert master.requests == requests + 1, "one debounced refetch per burst"
            status = bt.status()
            assert status["stream"]["polls"] == 0 and status["stream"]["resyncs"] == 0
            assert status["history"][-1]["kind"] == "runtime"
            assert status["history"][-1]["reasons"] == ["status_update_event"], "the event, not a poll, applied it"
    finally:
        master.stop()


def test_haproxy_left_behind_is_stopped_by_its_pid(tmp_path: Path) -> None:
    from haproxy_bridge.render import RenderSettings, render_haproxy_config
    from haproxy_bridge.model import Model
    cfg = tmp_path / "hx" / "haproxy.cfg"
    cfg.parent.mkdir()

    async def scenario() -> tuple[int, int]:
        first = HaproxyProcess(HAPROXY, cfg)
        cfg.write_text(render_haproxy_config(Model(), RenderSettings(
            stats_port=free_port(), admin_socket=str(first.admin_socket))))
        info = await first.start()
        second = HaproxyProcess(HAPROXY, cfg)       # a new bridge on the same dir, the first one "crashed"
        try:
            info2 = await second.start()
            gone = not Path(f"/proc/{info.master_pid}").exists() or \
                "zombie" in Path(f"/proc/{info.master_pid}/status").read_text().lower()
            assert gone, "the leftover master still runs"
            return info.master_pid, info2.master_pid
        finally:
            await second.stop()
            await first.stop()

    old, new = asyncio.run(scenario())
    assert old != new and not Path(f"/proc/{new}").exists()


def _https_get(port: int, sni: str, path: str = "/") -> tuple[str, bytes]:
    """GET over TLS with SNI `sni`; returns the raw response and the server certificate (DER)."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            der = tls.getpeercert(binary_form=True) or b""
    return data.decode(errors="replace"), der


def _der_of(pem_file: Path) -> bytes:
    import ssl
    text = pem_file.read_text()
    cert = text[text.index("-----BEGIN CERTIFICATE-----"):]
    return ssl.PEM_cert_to_DER_cert(cert)


def test_tls_frontend_with_sni_and_redirect_to_https(backends, master, cfg_dir, tmp_path: Path) -> None:
    from .test_haproxy_render import make_cert
    import shutil
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    a_pem, b_pem = tmp_path / "a.pem", tmp_path / "b.pem"
    make_cert(a_pem, "a.example.com")
    make_cert(b_pem, "b.example.com")
    b1, b2 = backends.start("a"), backends.start("b")
    sp_a, sp_b = free_port(), free_port()
    master.apps = [
        app_json("/a", sp_a, [b1], labels={"HAPROXY_0_VHOST": "a.example.com", "HAPROXY_0_SSL_CERT": str(a_pem),
                                          "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}),
        app_json("/b", sp_b, [b2], labels={"HAPROXY_0_VHOST": "b.example.com", "HAPROXY_0_SSL_CERT": str(b_pem)}),
    ]
    opts = bridge_options(cfg_dir, master.url)
    with running_bridge(opts):
        for name, pem in (("a", a_pem), ("b", b_pem)):
            response, der = _https_get(opts.https_port, f"{name}.example.com")
            assert response.startswith("HTTP/1.1 200") and f"name={name}" in response, response[:200]
            assert der == _der_of(pem), "SNI picked the wrong certificate"
        # the app's own service port speaks TLS too (marathon-lb's SSL_CERT behaviour)
        assert "name=b" in _https_get(sp_b, "b.example.com")[0]
        status, _, headers = get(f"http://127.0.0.1:{opts.http_port}/x?y=1", host="a.example.com")
        assert status == 301 and headers["location"] == "https://a.example.com/x?y=1"
        assert get(f"http://127.0.0.1:{opts.http_port}/", host="b.example.com")[1].startswith("name=b")


def test_a_config_refused_only_at_reload_is_rolled_back_and_narrowed(backends, master, cfg_dir) -> None:
    """A port another process holds passes `haproxy -c`; the bridge's bind probe normally names
    the app first. With the probe out of the way the reload itself fails: the last good file
    goes back, the app is named from HAProxy's own error and left out, and the next reload
    carries everyone else."""
    b1 = backends.start("one")
    sp, sp_new = free_port(), free_port()
    master.apps = [app_json("/ok", sp, [b1])]
    with socket.socket() as holder, running_bridge(bridge_options(cfg_dir, master.url)) as bt:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        bt.bridge.targets.probe = lambda address, port: None      # every port looks free
        good_worker = bt.processes().workers
        master.apps = [app_json("/ok", sp, [b1]), app_json("/new", sp_new, [b1]), app_json("/held", taken, [b1])]
        status = wait_for(lambda: (st := bt.status()) and {a["id"]: a["state"] for a in st["apps"]}.get("/held")
                          == "rejected" and st["lastReload"]["ok"] and st, 10, "the app refused at reload to be named")
        apps = {a["id"]: a for a in status["apps"]}
        assert "refused it at reload" in apps["/held"]["reasons"][0] and "cannot bind" in apps["/held"]["reasons"][0]
        assert status["counters"]["failedReloads"] == 1, status["history"]
        assert bt.processes().workers != good_worker
        assert get(f"http://127.0.0.1:{sp_new}/")[0] == 200 and get(f"http://127.0.0.1:{sp}/")[0] == 200
        assert f":{taken}" not in (cfg_dir / "haproxy.cfg").read_text()


def test_reloads_are_spaced_but_server_changes_never_wait(backends, master, cfg_dir) -> None:
    b1, b2 = backends.start("one"), backends.start("two")
    sp, other = free_port(), free_port()
    master.apps = [app_json("/web", sp, [b1]), app_json("/other", other, [b1])]
    with running_bridge(bridge_options(cfg_dir, master.url, debounce_seconds=1.5)) as bt:
        master.apps = [app_json("/web", sp, [b1]), app_json("/other", other, [b1], labels={"HAPROXY_0_MODE": "http"})]
        wait_for(lambda: bt.status()["counters"]["reloads"] == 2, 5, "the first reload")
        # within the window: a label change (needs a reload) and a new instance (does not)
        master.apps = [app_json("/web", sp, [b2]), app_json("/other", other, [b1], labels={"HAPROXY_0_MODE": "tcp"})]
        wait_for(lambda: served_by(f"http://127.0.0.1:{sp}/", 2) == {"name=two"}, 5, "the server change")
        wait_for(lambda: bt.status()["counters"]["reloads"] == 3, 5, "the deferred reload")
        history = bt.status()["history"]
        reloads = [i for i, u in enumerate(history) if u["kind"] == "reload"]
        between = history[reloads[-2] + 1:reloads[-1]]
        assert between and all(u["kind"] == "deferred" for u in between), history
        assert between[0]["servers"] == {"added": 1, "moved": 0, "revived": 0, "draining": 1}, \
            "the server change went through the Runtime API while the reload waited"
        spacing = (datetime.fromisoformat(history[reloads[-1]]["at"])
                   - datetime.fromisoformat(history[reloads[-2]]["at"])).total_seconds()
        assert spacing >= 1.4, history
        assert "mode tcp" in bt.bridge.state.live_config.split("frontend other_")[1].split("backend")[0]


def test_long_config_dir_gets_short_socket_paths(tmp_path: Path) -> None:
    """Unix socket paths must fit in 108 bytes; a deep config dir gets its sockets in /tmp."""
    from haproxy_bridge.model import Model
    from haproxy_bridge.render import RenderSettings, render_haproxy_config
    cfg = tmp_path / ("deep" * 25) / "haproxy.cfg"
    cfg.parent.mkdir()

    async def scenario() -> Path:
        proc = HaproxyProcess(HAPROXY, cfg)
        assert len(str(proc.master_socket)) < 100 and proc.run_dir != cfg.parent
        cfg.write_text(render_haproxy_config(Model(), RenderSettings(stats_port=free_port(),
                                                                     admin_socket=str(proc.admin_socket))))
        try:
            await proc.start()
            assert "pacer_stats" in await proc.runtime("show stat")
        finally:
            await proc.stop()
        return proc.run_dir

    run_dir = asyncio.run(scenario())
    assert not run_dir.exists()
