"""The audit log: one JSON line per mutation, under ``--home``, rotated by size.

Every write call (POST, PUT, PATCH, DELETE) that reaches the API leaves one line, refused
ones included: ``{"time", "user", "source", "forwardedFor", "method", "path", "appIds",
"status", "version", "deploymentId", "error"}`` (absent keys were not known). Lines are
written by a thread of their own and fsynced in batches, so a request never waits for the
disk; `AuditLog.record` only puts the entry on a queue. When the file would grow past
``max_bytes`` it becomes ``audit.log.1`` (older ones shift up, the oldest beyond ``files``
is removed). `AuditLog.tail` reads the newest entries back for ``GET /v2/audit``.

Pure parts: `audit_entry` (building a line from what the middleware knows) and
`rotation_names`. Errors writing the log are logged once per kind and never fail a request:
the audit log must not become a way to stop the scheduler.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_FILES = 5
_SPARE = 16
"""Lines read beyond the limit, so a line cut by a crash rarely means reading the log twice."""


class _Stop:
    """Put on the queue by `AuditLog.close`: the writer ends after what came before it."""


_STOP = _Stop()


def audit_entry(*, when: datetime, user: str | None, source: str | None, forwarded_for: str | None,
                method: str, path: str, app_ids: Sequence[str], status: int,
                result: Mapping[str, Any] | None, deployment_id: str | None) -> dict[str, Any]:
    """One audit line as a dict. ``result`` is the response's JSON body (if it was one): its
    ``version`` is the resulting version, its ``message`` the error of a failed call."""
    entry: dict[str, Any] = {
        "time": when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user": user, "source": source, "method": method, "path": path, "appIds": list(app_ids),
        "status": status,
    }
    if forwarded_for:
        entry["forwardedFor"] = forwarded_for
    if deployment_id or (result and isinstance(result.get("deploymentId"), str)):
        entry["deploymentId"] = deployment_id or (result or {}).get("deploymentId")
    if result:
        if status < 400 and isinstance(result.get("version"), str):
            entry["version"] = result["version"]
        if status >= 400 and isinstance(result.get("message"), str):
            entry["error"] = result["message"]
        decision = _approval_decision(result) if status < 400 and path.split("?")[0].endswith(
            ("/approve", "/reject")) else None
        if decision is not None:
            entry["approval"] = decision
    return entry


def _approval_decision(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an approve or reject of a held deployment decided, from its answer (the
    deployment's row): who, which way, and the comment or reason."""
    approval = result.get("approval")
    if isinstance(result.get("rejectedBy"), str):
        return {"decision": "rejected", "by": result["rejectedBy"], "reason": result.get("reason")}
    if isinstance(approval, dict) and isinstance(approval.get("approvedBy"), str):
        return {"decision": "approved", "by": approval["approvedBy"], "comment": approval.get("comment")}
    return None


def rotation_names(path: Path, files: int) -> list[tuple[Path, Path]]:
    """The renames of one rotation, oldest first: ``log.(n-1) -> log.n`` … ``log -> log.1``."""
    names = [path] + [path.with_name(f"{path.name}.{i}") for i in range(1, files)]
    return [(names[i - 1], names[i]) for i in range(len(names) - 1, 0, -1)]


def newest_entries(read: Callable[[], Iterable[str]], limit: int, user: str | None = None) -> list[dict[str, Any]]:
    """The last ``limit`` parsed entries of the lines ``read()`` gives (oldest first), counting
    only those of ``user`` when it is given: filter, then limit. Lines that do not parse (one
    cut by a crash) are skipped and not counted.

    Cheap in the usual case: without ``user`` only the newest lines (and a few spare) are kept
    and parsed; the log is read a second time, in full, only when cut lines among them leave
    fewer than ``limit``. With ``user``, only lines holding the JSON-encoded name are parsed."""
    if limit <= 0:
        return []
    if user is not None:
        needle = json.dumps(user)
        entries: deque[dict[str, Any]] = deque(maxlen=limit)
        for line in read():
            if needle in line and (entry := _parse(line)) is not None and entry.get("user") == user:
                entries.append(entry)
        return list(entries)
    kept: deque[str] = deque(read(), maxlen=limit + _SPARE)
    newest = [entry for line in kept if (entry := _parse(line)) is not None][-limit:]
    if len(newest) == limit or len(kept) < limit + _SPARE:
        return newest
    parsed: deque[dict[str, Any]] = deque((e for line in read() if (e := _parse(line)) is not None), maxlen=limit)
    return list(parsed)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class AuditLog:
    """Appends entries to ``directory/audit.log`` from a writer thread; see the module docstring."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, files: int = DEFAULT_FILES) -> None:
        self.path = directory / "audit.log"
        self.max_bytes = max_bytes
        self.files = max(1, files)
        directory.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=100_000)
        self._lock = threading.Lock()      # the writer and `tail` never see a rotation half done
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def record(self, entry: Mapping[str, Any]) -> None:
        """Queue one entry; never blocks (a full queue drops it, and says so once)."""
        try:
            self._queue.put_nowait(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        except queue.Full:
            self._warn("full", "audit log queue full: entries dropped (is the disk under --home stalled?)")

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until everything queued so far is on disk (tests, `GET /v2/audit`)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def tail(self, limit: int, user: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (of ``user`` only, if given), oldest first, across the
        rotated files. The user is matched before the limit is applied: ``limit`` entries of that
        user come back whenever the log holds that many."""
        with self._lock:
            return newest_entries(self._lines, limit, user)

    def _lines(self) -> Iterator[str]:
        """Every line of the log, oldest file first (the caller holds the lock)."""
        for older in reversed([self.path] + [self.path.with_name(f"{self.path.name}.{i}")
                                             for i in range(1, self.files)]):
            try:
                with older.open(encoding="utf-8") as handle:
                    yield from handle
            except FileNotFoundError:
                continue

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while not self._queue.empty() and len(batch) < 1000:
                batch.append(self._queue.get_nowait())
            lines = [b for b in batch if isinstance(b, str)]
            if lines:
                self._write(lines)
            for b in batch:
                if isinstance(b, threading.Event):
                    b.set()
            if any(isinstance(b, _Stop) for b in batch):
                return

    def _write(self, lines: list[str]) -> None:
        data = "".join(lines).encode("utf-8")
        try:
            with self._lock:
                size = self.path.stat().st_size if self.path.exists() else 0
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            self._warn("write", f"audit log {self.path} not written: {exc.strerror or exc}")

    def _rotate(self) -> None:
        for src, dst in rotation_names(self.path, self.files):
            if src.exists():
                os.replace(src, dst)
        if self.files == 1:
            self.path.unlink(missing_ok=True)

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s", message)
