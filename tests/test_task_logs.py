"""Task logs are capped and rotated by a logger process of each task's own.

A chatty task (`yes`) under `pacer serve` keeps its sandbox within the cap and the scheduler
keeps serving; rotation keeps N files; the settings come from flags and from labels (clamped to
the agent's); the logger ends with its task, on `DELETE` too, and keeps rotating for a task
re-adopted by a restarted `pacer serve`; Docker tasks get the same caps on the engine's
json-file driver. Real processes throughout; every process a test finds is killed by its pid.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pacer.cli
from executor import TASK_FAILED, ProcessRuntime, TaskLaunch, kill_process_group
from executor.docker_spec import ContainerLaunch, capped_log_config, container_options
from executor.logger import RotatingFile
from executor.task_logs import LogPolicy, LogWriters, parse_size
from executor.testing import ExitRecorder

from .docker_support import TEST_IMAGE, docker_engine, docker_env, docker_pacer  # noqa: F401
from .support import PacerServer, kill_task_processes, task_pids, wait_until

REPO = Path(__file__).resolve().parent.parent
KIB = 1024
RESOURCES = ("--agent-resources", "cpus=8,mem=8192,disk=1000")


# -- helpers --------------------------------------------------------------------------------

def loggers_of(task_pid: int) -> list[int]:
    """Pids of the `pacer-logger` processes reading the task's stdout/stderr pipes."""
    try:
        pipes = {os.readlink(f"/proc/{task_pid}/fd/{fd}") for fd in (1, 2)}
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == task_pid:
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() != "pacer-logger":
                continue
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in pipes for fd in fds):
                found.append(int(entry))
        except OSError:
            continue
    return found


