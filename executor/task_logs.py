"""The scheduler's side of task logs: the size policy, and the pipes handed to a logger per task.

``LogPolicy`` is what caps a task's output: ``max_bytes`` per file and ``files`` per stream (the
current one included), so a stream never holds more than ``max_bytes × files`` on disk. The
agent sets it (``pacer serve --task-log-max-bytes/--task-log-files``); an app may lower it with
the labels ``PACER_LOG_MAX_BYTES`` / ``PACER_LOG_FILES``, never raise it above the agent's (the
agent's setting protects the host, the label only saves space).

``LogWriters`` gives each task launch two pipes whose read ends a logger process of its own
reads (see ``executor.logger`` for why a process, and why forked from a spawner): ``open``
creates the pipes, hands the read ends to the spawner over its socket and returns the write
ends, to become the task's stdout and stderr, plus a future resolved once that logger has
exited, i.e. once everything the task wrote is in its files. The spawner is started at the
first launch and again whenever it is found gone; a launch fails with ``LaunchFailed`` only
when no spawner can be started at all.

All methods run on the event loop thread.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import itertools
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from executor.errors import LaunchFailed

logger = logging.getLogger(__name__)

# The same values as executor/logger.py's, which runs as a script and imports nothing of ours;
# not imported from it, so that `python -m executor.logger` does not find itself half-imported.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_FILES = 2
MIN_MAX_BYTES = 1024
FIELD_SEPARATOR = b"\0"

LABEL_MAX_BYTES = "PACER_LOG_MAX_BYTES"
LABEL_FILES = "PACER_LOG_FILES"
LOGGER_SCRIPT = Path(__file__).with_name("logger.py")
STOP_TIMEOUT = 1.0
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``10485760``, ``512K``, ``10M``, ``1GiB`` -> bytes (binary units); ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size such as 10M, 512K or a number of bytes, got '{text}'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class LogPolicy:
    """How much of a task's output is kept: ``files`` files of ``max_bytes`` per stream."""

    max_bytes: int = DEFAULT_MAX_BYTES
    files: int = DEFAULT_FILES

    def __post_init__(self) -> None:
        if self.max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"must be at least {MIN_MAX_BYTES} bytes (got {self.max_bytes})")
        if self.files < 1:
            raise ValueError(f"must keep at least 1 file (got {self.files})")

    def for_labels(self, labels: Mapping[str, str]) -> LogPolicy:
        """This agent policy as lowered by an app's labels; ValueError naming a bad label."""
        max_bytes, files = self.max_bytes, self.files
        if LABEL_MAX_BYTES in labels:
            try:
                wanted = parse_size(labels[LABEL_MAX_BYTES])
            except ValueError as error:
                raise ValueError(f"label {LABEL_MAX_BYTES}: {error}") from None
            max_bytes = min(max_bytes, max(MIN_MAX_BYTES, wanted))
        if LABEL_FILES in labels:
            text = labels[LABEL_FILES].strip()
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"label {LABEL_FILES}: expected a number of files >= 1, got '{text}'")
            files = min(files, int(text))
        return replace(self, max_bytes=max_bytes, files=files)


@dataclass(frozen=True)
class TaskLogs:
    """The write ends for one task (its stdout, its stderr) and the end of its logger."""

    stdout: int
    stderr: int
    drained: asyncio.Future[None]
    token: int = 0  # names its request to the spawner (``LogWriters.send``/``discard`` of a held one)

    def close_write_ends(self) -> None:
        """Called once the task holds them: from then on, the task alone keeps the pipes open."""
        for fd in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass(eq=False)
