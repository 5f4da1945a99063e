"""Pin a `haproxy -c` failure on the apps that caused it (pure, plus one awaited checker).

First from the error text: `[file:LINE]` locations and `proxy 'name'` mentions map to the apps
that own those lines (render.render_lines keeps the owners). When the text names none,
`find_bad_apps` bisects: it grows a set of apps known to pass together and splits any chunk
that fails, so one bad app among n costs about 2·log2(n) checks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from .model import Model

_LOCATION = re.compile(r"\[[^\]\n]*?:(\d+)\]")
_PROXY = re.compile(r"(?:proxy|backend|frontend|listen)\s+'([^'\n]+)'", re.IGNORECASE)


def error_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "[ALERT]" in line or "[ERROR]" in line]


def apps_blamed(output: str, owners: Sequence[str | None], model: Model) -> dict[str, str]:
    """App id -> the first error line that names it (by line number or proxy name)."""
    by_backend = {s.backend: s.app_id for s in model.services}
    blamed: dict[str, str] = {}
    for line in error_lines(output):
        hits: set[str] = set()
        for m in _LOCATION.finditer(line):
            n = int(m.group(1))
            if 1 <= n <= len(owners) and owners[n - 1] is not None:
                hits.add(owners[n - 1])  # type: ignore[arg-type]
        for m in _PROXY.finditer(line):
            if m.group(1) in by_backend:
                hits.add(by_backend[m.group(1)])
        for app_id in hits:
            blamed.setdefault(app_id, line)
    return blamed


async def find_bad_apps(app_ids: Sequence[str], valid: Callable[[frozenset[str]], Awaitable[bool]]) -> set[str]:
    """The apps to leave out so that `valid(kept)` holds; assumes `valid(frozenset())` holds."""
    good: frozenset[str] = frozenset()
    bad: set[str] = set()
    todo: list[list[str]] = [list(app_ids)] if app_ids else []
    while todo:
        chunk = todo.pop(0)
        if await valid(good | frozenset(chunk)):
            good |= frozenset(chunk)
        elif len(chunk) == 1:
            bad.add(chunk[0])
        else:
            half = len(chunk) // 2
            todo[:0] = [chunk[:half], chunk[half:]]
    return bad
