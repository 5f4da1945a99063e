"""The files the bridge writes next to HAProxy, and `haproxy -c` over them.

    haproxy.cfg         what HAProxy loads at start and at every reload
    haproxy.cfg.prev    the configuration before the last successful reload (for people)
    haproxy.cfg.check   what `haproxy -c` was last asked about

Every write is atomic: HAProxy (or a person) reading one of them sees the old text or the new
one, never a part, even if the bridge dies mid-write.
"""

from __future__ import annotations

import os
from pathlib import Path

from .haproxy import CheckResult, check_config
from .state import Counters


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ConfigFiles:
    def __init__(self, config_dir: Path) -> None:
        self.dir = Path(os.path.abspath(config_dir))
        self.live = self.dir / "haproxy.cfg"
        self.previous = self.dir / "haproxy.cfg.prev"
        self.check = self.dir / "haproxy.cfg.check"

    def create_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_live(self, text: str) -> None:
        write_atomic(self.live, text)

    def write_previous(self, text: str) -> None:
        write_atomic(self.previous, text)


class ConfigChecker:
    """`haproxy -c` on a candidate configuration, counted in `checks`."""

    def __init__(self, binary: str, files: ConfigFiles, counters: Counters) -> None:
        self.binary = binary
        self.files = files
        self.counters = counters

    async def __call__(self, text: str) -> CheckResult:
        write_atomic(self.files.check, text)
        self.counters.checks += 1
        return await check_config(self.binary, self.files.check)
