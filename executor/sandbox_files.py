"""Reading a task's output files (``stdout``, ``stderr``) out of its sandbox, in ranges.

Why: an operator follows a task's output the way Mesos's ``/files/read`` lets one follow a
sandbox file: ask for ``length`` bytes from ``offset``, get them with the file's size, ask
again from where the last answer ended. The logger (``executor.logger``) writes the current
output to ``<sandbox>/stdout`` and rotates older output to ``stdout.1``…; only the current file
is read here. A rotation makes the current file shorter than an offset a reader already
reached: the answer then carries no data and a ``size`` below the ``offset``, which tells the
reader to start again from 0.

``chunk_range`` and ``complete_utf8`` are pure; ``read_chunk`` and ``open_whole`` do blocking
file I/O, so callers on an event loop run them in a thread. Outcomes a reader must expect (no
such file yet, or not any more) are a ``FileMissing`` value with its reason, not an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TASK_FILE_NAMES = ("stdout", "stderr")
TAIL = -1
"""The ``offset`` that asks for the end of the file: no data, the offset to follow from."""


@dataclass(frozen=True)
class FileChunk:
    """``data`` read at ``offset`` of a file that was ``size`` bytes long when it was read."""

    data: bytes
    offset: int
    size: int

    @property
    def next_offset(self) -> int:
        """Where a reader following the file asks next."""
        return self.offset + len(self.data)

    def to_json(self) -> dict[str, object]:
        return {"data": self.data.decode("utf-8", errors="replace"), "offset": self.offset, "size": self.size,
                "nextOffset": self.next_offset}


@dataclass(frozen=True)
class FileMissing:
    """The file cannot be read here; ``reason`` says why (for the 404 body)."""

    reason: str


@dataclass
class OpenedFile:
    """A whole file opened for a download: ``size`` is its length when opened, the most the
    download sends (a file still growing is sent as it was; a rotation does not cut it off, as
    the open file stays the same inode)."""

    file: BinaryIO
    size: int


def chunk_range(offset: int, length: int, size: int) -> tuple[int, int]:
    """(start, count) of the bytes to read for ``offset``/``length`` of a ``size``-byte file.

    ``offset`` -1 is the end of the file; an offset at or past the end reads nothing.
    """
    if offset < TAIL or length < 0 or size < 0:
        raise ValueError(f"offset must be >= -1 and length, size >= 0 (got {offset}, {length}, {size})")
    start = size if offset == TAIL else offset
    return start, max(0, min(length, size - start))


def complete_utf8(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut off at its end (the next read starts with it).

    Only the last 1-3 bytes are looked at: a trailing lead byte whose sequence is not complete,
    and its continuation bytes, are dropped. Data that is not UTF-8 is left as it is, and so is
    a chunk that would become empty (a reader asking for 1 byte still moves on).
    """
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:          # a continuation byte: look further back for its lead
            continue
        if byte & 0x80 == 0:             # ASCII: nothing is cut
            return data
        needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 0
        if needed == 0 or back >= needed or back == len(data):
            return data
        return data[:-back]
    return data


def sandbox_file(sandbox: Path, name: str) -> Path:
    """The current file of output stream ``name`` in ``sandbox``; ValueError for other names."""
    if name not in TASK_FILE_NAMES:
        raise ValueError(f"unknown task file '{name}': use one of {', '.join(TASK_FILE_NAMES)}")
    return sandbox / name


def _missing(path: Path, exc: OSError) -> FileMissing:
    if isinstance(exc, FileNotFoundError):
        return FileMissing(f"'{path.name}' is not in the task's sandbox (not written yet, or collected)")
    return FileMissing(f"'{path.name}' cannot be read: {exc.strerror or exc}")


def read_chunk(path: Path, offset: int, length: int) -> FileChunk | FileMissing:
    """Up to ``length`` bytes of ``path`` from ``offset`` (-1: its end). Blocking."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, count = chunk_range(offset, length, size)
            f.seek(start)
            data = f.read(count)
    except OSError as exc:
        return _missing(path, exc)
    return FileChunk(complete_utf8(data) if len(data) == count and start + count < size else data, start, size)


def open_whole(path: Path) -> OpenedFile | FileMissing:
    """``path`` opened for reading from its start, with its size now. Blocking; the caller closes it."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        return _missing(path, exc)
    try:
        return OpenedFile(f, os.fstat(f.fileno()).st_size)
    except OSError as exc:
        f.close()
        return _missing(path, exc)
