"""`scheduler.canary` is a pure core: it imports the standard library's data modules and
`app_definitions` (and the pure `metrics.haproxy_stats`, the `show stat` parser it shares with the
HAProxy bridge), never the engine, the API, the network, a process or the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scheduler" / "canary"
ALLOWED = {"__future__", "collections", "csv", "io", "dataclasses", "typing", "math", "app_definitions"}
PURE_METRICS = {"metrics.haproxy_stats"}
FORBIDDEN_NAMES = {"time", "datetime", "socket", "asyncio", "subprocess", "aiohttp", "random", "os"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_only_pure_imports(path: Path) -> None:
    outside = {name for name in imports(path) if name.split(".")[0] not in ALLOWED and name not in PURE_METRICS}
    assert outside == set(), f"{path.name} imports {outside}"
    assert not imports(path) & FORBIDDEN_NAMES


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400
