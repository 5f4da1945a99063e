"""Where `ZkStore` keeps each record, and which ZooKeeper operations a list of writes needs.

Pure: `plan(writes, index)` takes the store's writes and what exists (an `Index` of node
names per directory) and returns ZooKeeper operations plus the index as it will be after them.
No client, no clock: the I/O and the transactions live in `zk_store.py`.

Layout under `<root>/state` (ids are percent-encoded, `/`, `.` and `~` included, so an app id
`/prod/web` is one node name and `~` can separate a record from its chunks)::

    apps/<app>                    data: the current version
    apps/<app>/v-<version>        head of that version's definition (zk_codec)
    apps/<app>/v-<version>~c0001  its chunks, siblings of the head (only above the chunk limit)
    instances/<id>, deployments/<id>, backoff/<app>, meta/<key>   heads (+ ~cNNNN chunks)
    journal/e-<sequence>          a committed two-phase write, still being applied (zk_store)
    staged/<uuid>(~cNNNN)         its encoded writes, written before the journal entry

Chunks are siblings rather than children so that listing one directory tells, without reading
any data, which chunk nodes a record has: deleting a version never needs a read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from scheduler.state import zk_codec
from scheduler.state.model import Instance
from scheduler.state.store import (
    MAX_VERSIONS_PER_APP,
    DeleteApp,
    DeleteDeployment,
    DeleteInstance,
    PutAppVersion,
    PutBackoff,
    PutDeployment,
    PutInstance,
    PutMeta,
    Write,
)

COLLECTIONS = ("apps", "instances", "deployments", "backoff", "meta", "journal", "staged")
CHUNK_SEP = "~c"
VERSION_PREFIX = "v-"
OP_OVERHEAD = 48   # bytes of request framing per operation in a multi, rounded up


@dataclass(frozen=True)
class Create:
    path: str
    data: bytes


@dataclass(frozen=True)
class SetData:
    path: str
    data: bytes


@dataclass(frozen=True)
class Delete:
    path: str


Op = Create | SetData | Delete


def encode_name(text: str) -> str:
    """One node name for any id: `/`, `.`, `~` and everything unsafe percent-encoded."""
    encoded = quote(text, safe="-_", errors="surrogatepass")
    return encoded.replace(".", "%2E").replace("~", "%7E") or "%"     # a lone % is never an encoding


def decode_name(name: str) -> str:
    return "" if name == "%" else unquote(name, errors="surrogatepass")


def chunk_name(name: str, i: int) -> str:
    return f"{name}{CHUNK_SEP}{i:04d}"


def is_chunk(name: str) -> bool:
    return CHUNK_SEP in name


def chunks_of(name: str, children: Iterable[str]) -> list[str]:
    """The chunk siblings of record `name` among `children`, in order."""
    prefix = name + CHUNK_SEP
    return sorted(c for c in children if c.startswith(prefix))


def op_size(op: Op) -> int:
    return len(op.path) + (len(op.data) if isinstance(op, (Create, SetData)) else 0) + OP_OVERHEAD


def batches(ops: Sequence[Op], budget: int) -> Iterator[list[Op]]:
    """Consecutive groups of ops of at most `budget` bytes each (an op larger alone goes alone)."""
    group: list[Op] = []
    size = 0
    for op in ops:
        n = op_size(op)
        if group and size + n > budget:
            yield group
            group, size = [], 0
        group.append(op)
        size += n
    if group:
        yield group


@dataclass
class Index:
    """Node names that exist, per directory path (a collection or an app node)."""

    dirs: dict[str, set[str]] = field(default_factory=dict)


class _Draft:
    """Copy-on-write view of an Index: only the directories a commit touches are copied."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.changed: dict[str, set[str] | None] = {}

    def children(self, path: str) -> set[str]:
        if path in self.changed:
            found = self.changed[path]
            if found is None:                  # dropped earlier in this commit: empty again
                found = self.changed[path] = set()
            return found
        copied = self.changed[path] = set(self.index.dirs.get(path, ()))
        return copied

    def exists_dir(self, path: str) -> bool:
        if path in self.changed:
            return self.changed[path] is not None
        return path in self.index.dirs

    def drop_dir(self, path: str) -> None:
        self.changed[path] = None

    def result(self) -> Index:
        dirs = dict(self.index.dirs)
        for path, names in self.changed.items():
            if names is None:
                dirs.pop(path, None)
            else:
                dirs[path] = names
        return Index(dirs)


