"""Support for the HAProxy bridge tests: backends, a recorded-apps master, the bridge on its own
event loop thread, and a bounded request loop. Everything listens on 127.0.0.1 free ports and
every process started here is stopped by its pid.

`needs_haproxy` marks the tests that run the haproxy binary: without it (a non-root `make test`
cannot install it) they are skipped, saying why, and every other test still runs.

Run as a script it is a tiny HTTP backend: `python haproxy_support.py serve PORT [NAME]` answers
`GET /...` with `name=<NAME or $MESOS_TASK_ID> app=<$MARATHON_APP_ID> port=<PORT>`, and the Host and
path it saw in `X-Seen-Host` / `X-Seen-Path`; `GET /...?location=URL` answers 302 with that Location.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

THIS = Path(__file__).resolve()
HAPROXY = "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else "haproxy"

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None,
                                   reason="haproxy is not installed (apt-get install haproxy)")


def free_port() -> int:
    from tests.support import free_port as one_free_port  # not at import: script mode has no package
    return one_free_port()


def backend_cmd(port_expr: str = "$PORT0", name: str = "") -> str:
    """A shell command for an app definition: this file as a backend."""
    return f"{sys.executable} {THIS} serve {port_expr} {name}".strip()


# -- the backend (script mode) ---------------------------------------------------------------
def _serve(port: int, name: str) -> None:
    ident = f"name={name or os.environ.get('MESOS_TASK_ID', '-')} app={os.environ.get('MARATHON_APP_ID', '-')} port={port}\n"
    body = ident.encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/sleep/"):
                time.sleep(float(self.path.split("/")[2]))
            location = parse_qs(urlsplit(self.path).query).get("location")
            self.send_response(302 if location else 200)
            if location:
                self.send_header("Location", location[0])
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Seen-Host", self.headers.get("Host", ""))
            self.send_header("X-Seen-Path", self.path)
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


class Backends:
    """Backend processes on free loopback ports; `stop_all()` kills each by its pid."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, name: str = "", port: int | None = None) -> int:
        port = port or free_port()
        proc = subprocess.Popen([sys.executable, str(THIS), "serve", str(port), name or f"b{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs[port] = proc
        wait_for(lambda: _answers(port), 10, f"backend on {port}")
        return port

    def stop(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.stop(port)


def _answers(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/")[0] == 200
    except OSError:
        return False


# -- blocking HTTP -------------------------------------------------------------------------
def get(url: str, *, host: str | None = None, headers: dict[str, str] | None = None,
        timeout: float = 5.0, method: str = "GET") -> tuple[int, str, dict[str, str]]:
    """One request on a fresh connection (Connection: close)."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    h, _, p = hostport.rpartition(":")
    conn = http.client.HTTPConnection(h, int(p), timeout=timeout)
    try:
        hdrs = {"Connection": "close", **(headers or {})}
        if host:
            hdrs["Host"] = host
        conn.request(method, "/" + path, headers=hdrs)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "", interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


# -- a master serving recorded /v2/apps JSON -------------------------------------------------
class RecordedMaster:
    """A small aiohttp app on its own thread: GET /v2/apps returns `self.apps` (the test edits
    it); /v2/events is absent (404) unless `with_events`, in which case `publish()` sends frames."""

    def __init__(self, apps: list[dict[str, Any]] | None = None, *, with_events: bool = False) -> None:
        self.apps = apps or []
        self.with_events = with_events
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._queues: list[asyncio.Queue[bytes | None]] = []

    def start(self) -> "RecordedMaster":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        from aiohttp import web

        async def apps(request: web.Request) -> web.Response:
            self.requests += 1
            return web.json_response({"apps": self.apps})

        async def events(request: web.Request) -> web.StreamResponse:
            if not self.with_events:
                raise web.HTTPNotFound()
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            self._queues.append(queue)
            try:
                await resp.write(b": connected\n\n")
                while (frame := await queue.get()) is not None:
                    await resp.write(frame)
            finally:
                self._queues.remove(queue)
            return resp

        app = web.Application()
        app.router.add_get("/v2/apps", apps)
        app.router.add_get("/v2/events", events)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def publish(self, event_type: str, **data: Any) -> None:
        frame = f"event: {event_type}\ndata: {json.dumps({'eventType': event_type, **data})}\n\n".encode()
        for q in list(self._queues):
            self._loop.call_soon_threadsafe(q.put_nowait, frame)

    def stop(self) -> None:
        for q in list(self._queues):
            self._loop.call_soon_threadsafe(q.put_nowait, None)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def app_json(app_id: str, service_port: int, backend_ports: list[int], *, labels: dict[str, str] | None = None,
             health: bool = False, state: str = "TASK_RUNNING", changed_at: str | None = None) -> dict[str, Any]:
    """A Marathon app with embedded tasks, as /v2/apps?embed=apps.tasks shows it; `changed_at` is
    its `version` and `versionInfo.lastConfigChangeAt`."""
    name = app_id.strip("/").replace("/", "_")
    app: dict[str, Any] = {
        "id": app_id, "instances": len(backend_ports), "labels": labels or {},
        "portDefinitions": [{"port": service_port, "protocol": "tcp"}], "networks": [{"mode": "host"}],
        "tasks": [{"id": f"{name}.instance-{p}._app.1", "host": "agent-1", "ports": [p], "servicePorts": [service_port],
                   "state": state, "ipAddresses": [{"ipAddress": "127.0.0.1", "protocol": "IPv4"}],
                   "healthCheckResults": [{"alive": True}] if health else []} for p in backend_ports],
    }
    if health:
        app["healthChecks"] = [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 2,
                                "timeoutSeconds": 2, "maxConsecutiveFailures": 3}]
    if changed_at:
        app["version"] = changed_at
        app["versionInfo"] = {"lastScalingAt": changed_at, "lastConfigChangeAt": changed_at}
    return app


# -- the bridge on its own loop thread ---------------------------------------------------------
class BridgeThread:
    """A HaproxyBridge started and run on a private event loop; `stop()` closes it (HAProxy is
    stopped by its pid) and, should anything survive, kills the master by pid."""

    def __init__(self, options: Any) -> None:
        from haproxy_bridge.service import HaproxyBridge
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bridge: HaproxyBridge = self.call(self._make(options))
        self._run: Future[Any] | None = None
        self._site: Any = None

    @staticmethod
    async def _make(options: Any) -> Any:
        from haproxy_bridge.service import HaproxyBridge
        return HaproxyBridge(options)

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, *, run: bool = True, status: bool = False) -> "BridgeThread":
        self.call(self.bridge.start())
        if status and self.options.status_port:
            self.call(self._serve_status())
        if run:
            self._run = asyncio.run_coroutine_threadsafe(self.bridge.run(), self.loop)
        return self

    async def _serve_status(self) -> None:
        from aiohttp import web

        from haproxy_bridge.status_api import build_status_app
        root = web.Application()
        root.add_subapp("/v2/haproxy", build_status_app(self.bridge))
        self._site = web.AppRunner(root, access_log=None)
        await self._site.setup()
        await web.TCPSite(self._site, "127.0.0.1", self.options.status_port).start()

    def status(self) -> dict[str, Any]:
        return self.call(self._status())

    async def _status(self) -> dict[str, Any]:
        return self.bridge.status()

    def master_pid(self) -> int | None:
        return self.bridge.process.pid

    def runtime(self, command: str) -> str:
        return self.call(self.bridge.process.runtime(command))

    def processes(self) -> Any:
        return self.call(self.bridge.process.processes())

    def stop(self) -> None:
        pid = self.bridge.process.pid
        info = self.bridge.process.info
        try:
            if self._run is not None:
                self.loop.call_soon_threadsafe(self._run.cancel)
                with contextlib.suppress(BaseException):
                    self._run.result(10)
            if self._site is not None:
                self.call(self._site.cleanup())
            self.call(self.bridge.close())
        finally:
            for p in [pid, *(info.workers + info.old_workers if info else ())]:
                if p:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def bridge_options(config_dir: Path, master: str, **kw: Any) -> Any:
    from haproxy_bridge.options import BridgeOptions
    defaults: dict[str, Any] = dict(http_port=free_port(), https_port=free_port(), stats_port=free_port(),
                                    apps_port=free_port(),
                                    haproxy_bin=HAPROXY, debounce_seconds=0.1, poll_seconds=0.3,
                                    drain_seconds=2.0, hard_stop_after_seconds=5)
    defaults.update(kw)
    return BridgeOptions(master=master, config_dir=config_dir, **defaults)


# -- a bounded request loop ------------------------------------------------------------------
@dataclass
class LoadResult:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    failed_at: list[float] = field(default_factory=list)


class LoadLoop:
    """`threads` threads GET `url` (fresh connection each time) until stop() or `max_seconds`."""

    def __init__(self, url: str, *, threads: int = 4, host: str | None = None, max_seconds: float = 60.0) -> None:
        self.url, self.host, self.max_seconds = url, host, max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]

    def _work(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, body, _ = get(self.url, host=self.host, timeout=10)
                error = None if status == 200 else f"HTTP {status}: {body[:80]!r}"
            except OSError as exc:
                error, body = f"{type(exc).__name__}: {exc}", ""
            with self._lock:
                if error is None:
                    self.result.ok += 1
                    key = body.split(" ")[0]
                    self.result.seen[key] = self.result.seen.get(key, 0) + 1
                else:
                    self.result.failures.append(error)
                    self.result.failed_at.append(time.monotonic())

    def __enter__(self) -> "LoadLoop":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self.result


@contextlib.contextmanager
def running_bridge(options: Any, **start_kw: Any) -> Iterator[BridgeThread]:
    bt = BridgeThread(options)
    try:
        bt.start(**start_kw)
        yield bt
    finally:
        bt.stop()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        print(__doc__)
        sys.exit(2)
