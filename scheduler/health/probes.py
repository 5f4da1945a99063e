"""Health probes on their own thread and event loop.

Thousands of HTTP checks a second keep an event loop busy. Running them on the scheduler's
loop would delay the API and the scheduling passes by exactly that much (Marathon's leader
overload, which mass-killed healthy tasks). Here a dedicated thread owns a second loop, a
pool of keep-alive connections and a fixed set of workers; the scheduler hands it due checks
and collects verdicts in batches, so its own loop only pays for bookkeeping.

HTTP(S) probes go through `http_probe.ConnectionPool` (keep-alive connections, a parser that
stops at the status line) rather than an aiohttp session: per check, aiohttp's request and
response objects cost more than the network exchange itself.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from scheduler.health.http_probe import ConnectionPool, ProbeHTTPError

log = logging.getLogger(__name__)

EXPIRY_SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class Probe:
    """One check to run: plain data, safe to hand across threads."""

    key: Any                  # opaque to the prober; returned with the verdict
    protocol: str
    host: str
    port: int | None
    path: str
    timeout: float
    command: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Verdict:
    key: Any
    ok: bool | None
    status: int | None
    cause: str | None


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE     # Marathon's HTTPS checks do not verify certificates
    return context


async def run_probe(pool: ConnectionPool, probe: Probe) -> Verdict:
    """HTTP(S): 200-399 within the timeout; TCP: the connection opens; COMMAND: exit 0."""
    if probe.command is not None:
        return await _command(probe)
    if probe.port is None:
        return Verdict(probe.key, False, None, "the task has no port for this check")
    if probe.protocol in ("TCP", "MESOS_TCP"):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(probe.host, probe.port), probe.timeout)
            writer.close()
            return Verdict(probe.key, True, None, None)
        except (OSError, asyncio.TimeoutError) as exc:
            return Verdict(probe.key, False, None,
                           f"TCP connection to {probe.host}:{probe.port} failed: {exc or 'timed out'}")
    tls = probe.protocol in ("HTTPS", "MESOS_HTTPS")
    try:
        async with asyncio.timeout(probe.timeout):
            status = await pool.get_status(probe.host, probe.port, probe.path or "/", tls)
    except (ProbeHTTPError, asyncio.TimeoutError, OSError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__
        return Verdict(probe.key, False, None, f"GET {_url(probe, tls)}: {reason}")
    if 200 <= status < 400:
        return Verdict(probe.key, True, status, None)
    return Verdict(probe.key, False, status, f"HTTP {status} from {_url(probe, tls)}")


def _url(probe: Probe, tls: bool) -> str:
    return f"{'https' if tls else 'http'}://{probe.host}:{probe.port}{probe.path or '/'}"


async def _command(probe: Probe) -> Verdict:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", probe.command or "", env={**os.environ, **dict(probe.env)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        code = await asyncio.wait_for(proc.wait(), probe.timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return Verdict(probe.key, False, None, f"command timed out after {probe.timeout:g} s")
    return Verdict(probe.key, code == 0, None, None if code == 0 else f"command exited with status {code}")


class ProbeThread:
    """A thread with its own loop running `concurrency` workers over a queue of probes."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.verdicts: collections.deque[Verdict] = collections.deque()
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[Probe] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="health-probes", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def submit(self, probes: list[Probe]) -> None:
        """Called from the scheduler's loop: one wake-up of the probe loop per batch."""
        if probes:
            self._loop.call_soon_threadsafe(self._enqueue, probes)

    def _enqueue(self, probes: list[Probe]) -> None:
        assert self._queue is not None
        for probe in probes:
            self._queue.put_nowait(probe)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _setup(self) -> tuple[ConnectionPool, list[asyncio.Task[None]]]:
        self._queue = asyncio.Queue()
        pool = ConnectionPool(_insecure_context(), max_idle=4 * self.concurrency)
        self._loop.call_later(EXPIRY_SWEEP_SECONDS, self._sweep, pool)
        return pool, [asyncio.create_task(self._worker(pool)) for _ in range(self.concurrency)]

    def _sweep(self, pool: ConnectionPool) -> None:
        pool.close_expired(time.monotonic())
        self._loop.call_later(EXPIRY_SWEEP_SECONDS, self._sweep, pool)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        pool, workers = self._loop.run_until_complete(self._setup())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            for worker in workers:
                worker.cancel()
            self._loop.run_until_complete(asyncio.gather(*workers, return_exceptions=True))
            pool.close()
            self._loop.run_until_complete(asyncio.sleep(0))     # let the aborted transports finish
            self._loop.close()

    async def _worker(self, pool: ConnectionPool) -> None:
        assert self._queue is not None
        while True:
            probe = await self._queue.get()
            try:
                verdict = await run_probe(pool, probe)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken probe is a failed check, never a dead worker
                log.exception("health probe failed unexpectedly")
                verdict = Verdict(probe.key, False, None, f"checker error: {exc}")
            self.verdicts.append(verdict)