class Layout:
    """Paths under one store root, and the planning of writes into operations."""

    def __init__(self, root: str, chunk_limit: int = zk_codec.CHUNK_LIMIT) -> None:
        self.root = root.rstrip("/")
        self.base = f"{self.root}/state"
        self.chunk_limit = chunk_limit

    def dir(self, collection: str) -> str:
        return f"{self.base}/{collection}"

    def app_dir(self, app_id: str) -> str:
        return f"{self.dir('apps')}/{encode_name(app_id)}"

    # -- planning -----------------------------------------------------------------------
    def plan(self, writes: Sequence[Write], index: Index) -> tuple[list[Op], Index]:
        """The operations that make `writes` true, in order, and the index after them."""
        draft = _Draft(index)
        ops: list[Op] = []
        for write in writes:
            ops.extend(self._ops(write, draft))
        return ops, draft.result()

    def _put(self, draft: _Draft, directory: str, name: str, record: Any) -> list[Op]:
        parts = zk_codec.encode(record, self.chunk_limit)
        children = draft.children(directory)
        old_chunks = set(chunks_of(name, children))
        ops: list[Op] = []
        for i, data in enumerate(parts[1:], start=1):
            cname = chunk_name(name, i)
            ops.append(SetData(f"{directory}/{cname}", data) if cname in old_chunks else
                       Create(f"{directory}/{cname}", data))
            old_chunks.discard(cname)
            children.add(cname)
        ops.append(SetData(f"{directory}/{name}", parts[0]) if name in children else
                   Create(f"{directory}/{name}", parts[0]))
        children.add(name)
        for cname in sorted(old_chunks):
            ops.append(Delete(f"{directory}/{cname}"))
            children.discard(cname)
        return ops

    def _delete(self, draft: _Draft, directory: str, name: str) -> list[Op]:
        children = draft.children(directory)
        if name not in children:
            return []
        ops: list[Op] = [Delete(f"{directory}/{c}") for c in chunks_of(name, children)]
        ops.append(Delete(f"{directory}/{name}"))
        children.difference_update([name, *chunks_of(name, children)])
        return ops

    def _ops(self, write: Write, draft: _Draft) -> list[Op]:
        match write:
            case PutAppVersion(app_id, version, definition):
                return self._put_app_version(draft, app_id, version, definition)
            case DeleteApp(app_id):
                return self._delete_app(draft, app_id)
            case PutInstance(inst):
                return self._put(draft, self.dir("instances"), encode_name(inst.instance_id), inst.to_record())
            case DeleteInstance(instance_id):
                return self._delete(draft, self.dir("instances"), encode_name(instance_id))
            case PutDeployment(deployment_id, record):
                return self._put(draft, self.dir("deployments"), encode_name(deployment_id), dict(record))
            case DeleteDeployment(deployment_id):
                return self._delete(draft, self.dir("deployments"), encode_name(deployment_id))
            case PutBackoff(app_id, None):
                return self._delete(draft, self.dir("backoff"), encode_name(app_id))
            case PutBackoff(app_id, record):
                return self._put(draft, self.dir("backoff"), encode_name(app_id), dict(record))
            case PutMeta(key, value):
                return self._put(draft, self.dir("meta"), encode_name(key), value)
        raise TypeError(f"not a store write: {write!r}")

    def _put_app_version(self, draft: _Draft, app_id: str, version: str, definition: Mapping[str, Any]) -> list[Op]:
        apps = draft.children(self.dir("apps"))
        name = encode_name(app_id)
        directory = self.app_dir(app_id)
        ops: list[Op] = []
        if name in apps and draft.exists_dir(directory):
            ops.append(SetData(directory, version.encode()))
        else:
            ops.append(Create(directory, version.encode()))
            apps.add(name)
            draft.changed[directory] = set()
        ops.extend(self._put(draft, directory, VERSION_PREFIX + encode_name(version), dict(definition)))
        versions = sorted((decode_name(n[len(VERSION_PREFIX):]) for n in draft.children(directory)
                           if n.startswith(VERSION_PREFIX) and not is_chunk(n)), reverse=True)
        for old in versions[MAX_VERSIONS_PER_APP:]:
            ops.extend(self._delete(draft, directory, VERSION_PREFIX + encode_name(old)))
        return ops

    def _delete_app(self, draft: _Draft, app_id: str) -> list[Op]:
        ops = self._delete(draft, self.dir("backoff"), encode_name(app_id))
        apps = draft.children(self.dir("apps"))
        name = encode_name(app_id)
        if name not in apps:
            return ops
        directory = self.app_dir(app_id)
        ops.extend(Delete(f"{directory}/{c}") for c in sorted(draft.children(directory)))
        ops.append(Delete(directory))
        apps.discard(name)
        draft.drop_dir(directory)
        return ops


