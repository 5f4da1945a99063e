"""The embedded agents' side of `/v2/tasks/{id}/files/{name}`: a task's sandbox on this host.

Process tasks write their output through their logger into ``<sandboxes>/<task id>/stdout``
and ``stderr``; those are read in a worker thread (a slow disk must not hold the event loop).
Container tasks' output is kept by the Docker engine's log driver (json-file, capped like the
loggers' files), not in the sandbox, so for them the answer says where to find it instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from executor.sandbox_files import FileChunk, FileMissing, OpenedFile, open_whole, read_chunk, sandbox_file

from scheduler.state.model import Instance


def _container_output(instance: Instance) -> FileMissing | None:
    if instance.container_id is None:
        return None
    return FileMissing(f"task {instance.instance_id} runs in a Docker container, whose output the Docker engine "
                       f"keeps, not the sandbox: read it with 'docker logs {instance.container_id[:12]}'")


async def read_local_task_file(sandboxes: Path, instance: Instance, name: str, offset: int,
                               length: int) -> FileChunk | FileMissing:
    missing = _container_output(instance)
    if missing is not None:
        return missing
    path = sandbox_file(sandboxes / instance.instance_id, name)
    return await asyncio.to_thread(read_chunk, path, offset, length)


async def open_local_task_file(sandboxes: Path, instance: Instance, name: str) -> OpenedFile | FileMissing:
    missing = _container_output(instance)
    if missing is not None:
        return missing
    return await asyncio.to_thread(open_whole, sandbox_file(sandboxes / instance.instance_id, name))
