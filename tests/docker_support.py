"""A Docker engine for tests: the machine's engine if one answers, else a private `dockerd`.

The private engine follows the recipe in design.md ("Real components"): its own data root,
exec root, socket and pidfile in a short temp dir, no iptables, no default bridge, so it
touches nothing else on the machine. It is stopped by its pidfile at the end of the session,
its leftover mounts (the `netns/default` bind mount) are unmounted and its directory removed.

The test image `pacer-test/busybox:1` is built with `docker import` of a rootfs tar holding the
static busybox and its applet links (no registry is reachable). Every container carrying
Pacer's scope label under this session's temp dirs, or the `pacer-test` label, is removed at
the end; the tests themselves check that Pacer removed its containers.

Tests skip only when no engine answers and no `dockerd` binary exists.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TEST_IMAGE = "pacer-test/busybox:1"
MISSING_IMAGE = "pacer-test/does-not-exist:1"
TEST_LABEL = "pacer-test"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
DOCKERD_CANDIDATES = ("/usr/sbin/dockerd", "/usr/bin/dockerd")
APPLETS = ("sh", "httpd", "sleep", "cat", "env", "echo", "ls", "id", "true", "false", "kill", "ps", "head",
           "tail", "dd", "wget", "mkdir", "touch", "rm", "printf", "test", "hostname", "grep", "yes", "tr")
START_TIMEOUT = 40.0


@dataclass
class DockerEngine:
    """An engine the tests may use: its URL, an SDK client, and whether we started it."""

    url: str
    api: Any                      # docker.APIClient
    private_dir: Path | None = None
    pid: int | None = None
    created: list[str] = field(default_factory=list)

    def run(self, *args: str, name: str | None = None, network: str = "host", **host_config: Any) -> str:
        """Start a test container directly (labelled for clean-up); returns its id."""
        config = self.api.create_host_config(network_mode=network, **host_config)
        container = self.api.create_container(TEST_IMAGE, command=list(args) or None, name=name, detach=True,
                                              host_config=config, labels={TEST_LABEL: "1"})
        self.api.start(container["Id"])
        self.created.append(container["Id"])
        return str(container["Id"])

    def pacer_containers(self, home: Path, all: bool = True) -> list[dict[str, Any]]:
        """Containers whose Pacer scope label is this home (what a `pacer serve --home` owns)."""
        return self.api.containers(all=all, filters={"label": [f"pacer.home={home.resolve()}"]})

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self.api.inspect_container(container_id)

    def remove_pacer_containers(self, home: Path) -> int:
        removed = 0
        for summary in self.pacer_containers(home):
            _force_remove(self.api, summary["Id"])
            removed += 1
        return removed


def _force_remove(api: Any, container_id: str) -> None:
    import docker.errors
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass


def _client(url: str, timeout: float = 30.0) -> Any:
    import docker
    return docker.APIClient(base_url=url, version="auto", timeout=timeout)


def _answers(url: str) -> Any | None:
    try:
        api = _client(url, timeout=5.0)
        api.ping()
        return api
    except Exception:
        return None


def _dockerd() -> str | None:
    found = shutil.which("dockerd")
    if found:
        return found
    return next((c for c in DOCKERD_CANDIDATES if os.access(c, os.X_OK)), None)


def _busybox() -> Path | None:
    return next((c for c in BUSYBOX_CANDIDATES if c.is_file()), None)


def rootfs_tar(busybox: Path) -> bytes:
    """A minimal root filesystem: /bin/busybox, its applet links, /etc/passwd, /tmp, /www."""
    buffer = io.BytesIO()

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "etc", "www", "data", "proc", "sys", "dev"):
            add_dir(tar, name)
        add_dir(tar, "tmp", 0o1777)
        add_file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file(tar, "www/index.html", b"pacer-test\n")
    return buffer.getvalue()


def build_test_image(api: Any, busybox: Path) -> None:
    """`docker import` of the busybox rootfs, tagged TEST_IMAGE (a no-op when it exists)."""
    import docker.errors
    try:
        api.inspect_image(TEST_IMAGE)
        return
    except docker.errors.NotFound:
        pass
    repository, tag = TEST_IMAGE.split(":")
    api.import_image_from_data(rootfs_tar(busybox), repository=repository, tag=tag)
    api.inspect_image(TEST_IMAGE)


def start_private_dockerd(binary: str) -> tuple[Path, int, Any]:
    """Start dockerd per design.md's recipe in a short temp dir; returns (dir, pid, client)."""
    root = Path(tempfile.mkdtemp(prefix="pacer-dockerd-", dir="/tmp"))
    socket_path = root / "docker.sock"
    log = open(root / "dockerd.log", "ab")
    proc = subprocess.Popen(
        [binary, "--iptables=false", "--ip-masq=false", "--bridge=none",
         "--data-root", str(root / "root"), "--exec-root", str(root / "exec"),
         "-H", f"unix://{socket_path}", "--pidfile", str(root / "dockerd.pid")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
            _cleanup_dir(root)
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{tail}")
        if socket_path.exists():
            api = _answers(f"unix://{socket_path}")
            if api is not None:
                return root, proc.pid, api
        time.sleep(0.1)
    _stop_pid(proc.pid)
    _cleanup_dir(root)
    raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone (reap it)
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _stop_pid(pid: int, timeout: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


def _cleanup_dir(root: Path) -> None:
    """Unmount what dockerd left mounted under `root` (deepest first), then remove it."""
    mounts = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point == str(root) or point.startswith(str(root) + "/"):
                mounts.append(point)
    except OSError:
        pass
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def stop_private_dockerd(root: Path, started_pid: int | None = None) -> None:
    """Stop the engine by its pidfile (by the pid we started if the pidfile is gone), clean its dir."""
    pidfile = root / "dockerd.pid"
    try:
        pid: int | None = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = started_pid
    if pid is not None:
        _stop_pid(pid)
    _cleanup_dir(root)


def engine_session(base_temp: Path) -> Iterator[DockerEngine]:
    """The session fixture's body: find or start an engine, build the image, clean up after."""
    busybox = _busybox()
    engine: DockerEngine | None = None
    for url in filter(None, (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock")):
        api = _answers(url)
        if api is not None:
            engine = DockerEngine(url=url, api=api)
            break
    if engine is None:
        binary = _dockerd()
        if binary is None:
            pytest.skip("no Docker engine answers and no dockerd binary is installed (apt-get install docker.io)")
        root, pid, api = start_private_dockerd(binary)
        engine = DockerEngine(url=f"unix://{root / 'docker.sock'}", api=api, private_dir=root, pid=pid)
    try:
        if busybox is None:
            pytest.skip("busybox is not installed (apt-get install busybox-static): no test image can be built")
        build_test_image(engine.api, busybox)
        yield engine
    finally:
        try:
            leftovers = engine.api.containers(all=True, filters={"label": [TEST_LABEL]})
            for summary in engine.api.containers(all=True, filters={"label": ["pacer.home"]}):
                home = (summary.get("Labels") or {}).get("pacer.home", "")
                if engine.private_dir is not None or home.startswith(str(base_temp)):
                    leftovers.append(summary)
            for summary in leftovers:
                _force_remove(engine.api, summary["Id"])
        finally:
            engine.api.close()
            if engine.private_dir is not None:
                stop_private_dockerd(engine.private_dir, engine.pid)


class _Shared:
    """One engine per test session, however many test modules import the fixture.

    pytest makes one session-scoped fixture instance per module that imports it, so the
    engine itself lives here: the first user starts it, the last one's teardown stops it.
    """

    session: Iterator[DockerEngine] | None = None
    engine: DockerEngine | None = None
    users = 0


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """The session's Docker engine (see the module docstring)."""
    if _Shared.engine is None:
        session = engine_session(tmp_path_factory.getbasetemp())
        _Shared.engine = next(session)  # pytest.skip propagates from here
        _Shared.session = session
    _Shared.users += 1
    try:
        yield _Shared.engine
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.session is not None:
            session, _Shared.session, _Shared.engine = _Shared.session, None, None
            next(session, None)  # runs the clean-up after the generator's yield


@pytest.fixture
def docker_env(docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    """DOCKER_HOST points at the test engine for this test (and `pacer serve` processes it starts)."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.url)
    return docker_engine


@pytest.fixture
def docker_pacer(docker_env: DockerEngine, pacer_home: Path) -> Iterator[Any]:
    """Start `pacer serve` processes using the test engine; afterwards, stop them and remove their containers."""
    from .support import PacerServer

    started: list[PacerServer] = []

    def start(*extra: str) -> PacerServer:
        server = PacerServer(pacer_home, "--agent-resources", "cpus=16,mem=16384,disk=10000", *extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    docker_env.remove_pacer_containers(pacer_home)
    for container_id in docker_env.created:
        _force_remove(docker_env.api, container_id)
    docker_env.created.clear()