def alive_logger(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pacer-logger" and \
            Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


class Loggers:
    """Logger pids a test found; any still alive afterwards is killed by its pid."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def of(self, task_pid: int) -> list[int]:
        found = wait_until(lambda: loggers_of(task_pid), timeout=10, what=f"the logger of task pid {task_pid}")
        self.pids.extend(found)
        return found

    def kill_all(self) -> None:
        for pid in self.pids:
            if alive_logger(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def loggers() -> Iterator[Loggers]:
    found = Loggers()
    yield found
    found.kill_all()


def sandbox_files(sandbox: Path) -> dict[str, int]:
    """Log file -> size; read again when a rotation renamed a file between listing and stat."""
    while True:
        try:
            return {p.name: p.stat().st_size for p in sandbox.iterdir() if p.name.startswith(("stdout", "stderr"))}
        except FileNotFoundError:
            continue


def the_task(server: PacerServer, app_id: str) -> dict[str, Any]:
    return wait_until(lambda: (server.running(app_id) or [None])[0], timeout=30, what=f"{app_id} running")


def pid_of(home: Path, task_id: str) -> int:
    return wait_until(lambda: next((p for p, t in task_pids(home).items() if t == task_id), None), timeout=10,
                      what=f"the process of {task_id}")


# -- the rotating file ----------------------------------------------------------------------

def test_rotation_keeps_n_files_each_within_the_cap_cut_at_lines(tmp_path: Path) -> None:
    target = RotatingFile(str(tmp_path / "stdout"), max_bytes=4 * KIB, files=3)
    lines = [f"line {i:06d} {'x' * (i % 90)}\n".encode() for i in range(3000)]
    chunk = b""
    for line in lines:
        chunk += line
        if len(chunk) > 3000:
            target.write(chunk)
            chunk = b""
    target.write(chunk)
    target.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["stdout", "stdout.1", "stdout.2"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 4 * KIB and data.endswith(b"\n")
    kept = b"".join((tmp_path / n).read_bytes() for n in ("stdout.2", "stdout.1", "stdout"))
    assert b"".join(lines).endswith(kept)            # the newest output, in order, nothing lost in between


def test_one_file_truncates_and_long_lines_are_split(tmp_path: Path) -> None:
    target = RotatingFile(str(tmp_path / "stderr"), max_bytes=1 * KIB, files=1)
    target.write(b"a" * 2500 + b"\n")
    target.close()
    assert [p.name for p in tmp_path.iterdir()] == ["stderr"]
    assert (tmp_path / "stderr").read_bytes() == b"a" * (2500 - 2048) + b"\n"


def test_a_failed_write_is_dropped_and_noted_never_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = RotatingFile(str(tmp_path / "stdout"), max_bytes=4 * KIB, files=2)

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", full_disk)
        target.write(b"lost\n" * 10)
    target.write(b"kept\n")
    target.close()
    assert (tmp_path / "stdout").read_bytes() == b"[pacer-logger: 50 bytes of output dropped: write failed]\nkept\n"


def test_the_standalone_logger_copies_stdin_into_rotating_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "executor.logger", "--max-bytes", "2048", "--files", "2", str(out)],
                          input=b"y\n" * 50_000, cwd=REPO, timeout=30, stderr=subprocess.PIPE)
    assert proc.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.1"]
    assert (tmp_path / "out.1").read_bytes() == b"y\n" * 1024
    assert (tmp_path / "out").read_bytes() == b"y\n" * (100_000 % 2048 // 2)
    assert proc.stderr == b""


def test_the_logger_script_and_the_scheduler_agree_on_the_wire_format() -> None:
    from executor import logger, task_logs

    for name in ("DEFAULT_MAX_BYTES", "DEFAULT_FILES", "MIN_MAX_BYTES", "FIELD_SEPARATOR"):
        assert getattr(logger, name) == getattr(task_logs, name), name


# -- settings -------------------------------------------------------------------------------

def test_labels_lower_the_agent_policy_and_never_raise_it() -> None:
    agent = LogPolicy(max_bytes=1024 * KIB, files=4)
    assert agent.for_labels({}) == agent
    assert agent.for_labels({"PACER_LOG_MAX_BYTES": "64K", "PACER_LOG_FILES": "2"}) == LogPolicy(64 * KIB, 2)
    assert agent.for_labels({"PACER_LOG_MAX_BYTES": "1G", "PACER_LOG_FILES": "99"}) == agent
    assert parse_size("10M") == parse_size("10MiB") == 10 * 1024 * KIB and parse_size("512") == 512
    with pytest.raises(ValueError, match="PACER_LOG_MAX_BYTES"):
        agent.for_labels({"PACER_LOG_MAX_BYTES": "lots"})
    with pytest.raises(ValueError, match="PACER_LOG_FILES"):
        agent.for_labels({"PACER_LOG_FILES": "0"})


def test_serve_flags_reach_the_serve_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(pacer.cli, "run_pacer", lambda options: seen.append(options))
    monkeypatch.setattr(pacer.cli, "run_main", lambda main: 0)
    monkeypatch.setattr(pacer.cli, "leave", lambda status: status)
    assert pacer.cli.main(["serve", "--home", str(tmp_path), "--haproxy-bridge", "off", "--task-log-max-bytes",
                           "256K", "--task-log-files", "5", "--min-free-disk-mb", "100", "--sandbox-gc-delay",
                           "600", "--sandbox-gc-keep", "1", "--disk-watch-interval", "5"]) == 0
    serve = seen[0].serve
    assert (serve.task_log_max_bytes, serve.task_log_files) == (256 * KIB, 5)
    assert (serve.min_free_disk_mb, serve.sandbox_gc_delay, serve.sandbox_gc_keep, serve.disk_watch_interval) == \
        (100, 600, 1, 5)


@pytest.mark.parametrize("flags, message", [
    (["--task-log-max-bytes", "12"], "--task-log-max-bytes must be at least 1024"),
    (["--task-log-max-bytes", "big"], "--task-log-max-bytes: expected a size"),
    (["--task-log-files", "0"], "--task-log-files must be at least 1"),
])
def test_bad_log_flags_are_refused_naming_the_flag(flags: list[str], message: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert pacer.cli.main(["serve", "--home", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_docker_tasks_get_the_same_caps_on_the_json_file_driver() -> None:
    spec = ContainerLaunch(task_id="t", image="busybox", env={}, labels={}, log_max_bytes=10 * 1024 * KIB,
                           log_files=2)
    assert container_options(spec).host_config["log_config"] == \
        {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}}
    lower = ContainerLaunch(task_id="t", image="busybox", env={}, labels={}, log_max_bytes=10 * 1024 * KIB,
                            log_files=2, parameters=(("log-opt", "max-size=100m"), ("log-opt", "max-file=1")))
    assert container_options(lower).host_config["log_config"]["config"] == {"max-size": "10m", "max-file": "1"}
    assert capped_log_config({"type": "syslog", "config": {"tag": "x"}}, 1024, 2) == \
        {"type": "syslog", "config": {"tag": "x"}}
    assert "log_config" not in container_options(ContainerLaunch(task_id="t", image="b", env={}, labels={})).host_config


def test_a_container_gets_the_agent_caps_lowered_by_its_labels(docker_pacer, docker_env) -> None:
    server = docker_pacer("--task-log-max-bytes", "4M", "--task-log-files", "3")
    app = {"id": "/boxed", "args": ["sleep", "1000"], "instances": 1, "cpus": 0.1, "mem": 32,
           "labels": {"PACER_LOG_MAX_BYTES": "1M"}, "container": {"type": "DOCKER", "docker": {"image": TEST_IMAGE}}}
    assert server.request("POST", "/v2/apps", app)[0] == 201
    task = the_task(server, "/boxed")
    (summary,) = docker_env.api.containers(filters={"label": [f"pacer.task-id={task['id']}"]})
    log_config = docker_env.api.inspect_container(summary["Id"])["HostConfig"]["LogConfig"]
    assert log_config == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "3"}}
    assert server.request("DELETE", "/v2/apps/boxed")[0] == 200


# -- the logger process and its task ----------------------------------------------------------

async def test_a_burst_waits_for_a_slow_spawner_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    slow = tmp_path / "slow-python"
    slow.write_text(f"#!/bin/sh\nsleep 1\nexec {sys.executable} \"$@\"\n")
    slow.chmod(0o755)
    writers = LogWriters(python=str(slow))
    try:
        opened = []
        for i in range(300):                      # more than the socket holds while no one reads
            sandbox = tmp_path / f"t{i}"
            sandbox.mkdir()
            logs = writers.open(f"t{i}", sandbox, LogPolicy())
            os.write(logs.stdout, f"hello {i}\n".encode())
            logs.close_write_ends()
            opened.append((sandbox, logs.drained))
        assert writers._outbox                    # queued, the launches did not wait
        await asyncio.wait_for(asyncio.gather(*(drained for _, drained in opened)), timeout=60)
        assert all((sandbox / "stdout").read_text() == f"hello {i}\n" for i, (sandbox, _) in enumerate(opened))

        assert writers._proc is not None
        first = writers._proc.pid
        os.kill(first, signal.SIGKILL)            # the spawner this test started, by its pid
        writers._proc.wait()
        sandbox = tmp_path / "after"
        sandbox.mkdir()
        logs = writers.open("after", sandbox, LogPolicy())
        os.write(logs.stdout, b"still logged\n")
        logs.close_write_ends()
        await asyncio.wait_for(logs.drained, timeout=30)
        assert writers._proc.pid != first and (sandbox / "stdout").read_text() == "still logged\n"
    finally:
        await writers.close()


async def test_the_end_is_reported_once_the_last_output_is_written(tmp_path: Path) -> None:
    exits = ExitRecorder()
    runtime = ProcessRuntime(exits)
    script = "import sys\nfor i in range(3000): sys.stdout.write('%05d' % i + 'x' * 94 + '\\n')\nsys.exit(3)"
    handle = await runtime.launch(TaskLaunch("talk", ["python3", "-c", script], {}, tmp_path / "talk",
                                             logs=LogPolicy(max_bytes=64 * KIB, files=8)))
    try:
        report = await exits.wait("talk", timeout=30)
        assert report.state == TASK_FAILED and report.exit_code == 3
        files = sorted((tmp_path / "talk").glob("stdout*"))
        assert len(files) == 5                                     # 300,000 bytes in 64 KiB files
        assert (tmp_path / "talk" / "stdout").read_text().endswith("02999" + "x" * 94 + "\n")
        await asyncio.sleep(0.1)
        assert loggers_of(handle.pid) == []
    finally:
        kill_process_group(handle.pid, handle.start_time)
        await runtime.close(kill=True)


def test_a_chatty_task_stays_within_its_cap_and_serve_keeps_serving(tmp_path: Path, loggers: Loggers) -> None:
    """`yes` for a few seconds, as in the report that filled an 8 MiB home in under 6 s."""
    home, mount = tmp_path / "home", None
    if os.geteuid() == 0:
        mount = tmp_path / "disk"
        mount.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)]).returncode == 0:
            home = mount / "home"
        else:
            mount = None
    home.mkdir()
    server = PacerServer(home, *RESOURCES, "--task-log-max-bytes", "256K", "--task-log-files", "2",
                         "--min-free-disk-mb", "0")
    try:
        server.start()
        app = {"id": "/chatty", "cmd": "yes", "instances": 1, "cpus": 0.1, "mem": 64}
        assert server.request("POST", "/v2/apps", app)[0] == 201
        task = the_task(server, "/chatty")
        pid = pid_of(home, task["id"])
        loggers.of(pid)
        sandbox = home / "sandboxes" / task["id"]
        wait_until(lambda: (sandbox / "stdout.1").exists(), timeout=20, what="a rotation")
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:            # today's code fills the 8 MiB home within this window
            assert server.get("/ping")[0] == 200
            files = sandbox_files(sandbox)
            assert set(files) <= {"stdout", "stdout.1", "stderr"} and max(files.values()) <= 256 * KIB, files
            time.sleep(0.2)
        assert server.request("POST", "/v2/apps", {"id": "/after", "cmd": "sleep 1000", "instances": 0})[0] == 201
        assert server.running("/chatty")[0]["id"] == task["id"]   # still the same task, still writing
        assert shutil_free(home) > 1024 * KIB
    finally:
        server.stop()
        kill_task_processes(home)
        if mount is not None:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def shutil_free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_label_settings_are_clamped_and_the_logger_ends_with_its_task(pacer_factory, pacer_home: Path,
                                                                     loggers: Loggers) -> None:
    server = pacer_factory(*RESOURCES, "--task-log-max-bytes", "64K", "--task-log-files", "3")
    writer = "i=0; while [ $i -lt 4000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    apps = {"/agent": {}, "/small": {"PACER_LOG_MAX_BYTES": "16K", "PACER_LOG_FILES": "2"},
            "/greedy": {"PACER_LOG_MAX_BYTES": "100M", "PACER_LOG_FILES": "50"}}
    for app_id, labels in apps.items():
        body = {"id": app_id, "cmd": f"{writer}; exec sleep 1000", "instances": 1, "cpus": 0.1, "mem": 32,
                "labels": labels}
        assert server.request("POST", "/v2/apps", body)[0] == 201
    caps = {"/agent": (64 * KIB, 3), "/small": (16 * KIB, 2), "/greedy": (64 * KIB, 3)}
    tasks = {app_id: the_task(server, app_id) for app_id in apps}
    for app_id, task in tasks.items():
        size, count = caps[app_id]
        sandbox = pacer_home / "sandboxes" / task["id"]
        wanted = {"stdout", *(f"stdout.{k}" for k in range(1, count))}
        wait_until(lambda: wanted <= set(sandbox_files(sandbox)), timeout=30, what=f"{count} files of {app_id}")
        time.sleep(0.5)
        files = sandbox_files(sandbox)
        assert set(files) == wanted | {"stderr"}, (app_id, files)
        assert max(files.values()) <= size, (app_id, files)
    bad = {"id": "/bad", "cmd": "sleep 1000", "instances": 1, "labels": {"PACER_LOG_FILES": "none"}}
    assert server.request("POST", "/v2/apps", bad)[0] == 201
    wait_until(lambda: "PACER_LOG_FILES" in str(server.get("/v2/queue?embed=reason")[1]), timeout=20,
               what="the bad label named in the queue")

    small_pid = pid_of(pacer_home, tasks["/small"]["id"])
    (small_logger,) = loggers.of(small_pid)
    assert server.request("DELETE", "/v2/apps/small")[0] == 200
    wait_until(lambda: not alive_logger(small_logger), timeout=15, what="the logger to end after DELETE")

    agent_pid = pid_of(pacer_home, tasks["/agent"]["id"])
    (agent_logger,) = loggers.of(agent_pid)
    os.killpg(agent_pid, signal.SIGKILL)           # the task dies on its own: its logger follows
    wait_until(lambda: not alive_logger(agent_logger), timeout=15, what="the logger to end with its task")


def test_a_readopted_task_keeps_its_logs_rotating(pacer_factory, pacer_home: Path, loggers: Loggers) -> None:
    first = pacer_factory(*RESOURCES, "--task-log-max-bytes", "32K", "--task-log-files", "2")
    writer = "import time\nwhile True:\n    print('x' * 1000, flush=True)\n    time.sleep(0.002)\n"
    app = {"id": "/steady", "cmd": f"python3 -c \"{writer}\"", "instances": 1, "cpus": 0.1, "mem": 64}
    assert first.request("POST", "/v2/apps", app)[0] == 201
    task = the_task(first, "/steady")
    pid = pid_of(pacer_home, task["id"])
    (logger_pid,) = loggers.of(pid)
    sandbox = pacer_home / "sandboxes" / task["id"]
    first.stop()

    def rotated_since(inode: int) -> bool:
        try:
            return (sandbox / "stdout.1").stat().st_ino != inode
        except FileNotFoundError:
            return False

    inode = wait_until(lambda: (sandbox / "stdout.1").exists() and (sandbox / "stdout.1").stat().st_ino,
                       timeout=20, what="a rotation")
    wait_until(lambda: rotated_since(inode), timeout=20, what="a rotation while no pacer serve runs")
    second = pacer_factory(*RESOURCES, "--task-log-max-bytes", "32K", "--task-log-files", "2")
    adopted = the_task(second, "/steady")
    assert adopted["id"] == task["id"] and pid_of(pacer_home, task["id"]) == pid
    assert loggers_of(pid) == [logger_pid]
    inode = (sandbox / "stdout.1").stat().st_ino
    wait_until(lambda: rotated_since(inode), timeout=20, what="a rotation after the restart")
    files = sandbox_files(sandbox)
    assert set(files) == {"stdout", "stdout.1", "stderr"} and max(files.values()) <= 32 * KIB
    assert second.request("DELETE", "/v2/apps/steady")[0] == 200
    wait_until(lambda: not alive_logger(logger_pid), timeout=15, what="the logger to end after DELETE")
