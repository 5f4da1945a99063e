"""`GET /v2/tasks/{id}/files/{stdout,stderr}` against a real `pacer serve` (with authentication on).

A task prints known lines to stdout and stderr, then copies whatever the test appends to a feed
file to its stdout: read from 0, tail (offset=-1), follow (appended lines show up at the next
offset), ranges, a download of the whole file, the 404s and 400s, and who may read it
(401 anonymous, 403 outside the viewer's apps, 200 inside). A container task's output is kept
by the Docker engine and a Mesos task's sandbox is on its agent: both are 404s saying so. The
range arithmetic and the UTF-8 cut are pure and tested on their own, with hypothesis.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor.sandbox_files import FileChunk, FileMissing, OpenedFile, chunk_range, complete_utf8, read_chunk
from scheduler.api.task_files import MAX_LENGTH, file_range
from scheduler.auth.routes import Lookups, requirement
from scheduler.backends.local_files import open_local_task_file, read_local_task_file
from scheduler.errors import InvalidRequest
from scheduler.state.model import Instance

from .support import PacerServer, kill_task_processes, wait_until
from .test_auth_api import CALLERS, auth_file

OUT = "out-1\nout-2 é\n"
ERR = "err-1\n"


# -- pure parts -----------------------------------------------------------------------------

@given(st.integers(-1, 5000), st.integers(0, 5000), st.integers(0, 5000))
def test_chunk_range_stays_inside_the_file(offset: int, length: int, size: int) -> None:
    start, count = chunk_range(offset, length, size)
    assert start == (size if offset == -1 else offset)
    assert 0 <= count <= length and (count == 0 or start + count <= size)
    assert count == max(0, min(length, size - start))


@given(st.text(), st.integers(0, 64))
def test_complete_utf8_cuts_only_a_split_last_character(text: str, cut: int) -> None:
    data = text.encode()[:cut]
    kept = complete_utf8(data)
    assert data.startswith(kept) and len(data) - len(kept) <= 3
    assert bool(kept) == bool(data)                     # never cut to nothing
    try:
        kept.decode()                                   # whole characters only...
    except UnicodeDecodeError:
        assert kept == data and len(data) <= 3          # ...unless a lone part of one is all there is


def test_complete_utf8_keeps_bytes_that_are_not_utf8() -> None:
    assert complete_utf8(b"\xff\xfe") == b"\xff\xfe"
    assert complete_utf8("é".encode()[:1]) == b"\xc3"        # nothing left to keep otherwise
    assert complete_utf8(b"a" + "€".encode()[:2]) == b"a"


def test_read_chunk_does_not_split_a_character_but_reads_the_end_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    path.write_bytes("aé".encode())                            # 3 bytes: a, then é in two
    assert read_chunk(path, 0, 2) == FileChunk(b"a", 0, 3)     # next read starts at é
    assert read_chunk(path, 1, 2) == FileChunk("é".encode(), 1, 3)
    assert read_chunk(path, 2, 10) == FileChunk(b"\xa9", 2, 3)


async def test_the_local_backend_says_where_a_containers_output_is(tmp_path: Path) -> None:
    task = Instance("web.instance-1", "/web", "v1", "v1", "agent-1", "localhost", (), (), container_id="c0ffee" * 8)
    (tmp_path / task.instance_id).mkdir()
    (tmp_path / task.instance_id / "stdout").write_text("not this\n")
    for answer in (await read_local_task_file(tmp_path, task, "stdout", 0, 10),
                   await open_local_task_file(tmp_path, task, "stdout")):
        assert isinstance(answer, FileMissing) and "docker logs c0ffeec0ffee" in answer.reason
    process = dataclasses.replace(task, container_id=None)
    assert await read_local_task_file(tmp_path, process, "stdout", 0, 3) == FileChunk(b"not", 0, 9)
    opened = await open_local_task_file(tmp_path, process, "stdout")
    assert isinstance(opened, OpenedFile) and opened.size == 9
    opened.file.close()


def test_query_parameters_are_named_in_refusals() -> None:
    assert file_range(None, None) == (0, 64 * 1024)
    assert file_range("-1", "0") == (-1, 0)
    assert file_range("5", str(10 * MAX_LENGTH)) == (5, MAX_LENGTH)
    for offset, length, named in (("-2", None, "offset"), ("x", None, "offset"), ("1.5", None, "offset"),
                                  (None, "-1", "length"), (None, "ten", "length")):
        with pytest.raises(InvalidRequest, match=f"'{named}'"):
            file_range(offset, length)


def test_reading_a_task_file_needs_viewer_on_its_app() -> None:
    lookups = Lookups(task_app=lambda t: "/team-a/logs" if t == "known" else None)
    needed = requirement("GET", "/v2/tasks/known/files/stdout", lookups=lookups)
    assert (needed.kind, needed.role, needed.paths) == ("role", "viewer", ("/team-a/logs",))
    assert requirement("GET", "/v2/tasks/unknown/files/stdout", lookups=lookups).kind != "role"


# -- against pacer serve --------------------------------------------------------------------

class Files:
    """The server, the task and its feed file, and requests made as one of `CALLERS`."""

    def __init__(self, server: PacerServer, task_id: str, feed: Path) -> None:
        self.server = server
        self.task_id = task_id
        self.feed = feed

    def get(self, path: str, who: str = "admin") -> tuple[int, Any, dict[str, str]]:
        return self.server.request("GET", path, headers=CALLERS[who])

    def read(self, name: str, query: str = "", who: str = "admin") -> tuple[int, Any]:
        status, body, _ = self.get(f"/v2/tasks/{self.task_id}/files/{name}{query}", who)
        return status, body

    def sandbox(self) -> Path:
        return self.server.home / "sandboxes" / self.task_id


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    base = tmp_path_factory.mktemp("task-files")
    home = base / "home"
    home.mkdir()
    feed = base / "feed"
    feed.write_text("")
    server = PacerServer(home, "--auth-file", str(auth_file(base / "auth.toml")),
                         "--agent-resources", "cpus=4,mem=4096,disk=1000")
    try:
        server.start()
        admin = CALLERS["admin"]
        app = {"id": "/team-a/logs", "instances": 1, "cpus": 0.01, "mem": 16,
               "cmd": f"printf '{OUT}'; printf '{ERR}' >&2; exec tail -n +1 -f {feed}"}
        other = {"id": "/team-b/other", "instances": 1, "cpus": 0.01, "mem": 8, "cmd": "exec sleep 1000"}
        for definition in (app, other):
            status, body, _ = server.request("POST", "/v2/apps", definition, headers=admin)
            assert status == 201, body
        task = wait_until(lambda: _running(server, "/team-a/logs"), timeout=40, what="the /team-a/logs task")
        yield Files(server, task["id"], feed)
    finally:
        server.stop()
        kill_task_processes(home)          # serve leaves its tasks running on a stop, by design


def _running(server: PacerServer, app_id: str) -> dict[str, Any] | None:
    status, body, _ = server.request("GET", f"/v2/apps{app_id}/tasks", headers=CALLERS["admin"])
    running = [t for t in body["tasks"] if t["state"] == "TASK_RUNNING"] if status == 200 else []
    return running[0] if running else None


def _until(files: Files, name: str, query: str, predicate: Any, what: str) -> dict[str, Any]:
    def answered() -> dict[str, Any] | None:
        status, body = files.read(name, query)
        assert status == 200, body
        return body if predicate(body) else None
    return wait_until(answered, timeout=30, what=what)


def test_reads_stdout_and_stderr_from_the_start(files: Files) -> None:
    out = _until(files, "stdout", "", lambda b: b["size"] >= len(OUT.encode()), "the task's first lines")
    assert out["data"] == OUT and out["offset"] == 0 and out["size"] == len(OUT.encode())
    assert out["nextOffset"] == out["size"]
    err = _until(files, "stderr", "?offset=0", lambda b: b["size"] >= len(ERR), "the task's stderr")
    assert err == {"data": ERR, "offset": 0, "size": len(ERR), "nextOffset": len(ERR)}


def test_ranges_and_offsets_past_the_end(files: Files) -> None:
    _until(files, "stdout", "", lambda b: b["size"] >= len(OUT.encode()), "the task's first lines")
    status, body = files.read("stdout", "?offset=4&length=3")
    assert status == 200 and body["data"] == OUT[4:7] and body["offset"] == 4
    status, body = files.read("stdout", "?offset=0&length=0")
    assert status == 200 and body["data"] == "" and body["offset"] == 0
    status, body = files.read("stdout", "?offset=100000")
    assert status == 200 and body["data"] == "" and body["offset"] == 100000 and body["size"] < 100000


def test_tail_then_follow_shows_appended_lines_at_the_next_offset(files: Files) -> None:
    _until(files, "stdout", "", lambda b: b["size"] >= len(OUT.encode()), "the task's first lines")
    status, tail = files.read("stdout", "?offset=-1")
    assert status == 200 and tail["data"] == "" and tail["offset"] == tail["size"] >= len(OUT.encode())
    with files.feed.open("a") as feed:
        feed.write("followed-1\nfollowed-2\n")
    follow = f"?offset={tail['offset']}"
    got = _until(files, "stdout", follow, lambda b: b["data"].endswith("followed-2\n"), "the appended lines")
    assert got["data"] == "followed-1\nfollowed-2\n" and got["offset"] == tail["offset"]
    assert got["size"] == got["nextOffset"] == tail["offset"] + len(got["data"])
    status, again = files.read("stdout", f"?offset={got['nextOffset']}")
    assert status == 200 and again["data"] == "" and again["offset"] == got["nextOffset"]


def test_download_sends_the_raw_file_as_an_attachment(files: Files) -> None:
    _until(files, "stdout", "", lambda b: b["size"] >= len(OUT.encode()), "the task's first lines")
    on_disk = (files.sandbox() / "stdout").read_bytes()
    status, body, headers = files.get(f"/v2/tasks/{files.task_id}/files/stdout?download=1")
    assert status == 200
    assert headers["content-disposition"] == f'attachment; filename="{files.task_id}.stdout"'
    assert headers["content-type"] == "application/octet-stream"
    data = body.encode() if isinstance(body, str) else body
    assert data.startswith(OUT.encode()) and on_disk.startswith(data[:len(on_disk)])
    assert int(headers["content-length"]) == len(data)


def test_unknown_task_unknown_name_and_missing_file_are_404s(files: Files) -> None:
    status, body, _ = files.get("/v2/tasks/team-a_logs.instance-nope/files/stdout")
    assert status == 404 and "does not exist" in body["message"]
    status, body = files.read("config.json")
    assert status == 404 and "stdout, stderr" in body["message"]
    status, body, _ = files.get(f"/v2/tasks/{files.task_id}/files/stdout/more")
    assert status == 404
    _until(files, "stderr", "", lambda b: b["size"] >= len(ERR), "the task's stderr")
    os.remove(files.sandbox() / "stderr")     # the logger keeps writing to the unlinked file
    status, body = files.read("stderr")
    assert status == 404 and "'stderr' is not in the task's sandbox" in body["message"]
    status, body, _ = files.get(f"/v2/tasks/{files.task_id}/files/stderr?download=1")
    assert status == 404 and "'stderr'" in body["message"]


@pytest.mark.parametrize("query, named", [("?offset=-2", "offset"), ("?offset=abc", "offset"),
                                          ("?length=-1", "length"), ("?length=1e3", "length"),
                                          ("?download=maybe", "download")])
def test_bad_parameters_are_400s_naming_them(files: Files, query: str, named: str) -> None:
    status, body = files.read("stdout", query)
    assert status == 400 and f"'{named}'" in body["message"], body


def test_only_viewers_of_the_tasks_app_read_its_files(files: Files) -> None:
    status, body = files.read("stdout", who="anonymous")
    assert status == 401, body
    status, body = files.read("stdout", who="wrong-password")
    assert status == 401, body
    status, body = files.read("stdout", who="viewer")            # viewer on /team-a/**
    assert status == 200 and body["data"].startswith("out-1")
    other = wait_until(lambda: _running(files.server, "/team-b/other"), timeout=40, what="the /team-b task")
    status, body, _ = files.get(f"/v2/tasks/{other['id']}/files/stdout", "viewer")
    assert status == 403 and "viewer" in body["message"], body
    status, body, _ = files.get(f"/v2/tasks/{other['id']}/files/stdout?offset=-1", "admin")
    assert status == 200 and body["data"] == ""


def test_a_mesos_task_is_read_on_its_agent(pacer_factory: Any) -> None:
    from .mesos_sim import AgentSpec
    from .mesos_sim.harness import SimHarness

    sim = SimHarness([AgentSpec("agent-1", cpus=4, mem=4096, disk=1000)], masters=1).start()
    try:
        server = pacer_factory("--master", sim.url)
        status, body, _ = server.request("POST", "/v2/apps", {"id": "/on-mesos", "cmd": "echo hi; exec sleep 1000",
                                                              "cpus": 0.1, "mem": 16})
        assert status == 201, body
        task = wait_until(lambda: (server.running("/on-mesos") or [None])[0], timeout=40, what="the Mesos task")
        status, body, _ = server.get(f"/v2/tasks/{task['id']}/files/stdout")
        assert status == 404 and "Mesos agent" in body["message"] and "/files/read" in body["message"], body
    finally:
        sim.stop()
