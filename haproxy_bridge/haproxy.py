"""HAProxy itself: `haproxy -c`, the master-worker process, its master CLI and Runtime API.

HAProxy runs as `haproxy -W -S <master.sock> -f haproxy.cfg -p haproxy.pid`; its `global`
section holds `stats socket <admin.sock> level admin expose-fd listeners`, so a reload hands
the listening sockets to the new worker (no refused connection) while the old worker finishes
what it was doing (`hard-stop-after` bounds that). A reload is the master CLI's `reload`
command; it succeeded when `show proc` lists a new worker pid, and failed when the master's
reload counter moved without one (the old worker keeps serving then).

The process is always stopped by its own pid (the master's, which takes its workers along);
a master left behind by a crashed bridge is found through the pid file and stopped at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .outcomes import ReloadResult
from .errors import HaproxyError, SocketError
from .server_states import stat_rows

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 100     # sun_path is 108 bytes; keep a margin


def _count(value: str) -> int:
    return int(value) if value.isdigit() else 0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    output: str
    seconds: float


async def check_config(binary: str, path: Path, timeout: float = 30.0) -> CheckResult:
    """`haproxy -c -f path`: is this file a configuration HAProxy would load?"""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(path), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        raise HaproxyError(f"cannot run {binary}: {exc}") from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return CheckResult(False, f"{binary} -c did not finish within {timeout:.0f}s", time.monotonic() - started)
    return CheckResult(proc.returncode == 0, out.decode(errors="replace"), time.monotonic() - started)


async def socket_command(path: Path | str, command: str, timeout: float = 5.0, connect_wait: float = 0.0) -> str:
    """One command on a HAProxy CLI socket (non-interactive: it answers and closes)."""
    if "\n" in command or "\r" in command:
        raise SocketError(f"refusing a command with a line break: {command!r}")
    deadline = time.monotonic() + connect_wait
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
            break
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            if time.monotonic() >= deadline:     # a listener changing hands during a reload
                raise SocketError(f"cannot connect to {path}: {exc}") from exc
            await asyncio.sleep(0.01)
        except (OSError, asyncio.TimeoutError) as exc:
            raise SocketError(f"cannot connect to {path}: {exc or 'timeout'}") from exc
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise SocketError(f"{path}: no answer to {command.split(' ')[0]!r}: {exc or 'timeout'}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return data.decode(errors="replace")


@dataclass(frozen=True)
class ProcInfo:
    master_pid: int
    reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...] = ()


def parse_show_proc(text: str) -> ProcInfo:
    """The master CLI's `show proc` (2.6 layout: a master line, then `# workers`, `# old workers`)."""
    master_pid, reloads = 0, 0
    section = "master"
    workers: list[int] = []
    old: list[int] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            if title.startswith("<pid>"):
                continue
            section = {"workers": "workers", "old workers": "old"}.get(title, "other")
            continue
        parts = line.split()
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        if parts[1] == "master":
            master_pid, reloads = int(parts[0]), int(parts[2]) if parts[2].isdigit() else 0
        elif parts[1] == "worker":
            (workers if section == "workers" else old).append(int(parts[0]))
    if not master_pid:
        raise SocketError(f"unexpected `show proc` answer: {text[:200]!r}")
    return ProcInfo(master_pid, reloads, tuple(workers), tuple(old))


