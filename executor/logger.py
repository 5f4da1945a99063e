"""The task log writer: a task's stdout/stderr, through pipes, into size-capped rotating files.

Why a process of its own: a task writing to a plain file can fill the disk under ``--home``
and take the scheduler down with it; and the writer cannot live in the scheduler, since tasks
outlive ``pacer serve`` (a pipe read by the scheduler would die with it and take the task down
with SIGPIPE). So, as Mesos' ``mesos-logrotate-logger``, each task's output goes through pipes
to a small logger process of its own that:

* appends to ``<sandbox>/stdout`` (``stderr``) and, when the next chunk would push a file past
  ``max_bytes``, rotates: ``stdout.(k)`` becomes ``stdout.(k+1)``, ``stdout`` becomes
  ``stdout.1``, the oldest beyond ``files`` files is dropped (``files`` counts the current file,
  as Docker's ``max-file``). A chunk is cut at its last newline that fits, so lines are split
  only when one is longer than a whole file;
* exits on end of file, which the kernel delivers once every process holding the pipe's write
  end is gone: the task, its children, and whatever a kill left behind. So the logger ends
  with its task, drains what the task wrote last, and needs no signal from anyone;
* never fails its task: a write that fails (a full disk) drops that chunk and notes how much
  was dropped in the file once writing works again. (A logger killed from outside does: its
  task gets SIGPIPE at its next write, as with Mesos' logger.);
* runs in a session of its own, outside the task's cgroup: the task's ``mem`` limit (as low as
  1 MB) does not have to hold an interpreter, and a kill of the task's group or cgroup does not
  cut the drain of its last words.

Loggers are forked, not executed: one *spawner* per scheduler (``--serve FD``), started with
``python -I -S`` and importing only the standard library, receives the read ends of each task's
pipes over a Unix socket (``SCM_RIGHTS``) and forks one logger per task. A fork of that small,
idle process costs under a millisecond of its CPU (none of the scheduler's) and ~1 MB of memory
(measured: PSS of 50 loggers), where starting an interpreter per task costs ~12 ms of CPU and
~5 MB. The spawner reaps its loggers and tells the scheduler ``done <token>`` when one has
exited, so a task's end is reported once its last output is on disk. When the scheduler goes away the spawner exits (end of file on its socket); the loggers
live on with their tasks, which a restarted scheduler re-adopts.

This file is self-contained (standard library only) so that it runs as a script without the
package on the path; ``executor.task_logs`` is the scheduler's side.

Usage: ``python -I -S logger.py --serve FD`` (the spawner), or
``CMD | python -m executor.logger [--max-bytes N] [--files K] PATH`` (one stream, standalone).
"""

from __future__ import annotations

import argparse
import array
import collections
import gc
import os
import select
import signal
import socket
import sys

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_FILES = 2
MIN_MAX_BYTES = 1024
READ_BYTES = 64 * 1024
REQUEST_BYTES = 16 * 1024
MAX_FDS = 2
FIELD_SEPARATOR = b"\0"
PROCESS_NAME = b"pacer-logger"


class RotatingFile:
    """One stream's files: ``path`` (current), ``path.1`` ... ``path.<files-1>`` (older)."""

    def __init__(self, path: str, max_bytes: int, files: int) -> None:
        self.path = path
        self.max_bytes = max(MIN_MAX_BYTES, max_bytes)
        self.files = max(1, files)
        self.size = 0
        self.dropped = 0
        self.fd: int | None = None
        self._open(truncate=False)

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating before a file would exceed ``max_bytes``."""
        if self.dropped and self.fd is not None:  # say what a failed write (a full disk) cost
            data, self.dropped = b"[pacer-logger: %d bytes of output dropped: write failed]\n" % self.dropped + data, 0
        while data:
            room = max(0, self.max_bytes - self.size)  # a file found larger than the cap is rotated first
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1
            if cut == 0 and self.size == 0:  # a line longer than a whole file: split it
                cut = room
            if cut:
                self._append(data[:cut])
                data = data[cut:]
            self.rotate()

    def rotate(self) -> None:
        """Shift the older files up by one, dropping the oldest, and start a new current file."""
        self._close()
        if self.files > 1:
            for k in range(self.files - 1, 1, -1):
                self._move(f"{self.path}.{k - 1}", f"{self.path}.{k}")
            self._move(self.path, f"{self.path}.1")
        self._open(truncate=True)

    def close(self) -> None:
        self._close()

    def _append(self, data: bytes) -> None:
        if self.fd is None:
            self._open(truncate=False)
        if self.fd is None:
            self.dropped += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError:  # ENOSPC, EIO: drop, never block or fail the task
                self.dropped += len(view)
                return
            self.size += written
            view = view[written:]

    def _open(self, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
        try:
            self.fd = os.open(self.path, flags, 0o644)
            self.size = 0 if truncate else os.fstat(self.fd).st_size
        except OSError:
            self.fd, self.size = None, 0

    def _close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    @staticmethod
    def _move(source: str, target: str) -> None:
        try:
            os.replace(source, target)
        except OSError:  # not there yet (few rotations so far), or the sandbox is gone
            pass


def pump(sources: list[tuple[int, RotatingFile]]) -> None:
    """Copy each pipe into its rotating file until every pipe reports end of file."""
    poller = select.poll()
    by_fd: dict[int, RotatingFile] = {}
    for fd, target in sources:
        poller.register(fd, select.POLLIN)
        by_fd[fd] = target
    while by_fd:
        for fd, _ in poller.poll():
            if fd not in by_fd:
                continue
            try:
                data = os.read(fd, READ_BYTES)
            except OSError:
                data = b""
            if data:
                by_fd[fd].write(data)
                continue
            poller.unregister(fd)
            os.close(fd)
            by_fd.pop(fd).close()


def _name_process() -> None:
    """``pacer-logger`` in ``ps``/``top`` (the command line stays the spawner's)."""
    try:
        fd = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, PROCESS_NAME)
    except OSError:
        pass
    finally:
        os.close(fd)


