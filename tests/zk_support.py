"""A private ZooKeeper server on a free loopback port with a temp dir, for tests.

Recipe from design.md: a `zoo.cfg` (tickTime, dataDir, clientPort on 127.0.0.1, no admin
server, `ruok`/`srvr` whitelisted), then `ZooKeeperServerMain zoo.cfg` on the JVM with Debian's
jars on the classpath; ready when `srvr` reports a mode (`ruok` answers `imok` before the
server takes sessions). The transaction log is preallocated 4 MB at a time rather than 64 MB,
and not fsynced: on a busy CI disk, writing 64 MB of zeros and an fsync behind a test's first
session took longer than the test's connection timeout. A killed server still finds every
write in the page cache. Stopped by its own pid; nothing else is touched.
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .support import free_port, stop_process

JAVA = shutil.which("java") or "/usr/bin/java"
ZK_JARS = "/usr/share/java"


def _classpath() -> str:
    return ":".join(sorted(glob.glob(f"{ZK_JARS}/*.jar")))


def zookeeper_available() -> bool:
    return Path(JAVA).exists() and bool(glob.glob(f"{ZK_JARS}/zookeeper*.jar"))


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a four-letter word to 127.0.0.1:port and return the answer ('' when none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while True:
                data = sock.recv(4096)
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


class ZooKeeperServer:
    """A standalone ZooKeeper on 127.0.0.1:<free port>, data under `root`."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def zk_url(self, path: str = "/pacer") -> str:
        return f"zk://{self.hosts}{path}"

    def _write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        config = self.root / "zoo.cfg"
        config.write_text("\n".join([
            "tickTime=500",
            "minSessionTimeout=1000",
            "maxSessionTimeout=60000",
            f"dataDir={self.root / 'data'}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,envi",
            "jute.maxbuffer=1048575",
            "",
        ]))
        return config

    def start(self, timeout: float = 60.0) -> "ZooKeeperServer":
        config = self._write_config()
        log = open(self.root / "zookeeper.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [JAVA, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.preAllocSize=4096", "-Dzookeeper.forceSync=no",
                 "-Dzookeeper.log.dir=" + str(self.root),
                 "-Dzookeeper.root.logger=WARN,CONSOLE", "-cp", _classpath(),
                 "org.apache.zookeeper.server.ZooKeeperServerMain", str(config)],
                stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zookeeper exited: {self._log_tail()}")
            if "Mode: " in four_letter(self.port, "srvr"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"zookeeper did not serve within {timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return (self.root / "zookeeper.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop our server by its pid (SIGTERM, then SIGKILL after 10 s)."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crashed server; `start()` again brings it back on the same port and data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
