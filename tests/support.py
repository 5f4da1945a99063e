"""Test support: a real `pacer serve` subprocess and a tiny blocking HTTP client."""

from __future__ import annotations

import asyncio
import http.client as httplib
import threading
import json
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent


# Ports handed out by free_port come from below the kernel's ephemeral range (32768-60999 by
# default) and above Marathon's service-port range (10000-20000), and the agents' task ports
# start at 31000: so neither a second call in this run nor a socket the kernel opens for someone
# else in between can get the same port. A random start keeps two runs on one machine apart.
_TEST_PORTS = range(21000, 31000)
_next_test_port = [_TEST_PORTS.start + (os.getpid() * 7919) % len(_TEST_PORTS)]
_port_lock = threading.Lock()


def free_port() -> int:
    """A loopback port that is free now and that no earlier call in this run returned."""
    with _port_lock:
        for _ in range(len(_TEST_PORTS)):
            port = _next_test_port[0]
            _next_test_port[0] = port + 1 if port + 1 < _TEST_PORTS.stop else _TEST_PORTS.start
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free loopback port left in {_TEST_PORTS}")


def http(method: str, url_base: str, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    host, port = url_base.removeprefix("http://").split(":")
    conn = httplib.HTTPConnection(host, int(port), timeout=timeout)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        parsed: Any = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode(errors="replace")
    return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


def task_pids(home: Path) -> dict[int, str]:
    """pid -> task id of every live process started for this home (read from the process table)."""
    from scheduler.backends.local import find_task_processes
    return find_task_processes(home.resolve())


def kill_task_processes(home: Path) -> None:
    """Every process a test's `pacer serve` started: task process groups (found by their env)
    and the built-in bridge's HAProxy master (by its pid file), even if serve itself died."""
    for pid in task_pids(home):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    from concurrent.futures import ThreadPoolExecutor

    from scheduler.backends.local import remove_task_cgroups

    # no scheduler is left on this home to remove them; a thread of its own, since a test may
    # call this with its event loop running
    with ThreadPoolExecutor(1) as pool:
        pool.submit(remove_task_cgroups, home.resolve()).result()
    pid_file = home / "haproxy" / "haproxy.pid"
    try:
        master = int(pid_file.read_text().split()[0])
        if str(home) in Path(f"/proc/{master}/cmdline").read_text(errors="replace"):
            os.kill(master, signal.SIGKILL)      # the master's workers exit with it
    except (OSError, ValueError, IndexError):
        pass



async def eventually(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """`wait_until` for tests on an event loop: poll `predicate` without blocking the loop."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


def stop_process(proc: "subprocess.Popen[bytes] | None", grace: float = 10.0) -> None:
    """Stop a process a test started, by its pid: SIGTERM, then SIGKILL after `grace` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

class PacerServer:
    """`pacer serve` as a subprocess on a free loopback port."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.home = home
        # the built-in HAProxy bridge would bind ports 80/443/9090; tests that want it say so
        self.extra = extra if "--haproxy-bridge" in extra else ("--haproxy-bridge", "off", *extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "PacerServer":
        log = open(self.home.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacer.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--home", str(self.home), *self.extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ping, timeout=20, what="pacer serve to answer /ping")
        return self

    def _ping(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"pacer serve exited with {self.proc.returncode}; log in {self.home.parent}")
        try:
            return self.get("/ping")[0] == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return http(method, self.url, path, body, **kw)

    def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        return self.request("GET", path)

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        status, body, _ = self.get(f"/v2/apps{app_id}/tasks")
        assert status == 200, body
        return body["tasks"]

    def running(self, app_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(app_id) if t["state"] == "TASK_RUNNING"]


class InProcessApi:
    """The API and scheduler in this process, on their own event loop thread, on a real socket.

    Its agents offer nothing, so no task ever launches: for API-shape tests only.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "InProcessApi":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)
        return self

    async def _start(self) -> None:
        from aiohttp import web

        from scheduler.api import build_api
        from scheduler.engine.build import ServeOptions, make_scheduler

        # agents with nothing to offer: the loop runs (deployments of 0 instances complete)
        # but no generated definition can ever launch a process
        self.scheduler = make_scheduler(ServeOptions(home=self.home, resources={"cpus": 0, "mem": 0, "disk": 0}))
        await self.scheduler.start()
        self.loop_task = asyncio.get_running_loop().create_task(self.scheduler.run())
        self.runner = web.AppRunner(build_api(self.scheduler, f"127.0.0.1:{self.port}"))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        self.loop_task.cancel()
        self.scheduler.events.close()
        await self.runner.cleanup()
        await self.scheduler.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def snapshot(self) -> list:
        return [(a, v, d) for a, v, d in self.scheduler.store.load().apps]


class EventRecorder:
    """Reads /v2/events in a background thread and keeps every (event type, body) it saw."""

    def __init__(self, url_base: str, *types: str) -> None:
        host, port = url_base.removeprefix("http://").split(":")
        query = "&".join(f"event_type={t}" for t in types)
        self.conn = httplib.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", f"/v2/events?{query}", headers={"Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.events: list[tuple[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event_type = ""
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event_type = line[7:]
                elif line.startswith("data: "):
                    self.events.append((event_type, json.loads(line[6:])))
        except Exception:  # the stream ends when close() shuts the socket: any error means "done"
            pass

    def of_type(self, event_type: str) -> list[Any]:
        return [body for kind, body in self.events if kind == event_type]

    def close(self) -> None:
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)   # type: ignore[union-attr]
        except OSError:
            pass
        self.conn.close()
        self.thread.join(5)


def running_tasks(server: PacerServer, app_id: str, count: int, version: str | None = None) -> list[dict[str, Any]]:
    """Wait until the app has exactly `count` tasks, all TASK_RUNNING (of `version` if given)."""
    def ready() -> list[dict[str, Any]] | None:
        tasks = server.tasks(app_id)
        running = [t for t in tasks if t["state"] == "TASK_RUNNING" and version in (None, t["version"])]
        return running if len(running) == count == len(tasks) else None
    return wait_until(ready, timeout=40, what=f"{count} running tasks of {app_id}")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def answering_server(body: bytes, *, status: int = 200, delay: float = 0.0) -> tuple[ThreadingHTTPServer, int]:
    """A threaded keep-alive HTTP server on a free loopback port answering every GET with
    `status` and `body` after `delay` seconds (a backend behind a real HAProxy). The caller
    stops it: `server.shutdown(); server.server_close()`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            if delay:
                time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = _QuietServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port
