"""The `Store` in SQLite (WAL, synchronous=FULL), for the embedded default.

Why SQLite: one file, transactional, survives `kill -9` of the process with every committed
change intact, and no ZooKeeper node-size limit (Marathon's `jute.maxbuffer` failures).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scheduler.errors import FencedOut, StoreError
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


class SqliteStore:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state store {path}: {exc}") from exc
        self.path = path
        self.location = str(path)

    def close(self) -> None:
        self._db.close()

    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        if not writes:
            return
        self._transaction([s for w in writes for s in _statements(w)], fence)

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
                self._db.execute("ROLLBACK")
            raise StoreError(f"state store write failed: {exc}") from exc

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
        rows = self._db.execute(
            "SELECT version FROM app_versions WHERE app_id = ? ORDER BY version DESC", (app_id,)).fetchall()
        return [row[0] for row in rows]

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT definition FROM app_versions WHERE app_id = ? AND version = ?",
                               (app_id, version)).fetchone()
        return json.loads(row[0]) if row else None
