"""ProcessRuntime against real processes: launch, exit states, kill with grace, failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor import (
    TASK_FAILED,
    TASK_FINISHED,
    TASK_KILLED,
    InvalidTaskSpec,
    LaunchFailed,
    ProcessHandle,
    ProcessRuntime,
    RuntimeClosed,
    TaskAlreadyRunning,
    TaskExit,
    TaskLaunch,
    kill_process_group,
    marathon_task_env,
    process_alive,
    read_start_time,
)
from executor.testing import ExitRecorder

GRACE_NEVER_REACHED = 3600.0   # a kill grace period no test waits out
SAFETY_SECONDS = 60.0          # bound on waits for things that do happen: a safety net, not a check


class Harness:
    """A runtime plus the bookkeeping to kill, by pid, everything a test started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exits = ExitRecorder()
        self.runtime = ProcessRuntime(self.exits)
        self.started: list[ProcessHandle] = []

    async def launch(
        self,
        task_id: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        kill_grace_seconds: float = 3.0,
    ) -> ProcessHandle:
        spec = TaskLaunch(task_id, argv, env or {}, self.root / task_id, kill_grace_seconds)
        handle = await self.runtime.launch(spec)
        self.started.append(handle)
        return handle

    def sandbox(self, task_id: str) -> Path:
        return self.root / task_id


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    for handle in harness.started:
        kill_process_group(handle.pid, handle.start_time)
    await harness.runtime.close(kill=True)


async def wait_for_file(path: Path, timeout: float = SAFETY_SECONDS) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        await asyncio.sleep(0.01)
    return path.read_text().strip()


def reaped(handle: ProcessHandle) -> bool:
    """No zombie left: the pid is free (or reused by a different process)."""
    return read_start_time(handle.pid) != handle.start_time


