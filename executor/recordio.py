"""RecordIO, the framing of Mesos's v1 event streams: ``<length in decimal>\\n<bytes>``, repeated.

Both ends of Pacer that read a Mesos event stream use it: the scheduler's SUBSCRIBE to a master
(``scheduler.backends.mesos_client``) and the executor's SUBSCRIBE to an agent
(``executor.mesos_executor``). It lives here, in the lower layer, so the scheduler imports it and
nothing is copied. Pure: bytes in, records out; no I/O.

The decoder takes whatever chunks the connection delivers and returns every complete record at
once: a busy master writes many events per packet, and a read per event would cost a trip
through the event loop for each.
"""

from __future__ import annotations

from executor.errors import RecordIOError

MAX_HEADER_DIGITS = 20
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024


def encode(record: bytes) -> bytes:
    """One RecordIO frame: the length in decimal, a newline, the bytes."""
    return str(len(record)).encode() + b"\n" + record


class RecordIODecoder:
    """Incremental decoder: ``feed`` chunks, get back the records they completed.

    A record longer than ``max_record_bytes`` (or an empty or undecodable length) raises
    ``RecordIOError``: a broken stream must not make the reader buffer without bound.
    """

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_record_bytes

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record held back for the next chunk."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        buffer = self._buffer
        records: list[bytes] = []
        start = 0
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                if len(buffer) - start > MAX_HEADER_DIGITS:
                    raise RecordIOError("undecodable RecordIO header in the event stream")
                break
            try:
                size = int(buffer[start:newline].strip())
            except ValueError as exc:
                raise RecordIOError(f"undecodable RecordIO header in the event stream: {exc}") from exc
            if not 0 < size <= self._max:
                raise RecordIOError(f"bad RecordIO length {size} in the event stream")
            if len(buffer) - newline - 1 < size:
                break
            records.append(bytes(buffer[newline + 1:newline + 1 + size]))
            start = newline + 1 + size
        del buffer[:start]
        return records
