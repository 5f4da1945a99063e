"""Durable state in SQLite (WAL, synchronous=FULL): app versions, instances, backoff, identity.

Why SQLite: one file, transactional, survives `kill -9` of the process with every committed
change intact, and no ZooKeeper node-size limit (Marathon's `jute.maxbuffer` failures). Each
public method is one transaction; the API answers only after it returns, so anything
acknowledged is on disk.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scheduler.errors import StoreError
from scheduler.state.model import Instance

MAX_VERSIONS_PER_APP = 50

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


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


class StateStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state store {path}: {exc}") from exc
        self.path = path

    def close(self) -> None:
        self._db.close()

    def _transaction(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"state store write failed: {exc}") from exc

    # -- apps ---------------------------------------------------------------------------
    def put_apps(self, apps: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Store new current versions (app_id, version, definition JSON) in one transaction."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for app_id, version, definition in apps:
            statements += [
                ("INSERT OR REPLACE INTO app_versions VALUES (?, ?, ?)", (app_id, version, _dumps(definition))),
                ("INSERT OR REPLACE INTO apps VALUES (?, ?)", (app_id, version)),
                ("DELETE FROM app_versions WHERE app_id = ? AND version NOT IN (SELECT version FROM"
                 " app_versions WHERE app_id = ? ORDER BY version DESC LIMIT ?)",
                 (app_id, app_id, MAX_VERSIONS_PER_APP)),
            ]
        self._transaction(statements)

    def delete_app(self, app_id: str) -> None:
        """Forget the app and its history, as Marathon does on DELETE."""
        self._transaction([
            ("DELETE FROM apps WHERE app_id = ?", (app_id,)),
            ("DELETE FROM app_versions WHERE app_id = ?", (app_id,)),
            ("DELETE FROM backoff WHERE app_id = ?", (app_id,)),
        ])

    def current_apps(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT a.app_id, a.version, v.definition FROM apps a JOIN app_versions v"
            " ON a.app_id = v.app_id AND a.version = v.version ORDER BY a.app_id").fetchall()
        return [(app_id, version, json.loads(text)) for app_id, version, text in rows]

    def app_versions(self, app_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT version FROM app_versions WHERE app_id = ? ORDER BY version DESC", (app_id,)).fetchall()
        return [row[0] for row in rows]

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT definition FROM app_versions WHERE app_id = ? AND version = ?",
                               (app_id, version)).fetchone()
        return json.loads(row[0]) if row else None

    # -- instances ----------------------------------------------------------------------
    def put_instances(self, instances: Iterable[Instance]) -> None:
        self._transaction(
            ("INSERT OR REPLACE INTO instances VALUES (?, ?, ?)",
             (inst.instance_id, inst.app_id, _dumps(inst.to_record())))
            for inst in instances)

    def delete_instances(self, instance_ids: Iterable[str]) -> None:
        self._transaction(("DELETE FROM instances WHERE instance_id = ?", (iid,)) for iid in instance_ids)

    def instances(self) -> list[Instance]:
        rows = self._db.execute("SELECT record FROM instances").fetchall()
        return [Instance.from_record(json.loads(row[0])) for row in rows]

    # -- deployments --------------------------------------------------------------------
    def put_deployment(self, deployment_id: str, record: dict[str, Any]) -> None:
        self._transaction([("INSERT OR REPLACE INTO deployments VALUES (?, ?)", (deployment_id, _dumps(record)))])

    def delete_deployment(self, deployment_id: str) -> None:
        self._transaction([("DELETE FROM deployments WHERE id = ?", (deployment_id,))])

    def deployments(self) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self._db.execute("SELECT record FROM deployments")]

    # -- backoff and identity -----------------------------------------------------------
    def put_backoff(self, app_id: str, record: dict[str, float] | None) -> None:
        if record is None:
            self._transaction([("DELETE FROM backoff WHERE app_id = ?", (app_id,))])
        else:
            self._transaction([("INSERT OR REPLACE INTO backoff VALUES (?, ?)", (app_id, _dumps(record)))])

    def backoffs(self) -> dict[str, dict[str, float]]:
        return {app_id: json.loads(text) for app_id, text in self._db.execute("SELECT app_id, record FROM backoff")}

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_meta(self, key: str, value: str) -> None:
        self._transaction([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))])
