"""How one record becomes ZooKeeper node data, and back. Pure: bytes in, bytes out.

Why: ZooKeeper refuses node data above `jute.maxbuffer` (~1 MB by default), and Marathon's
stores failed exactly there on big groups. A record is JSON, compressed with zlib (app
definitions shrink ~5-10x), then split into parts no larger than `limit` (900 kB by default,
safely below 1 MB with room for the path and the request framing).

The first part (the *head*, stored at the record's own node) starts with a fixed header so a
reader knows, before fetching anything else, what it holds::

    magic "PZ" | format (1 = zlib JSON) | extra chunk count | compressed length | CRC-32
      2 bytes     1 byte                  4 bytes            4 bytes             4 bytes

followed by the first slice of the compressed payload; the `count` further parts are chunk
nodes. A missing, truncated, extra or corrupted part is reported as a `StoreError` naming the
node, never as a zlib or JSON traceback.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from scheduler.errors import StoreError

MAGIC = b"PZ"
FORMAT_ZLIB_JSON = 1
HEADER = struct.Struct(">2sBIII")
CHUNK_LIMIT = 900 * 1024
MIN_LIMIT = HEADER.size + 1


def dumps(record: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces): equal records give equal bytes."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def encode(record: Any, limit: int = CHUNK_LIMIT) -> list[bytes]:
    """[head, chunk 1, …]: every part at most `limit` bytes."""
    if limit < MIN_LIMIT:
        raise ValueError(f"chunk limit {limit} is below the header size {MIN_LIMIT}")
    payload = zlib.compress(dumps(record), 6)
    first = limit - HEADER.size
    rest = payload[first:]
    chunks = [rest[i:i + limit] for i in range(0, len(rest), limit)]
    head = HEADER.pack(MAGIC, FORMAT_ZLIB_JSON, len(chunks), len(payload), zlib.crc32(payload)) + payload[:first]
    return [head, *chunks]


def chunk_count(head: bytes, where: str = "a record") -> int:
    """How many chunk nodes follow this head (0 for a record that fits in one node)."""
    return _header(head, where)[1]


def _header(head: bytes, where: str) -> tuple[int, int, int, int]:
    if len(head) < HEADER.size:
        raise StoreError(f"corrupt record at {where}: {len(head)} bytes, shorter than its header")
    magic, fmt, count, length, crc = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise StoreError(f"corrupt record at {where}: not a Pacer record (magic {magic!r})")
    if fmt != FORMAT_ZLIB_JSON:
        raise StoreError(f"record at {where} has format {fmt}, which this Pacer does not know "
                         "(written by a newer version?)")
    return fmt, count, length, crc


def decode(parts: Sequence[bytes], where: str = "a record") -> Any:
    """The record from [head, chunk 1, …]; StoreError when a part is missing or damaged."""
    if not parts:
        raise StoreError(f"record at {where} is missing")
    _fmt, count, length, crc = _header(parts[0], where)
    if len(parts) - 1 != count:
        raise StoreError(f"corrupt record at {where}: {count} chunk(s) expected, {len(parts) - 1} found")
    payload = parts[0][HEADER.size:] + b"".join(parts[1:])
    if len(payload) != length:
        raise StoreError(f"corrupt record at {where}: {len(payload)} bytes of {length} (a chunk is missing or cut)")
    if zlib.crc32(payload) != crc:
        raise StoreError(f"corrupt record at {where}: checksum mismatch")
    try:
        return json.loads(zlib.decompress(payload))
    except (zlib.error, ValueError) as exc:
        raise StoreError(f"corrupt record at {where}: {exc}") from exc