def _short_run_dir(config_dir: Path) -> Path:
    """Socket paths must fit in sun_path; a long config dir gets its sockets in /tmp."""
    if len(str(config_dir / "master.sock")) <= MAX_SOCKET_PATH:
        return config_dir
    digest = hashlib.sha1(str(config_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"pacer-haproxy-{digest}"


def _is_our_haproxy(pid: int, config_path: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"haproxy" in part for part in cmdline[:1]) and str(config_path).encode() in cmdline


class HaproxyProcess:
    """One master-worker HAProxy serving `config_path`."""

    def __init__(self, binary: str, config_path: Path) -> None:
        self.binary = binary
        self.config_path = config_path
        run_dir = _short_run_dir(config_path.parent)
        self.run_dir = run_dir
        self.master_socket = run_dir / "master.sock"
        self.admin_socket = run_dir / "admin.sock"
        # bound by the request-log reader of `pacer serve` (not HAProxy's: never unlinked here);
        # no longer than master.sock, so it fits where that fits
        self.request_log_socket = run_dir / "reqlog.sock"
        self.pid_file = config_path.parent / "haproxy.pid"
        self.log_path = config_path.parent / "haproxy.log"
        self._proc: asyncio.subprocess.Process | None = None
        self.info: ProcInfo | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float = 10.0) -> ProcInfo:
        """Start the master on the config file already in place; wait for its first worker."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await self.stop_leftover()
        for sock in (self.master_socket, self.admin_socket):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        logf = open(self.log_path, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.config_path),
                "-p", str(self.pid_file), stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True)
        except OSError as exc:
            raise HaproxyError(f"cannot run {self.binary}: {exc}") from exc
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise HaproxyError(f"haproxy exited with {self._proc.returncode} at start: {self.log_tail()}")
            with contextlib.suppress(SocketError):
                info = await self.processes(wait=0)
                if info.workers:
                    self.info = info
                    log.info("haproxy master %d started, worker %s", info.master_pid, info.workers)
                    return info
            await asyncio.sleep(0.05)
        await self.stop()
        raise HaproxyError(f"haproxy did not start within {timeout:.0f}s: {self.log_tail()}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the master (and with it every worker) by its pid."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        workers = self.info.workers + self.info.old_workers if self.info else ()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("haproxy master %d ignored SIGTERM; killing it", proc.pid)
            for pid in (proc.pid, *workers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        if self.run_dir != self.config_path.parent:      # the short socket dir under /tmp
            for sock in (self.master_socket, self.admin_socket):
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()

    async def stop_leftover(self) -> None:
        """A master of this config dir left running by a bridge that died: stop it by its pid."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if self._proc is not None and pid == self._proc.pid:
            return
        if not _is_our_haproxy(pid, self.config_path):
            return
        log.warning("stopping haproxy %d left behind by an earlier bridge", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, since: int = 0, limit: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return ""
        return data.decode(errors="replace")[-limit:].strip()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    # -- sockets -----------------------------------------------------------------------------
    async def master(self, command: str, timeout: float = 5.0) -> str:
        return await socket_command(self.master_socket, command, timeout)

    async def runtime(self, command: str, timeout: float = 5.0) -> str:
        return await socket_command(self.admin_socket, command, timeout, connect_wait=1.0)

    async def processes(self, wait: float = 2.0) -> ProcInfo:
        """`show proc`; the master socket refuses for a moment while the master re-executes
        after a reload, so this retries for up to `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return parse_show_proc(await self.master("show proc"))
            except SocketError:
                if time.monotonic() >= deadline or not self.alive():
                    raise
                await asyncio.sleep(0.02)

    async def reload(self, timeout: float = 15.0) -> ReloadResult:
        """Reload through the master; success means a new worker took over."""
        started = time.monotonic()
        if not self.alive():
            return ReloadResult(False, "haproxy is not running", 0.0)
        before = await self.processes()
        offset = self.log_size()
        with contextlib.suppress(SocketError):
            await self.master("reload", timeout=2.0)   # the master re-executes; the answer may be cut
        deadline = started + timeout
        moved_at: float | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if not self.alive():
                return ReloadResult(False, f"haproxy exited during reload: {self.log_tail(offset)}",
                                    time.monotonic() - started)
            try:
                info = await self.processes(wait=0)
            except SocketError:
                continue
            new = set(info.workers) - set(before.workers)
            if new:
                self.info = info
                return ReloadResult(True, "reloaded", time.monotonic() - started, worker_pid=max(new))
            if info.reloads > before.reloads:
                moved_at = moved_at or time.monotonic()
                if time.monotonic() - moved_at > 0.5:
                    self.info = info
                    return ReloadResult(False, "haproxy refused the new configuration (the old worker keeps "
                                        f"serving): {self.log_tail(offset)}", time.monotonic() - started)
        return ReloadResult(False, f"no new worker within {timeout:.0f}s: {self.log_tail(offset)}",
                            time.monotonic() - started)

    async def server_sessions(self) -> dict[tuple[str, str], int]:
        """(backend, server) -> current sessions + queued requests, from `show stat`."""
        text = await self.runtime("show stat")     # an unreachable socket raises, as before
        try:
            rows = stat_rows(text)
        except SocketError:
            return {}
        return {(row["pxname"], row["svname"]): _count(row.get("scur", "")) + _count(row.get("qcur", ""))
                for row in rows}

    async def server_state(self, backend: str) -> str:
        return await self.runtime(f"show servers state {backend}")
