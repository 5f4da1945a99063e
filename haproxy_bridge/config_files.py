"""The files the bridge writes next to HAProxy, and `haproxy -c` over them.

    haproxy.cfg         what HAProxy loads at start and at every reload
    haproxy.cfg.prev    the configuration before the last successful reload (for people)
    haproxy.cfg.check   what `haproxy -c` was last asked about
    vhost-owners.json   which app owns each vhost (ownership.py): it outlives the bridge, so a
                        restart never hands a vhost to a later claimant

Every write is atomic: HAProxy (or a person) reading one of them sees the old text or the new
one, never a part, even if the bridge dies mid-write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from .haproxy import CheckResult, check_config
from .ownership import Claim, RouteKey, record_from_json, record_json
from .state import Counters

log = logging.getLogger(__name__)


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
        self.owners = self.dir / "vhost-owners.json"

    def create_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_live(self, text: str) -> None:
        write_atomic(self.live, text)

    def write_previous(self, text: str) -> None:
        write_atomic(self.previous, text)

    def read_owners(self) -> dict[RouteKey, Claim]:
        """The vhost record; empty when there is none. An unreadable file is logged and kept
        aside (`.bad`) rather than silently overwritten: it is what protects the owners."""
        try:
            data = json.loads(self.owners.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); starting a new vhost record, the old file is kept as .bad",
                      self.owners, exc)
            with contextlib.suppress(OSError):
                os.replace(self.owners, self.owners.with_name(self.owners.name + ".bad"))
            return {}
        return record_from_json(data.get("owners") if isinstance(data, dict) else None)

    def write_owners(self, record: Mapping[RouteKey, Claim]) -> None:
        self.create_dir()
        write_atomic(self.owners, json.dumps({"version": 1, "owners": record_json(record)}, indent=1) + "\n")


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