async def test_task_sees_marathon_env_in_its_sandbox(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACER_SCHEDULER_SECRET", "must-not-leak")
    env = marathon_task_env(
        app_id="/web", app_version="v1", task_id="web.1", host="127.0.0.1",
        ports=[31005], port_names=["http"], cpus=0.5, mem=64, disk=0, gpus=0,
        labels={"team": "core"}, user_env={"GREETING": "hi"},
    )
    script = (
        "import json, os, sys; json.dump(dict(os.environ), open('env.json', 'w'));"
        " print('out'); print('err', file=sys.stderr)"
    )
    handle = await harness.launch("web.1", ["/bin/sh", "-c", f'python3 -c "{script}"'], env=env)
    report = await harness.exits.wait("web.1", timeout=SAFETY_SECONDS)
    assert report.state == TASK_FINISHED, harness.sandbox("web.1").joinpath("stderr").read_text()
    seen = json.loads(harness.sandbox("web.1").joinpath("env.json").read_text())
    assert seen["PORT0"] == seen["PORT"] == seen["PORT_HTTP"] == "31005"
    assert seen["MARATHON_APP_ID"] == "/web"
    assert seen["MARATHON_APP_LABEL_TEAM"] == "core"
    assert seen["GREETING"] == "hi"
    assert seen["PATH"].endswith(os.environ["PATH"])  # a pyenv shim may prepend to it
    assert "PACER_SCHEDULER_SECRET" not in seen
    assert harness.sandbox("web.1").joinpath("stdout").read_text() == "out\n"
    assert harness.sandbox("web.1").joinpath("stderr").read_text() == "err\n"
    assert reaped(handle)


async def test_exit_zero_is_finished_and_reaped(harness: Harness) -> None:
    handle = await harness.launch("ok", ["/bin/sh", "-c", "exit 0"])
    report = await harness.exits.wait("ok")
    assert report == TaskExit("ok", TASK_FINISHED, 0, None, "Command exited with status 0")
    assert reaped(handle)
    assert not harness.runtime.is_running("ok")
    assert harness.runtime.running() == []


async def test_exit_three_is_failed_with_the_code_in_the_message(harness: Harness) -> None:
    await harness.launch("bad", ["/bin/sh", "-c", "exit 3"])
    report = await harness.exits.wait("bad")
    assert (report.state, report.exit_code, report.signal) == (TASK_FAILED, 3, None)
    assert "status 3" in report.message


async def test_death_by_a_foreign_signal_is_failed(harness: Harness) -> None:
    await harness.launch("segv", ["/bin/sh", "-c", "kill -SEGV $$"])
    report = await harness.exits.wait("segv")
    assert (report.state, report.exit_code, report.signal) == (TASK_FAILED, None, 11)
    assert report.message == "Command terminated with signal SIGSEGV"


async def test_kill_escalates_to_sigkill_for_the_whole_group(harness: Harness) -> None:
    # the leader notes the SIGTERM and keeps waiting; the grandchild ignores it: only the
    # SIGKILL after the grace period can end them (the grandchild names itself once it ignores it)
    script = ('trap "echo TERM >> signals" TERM; '
              'sh -c \'trap "" TERM; echo $$ > grandchild.pid; exec sleep 60\' & while :; do wait; done')
    handle = await harness.launch("stubborn", ["/bin/sh", "-c", script], kill_grace_seconds=0.3)
    grandchild = int(await wait_for_file(harness.sandbox("stubborn") / "grandchild.pid"))
    grandchild_start = read_start_time(grandchild)
    assert grandchild_start is not None and harness.runtime.is_running("stubborn")

    began = time.monotonic()
    await harness.runtime.kill("stubborn")
    assert time.monotonic() - began >= 0.3

    report = harness.exits.reports_for("stubborn")
    assert len(report) == 1
    assert harness.sandbox("stubborn").joinpath("signals").read_text() == "TERM\n"   # SIGTERM first
    assert (report[0].state, report[0].signal) == (TASK_KILLED, 9)                       # then SIGKILL
    assert report[0].message == "Command terminated with signal SIGKILL"
    assert reaped(handle)
    assert not process_alive(grandchild, grandchild_start)  # the whole group, not just the leader
    assert not harness.runtime.is_running("stubborn")


async def test_a_leader_gets_each_signal_once(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # a second SIGTERM means "quit now" to many programs: the group signal already reaches the
    # leader (a session leader cannot leave its group), so the pidfd is for a leader that is
    # no longer found leading it
    from executor import posix

    sent: list[tuple[str, int]] = []
    await harness.launch("leader", ["sleep", "60"])
    watch = harness.runtime._tasks["leader"]  # the runtime's own bookkeeping: what one kill step sends
    monkeypatch.setattr(posix, "signal_pidfd", lambda fd, sig: sent.append(("pidfd", sig)))
    monkeypatch.setattr(posix, "signal_group", lambda pgid, sig: sent.append(("group", sig)))
    harness.runtime._signal(watch, signal.SIGTERM)
    assert sent == [("group", signal.SIGTERM)]
    sent.clear()
    monkeypatch.setattr(posix, "leads_group", lambda pid: False)
    harness.runtime._signal(watch, signal.SIGTERM)
    assert sent == [("pidfd", signal.SIGTERM), ("group", signal.SIGTERM)]
    monkeypatch.undo()


async def test_cooperative_process_dies_on_sigterm_without_waiting(harness: Harness) -> None:
    # a grace period no test outlives: kill() can only return within the safety net if it
    # returns at the death, not at the end of the grace period
    await harness.launch("polite", ["sleep", "60"], kill_grace_seconds=GRACE_NEVER_REACHED)
    await asyncio.wait_for(harness.runtime.kill("polite"), SAFETY_SECONDS)
    [report] = harness.exits.reports_for("polite")     # reported by the time kill() returns
    assert (report.state, report.signal) == (TASK_KILLED, 15)


async def test_kill_is_idempotent_and_reports_once(harness: Harness) -> None:
    await harness.launch("twice", ["sleep", "60"])
    await asyncio.gather(harness.runtime.kill("twice"), harness.runtime.kill("twice", 0.1))
    await harness.runtime.kill("twice")
    await harness.runtime.kill("never-launched")
    assert [r.state for r in harness.exits.reports_for("twice")] == [TASK_KILLED]


async def test_kill_racing_with_the_exit_touches_no_stale_pidfd(harness: Harness) -> None:
    handle = await harness.launch("racy", ["true"])
    deadline = time.monotonic() + SAFETY_SECONDS
    while process_alive(handle.pid, handle.start_time):  # no await: the exit stays uncollected
        assert time.monotonic() < deadline
        time.sleep(0.001)
    await harness.runtime.kill("racy", 0)  # the exit is collected while kill() waits
    [report] = harness.exits.reports_for("racy")
    assert (report.state, report.exit_code) == (TASK_KILLED, 0)  # asked for before it was seen


async def test_leftover_group_members_die_with_the_task(harness: Harness) -> None:
    script = "sleep 60 & echo $! > daemon.pid; while [ ! -e go ]; do sleep 0.01; done; exit 0"
    await harness.launch("leaky", ["/bin/sh", "-c", script])
    daemon = int(await wait_for_file(harness.sandbox("leaky") / "daemon.pid"))
    daemon_start = read_start_time(daemon)
    assert daemon_start is not None
    harness.sandbox("leaky").joinpath("go").touch()
    assert (await harness.exits.wait("leaky")).state == TASK_FINISHED
    assert not process_alive(daemon, daemon_start)  # reported only once the group is dead


async def test_missing_binary_raises_launch_failed(harness: Harness) -> None:
    with pytest.raises(LaunchFailed, match="No such file or directory"):
        await harness.launch("ghost", ["/nonexistent/pacer-binary"])
    assert harness.runtime.running() == [] and harness.exits.exits == []


async def test_non_executable_file_raises_launch_failed(harness: Harness, tmp_path: Path) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    if os.geteuid() == 0 and os.access(script, os.X_OK):
        pytest.skip("root may execute anything here")
    with pytest.raises(LaunchFailed, match="Permission denied"):
        await harness.launch("noexec", [str(script)])


async def test_duplicate_and_empty_launches_are_refused(harness: Harness) -> None:
    await harness.launch("dup", ["sleep", "60"])
    with pytest.raises(TaskAlreadyRunning):
        await harness.launch("dup", ["sleep", "60"])
    with pytest.raises(InvalidTaskSpec):
        await harness.launch("empty", [])
    await harness.runtime.kill("dup", 0)


async def test_close_with_kill_reports_every_task(harness: Harness) -> None:
    handles = [await harness.launch(f"many.{i}", ["sleep", "60"]) for i in range(3)]
    assert {h.task_id for h in harness.runtime.running()} == {h.task_id for h in handles}
    await harness.runtime.close(kill=True)
    assert sorted(r.task_id for r in harness.exits.exits) == ["many.0", "many.1", "many.2"]
    assert {r.state for r in harness.exits.exits} == {TASK_KILLED}
    assert all(reaped(h) for h in handles)
    with pytest.raises(RuntimeClosed):
        await harness.launch("late", ["true"])


async def test_a_failing_callback_does_not_stop_other_reports(tmp_path: Path) -> None:
    seen: list[str] = []

    def on_exit(report: TaskExit) -> None:
        seen.append(report.task_id)
        raise RuntimeError("consumer bug")

    runtime = ProcessRuntime(on_exit)
    for task_id in ("a", "b"):
        await runtime.launch(TaskLaunch(task_id, ["true"], {}, tmp_path / task_id))
    deadline = time.monotonic() + SAFETY_SECONDS
    while len(seen) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await runtime.close(kill=True)
    assert sorted(seen) == ["a", "b"]


async def test_kill_process_group_checks_identity(harness: Harness) -> None:
    handle = await harness.launch("orphan", ["sleep", "60"])
    assert not kill_process_group(handle.pid, handle.start_time + 1)
    assert harness.runtime.is_running("orphan")
    assert kill_process_group(handle.pid, handle.start_time)
    report = await harness.exits.wait("orphan")
    assert (report.state, report.signal) == (TASK_FAILED, 9)
    assert not kill_process_group(handle.pid, handle.start_time)
