"""TaskSampler: what it writes for running tasks, and that it never raises into the scheduler."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from executor import ResourceUsage
from metrics import EmbeddedStore
from scheduler.engine.sampling import TaskSampler


@dataclass
class Inst:
    instance_id: str
    app_id: str
    pid: int | None
    state: str = "TASK_RUNNING"
    agent_id: str = "agent-1"
    resources: dict = field(default_factory=dict)


async def eventually(condition, timeout: float = 30.0) -> None:
    """Wait for `condition`; the deadline is a safety net against a hang, not the assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def fake_scheduler(instances, apps=None):
    apps = apps if apps is not None else {
        i.app_id: SimpleNamespace(definition=SimpleNamespace(instances=2, cpus=0.5, mem=64)) for i in instances}
    return SimpleNamespace(instances={i.instance_id: i for i in instances}, apps=apps)


async def test_samples_running_tasks_with_pids_into_the_sink():
    counter = {"n": 0}

    def read(pids):
        counter["n"] += 1
        return {pid: ResourceUsage(cpu_user_ns=counter["n"] * 400_000_000, cpu_system_ns=0,
                                   rss_bytes=32 * 2**20, processes=1) for pid in pids}

    sched = fake_scheduler([Inst("a.1", "/a", 101), Inst("a.2", "/a", None), Inst("a.3", "/a", 103, state="TASK_STAGING"),
                            Inst("b.1", "/b", 201, resources={"cpus": 2.0, "mem": 128})])
    store = EmbeddedStore(interval=0.1)
    sampler = TaskSampler(sched, store, interval=0.1, machine="m1", read_usage=read)
    await sampler.sample_once()
    await asyncio.sleep(0.2)
    await sampler.sample_once()
    tasks = {key.tag("task_id") for key, _, _ in store.series("cpu_usage_total", 0, time.time() + 1)}
    assert tasks == {"a.1", "b.1"}                        # running and with a pid
    util = {key.tag("task_id"): values for key, _, values in store.series("cpu_utilization", 0, time.time() + 1)}
    [(_, times, cpu)] = store.series("cpu_usage_total", 0, time.time() + 1, {"task_id": "a.1"})
    assert list(cpu) == [400_000_000, 800_000_000]
    # 0.4 s of CPU between the two passes over 0.5 cpus, whatever wall time the passes took
    assert len(util["a.1"]) == 1 and util["a.1"][0] == pytest.approx(100 * 0.4e9 / (times[1] - times[0]) / 0.5)
    limits = {key.tag("task_id"): values[-1] for key, _, values in store.series("memory_limit", 0, time.time() + 1)}
    assert limits == {"a.1": 64 * 2**20, "b.1": 128 * 2**20}     # instance resources win over the definition
    instances = {key.tag("app_id"): values[-1] for key, _, values in store.series("instances", 0, time.time() + 1)}
    assert instances == {"/a": 2, "/b": 2}
    assert sampler.stats()["passes"] == 2 and sampler.stats()["errors"] == 0


async def test_a_failing_pass_is_counted_and_the_loop_goes_on(caplog):
    calls = {"n": 0}

    def read(pids):
        calls["n"] += 1
        if calls["n"] % 2:
            raise OSError("/proc went away")
        return {}

    class BrokenSink(EmbeddedStore):
        def write(self, points):
            if calls["n"] == 2:
                raise RuntimeError("sink bug")
            super().write(points)

    sampler = TaskSampler(fake_scheduler([Inst("a.1", "/a", 5)]), BrokenSink(), interval=0.02, read_usage=read)
    task = asyncio.create_task(sampler.run())
    await eventually(lambda: sampler.passes + sampler.errors >= 6 or task.done())
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sampler.errors >= 3 and calls["n"] >= 6
    assert sampler.passes >= 1


# Burns a fixed amount of CPU when told to, says so, then idles: the CPU between two samples
# is then known however busy the machine is.
BURN = """
import sys, time
sys.stdin.readline()
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
print("burnt", flush=True)
time.sleep(60)
"""


async def test_reads_real_process_groups():
    proc = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        store = EmbeddedStore(interval=0.1)
        sampler = TaskSampler(fake_scheduler([Inst("burn.1", "/burn", proc.pid)]), store, interval=0.1)
        await sampler.sample_once()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60) == "burnt\n"
        await sampler.sample_once()
        [(_, _, cpu)] = store.series("cpu_usage_total", 0, time.time() + 1, {"task_id": "burn.1"})
        assert len(cpu) == 2 and cpu[1] - cpu[0] >= 0.3e9    # the whole burn, read from the group
        usage = store.usage("cpu", 0, time.time() + 1)["/burn"]["burn.1"]
        assert usage.values[-1] > 0
        mem = store.usage("mem", 0, time.time() + 1)["/burn"]["burn.1"]
        assert mem.values[-1] > 1_000_000
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        TaskSampler(fake_scheduler([]), EmbeddedStore(), interval=0)
