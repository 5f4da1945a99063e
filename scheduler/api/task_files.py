"""``GET /v2/tasks/{taskId}/files/{name}``: a task's stdout/stderr, read in ranges or downloaded.

A Pacer extension in the spirit of Mesos's ``/files/read``: ``?offset=&length=`` answers
``{"data", "offset", "size", "nextOffset"}`` (``offset=-1``: no data, the end of the file to follow
from; ``size`` below the ``offset`` asked: the file was rotated, read again from 0);
``?download=1`` streams the whole current file as an attachment. The read goes through the
scheduler's view to the backend that runs the task, which knows where its sandbox is.

Errors, Marathon's shape: 404 for an unknown task, a name other than stdout/stderr, or a file
not there (yet, or any more, or kept elsewhere, with the reason); 400 for a bad offset/length.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from executor.sandbox_files import TASK_FILE_NAMES, TAIL, FileMissing

from scheduler.api.params import flag, json_response, scheduler_of
from scheduler.errors import InvalidRequest, NotFound

DEFAULT_LENGTH = 64 * 1024
MAX_LENGTH = 1024 * 1024
"""A longer ``length`` is cut to this: one answer stays small enough to render at once."""
DOWNLOAD_CHUNK = 256 * 1024


def _int_param(raw: str | None, name: str, default: int, minimum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidRequest(f"Query parameter '{name}' must be an integer >= {minimum}, not '{raw}'")
    return value


def file_range(offset: str | None, length: str | None) -> tuple[int, int]:
    """(offset, length) from the query's strings: defaults 0 and 64 KiB, length capped at 1 MiB."""
    return (_int_param(offset, "offset", 0, TAIL),
            min(MAX_LENGTH, _int_param(length, "length", DEFAULT_LENGTH, 0)))


def _file_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in TASK_FILE_NAMES:
        raise NotFound(f"Task file '{name}' does not exist: use one of {', '.join(TASK_FILE_NAMES)}")
    return name


async def read_task_file(request: web.Request) -> web.StreamResponse:
    task_id, name = request.match_info["task_id"], _file_name(request)
    if flag(request, "download"):
        return await _download(request, task_id, name)
    offset, length = file_range(request.query.get("offset"), request.query.get("length"))
    chunk = await scheduler_of(request).view.read_task_file(task_id, name, offset, length)
    if isinstance(chunk, FileMissing):
        raise NotFound(chunk.reason)
    return json_response(chunk.to_json())


async def _download(request: web.Request, task_id: str, name: str) -> web.StreamResponse:
    opened = await scheduler_of(request).view.open_task_file(task_id, name)
    if isinstance(opened, FileMissing):
        raise NotFound(opened.reason)
    try:
        response = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{task_id}.{name}"'})
        response.content_length = opened.size
        await response.prepare(request)
        left = opened.size
        while left > 0:
            data = await asyncio.to_thread(opened.file.read, min(DOWNLOAD_CHUNK, left))
            if not data:   # truncated in place (a logger keeping 1 file): the length promised cannot be sent
                if request.transport is not None:
                    request.transport.close()      # the client sees a cut download, not a wrong one
                return response
            left -= len(data)
            await response.write(data)
        await response.write_eof()
        return response
    finally:
        opened.file.close()


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/tasks/{task_id}/files/{name}", read_task_file)
