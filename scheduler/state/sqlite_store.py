"""The `Store` in SQLite (WAL, synchronous=FULL), for the embedded default.

Why SQLite: one file, transactional, survives `kill -9` of the process with every committed
change intact, and no ZooKeeper node-size limit (Marathon's `jute.maxbuffer` failures).

A full disk must not leave the operator unable to free space through the API: the store keeps
a reserve file beside the database, and a commit that only deletes (an app, instances, a
deployment) and fails for lack of space gives the reserve back and tries again. Other writes
fail with `StoreFull`, naming the path and the free space; the reserve is taken again once the
disk has room.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scheduler.errors import FencedOut, StoreError, StoreFull
from scheduler.state.model import Instance
from scheduler.state.store import (
    MAX_VERSIONS_PER_APP,
    DeleteApp,
    DeleteDeployment,
    DeleteInstance,
    Fence,
    PutAppVersion,
    PutBackoff,
    PutDeployment,
    PutInstance,
    PutMeta,
    StoredState,
    Write,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS app_versions (
    app_id TEXT NOT NULL, version TEXT NOT NULL, definition TEXT NOT NULL,
    PRIMARY KEY (app_id, version));
CREATE TABLE IF NOT EXISTS apps (app_id TEXT PRIMARY KEY, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (instance_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backoff (app_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (id TEXT PRIMARY KEY, record TEXT NOT NULL);
"""

Statement = tuple[str, tuple[Any, ...]]

log = logging.getLogger(__name__)

