"""A full disk under --home: writes are refused with 507 naming the path, reads and deletions
keep working, nothing crashes, and writes resume once there is room.

The home is a small tmpfs mounted by the test (root only), filled by a file the test owns.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import InProcessApi, http, kill_task_processes

MOUNT_MB = 24


def _mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_MB}m", "tmpfs", str(target)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if not _mount_tmpfs(mount):
        pytest.skip("mounting a tmpfs needs root")
    try:
        home = mount / "home"
        home.mkdir()
        yield home
    finally:
        kill_task_processes(mount / "home")
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write until the disk is full (ENOSPC), leaving nothing free."""
    with open(path, "wb", buffering=0) as f:
        for size in (256 * 1024, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


def test_full_disk_refuses_writes_with_507_and_keeps_reads_and_deletions(small_home: Path) -> None:
    server = InProcessApi(small_home).start()
    try:
        for i in range(3):
            assert http("POST", server.url, "/v2/apps", {"id": f"/keep{i}", "cmd": "sleep 1", "instances": 0})[0] == 201
        filler = small_home.parent / "filler.bin"
        fill(filler)
        status, body, _ = http("POST", server.url, "/v2/apps",
                               {"id": "/new", "cmd": "sleep 1", "instances": 0, "labels": {"x": "y" * 20000}})
        assert status == 507, body
        assert "state.sqlite" in body["message"] and "free" in body["message"]
        status, body, _ = http("GET", server.url, "/v2/apps")
        assert status == 200 and {a["id"] for a in body["apps"]} >= {"/keep0", "/keep1", "/keep2"}
        status, body, _ = http("DELETE", server.url, "/v2/apps/keep0")
        assert status == 200, body                      # the reserve makes room for a deletion
        assert http("GET", server.url, "/v2/apps/keep0")[0] == 404
        assert http("GET", server.url, "/ping")[0] == 200
        filler.unlink()
        status, body, _ = http("POST", server.url, "/v2/apps", {"id": "/after", "cmd": "sleep 1", "instances": 0})
        assert status == 201, body
    finally:
        server.stop()
    reopened = InProcessApi(small_home).start()          # what was acknowledged is all there
    try:
        ids = {a["id"] for a in http("GET", reopened.url, "/v2/apps")[1]["apps"]}
        assert {"/keep1", "/keep2", "/after"} <= ids and "/keep0" not in ids and "/new" not in ids
    finally:
        reopened.stop()
