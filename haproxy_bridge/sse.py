"""Server-Sent Events frames as Marathon sends them: `event: <type>\\ndata: <json>\\n\\n` (pure).

Follows the WHATWG parsing rules the bridge needs: lines end in LF, CRLF or CR; `data` lines
accumulate (joined by LF); a blank line dispatches; `:` lines are comments (Pacer's heartbeats);
a frame without data dispatches nothing. Bytes may arrive split anywhere, even inside a UTF-8
character.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_EOL = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            return None


class SseParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.comments = 0           # heartbeats and other comment lines seen

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        out: list[SseEvent] = []
        while True:
            m = _EOL.search(self._buffer)
            if m is None:
                return out
            cut = m.start()
            if self._buffer[cut] == 0x0D and cut + 1 == len(self._buffer):
                return out          # a CR at the end: wait to see whether LF follows
            line = self._buffer[:cut].decode("utf-8", errors="replace")
            skip = 2 if self._buffer[cut:cut + 2] == b"\r\n" else 1
            self._buffer = self._buffer[cut + skip:]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            self.comments += 1
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
