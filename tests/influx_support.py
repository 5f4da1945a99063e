"""A private `influxd` (InfluxDB 1.x) on free loopback ports with a temp dir, for tests.

Recipe from docs/design.md: take `influxd config`, point the meta/data/wal dirs at a temp dir,
bind the HTTP API and the RPC service to free 127.0.0.1 ports, start `influxd -config FILE`.
The server is stopped by its own pid; nothing else is touched.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .support import free_port, stop_process

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def influxd_available() -> bool:
    return Path(INFLUXD).exists()


def _set(config: str, section: str | None, key: str, value: str) -> str:
    """Set `key = value` in `[section]` (None: top level, before the first section)."""
    lines = config.splitlines()
    current: str | None = None
    done = False
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        header = re.fullmatch(r"\[\[?([^\]]+)\]\]?", stripped)
        if header:
            current = header.group(1) if not stripped.startswith("[[") else "[[" + header.group(1) + "]]"
        elif not done and current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}{key} = {value}"
            done = True
        out.append(line)
    if not done:
        raise ValueError(f"influxd config has no {key} in [{section}]")
    return "\n".join(out) + "\n"


class InfluxServer:
    """`influxd` on 127.0.0.1:<free port>, data under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.port:
            self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        base = subprocess.run([INFLUXD, "config"], capture_output=True, check=True).stdout.decode()
        cfg = _set(base, None, "bind-address", f'"127.0.0.1:{self.rpc_port}"')
        cfg = _set(cfg, None, "reporting-enabled", "false")
        cfg = _set(cfg, "meta", "dir", json.dumps(str(self.root / "meta")))
        cfg = _set(cfg, "data", "dir", json.dumps(str(self.root / "data")))
        cfg = _set(cfg, "data", "wal-dir", json.dumps(str(self.root / "wal")))
        cfg = _set(cfg, "data", "query-log-enabled", "false")
        cfg = _set(cfg, "monitor", "store-enabled", "false")
        cfg = _set(cfg, "http", "bind-address", f'"127.0.0.1:{self.port}"')
        cfg = _set(cfg, "http", "log-enabled", "false")
        cfg = _set(cfg, "logging", "level", '"warn"')
        cfg = _set(cfg, "logging", "suppress-logo", "true")
        return cfg

    def start(self, timeout: float = 30.0, attempts: int = 3) -> "InfluxServer":
        """Start it; a port taken meanwhile by someone else means new ports and another try."""
        for attempt in range(attempts):
            if attempt:
                self._pick_ports()
            if self._start_once(timeout):
                return self
        raise RuntimeError(f"influxd did not start; log: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return (self.root / "influxd.log").read_text()[-2000:]
        except OSError:
            return ""

    def _start_once(self, timeout: float) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "influxdb.conf"
        config.write_text(self._config())
        with open(self.root / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen([INFLUXD, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                    if resp.status == 204:
                        return True
            except OSError:
                time.sleep(0.1)
        self.stop()
        return False

    def stop(self) -> None:
        """Stop our influxd by its pid (SIGTERM, then SIGKILL after 10 s)."""
        stop_process(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- blocking helpers for assertions -------------------------------------------------
    def query(self, q: str, db: str | None = None, *, method: str = "GET") -> dict[str, Any]:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params)
        if method == "POST":
            req = urllib.request.Request(self.url + "/query", data=data.encode(), method="POST")
        else:
            req = urllib.request.Request(self.url + "/query?" + data)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"', method="POST")

    def series(self, q: str, db: str) -> list[dict[str, Any]]:
        """All series of the first statement's result (raises on an InfluxQL error)."""
        result = self.query(q, db)["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxQL error for {q!r}: {result['error']}")
        return result.get("series", [])
