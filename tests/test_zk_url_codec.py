"""The pure parts of the ZooKeeper store and election: `--zk` URL parsing, the record codec,
and the layout's planning of writes into operations."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.errors import InvalidOption, StoreError
from scheduler.ha.zk_url import ZkUrl, parse_zk_url
from scheduler.state import zk_codec
from scheduler.state.store import MAX_VERSIONS_PER_APP, DeleteApp, PutAppVersion, PutBackoff, PutMeta
from scheduler.state.zk_layout import (
    Create,
    Delete,
    Index,
    Layout,
    SetData,
    batches,
    decode_name,
    encode_name,
    op_size,
    writes_from_data,
    writes_to_data,
)


# -- --zk ---------------------------------------------------------------------------------------
def test_marathons_form_parses() -> None:
    url = parse_zk_url("zk://host1:2181,host2:2182/pacer/prod")
    assert url == ZkUrl(hosts=(("host1", 2181), ("host2", 2182)), path="/pacer/prod")
    assert url.hosts_string == "host1:2181,host2:2182"


def test_credentials_default_port_and_ipv6() -> None:
    url = parse_zk_url("zk://alice:s3cr@t@zk.example.com,10.0.0.2:2190,[::1]:2181/marathon")
    assert url.credentials == ("alice", "s3cr@t")
    assert url.hosts == (("zk.example.com", 2181), ("10.0.0.2", 2190), ("::1", 2181))
    assert url.hosts_string == "zk.example.com:2181,10.0.0.2:2190,[::1]:2181"
    assert "s3cr" not in url.redacted() and url.redacted().startswith("zk://alice:***@")


@pytest.mark.parametrize("bad, why", [
    ("http://h:2181/p", "must start with zk://"),
    ("zk://h:2181", "names no path"),
    ("zk:///p", "names no host"),
    ("zk://h:2181/", "must name a node"),
    ("zk://h:2181/p/", "must name a node"),
    ("zk://h:2181/a//b", "empty"),
    ("zk://h:2181/a/../b", "'..'"),
    ("zk://h:0/p", "1 to 65535"),
    ("zk://h:99999/p", "1 to 65535"),
    ("zk://h:x/p", "1 to 65535"),
    ("zk://h1,,h2/p", "empty host"),
    ("zk://ho st/p", "not a host name"),
    ("zk://user@h/p", "user:password@"),
    ("zk://:pw@h/p", "user:password@"),
    ("zk://h/zookeeper/x", "reserved"),
])
def test_bad_urls_name_the_option_and_the_problem(bad: str, why: str) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_zk_url(bad)
    assert info.value.message.startswith("--zk ") and why in info.value.message


def test_a_bad_url_never_shows_the_password() -> None:
    with pytest.raises(InvalidOption) as info:
        parse_zk_url("zk://bob:hunter2@h:0/p")
    assert "hunter2" not in info.value.message


_host = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_segment = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)


@given(st.lists(st.tuples(_host, st.integers(1, 65535)), min_size=1, max_size=5),
       st.lists(_segment, min_size=1, max_size=4),
       st.none() | st.tuples(_segment, _segment))
def test_any_well_formed_url_round_trips(hosts: list[tuple[str, int]], segments: list[str],
                                         creds: tuple[str, str] | None) -> None:
    path = "/" + "/".join(segments)
    user = f"{creds[0]}:{creds[1]}@" if creds else ""
    url = parse_zk_url(f"zk://{user}{','.join(f'{h}:{p}' for h, p in hosts)}{path}")
    assert url == ZkUrl(tuple(hosts), path, creds)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_invalid_option(text: str) -> None:
    for candidate in (text, "zk://" + text):
        try:
            parse_zk_url(candidate)
        except InvalidOption as exc:
            assert exc.message.startswith("--zk ")


# -- the codec ----------------------------------------------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text() |
                     st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30)


@given(_json, st.integers(min_value=zk_codec.MIN_LIMIT, max_value=200))
def test_any_record_round_trips_through_any_chunk_limit(record: Any, limit: int) -> None:
    parts = zk_codec.encode(record, limit)
    assert all(len(p) <= limit for p in parts)
    assert zk_codec.chunk_count(parts[0]) == len(parts) - 1
    assert zk_codec.decode(parts) == record


def test_a_big_record_is_split_below_the_default_limit() -> None:
    record = {"blob": [f"{i:08x}-{i * 7919 % 104729}" for i in range(300_000)]}
    parts = zk_codec.encode(record)
    assert len(parts) >= 2 and all(len(p) <= zk_codec.CHUNK_LIMIT < 1_048_575 for p in parts)
    assert zk_codec.decode(parts, "/apps/x") == record


@given(_json, st.integers(min_value=zk_codec.MIN_LIMIT, max_value=64), st.data())
def test_a_damaged_record_is_a_store_error_never_a_traceback(record: Any, limit: int, data: st.DataObject) -> None:
    parts = zk_codec.encode(record, limit)
    damage = data.draw(st.sampled_from(["drop", "extra", "flip", "cut", "magic"]))
    if damage == "drop" and len(parts) > 1:
        parts = parts[:-1]
    elif damage == "extra":
        parts = [*parts, b"x"]
    elif damage == "flip":
        i = data.draw(st.integers(0, len(parts) - 1))
        if len(parts[i]) <= (zk_codec.HEADER.size if i == 0 else 0):
            return
        j = data.draw(st.integers(zk_codec.HEADER.size if i == 0 else 0, len(parts[i]) - 1))
        parts[i] = parts[i][:j] + bytes([parts[i][j] ^ 0xFF]) + parts[i][j + 1:]
    elif damage == "cut":
        parts[0] = parts[0][:data.draw(st.integers(0, len(parts[0]) - 1))]
    elif damage == "magic":
        parts[0] = b"XX" + parts[0][2:]
    else:
        return
    with pytest.raises(StoreError) as info:
        zk_codec.decode(parts, "/state/apps/x")
    assert "/state/apps/x" in info.value.message or "format" in info.value.message


def test_an_unknown_format_says_so() -> None:
    head = zk_codec.HEADER.pack(zk_codec.MAGIC, 9, 0, 1, zlib.crc32(b"x")) + b"x"
    with pytest.raises(StoreError, match="format 9"):
        zk_codec.decode([head], "/n")


# -- the layout ---------------------------------------------------------------------------------
@given(st.text(max_size=40) | st.text(st.characters(), max_size=5))
def test_names_round_trip_and_are_single_safe_zookeeper_names(text: str) -> None:
    name = encode_name(text)
    assert decode_name(name) == text
    assert "/" not in name and "~" not in name and name not in (".", "..") and "." not in name


@pytest.mark.parametrize("text", ["", "\x00", "%", "%00", ".", "..", "/prod/web", "a~c0001", "\ud800"])
def test_awkward_ids_get_distinct_names_that_round_trip(text: str) -> None:
    assert decode_name(encode_name(text)) == text
    others = {"", "\x00", "%", "%00", ".", "..", "/prod/web", "a~c0001", "\ud800"} - {text}
    assert encode_name(text) not in {encode_name(o) for o in others}


def test_planning_creates_then_sets_and_trims_history() -> None:
    layout = Layout("/p")
    ops, index = layout.plan([PutAppVersion("/a", "v01", {"id": "/a"})], Index({d: set() for d in (
        "/p/state/apps", "/p/state/backoff")}))
    assert [type(o) for o in ops] == [Create, Create]
    assert ops[0].path == "/p/state/apps/%2Fa" and ops[1].path == "/p/state/apps/%2Fa/v-v01"
    for n in range(2, MAX_VERSIONS_PER_APP + 3):
        ops, index = layout.plan([PutAppVersion("/a", f"v{n:02d}", {"id": "/a"})], index)
    assert isinstance(ops[0], SetData) and [o.path for o in ops if isinstance(o, Delete)] == [
        "/p/state/apps/%2Fa/v-v02"]
    assert len(index.dirs["/p/state/apps/%2Fa"]) == MAX_VERSIONS_PER_APP
    ops, index = layout.plan([DeleteApp("/a"), PutAppVersion("/a", "v99", {"id": "/a"})], index)
    assert [type(o) for o in ops[-2:]] == [Create, Create]
    assert index.dirs["/p/state/apps/%2Fa"] == {"v-v99"}


def test_a_chunked_record_replaced_by_a_small_one_drops_its_chunks() -> None:
    layout = Layout("/p", chunk_limit=64)
    big = "".join(chr(33 + (i * 7919) % 90) for i in range(2000))
    ops, index = layout.plan([PutMeta("k", big)], Index({"/p/state/meta": set()}))
    chunks = [o.path for o in ops if "~c" in o.path]
    assert chunks and all(isinstance(o, Create) for o in ops)
    ops, index = layout.plan([PutMeta("k", "small")], index)
    assert sorted(o.path for o in ops if isinstance(o, Delete)) == sorted(chunks)
    assert index.dirs["/p/state/meta"] == {"k"}


def test_batches_stay_under_the_budget_and_keep_order() -> None:
    ops = [Create(f"/n{i}", b"x" * (i * 10)) for i in range(50)]
    groups = list(batches(ops, 600))
    assert [o for g in groups for o in g] == ops
    assert all(sum(op_size(o) for o in g) <= 600 or len(g) == 1 for g in groups)


def test_writes_survive_the_journal_encoding() -> None:
    writes = [PutAppVersion("/a", "v1", {"id": "/a"}), DeleteApp("/b"), PutBackoff("/a", None),
              PutBackoff("/a", {"delay": 1.0}), PutMeta("k", "v")]
    assert writes_from_data(writes_to_data(writes)) == writes


@pytest.mark.parametrize("bad", ["zk://host\n:2181/p", "zk://h:2181\n/p", "zk://h:\u00b2/p", "zk://h:\u0661/p"])
def test_trailing_newlines_and_unicode_digits_are_refused(bad: str) -> None:
    with pytest.raises(InvalidOption):
        parse_zk_url(bad)


def test_a_pending_journal_entry_overlays_every_write_type() -> None:
    from scheduler.state.model import Instance
    from scheduler.state.store import DeleteDeployment, DeleteInstance, PutDeployment, PutInstance
    from scheduler.state.zk_layout import overlay
    inst = Instance("i-1", "/a", "v1", "v1", "agent", "h", (1,), (2,))
    apps: dict[str, tuple[str, Any]] = {"/b": ("v0", {"id": "/b"})}
    loaded: dict[str, dict[str, Any]] = {"instances": {"i-0": {}}, "deployments": {"d-0": {}},
                                         "backoff": {"/b": {"delay": 1.0}}, "meta": {}}
    overlay(apps, loaded, [PutAppVersion("/a", "v1", {"id": "/a"}), DeleteApp("/b"), PutInstance(inst),
                           DeleteInstance("i-0"), PutDeployment("d-1", {"id": "d-1"}), DeleteDeployment("d-0"),
                           PutBackoff("/a", {"delay": 2.0}), PutMeta("k", "v")])
    assert apps == {"/a": ("v1", {"id": "/a"})}
    assert loaded == {"instances": {"i-1": inst.to_record()}, "deployments": {"d-1": {"id": "d-1"}},
                      "backoff": {"/a": {"delay": 2.0}}, "meta": {"k": "v"}}


@pytest.mark.parametrize("module", ["scheduler/ha/zk_url.py", "scheduler/state/zk_codec.py",
                                    "scheduler/state/zk_layout.py"])
def test_the_pure_modules_import_no_io(module: str) -> None:
    import ast
    from pathlib import Path
    tree = ast.parse((Path(__file__).resolve().parent.parent / module).read_text())
    imported = {(n.module or "") if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert not {m.split(".")[0] for m in imported} & {"kazoo", "socket", "asyncio", "threading", "sqlite3",
                                                       "subprocess", "time"}