class _Request:
    """A logger asked for and not yet taken by the spawner: the scheduler holds its read ends."""

    token: int
    payload: bytes
    fds: list[int]

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class LogWriters:
    """One spawner of logger processes, and the tasks whose loggers have not exited yet.

    Requests the spawner's socket cannot take at once (a burst of launches, a busy host) wait
    in order in an outbox, their pipes' read ends still held here, and go out when the socket
    is writable: a launch never waits for the spawner, and a slow spawner is never mistaken
    for a dead one. If the spawner dies, a new one is started and the outbox goes to it.
    """

    def __init__(self, python: str | None = None) -> None:
        self._python = python or sys.executable or "python3"
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tokens = itertools.count(1)
        self._outbox: collections.deque[_Request] = collections.deque()
        self._held: dict[int, _Request] = {}  # opened with ``hold``, not yet sent or discarded
        self._pending: dict[int, tuple[str, asyncio.Future[None]]] = {}

    def open(self, task_id: str, sandbox: Path, policy: LogPolicy, *, hold: bool = False) -> TaskLogs:
        """Pipes for a task about to start, their read ends handed (or queued) to its logger.

        With ``hold`` the request waits here until ``send`` (or ``discard``): the logger opens
        files in the sandbox, which a launch may create on another thread meanwhile.
        """
        loop = asyncio.get_running_loop()
        if self._sock is None or self._proc is None or self._proc.poll() is not None:
            self._start(task_id)
        token = next(self._tokens)
        fields = [str(token).encode(), str(policy.max_bytes).encode(), str(policy.files).encode(),
                  os.fsencode(sandbox / "stdout"), os.fsencode(sandbox / "stderr")]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        drained: asyncio.Future[None] = loop.create_future()
        self._pending[token] = (task_id, drained)
        request = _Request(token, FIELD_SEPARATOR.join(fields), [out_r, err_r])
        if hold:
            self._held[token] = request
            return TaskLogs(out_w, err_w, drained, token)
        self._outbox.append(request)
        self._flush()
        if self._sock is None:  # the spawner died and no other could be started: nothing reads
            for fd in (out_w, err_w):
                os.close(fd)
            raise LaunchFailed(f"cannot launch task {task_id}: no task log writer can be started")
        return TaskLogs(out_w, err_w, drained, token)

    def send(self, logs: TaskLogs) -> None:
        """Hand a held request to the spawner (its task holds the write ends by now: if no
        spawner can take it, the task loses its output, said in the log, as for a queued one)."""
        request = self._held.pop(logs.token, None)
        if request is None:
            return
        self._outbox.append(request)
        if self._sock is None or self._proc is None or self._proc.poll() is not None:
            self._restart()
        else:
            self._flush()

    def discard(self, logs: TaskLogs) -> None:
        """Drop a held request whose task did not start: no logger, its end resolved."""
        request = self._held.pop(logs.token, None)
        if request is not None:
            request.close()
            entry = self._pending.pop(request.token, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)

    async def close(self) -> None:
        """Hand over what is queued (for a moment), then stop the spawner; the loggers it forked
        keep serving their tasks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while self._outbox and self._sock is not None and loop.time() < deadline:
            await asyncio.sleep(0.005)
        self._disconnect()
        if self._outbox:  # their tasks lose their output (and get SIGPIPE): said, not hidden
            logger.warning("%d task log requests were never taken by the spawner", len(self._outbox))
            self._drop_outbox()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        while proc.poll() is None and loop.time() < deadline + STOP_TIMEOUT:
            await asyncio.sleep(0.005)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- internals ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Send queued requests until the socket is full (then wait for it to be writable)."""
        sock = self._sock
        while self._outbox and sock is not None:
            request = self._outbox[0]
            try:
                sock.sendmsg([request.payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", request.fds))])
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._flush)
                return
            except OSError as error:  # the spawner is gone: a new one takes the outbox
                logger.warning("the task log spawner stopped taking requests (%s); starting another", error)
                self._restart()
                return
            self._outbox.popleft()
            request.close()  # the spawner has its own copies now
        if sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    def _restart(self) -> None:
        try:
            self._start("(queued)")
        except LaunchFailed as error:
            logger.error("%s; %d queued tasks lose their output", error, len(self._outbox))
            self._drop_outbox()
            return
        self._flush()

    def _start(self, task_id: str) -> None:
        self._disconnect()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()  # it closed its socket yet lives on: it can serve no one
            self._proc.wait()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [self._python, "-I", "-S", str(LOGGER_SCRIPT), "--serve", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env={}, start_new_session=True, close_fds=True)
        except OSError as error:
            ours.close()
            raise LaunchFailed(f"cannot launch task {task_id}: cannot start its log writer's spawner "
                               f"{self._python}: {error}") from error
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(ours.fileno(), self._on_reply)

    def _on_reply(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(512)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the spawner is gone; its loggers are not, but their ends cannot be told
                self._disconnect()
                if self._outbox:
                    self._restart()
                return
            kind, _, rest = data.partition(b" ")
            token_text, _, reason = rest.partition(b" ")
            entry = self._pending.pop(int(token_text), None) if token_text.isdigit() else None
            if entry is None:
                continue
            task_id, drained = entry
            if kind == b"failed":
                logger.warning("task %s: its log writer did not start: %s", task_id, reason.decode(errors="replace"))
            if not drained.done():
                drained.set_result(None)

    def _drop_outbox(self) -> None:
        for request in self._outbox:
            request.close()
            entry = self._pending.pop(request.token, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)
        self._outbox.clear()

    def _disconnect(self) -> None:
        """Forget the spawner's socket. Tasks whose loggers it forked stop waiting for them (their
        ends can no longer be told); those still in the outbox wait for the next spawner."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
                self._loop.remove_writer(sock.fileno())
            sock.close()
        queued = {request.token for request in self._outbox} | self._held.keys()
        for token in [t for t in self._pending if t not in queued]:
            _, drained = self._pending.pop(token)
            if not drained.done():
                drained.set_result(None)


__all__ = ["DEFAULT_FILES", "DEFAULT_MAX_BYTES", "LABEL_FILES", "LABEL_MAX_BYTES", "MIN_MAX_BYTES", "LogPolicy",
           "LogWriters", "TaskLogs", "parse_size"]
