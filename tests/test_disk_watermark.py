"""Below `--min-free-disk-mb` free under `--home`, launches wait in `/v2/queue` saying why, and
go once space is freed: nothing fails, nothing fills the disk further.

End to end on a small tmpfs home mounted by the test (root only, skipped otherwise); the
backend's answer is also checked in-process with a stand-in for the disk's figures.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pacer.cli
from app_definitions import parse_app_definition
from executor.sandboxes import DiskPolicy, DiskSpace, watermark_reason
from scheduler.backends.agents import AgentDisk
from scheduler.backends.local import LocalBackend, build_agents

from .support import PacerServer, kill_task_processes, wait_until

MB = 1024 * 1024
MOUNT_MB = 40
WATERMARK_MB = 16


def test_the_reason_names_the_path_the_free_space_and_the_flag(tmp_path: Path) -> None:
    reason = watermark_reason(tmp_path, DiskSpace(total=100 * MB, free=10 * MB), 64)
    assert reason is not None
    assert str(tmp_path) in reason and "10.0 MB" in reason and "64 MB watermark" in reason
    assert "--min-free-disk-mb" in reason
    assert watermark_reason(tmp_path, DiskSpace(total=100 * MB, free=70 * MB), 64) is None
    assert watermark_reason(tmp_path, DiskSpace(total=100 * MB, free=0), 0) is None   # 0 turns it off


async def test_the_backend_holds_every_app_below_the_watermark(tmp_path: Path) -> None:
    free = {"bytes": 10 * MB}
    backend = LocalBackend(build_agents(1, {"cpus": 1, "mem": 1024, "disk": 100}, {}), tmp_path / "home",
                           lambda update: None, docker_host=None, cgroup_root=None)
    backend.disk = AgentDisk(backend.home, backend.sandboxes, DiskPolicy(min_free_mb=64),
                             usage=lambda path: (100 * MB, 100 * MB - free["bytes"], free["bytes"]))
    try:
        app = parse_app_definition({"id": "/web", "cmd": "sleep 1000"})
        reason = backend.unsupported_reason(app)
        assert reason is not None and "below the 64 MB watermark" in reason
        free["bytes"] = 80 * MB
        time.sleep(0.6)                                  # the free space is read at most twice a second
        assert backend.unsupported_reason(app) is None
    finally:
        await backend.close()


def test_a_negative_watermark_is_refused_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pacer.cli.main(["serve", "--home", str(tmp_path), "--min-free-disk-mb", "-1"]) == 2
    assert "--min-free-disk-mb must be at least 0" in capsys.readouterr().err


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_MB}m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        home = mount / "home"
        home.mkdir()
        yield home
    finally:
        kill_task_processes(mount / "home")
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_until_free(path: Path, free_bytes: int) -> None:
    """Write a file until `free_bytes` are left on the disk."""
    stat = os.statvfs(path.parent)
    size = stat.f_bavail * stat.f_frsize - free_bytes
    with open(path, "wb") as out:
        out.truncate(0)
        chunk = b"\0" * MB
        while size > 0:
            size -= out.write(chunk[:min(MB, size)])


def queue_reasons(server: PacerServer) -> dict[str, str]:
    status, body, _ = server.get("/v2/queue?embed=reason")
    assert status == 200, body
    return {item["app"]["id"]: item.get("reason") or "" for item in body["queue"]}


def test_launches_wait_below_the_watermark_and_go_once_space_is_freed(small_home: Path) -> None:
    server = PacerServer(small_home, "--agent-resources", "cpus=4,mem=4096,disk=10",
                         "--min-free-disk-mb", str(WATERMARK_MB)).start()
    try:
        filler = small_home.parent / "filler.bin"
        fill_until_free(filler, 8 * MB)
        app = {"id": "/web", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 16}
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body                       # accepted: it waits, it does not fail
        reasons = wait_until(lambda: queue_reasons(server).get("/web"), timeout=20, what="/web in the queue")
        assert f"below the {WATERMARK_MB} MB watermark" in reasons and str(small_home.resolve()) in reasons
        time.sleep(2)
        assert server.tasks("/web") == []
        assert "lastTaskFailure" not in server.get("/v2/apps/web")[1]["app"]
        assert not (small_home / "sandboxes").exists() or not any((small_home / "sandboxes").iterdir())

        filler.unlink()
        wait_until(lambda: len(server.running("/web")) == 2, timeout=30, what="both tasks running once space is freed")
        assert "/web" not in queue_reasons(server)
    finally:
        server.stop()
