"""Held log requests: a launch opens its task's pipes first and hands them to a logger only once
the sandbox exists (``LogWriters.open(hold=True)``, ``send``, ``discard``), because the sandbox
may be made on a spawner thread meanwhile. Real spawner and logger processes throughout.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from executor.task_logs import LogPolicy, LogWriters


async def test_a_held_request_reaches_a_logger_only_when_sent(tmp_path: Path) -> None:
    writers = LogWriters()
    sandbox = tmp_path / "later"  # not there yet: the logger could not open its files
    try:
        logs = writers.open("later", sandbox, LogPolicy(), hold=True)
        os.write(logs.stdout, b"written before the logger exists\n")
        await asyncio.sleep(0.2)
        assert not sandbox.exists() and not logs.drained.done()
        sandbox.mkdir()
        writers.send(logs)
        logs.close_write_ends()
        await asyncio.wait_for(logs.drained, timeout=30)
        assert (sandbox / "stdout").read_text() == "written before the logger exists\n"
    finally:
        await writers.close()


async def test_a_discarded_request_ends_at_once_and_its_pipe_has_no_reader(tmp_path: Path) -> None:
    writers = LogWriters()
    try:
        logs = writers.open("failed", tmp_path, LogPolicy(), hold=True)
        writers.discard(logs)
        assert logs.drained.done()
        try:
            os.write(logs.stdout, b"x")
        except BrokenPipeError:
            pass  # what a task would get: no one will ever read this pipe
        else:
            raise AssertionError("the read end of a discarded request is still open")
        finally:
            logs.close_write_ends()
        writers.send(logs)  # too late: nothing is sent, nothing fails
        assert not (tmp_path / "stdout").exists()
    finally:
        await writers.close()


async def test_a_spawner_lost_while_a_request_is_held_does_not_end_it(tmp_path: Path) -> None:
    writers = LogWriters()
    try:
        logs = writers.open("held", tmp_path, LogPolicy(), hold=True)
        assert writers._proc is not None
        writers._proc.kill()  # the spawner this test started (by its Popen, i.e. its pid)
        writers._proc.wait()
        await asyncio.sleep(0.1)  # its socket's end of file has been seen
        assert not logs.drained.done()
        writers.send(logs)  # a new spawner takes it
        os.write(logs.stdout, b"kept\n")
        logs.close_write_ends()
        await asyncio.wait_for(logs.drained, timeout=30)
        assert (tmp_path / "stdout").read_text() == "kept\n"
    finally:
        await writers.close()
