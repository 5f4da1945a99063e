"""A kill that arrives while the embedded backend is still launching the task.

The launch runs partly off the event loop (a spawner thread, a Docker call): a kill that
answered "not running" in that window let the scheduler forget the task while the launch went
on to start it, an orphan nobody would stop. The launch is held at a gate here so the window is
certain, on any host (with or without cgroups).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_definitions import parse_app_definition
from executor import TaskLaunch, process_alive
from scheduler.backends import StatusUpdate
from scheduler.backends.local import LocalBackend, build_agents
from scheduler.state.model import Instance, new_instance_id

from .support import kill_task_processes


async def test_a_kill_during_the_launch_waits_for_it_and_ends_what_it_started(tmp_path: Path) -> None:
    updates: list[StatusUpdate] = []
    home = tmp_path / "home"
    backend = LocalBackend(build_agents(1, {"cpus": 1, "mem": 1024, "disk": 100}, {}), home,
                           updates.append, docker_host=None, cgroup_root=None)
    gate = asyncio.Event()
    launch_process = backend.runtime.launch

    async def held_launch(spec: TaskLaunch):  # type: ignore[no-untyped-def]
        await gate.wait()
        return await launch_process(spec)

    backend.runtime.launch = held_launch  # type: ignore[method-assign]
    app = parse_app_definition({"id": "/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "portDefinitions": []})
    instance = Instance(new_instance_id(app.id), app.id, "v1", "v1", "agent-1", "localhost", (), ())
    try:
        launch = asyncio.get_running_loop().create_task(backend.launch(instance, app))
        await asyncio.sleep(0)
        kill = asyncio.get_running_loop().create_task(backend.kill(instance, 0.1))
        await asyncio.sleep(0.05)
        assert not launch.done(), launch
        assert not kill.done()           # no "not running" while a launch is on its way
        assert updates == []
        gate.set()
        launched = await launch
        await kill
        assert launched.pid is not None and launched.pid_start_time is not None
        assert not process_alive(launched.pid, launched.pid_start_time)
        assert [u.state for u in updates if u.instance_id == instance.instance_id] == ["TASK_KILLED"]
        assert "not running" not in updates[0].message
    finally:
        await backend.close()
        kill_task_processes(home)
