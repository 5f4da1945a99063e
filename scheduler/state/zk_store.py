"""The `Store` in ZooKeeper (kazoo), for several `pacer serve` behind `--zk`.

Layout and planning are in `zk_layout` (pure), record bytes in `zk_codec` (pure); this module
does the I/O. What it guarantees, and how:

* **One transaction.** A commit's operations go to ZooKeeper as one multi (`transaction()`),
  preceded by a `check` of the fence node's version when a `Fence` is given: a deposed
  leader's late write fails whole, with `FencedOut`.
* **Fences.** For this store a `Fence(key, value)` means: node `<root>/<key>` still has data
  version `int(value)`. `scheduler.ha.election` bumps `<root>/leader-fence` on each takeover
  and hands out the version it got, so every earlier leader's token is stale at once.
* **Big commits: two phases.** ZooKeeper's `jute.maxbuffer` (~1 MB) bounds a whole multi, not
  only one node, so a group of 5,000 apps cannot go in one. A commit whose operations exceed
  `txn_budget` is (1) encoded as one record of writes into `staged/<uuid>` (+ chunks), unfenced
  and unreferenced, then (2) made durable by one small fenced multi that creates
  `journal/e-<seq>` naming it — that is the commit point — then (3) applied to the layout in
  fenced multis under the budget, and (4) the journal entry and staged nodes are deleted. A crash
  or a lost connection after (2) leaves the entry: `load()` overlays pending entries on what it
  reads, and the next commit first re-applies them (writes are idempotent: a plan is always made
  against the nodes that exist). Staged nodes no entry names (a crash before (2)) are deleted then.
* **Knowing what exists.** Multis cannot create-or-set, so the store keeps an index of node
  names per directory (listed, never read, at `load()`), updated on each commit. A
  `NodeExists`/`NoNode` that is not the fence check means the index was wrong: it is listed
  again and the commit retried once.
* **ZooKeeper away.** Not connected, or no answer within `timeout` → `StoreUnavailable`
  ("ZooKeeper at … is unreachable: …"): the API answers 503 and the next commit after the
  reconnection works, with the same `ZkStore`. A commit cut off in flight may or may not have
  happened (as with any ZooKeeper request); the index is listed again before the next one.
  Likewise a two-phase commit refused (`FencedOut`) after its journal entry was created is
  committed all the same: it was fenced correctly at its commit point, and the next leader
  applies it.
* **History** is trimmed to `MAX_VERSIONS_PER_APP` in the commit that adds a version.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl

from scheduler.errors import FencedOut, StoreError, StoreUnavailable
from scheduler.ha.zk_url import ZkUrl
from scheduler.state import zk_codec
from scheduler.state.model import Instance
from scheduler.state.store import DeleteApp, Fence, PutAppVersion, StoredState, Write
from scheduler.state.zk_layout import (
    COLLECTIONS,
    VERSION_PREFIX,
    Create,
    Delete,
    Index,
    Layout,
    Op,
    SetData,
    batches,
    chunk_name,
    chunks_of,
    decode_name,
    encode_name,
    is_chunk,
    op_size,
    overlay,
    writes_from_data,
    writes_to_data,
)

TXN_BUDGET = 768 * 1024    # bytes of one multi: below jute.maxbuffer (1 MB) with room to spare
_UNAVAILABLE = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, KazooTimeoutError,
                OperationTimeoutError)


def connect(url: ZkUrl, *, timeout: float = 10.0, session_timeout: float = 10.0) -> KazooClient:
    """A started client for `--zk` (`--zk-timeout`, `--zk-session-timeout`); it reconnects by
    itself within a second of ZooKeeper coming back. StoreUnavailable when none answers."""
    auth = None
    acl = None
    if url.credentials:
        user, password = url.credentials
        auth = [("digest", f"{user}:{password}")]
        acl = [make_digest_acl(user, password, all=True)]
    client = KazooClient(hosts=url.hosts_string, timeout=session_timeout, auth_data=auth, default_acl=acl,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0))
    try:
        client.start(timeout=timeout)
    except (KazooTimeoutError, KazooException) as exc:
        client.stop()
        client.close()
        raise StoreUnavailable(f"ZooKeeper at {url.redacted()} is unreachable: no connection within "
                               f"{timeout:g} s (--zk-timeout): {exc or type(exc).__name__}") from exc
    return client


class _IndexStale(Exception):
    """A NodeExists/NoNode that is not the fence: the index of names was wrong."""


class ZkStore:
    """`Store` under `root` on a kazoo client (owned when built by `open`)."""

    def __init__(self, client: KazooClient, root: str, *, location: str | None = None, timeout: float = 10.0,
                 chunk_limit: int = zk_codec.CHUNK_LIMIT, txn_budget: int = TXN_BUDGET,
                 owns_client: bool = False) -> None:
        self._client = client
        self._layout = Layout(root, chunk_limit)
        self._root = self._layout.root
        self.location = location or f"ZooKeeper node {self._root}"
        self._timeout = timeout
        self._budget = txn_budget
        self._owns_client = owns_client
        self._lock = threading.RLock()
        self._index: Index | None = None
        self._clean = False           # the journal is known to be empty
        self._closed = False
        with self._lock:
            self._guarded(self._bootstrap)

    @classmethod
    def open(cls, url: ZkUrl, *, timeout: float = 10.0, session_timeout: float = 10.0) -> "ZkStore":
        client = connect(url, timeout=timeout, session_timeout=session_timeout)
        try:
            return cls(client, url.path, location=url.redacted(), timeout=timeout, owns_client=True)
        except StoreError:
            client.stop()
            client.close()
            raise

    def close(self) -> None:
        self._closed = True
        if self._owns_client:
            self._client.stop()
            self._client.close()

    # -- plumbing -------------------------------------------------------------------------
    def _wait(self, result: Any) -> Any:
        return result.get(timeout=self._timeout)

    def _guarded(self, fn: Any, *args: Any) -> Any:
        """Run fn, translating kazoo's failures into the store's errors."""
        if self._closed:
            raise StoreError(f"the state store {self.location} is closed")
        if self._client.state != KazooState.CONNECTED:
            raise StoreUnavailable(f"ZooKeeper at {self.location} is unreachable: the connection is "
                                   f"{str(self._client.state).lower()}; reads are served from memory, "
                                   "changes are refused until it is back")
        try:
            return fn(*args)
        except _UNAVAILABLE as exc:
            self._index, self._clean = None, False
            raise StoreUnavailable(f"ZooKeeper at {self.location} is unreachable: "
                                   f"{type(exc).__name__} {exc}".rstrip()
                                   + f" (no answer within {self._timeout:g} s, or the connection dropped);"
                                   " the change may not have been stored") from exc
        except KazooException as exc:
            self._index, self._clean = None, False
            raise StoreError(f"ZooKeeper at {self.location} refused a request: {type(exc).__name__} {exc}") from exc

    def _bootstrap(self) -> None:
        for result in [self._client.ensure_path_async(self._layout.dir(c)) for c in COLLECTIONS]:
            self._wait(result)

    def _multi(self, ops: Sequence[Op], fence: Fence | None, *, journal_of: str | None = None) -> list[Any]:
        """One ZooKeeper transaction: the fence check first, then `ops` (then the journal entry)."""
        t = self._client.transaction()
        if fence is not None:
            if not (fence.value.isascii() and fence.value.isdigit()):
                raise StoreError(f"fence {fence!r} is not a ZooKeeper fence (a node and its version)")
            t.check(f"{self._root}/{fence.key}", int(fence.value))
        for op in ops:
            if isinstance(op, Create):
                t.create(op.path, op.data)
            elif isinstance(op, SetData):
                t.set_data(op.path, op.data)
            else:
                t.delete(op.path)
        if journal_of is not None:
            t.create(f"{self._layout.dir('journal')}/e-", journal_of.encode(), sequence=True)
        results = self._wait(t.commit_async())
        if not any(isinstance(r, Exception) for r in results):
            return list(results)
        if fence is not None and isinstance(results[0], (BadVersionError, NoNodeError)):
            raise FencedOut(f"store fence {self._root}/{fence.key} moved past version {fence.value}: "
                            "another Pacer leads now; this one's change was refused")
        failed = next(r for r in results if isinstance(r, Exception)
                      and not isinstance(r, (RolledBackError, RuntimeInconsistency)))
        if isinstance(failed, (NodeExistsError, NoNodeError, NotEmptyError)):
            raise _IndexStale(f"{type(failed).__name__}")
        raise failed

    def _children_all(self, paths: Sequence[str]) -> dict[str, set[str]]:
        pending = [(p, self._client.get_children_async(p)) for p in paths]
        return {p: set(self._wait(r)) for p, r in pending}

    def _read_index(self) -> Index:
        """The collections' listings. App directories (versions) are listed when a commit first
        touches the app (`_list_apps`): a takeover reads 5,000 apps without 5,000 listings."""
        return Index(self._children_all([self._layout.dir(c) for c in
                                         ("apps", "instances", "deployments", "backoff", "meta")]))

    def _list_apps(self, writes: Sequence[Write]) -> None:
        assert self._index is not None
        apps = self._index.dirs[self._layout.dir("apps")]
        missing = {self._layout.app_dir(w.app_id) for w in writes if isinstance(w, (PutAppVersion, DeleteApp))
                   and encode_name(w.app_id) in apps and self._layout.app_dir(w.app_id) not in self._index.dirs}
        self._index.dirs.update(self._children_all(sorted(missing)))

    def _read_records(self, paths: Sequence[str]) -> list[Any]:
        """Decoded records at `paths`, pipelined: all heads, then the chunks the heads announce."""
        heads = [self._client.get_async(p) for p in paths]
        parts: list[list[Any]] = []
        for path, result in zip(paths, heads):
            head = self._wait(result)[0]
            count = zk_codec.chunk_count(head, path)
            parts.append([head, *(self._client.get_async(chunk_name(path, i)) for i in range(1, count + 1))])
        records = []
        for path, (head, *chunks) in zip(paths, parts):
            try:
                data = [head, *(self._wait(r)[0] for r in chunks)]
            except NoNodeError as exc:
                raise StoreError(f"corrupt record at {path}: a chunk is missing") from exc
            records.append(zk_codec.decode(data, path))
        return records

    # -- writing --------------------------------------------------------------------------
    def commit(self, writes: Sequence[Write], fence: Fence | None = None) -> None:
        if not writes:
            return
        with self._lock:
            self._guarded(self._commit_with_retry, writes, fence)

    def _commit_with_retry(self, writes: Sequence[Write], fence: Fence | None) -> None:
        try:
            for attempt in (1, 2):
                try:
                    self._ready(fence)
                    self._commit(writes, fence)
                    return
                except _IndexStale as exc:
                    self._index, self._clean = None, False
                    if attempt == 2:
                        raise StoreError(f"ZooKeeper at {self.location}: nodes changed under this writer "
                                         f"twice in a row ({exc}); is another Pacer writing without a fence?") from exc
        except FencedOut:
            self._index, self._clean = None, False
            raise

    def _ready(self, fence: Fence | None) -> None:
        """Know what exists, and finish any journal entry a crash or lost connection left."""
        if self._index is None:
            self._index = self._read_index()
        if self._clean:
            return
        journal, staged = self._layout.dir("journal"), self._layout.dir("staged")
        entries = sorted(self._wait(self._client.get_children_async(journal)))
        for entry in entries:
            name = self._wait(self._client.get_async(f"{journal}/{entry}"))[0].decode()
            self._apply(f"{journal}/{entry}", name, self._read_staged(name), fence)
        leftovers = sorted(self._wait(self._client.get_children_async(staged)))
        for batch in batches([Delete(f"{staged}/{n}") for n in leftovers], self._budget):
            self._multi(batch, fence)
        self._clean = True

    def _read_staged(self, name: str) -> list[Write]:
        staged = self._layout.dir("staged")
        data = self._read_records([f"{staged}/{name}"])[0]
        return writes_from_data(data)

    def _commit(self, writes: Sequence[Write], fence: Fence | None) -> None:
        assert self._index is not None
        self._list_apps(writes)
        ops, after = self._layout.plan(writes, self._index)
        if sum(op_size(op) for op in ops) <= self._budget:
            self._multi(ops, fence)
            self._index = after
            return
        name = uuid.uuid4().hex
        staged = self._layout.dir("staged")
        parts = zk_codec.encode(writes_to_data(writes), self._layout.chunk_limit)
        stage = [Create(f"{staged}/{chunk_name(name, i)}", p) for i, p in enumerate(parts[1:], start=1)]
        stage.append(Create(f"{staged}/{name}", parts[0]))
        for batch in batches(stage, self._budget):
            self._multi(batch, None)
        entry = self._multi([], fence, journal_of=name)[-1]          # the commit point
        self._clean = False
        try:
            self._apply(entry, name, writes, fence)
        except _IndexStale:
            self._index = None                  # committed already: finish it from the journal
            self._ready(fence)
        self._clean = True

    def _apply(self, entry: str, name: str, writes: Sequence[Write], fence: Fence | None) -> None:
        assert self._index is not None
        self._list_apps(writes)
        ops, after = self._layout.plan(writes, self._index)
        for batch in batches(ops, self._budget):
            self._multi(batch, fence)
        self._index = after
        staged = self._layout.dir("staged")
        count = len(chunks_of(name, self._wait(self._client.get_children_async(staged))))
        cleanup: list[Op] = [Delete(entry), Delete(f"{staged}/{name}")]
        cleanup += [Delete(f"{staged}/{chunk_name(name, i)}") for i in range(1, count + 1)]
        for batch in batches(cleanup, self._budget):
            self._multi(batch, fence)

    # -- reading --------------------------------------------------------------------------
    def load(self) -> StoredState:
        with self._lock:
            return self._guarded(self._load)

    def _load(self) -> StoredState:
        index = self._read_index()
        apps_dir = self._layout.dir("apps")
        names = sorted(index.dirs[apps_dir])
        current = [self._client.get_async(f"{apps_dir}/{n}") for n in names]
        versions = [self._wait(r)[0].decode() for r in current]
        heads = [f"{apps_dir}/{n}/{VERSION_PREFIX}{encode_name(v)}" for n, v in zip(names, versions)]
        try:
            definitions = self._read_records(heads)
        except NoNodeError as exc:
            raise StoreError(f"ZooKeeper at {self.location}: an app's current version is not stored "
                             f"({exc.args[0] if exc.args else exc})") from exc
        apps = {decode_name(n): (v, d) for n, v, d in zip(names, versions, definitions)}
        loaded: dict[str, dict[str, Any]] = {}
        for collection in ("instances", "deployments", "backoff", "meta"):
            d = self._layout.dir(collection)
            heads = sorted(n for n in index.dirs[d] if not is_chunk(n))
            loaded[collection] = dict(zip((decode_name(n) for n in heads),
                                          self._read_records([f"{d}/{n}" for n in heads])))
        journal = self._layout.dir("journal")
        entries = sorted(self._wait(self._client.get_children_async(journal)))
        for entry in entries:          # committed, not yet applied: overlay them in order
            name = self._wait(self._client.get_async(f"{journal}/{entry}"))[0].decode()
            overlay(apps, loaded, self._read_staged(name))
        self._index, self._clean = index, False     # the next commit finishes entries, collects orphans
        return StoredState(
            apps=[(app_id, v, d) for app_id, (v, d) in sorted(apps.items())],
            instances=[Instance.from_record(r) for r in loaded["instances"].values()],
            deployments=list(loaded["deployments"].values()),
            backoffs=loaded["backoff"], meta=loaded["meta"])

    def app_versions(self, app_id: str) -> list[str]:
        with self._lock:
            return self._guarded(self._app_versions, app_id)

    def _app_versions(self, app_id: str) -> list[str]:
        try:
            children = self._wait(self._client.get_children_async(self._layout.app_dir(app_id)))
        except NoNodeError:
            return []
        return sorted((decode_name(n[len(VERSION_PREFIX):]) for n in children
                       if n.startswith(VERSION_PREFIX) and not is_chunk(n)), reverse=True)

    def app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            return self._guarded(self._app_version, app_id, version)

    def _app_version(self, app_id: str, version: str) -> dict[str, Any] | None:
        d, name = self._layout.app_dir(app_id), VERSION_PREFIX + encode_name(version)
        try:
            return self._read_records([f"{d}/{name}"])[0]  # type: ignore[no-any-return]
        except NoNodeError:
            return None