RESERVE_BYTES = 4 * 1024 * 1024
RESERVE_RETRY_SECONDS = 5.0
_FREEING_WRITES = (DeleteApp, DeleteInstance, DeleteDeployment)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _statements(write: Write) -> list[Statement]:
    match write:
        case PutAppVersion(app_id, version, definition):
            return [
                ("INSERT OR REPLACE INTO app_versions VALUES (?, ?, ?)", (app_id, version, _dumps(definition))),
                ("INSERT OR REPLACE INTO apps VALUES (?, ?)", (app_id, version)),
                ("DELETE FROM app_versions WHERE app_id = ? AND version NOT IN (SELECT version FROM"
                 " app_versions WHERE app_id = ? ORDER BY version DESC LIMIT ?)",
                 (app_id, app_id, MAX_VERSIONS_PER_APP)),
            ]
        case DeleteApp(app_id):
            return [("DELETE FROM apps WHERE app_id = ?", (app_id,)),
                    ("DELETE FROM app_versions WHERE app_id = ?", (app_id,)),
                    ("DELETE FROM backoff WHERE app_id = ?", (app_id,))]
        case PutInstance(inst):
            return [("INSERT OR REPLACE INTO instances VALUES (?, ?, ?)",
                     (inst.instance_id, inst.app_id, _dumps(inst.to_record())))]
        case DeleteInstance(instance_id):
            return [("DELETE FROM instances WHERE instance_id = ?", (instance_id,))]
        case PutDeployment(deployment_id, record):
            return [("INSERT OR REPLACE INTO deployments VALUES (?, ?)", (deployment_id, _dumps(record)))]
        case DeleteDeployment(deployment_id):
            return [("DELETE FROM deployments WHERE id = ?", (deployment_id,))]
        case PutBackoff(app_id, None):
            return [("DELETE FROM backoff WHERE app_id = ?", (app_id,))]
        case PutBackoff(app_id, record):
            return [("INSERT OR REPLACE INTO backoff VALUES (?, ?)", (app_id, _dumps(record)))]
        case PutMeta(key, value):
            return [("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))]
    raise TypeError(f"not a store write: {write!r}")


def _frees_space(writes: Sequence[Write]) -> bool:
    return all(isinstance(w, _FREEING_WRITES) or (isinstance(w, PutBackoff) and w.record is None) for w in writes)


def _disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower() or getattr(exc, "errno", None) == 28


class SqliteStore:
    def __init__(self, path: Path, *, reserve_bytes: int = RESERVE_BYTES) -> None:
        self._reserve = path.with_name(path.name + ".reserve")
        self._reserve_bytes = reserve_bytes
        self._reserve_checked_at = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            # reads of app history go on while a pass's writes commit on the writer thread (WAL:
            # readers never wait for the writer), on a connection of their own
            self._reader = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state store {path}: {exc}") from exc
        self.path = path
        self.location = str(path)
        self._lock = threading.Lock()
        self._take_reserve()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._reader.close()

    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        if not writes:
            return
        statements = [s for w in writes for s in _statements(w)]
        with self._lock:     # one transaction at a time, from whichever thread commits
            self._commit_locked(writes, statements, fence)

    def _commit_locked(self, writes: Sequence[Write], statements: list[Statement], fence: Fence | None) -> None:
        try:
            self._transaction(statements, fence)
        except StoreFull:
            if not (_frees_space(writes) and self._give_back_reserve()):
                raise
            log.warning("the disk under %s is full: used the reserve to store a deletion", self.path)
            self._transaction(statements, fence)
        self._take_reserve()

    # -- the reserve --------------------------------------------------------------------
    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def _take_reserve(self) -> None:
        """(Re)create the reserve when it is missing and the disk has room for it, at most
        every few seconds (a full disk is checked, not hammered)."""
        if self._reserve_bytes <= 0 or self._reserve.exists():
            return
        now = time.monotonic()
        if now - self._reserve_checked_at < RESERVE_RETRY_SECONDS and self._reserve_checked_at:
            return
        self._reserve_checked_at = now
        if self._free_bytes() < 2 * self._reserve_bytes:
            return
        try:
            with open(self._reserve, "wb") as f:
                f.write(b"\0" * self._reserve_bytes)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self._reserve.unlink(missing_ok=True)

    def _give_back_reserve(self) -> bool:
        if not self._reserve.exists():
            return False
        self._reserve.unlink(missing_ok=True)
        self._reserve_checked_at = time.monotonic()
        return True

    def _full_error(self, exc: BaseException) -> StoreFull:
        free_mb = self._free_bytes() / (1024 * 1024)
        return StoreFull(f"no space left on the disk holding the state store {self.path} ({free_mb:.1f} MB free): "
                         f"the change was not stored; deletions still work; free space on that disk "
                         f"or start pacer serve with another --home ({exc})")

    def _transaction(self, statements: Iterable[Statement], fence: Fence | None) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if fence is not None:
                row = self._db.execute("SELECT value FROM meta WHERE key = ?", (fence.key,)).fetchone()
                if row is None or row[0] != fence.value:
                    self._db.execute("ROLLBACK")
                    raise FencedOut(f"store fence {fence.key} moved on; this writer no longer leads")
            for sql, params in statements:
                self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if _disk_full(exc):
                raise self._full_error(exc) from exc
            raise StoreError(f"state store write to {self.path} failed: {exc}") from exc

    def load(self) -> StoredState:
        try:
            apps = self._db.execute(
                "SELECT a.app_id, a.version, v.definition FROM apps a JOIN app_versions v"
                " ON a.app_id = v.app_id AND a.version = v.version ORDER BY a.app_id").fetchall()
            instances = self._db.execute("SELECT record FROM instances").fetchall()
            deployments = self._db.execute("SELECT record FROM deployments").fetchall()
            backoffs = self._db.execute("SELECT app_id, record FROM backoff").fetchall()
            meta = self._db.execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read state store {self.path}: {exc}") from exc
        return StoredState(
            apps=[(app_id, version, json.loads(text)) for app_id, version, text in apps],
            instances=[Instance.from_record(json.loads(row[0])) for row in instances],
            deployments=[json.loads(row[0]) for row in deployments],
            backoffs={app_id: json.loads(text) for app_id, text in backoffs},
            meta=dict(meta))

    def app_versions(self, app_id: str) -> list[str]:
        rows = self._reader.execute(
            "SELECT version FROM app_versions WHERE app_id = ? ORDER BY version DESC", (app_id,)).fetchall()
        return [row[0] for row in rows]

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        row = self._reader.execute("SELECT definition FROM app_versions WHERE app_id = ? AND version = ?",
                               (app_id, version)).fetchone()
        return json.loads(row[0]) if row else None