def _run_logger(fds: list[int], paths: list[str], max_bytes: int, files: int) -> None:
    """The forked logger: leave the spawner's session, then copy until end of file."""
    gc.disable()  # it makes no cycles; a collection would only copy the spawner's pages
    os.setsid()
    _name_process()
    pump([(fd, RotatingFile(path, max_bytes, files)) for fd, path in zip(fds, paths)])


class Spawner:
    """Receives ``token, max_bytes, files, paths...`` plus the pipes' read ends; forks a logger each."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.children: dict[int, int] = {}  # pid -> token
        self.outbox: collections.deque[bytes] = collections.deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def run(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler's socket says when to stop
        gc.freeze()  # what exists now is shared with every logger: no collection may touch (copy) it
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        while True:
            poller.register(self.sock, select.POLLIN | (select.POLLOUT if self.outbox else 0))
            for fd, events in poller.poll():
                if fd == self.wake_r:
                    self._drain_wakeups()
                    continue
                if events & select.POLLOUT and not self._flush():
                    return
                if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and not self._receive():
                    return
            self._reap()

    def _receive(self) -> bool:
        """One request; False once the scheduler has gone (end of file)."""
        try:
            data, ancillary, flags, _ = self.sock.recvmsg(REQUEST_BYTES, socket.CMSG_SPACE(MAX_FDS * 4))
        except BlockingIOError:
            return True
        except OSError:
            return False
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not data and not fds:
            return False
        fields = data.split(FIELD_SEPARATOR)
        try:
            token, max_bytes, files = int(fields[0]), int(fields[1]), int(fields[2])
            paths = [os.fsdecode(p) for p in fields[3:]]
            if len(paths) != len(fds) or flags & socket.MSG_CTRUNC:
                raise ValueError("the pipes and paths do not match")
        except (ValueError, IndexError) as error:
            self._close_all(fds)
            self.outbox.append(b"failed %s %s" % (fields[0], str(error).encode()))
            return self._flush()
        self._fork(token, list(fds), paths, max_bytes, files)
        return True

    def _fork(self, token: int, fds: list[int], paths: list[str], max_bytes: int, files: int) -> None:
        try:
            pid = os.fork()
        except OSError as error:
            self._close_all(fds)
            self.outbox.append(b"failed %d %s" % (token, (error.strerror or str(error)).encode()))
            return
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                for fd in (self.sock.fileno(), self.wake_r, self.wake_w):
                    os.close(fd)
                _run_logger(fds, paths, max_bytes, files)
            finally:
                os._exit(0)
        self._close_all(fds)
        self.children[pid] = token

    def _reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            token = self.children.pop(pid, None)
            if token is not None:
                self.outbox.append(b"done %d" % token)

    def _flush(self) -> bool:
        """Send what is queued, as far as the socket takes it; False once the scheduler has gone."""
        while self.outbox:
            try:
                self.sock.send(self.outbox[0])
            except BlockingIOError:
                return True
            except OSError:
                return False
            self.outbox.popleft()
        return True

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    @staticmethod
    def _close_all(fds: array.array[int] | list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executor.logger",
                                     description="copy stdin into size-capped rotating files")
    parser.add_argument("--serve", type=int, metavar="FD", help="run as the spawner on this Unix socket")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="size of one file")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="files kept, the current one included")
    parser.add_argument("path", nargs="?", help="the current file (stdin goes there)")
    args = parser.parse_args(argv)
    if args.serve is not None:
        Spawner(socket.socket(fileno=args.serve)).run()
        return 0
    if args.path is None:
        parser.error("PATH is required without --serve")
    pump([(sys.stdin.fileno(), RotatingFile(args.path, args.max_bytes, args.files))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