# -- writes as data, for the two-phase journal ----------------------------------------------
def writes_to_data(writes: Sequence[Write]) -> list[dict[str, Any]]:
    """The writes as JSON-able data (staged before a two-phase commit's journal entry)."""
    out: list[dict[str, Any]] = []
    for w in writes:
        match w:
            case PutAppVersion(app_id, version, definition):
                out.append({"t": "app", "id": app_id, "version": version, "definition": dict(definition)})
            case DeleteApp(app_id):
                out.append({"t": "del_app", "id": app_id})
            case PutInstance(inst):
                out.append({"t": "inst", "record": inst.to_record()})
            case DeleteInstance(instance_id):
                out.append({"t": "del_inst", "id": instance_id})
            case PutDeployment(deployment_id, record):
                out.append({"t": "dep", "id": deployment_id, "record": dict(record)})
            case DeleteDeployment(deployment_id):
                out.append({"t": "del_dep", "id": deployment_id})
            case PutBackoff(app_id, record):
                out.append({"t": "backoff", "id": app_id, "record": None if record is None else dict(record)})
            case PutMeta(key, value):
                out.append({"t": "meta", "key": key, "value": value})
            case _:
                raise TypeError(f"not a store write: {w!r}")
    return out


def writes_from_data(data: Sequence[Mapping[str, Any]]) -> list[Write]:
    out: list[Write] = []
    for d in data:
        match d["t"]:
            case "app":
                out.append(PutAppVersion(d["id"], d["version"], d["definition"]))
            case "del_app":
                out.append(DeleteApp(d["id"]))
            case "inst":
                out.append(PutInstance(Instance.from_record(d["record"])))
            case "del_inst":
                out.append(DeleteInstance(d["id"]))
            case "dep":
                out.append(PutDeployment(d["id"], d["record"]))
            case "del_dep":
                out.append(DeleteDeployment(d["id"]))
            case "backoff":
                out.append(PutBackoff(d["id"], d["record"]))
            case "meta":
                out.append(PutMeta(d["key"], d["value"]))
            case other:
                raise ValueError(f"unknown staged write type {other!r}")
    return out


def overlay(apps: dict[str, tuple[str, Any]], loaded: dict[str, dict[str, Any]], writes: Sequence[Write]) -> None:
    """Apply the writes of a pending journal entry to state being loaded, in memory:
    `apps` maps app id to (version, definition), `loaded` the other collections by id."""
    for w in writes:
        match w:
            case PutAppVersion(app_id, version, definition):
                apps[app_id] = (version, dict(definition))
            case DeleteApp(app_id):
                apps.pop(app_id, None)
                loaded["backoff"].pop(app_id, None)
            case PutInstance(inst):
                loaded["instances"][inst.instance_id] = inst.to_record()
            case PutDeployment(deployment_id, record):
                loaded["deployments"][deployment_id] = dict(record)
            case PutBackoff(app_id, None):
                loaded["backoff"].pop(app_id, None)
            case PutBackoff(app_id, record):
                loaded["backoff"][app_id] = dict(record)
            case PutMeta(key, value):
                loaded["meta"][key] = value
            case DeleteInstance(instance_id):
                loaded["instances"].pop(instance_id, None)
            case DeleteDeployment(deployment_id):
                loaded["deployments"].pop(deployment_id, None)
