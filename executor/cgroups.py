"""Per-task cgroups: create with limits, join before exec, freeze-kill-thaw, remove, read counters.

Why cgroups: a process group holds a task's processes only while they stay in it (``setsid``
leaves it), and nothing in a group limits memory or CPU. A cgroup holds every descendant
whatever it does with sessions, the kernel enforces its limits, and its counters are the
task's usage, as cAdvisor reads them for containers.

Layout: ``<root>/<controller>/<parent>/<task id>`` on cgroup v1 (one directory per controller:
memory, cpu, cpuacct, pids, freezer), ``<root>/<parent>/<task id>`` on cgroup v2 (one directory;
the controllers enabled down the parent's ``cgroup.subtree_control``). ``parent`` is Pacer's
own (``pacer/<home hash>``): a restarted scheduler finds a task's cgroup from its task id
alone, and any other directory under it is a stray. v2 is used where ``root`` itself is a
cgroup2 mount; a hybrid host (v1 controllers plus a controller-less v2 tree at
``<root>/unified``) uses v1, where the controllers are.

A task process is in its cgroup before it execs, so nothing it starts is ever born outside:
on v1 it is started by a thread that joined the cgroup first (``executor.cgroup_spawn``, which
keeps the cheap vfork), else it joins between fork and exec (``TaskCgroup.joining``), as Mesos'
launcher does. Killing freezes first: a frozen process can neither fork nor exit, so the pids
read from ``cgroup.procs`` are exactly the ones signalled, with no pid reuse and no fork racing
the kill.

What to write for given limits, and the parsing of counter files, are pure
(``executor.cgroup_limits``); this module does the file I/O. Errors: ``LaunchFailed`` when a
task's cgroup cannot be made, ``InvalidTaskSpec`` for a task id that cannot name a directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from executor.cgroup_limits import DEFAULT_PIDS_MAX, CgroupOptions, limit_writes, parse_keyed
from executor.cgroup_usage import UNLIMITED_BYTES, read_raw, usage_v1, usage_v2
from executor.docker_spec import ContainerUsage
from executor.errors import InvalidTaskSpec, LaunchFailed

logger = logging.getLogger(__name__)

CGROUPS_V1 = "cgroups-v1"
CGROUPS_V2 = "cgroups-v2"
PROCESS_GROUP = "process-group"
DEFAULT_ROOT = Path("/sys/fs/cgroup")
V1_REQUIRED = ("memory", "cpu", "pids", "freezer")
V1_OPTIONAL = ("cpuacct",)  # CPU counters; without it CPU usage comes from /proc
V2_REQUIRED = ("memory", "cpu", "pids")
V2_KILL_FILE = "cgroup.kill"  # Linux 5.14+; older kernels freeze, kill and thaw
FREEZE_TIMEOUT = 1.0  # a process in uninterruptible sleep may never freeze: kill it anyway
POLL_SECONDS = 0.002


@dataclass(frozen=True)
class Unavailable:
    """Why tasks cannot get cgroups here; the caller falls back to process groups."""

    reason: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


@dataclass(frozen=True, slots=True)
class TaskCgroup:
    """One task's cgroup: ``dirs`` maps each controller to its directory (v2: the one directory).

    What is kept is ``parents`` (controller -> the directory holding the task's cgroup), one
    mapping shared by every task of a runtime, plus the task id: the directories are derived
    when asked. Kept as ``Path`` objects, five or six per task (each with its parts list and
    string), they were ~2 KB of every running task's memory, more than the rest of its
    bookkeeping in the executor; the usage sample, which reads them most, formats strings.
    """

    task_id: str
    version: int
    parents: Mapping[str, str | Path]   # controller -> directory of the task's cgroup's parent
    mem_mb: float | None  # the memory limit, for the OOM message; None when unlimited

    @property
    def dirs(self) -> dict[str, Path]:
        """Controller -> the task's cgroup directory (built on each call)."""
        return {controller: Path(self._dir(parent)) for controller, parent in self.parents.items()}

    def _dir(self, parent: str | Path) -> str:
        return f"{parent}/{self.task_id}"

    def _dir_of(self, controller: str) -> str | None:
        parent = self.parents.get(controller)
        return None if parent is None else self._dir(parent)

    def paths(self) -> list[Path]:
        return [Path(self._dir(parent)) for parent in dict.fromkeys(self.parents.values())]

    def file(self, controller: str, name: str) -> Path | None:
        directory = self._dir_of(controller)
        return None if directory is None else Path(directory, name)

    @contextlib.contextmanager
    def joining(self) -> Iterator[Callable[[], None]]:
        """A ``preexec_fn`` that moves the new process into this cgroup before it execs.

        The ``cgroup.procs`` files are opened here, in the parent, so the forked child only
        runs ``os.write`` on ready descriptors ("0" means the writer itself): no allocation,
        no lock, nothing that could deadlock in a child of a threaded process.
        """
        fds: list[int] = []
        try:
            for path in self.paths():
                try:
                    fds.append(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
                except OSError as error:
                    raise LaunchFailed(f"cannot launch task {self.task_id}: its cgroup: {error}") from error

            def join() -> None:
                for fd in fds:
                    os.write(fd, b"0")

            yield join
        finally:
            for fd in fds:
                os.close(fd)

    def pids(self) -> list[int]:
        """Every process in the cgroup and below it, in any of its controllers; never our own.

        On v1 a spawning thread of ours sits in a task's cgroup while it starts the task
        (``executor.cgroup_spawn``), and ``cgroup.procs`` then lists this process: it must not
        be counted, let alone signalled, as one of the task's.
        """
        found: set[int] = set()
        for top in self.paths():
            for directory, _, _ in os.walk(top):
                found.update(int(p) for p in (_read(Path(directory) / "cgroup.procs") or "").split())
        found.discard(os.getpid())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        path = self.file("memory", name)
        return 0 if path is None else parse_keyed(_read(path) or "").get("oom_kill", 0)

    async def kill_all(self) -> int:
        """SIGKILL every process in the cgroup; returns how many there were."""
        kill_file = self.file("freezer", V2_KILL_FILE) if self.version == 2 else None
        if kill_file is not None and kill_file.exists():  # v2, Linux 5.14+: one atomic write
            count = len(self.pids())
            with contextlib.suppress(FileNotFoundError):
                _write(kill_file, "1")
            return count
        await self._set_frozen(True)
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self._set_frozen(False)  # v1 frozen processes die only once thawed
        return len(pids)

    async def destroy(self, timeout: float) -> bool:
        """Kill everything in the cgroup, then remove its directories; False if that timed out.

        Listing and removing walk every hierarchy's directories (five on v1), file system work
        done on a worker thread: a task ending must not hold the scheduler's event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            removed = await asyncio.to_thread(self._remove_if_empty)
            if removed:
                return True
            if removed is None:     # processes left: kill them, then try again at once
                await self.kill_all()
                if await asyncio.to_thread(self.remove):
                    return True
            if loop.time() >= deadline:
                logger.warning("cgroup of task %s: %d processes survive SIGKILL; left in place",
                               self.task_id, len(self.pids()))
                return False
            await asyncio.sleep(POLL_SECONDS)

    def _remove_if_empty(self) -> bool | None:
        """None while processes are left; else whether the directories are gone."""
        return None if self.pids() else self.remove()

    def usage(self) -> ContainerUsage | None:
        """The cgroup's counters; None when they cannot be read (then /proc is the source)."""
        if self.version == 1:
            return self._usage_v1()
        return self._usage_v2()

    # -- internals ---------------------------------------------------------------------

    async def _set_frozen(self, frozen: bool) -> None:
        """Freeze (waiting until the kernel says so, at most ``FREEZE_TIMEOUT``) or thaw."""
        v1 = self.version == 1
        path = self.file("freezer", "freezer.state" if v1 else "cgroup.freeze")
        if path is None:
            return
        try:
            _write(path, ("FROZEN" if frozen else "THAWED") if v1 else ("1" if frozen else "0"))
        except OSError:
            return  # removed meanwhile: nothing left to freeze
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FREEZE_TIMEOUT
        while frozen and loop.time() < deadline:
            if v1 and (_read(path) or "").strip() == "FROZEN":
                return
            if not v1 and parse_keyed(_read(path.with_name("cgroup.events")) or "").get("frozen") == 1:
                return
            await asyncio.sleep(POLL_SECONDS)

    def remove(self) -> bool:
        """rmdir the cgroup (children first); True once every directory is gone."""
        gone = True
        for top in self.paths():
            for directory, _, _ in os.walk(top, topdown=False):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError:  # EBUSY: processes still exiting
                    gone = False
        return gone

    def _usage_v1(self) -> ContainerUsage | None:
        memory, cpuacct = self._dir_of("memory"), self._dir_of("cpuacct")
        if memory is None or cpuacct is None:
            return None
        return usage_v1(memory, cpuacct, self._process_count)

    def _usage_v2(self) -> ContainerUsage | None:
        directory = self._dir_of("memory")
        return None if directory is None else usage_v2(directory, self._process_count)

    def _process_count(self, directory: str) -> int:
        """Processes in the cgroup, for the usage sample: one `cgroup.procs` of one hierarchy.

        `pids()` walks every hierarchy for a kill, which must miss nothing; a sample of 5,000
        tasks every few seconds paid that walk (five trees each) for a gauge, and it held the
        sampler's thread, and through the GIL the event loop, for most of its time. A task's
        sub-cgroups (rare: only a task that makes its own) are not counted here.
        """
        procs = (read_raw(f"{directory}/cgroup.procs") or b"").split()
        own = str(os.getpid()).encode()
        return sum(1 for pid in procs if pid != own)

class Cgroups:
    """The Pacer-owned part of one hierarchy: task cgroups under ``<parent>``.

    ``mounts`` maps each controller name to its hierarchy's root (v2: the one root for all);
    ``controllers`` are those whose limits are written (default: every mounted one).
    """

    def __init__(self, version: int, mounts: Mapping[str, Path], parent: str, options: CgroupOptions,
                 controllers: Iterable[str] | None = None) -> None:
        self.version = version
        self.mounts = dict(mounts)
        self.parent = parent.strip("/")
        self.options = options
        self.controllers = frozenset(self.mounts if controllers is None else controllers)
        # one mapping for every task cgroup (TaskCgroup.parents): not a dict of paths per task
        self._parents: dict[str, str] = {c: str(mount / self.parent) for c, mount in self.mounts.items()}

    @classmethod
    def v2(cls, root: Path, parent: str, options: CgroupOptions,
           controllers: Iterable[str] = V2_REQUIRED) -> Cgroups:
        """A unified hierarchy at ``root``: one directory per task, whatever the controllers."""
        return cls(2, {name: root for name in (*V2_REQUIRED, "freezer", "cpuacct")}, parent, options, controllers)

    @property
    def mode(self) -> str:
        return CGROUPS_V1 if self.version == 1 else CGROUPS_V2

    def create(self, task_id: str, mem_mb: float, cpus: float) -> TaskCgroup:
        """The task's cgroup with its limits written; raises ``LaunchFailed`` with the OS's reason."""
        _check_name(task_id)
        limited = mem_mb > 0 and "memory" in self.controllers
        cgroup = TaskCgroup(task_id, self.version, self._parents, mem_mb if limited else None)
        try:
            self._ensure_parent()
            for path in cgroup.paths():
                path.mkdir(exist_ok=True)
            for write in limit_writes(self.version, mem_mb, cpus, self.options):
                target = cgroup.file(write.controller, write.file)
                if write.controller not in self.controllers or target is None \
                        or (write.optional and not target.exists()):
                    continue
                _write(target, write.value)
        except OSError as error:
            cgroup.remove()
            raise LaunchFailed(f"cannot create the cgroup of task {task_id}: {error}") from error
        return cgroup

    def find(self, task_id: str) -> TaskCgroup | None:
        """The cgroup a task got at launch, found again from its id (after a restart)."""
        found = {c: parent for c, parent in self._parents.items() if os.path.isdir(f"{parent}/{task_id}")}
        if not found:
            return None
        parents = self._parents if found == self._parents else found
        memory = found.get("memory")
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        limit = (_read(Path(f"{memory}/{task_id}", name)) or "").strip() if memory is not None else ""
        mem_mb = int(limit) / (1024 * 1024) if limit.isdigit() and int(limit) < UNLIMITED_BYTES else None
        return TaskCgroup(task_id, self.version, parents, mem_mb)

    def task_ids(self) -> list[str]:
        """Ids of every task cgroup under the parent, in any controller."""
        found: set[str] = set()
        for mount in set(self.mounts.values()):
            with contextlib.suppress(OSError):
                found.update(e.name for e in os.scandir(mount / self.parent) if e.is_dir())
        return sorted(found)

    def remove_parent(self) -> None:
        """rmdir ``<parent>`` where it is empty, so no directory outlives the last task."""
        for mount in set(self.mounts.values()):
            with contextlib.suppress(OSError):
                os.rmdir(mount / self.parent)

    def probe(self) -> None:
        """Create the parent and check it is a cgroup; raises OSError when it is not usable."""
        self._ensure_parent()
        for mount in set(self.mounts.values()):
            if not (mount / self.parent / "cgroup.procs").is_file():
                raise OSError(f"{mount / self.parent} is not a cgroup")
        self.remove_parent()

    def _ensure_parent(self) -> None:
        for mount in set(self.mounts.values()):
            (mount / self.parent).mkdir(parents=True, exist_ok=True)
        wanted = sorted(c for c in self.controllers if c in V2_REQUIRED)
        if self.version != 2 or not wanted:
            return
        level = next(iter(self.mounts.values()))  # v2: every controller is on the one root
        for part in ("", *Path(self.parent).parts):  # enable them on every level down to the parent
            level = level / part if part else level
            enabled = set((_read(level / "cgroup.subtree_control") or "").split())
            missing = [c for c in wanted if c not in enabled]
            if missing:
                _write(level / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _check_name(task_id: str) -> None:
    if not task_id or "/" in task_id or "\0" in task_id or task_id in (".", "..") \
            or task_id.startswith("cgroup."):
        raise InvalidTaskSpec(f"task id {task_id!r} cannot name a cgroup")


def open_cgroups(root: Path, parent: str, options: CgroupOptions) -> Cgroups | Unavailable:
    """The task cgroups of this host, or why there are none (no controllers, not writable)."""
    try:
        if (root / "cgroup.controllers").is_file():  # root is a cgroup2 mount: unified mode
            available = set((_read(root / "cgroup.controllers") or "").split())
            missing = [c for c in V2_REQUIRED if c not in available]
            if missing:
                return Unavailable(f"cgroup v2 at {root} does not offer the {'/'.join(missing)} controller")
            cgroups = Cgroups.v2(root, parent, options)
        else:
            mounts = {c: (root / c).resolve() for c in (*V1_REQUIRED, *V1_OPTIONAL)  # cpu,cpuacct: one mount
                      if (root / c / "cgroup.procs").is_file()}
            missing = [c for c in V1_REQUIRED if c not in mounts]
            if missing:
                return Unavailable(f"no cgroup v2 mount at {root} and no cgroup v1 "
                                   f"{'/'.join(missing)} controller under it")
            cgroups = Cgroups(1, mounts, parent, options)
        cgroups.probe()
    except OSError as error:
        return Unavailable(f"cannot create cgroups under {root}: {error.strerror or error}")
    return cgroups


__all__ = [
    "CGROUPS_V1", "CGROUPS_V2", "DEFAULT_PIDS_MAX", "DEFAULT_ROOT", "PROCESS_GROUP", "CgroupOptions", "Cgroups",
    "TaskCgroup", "Unavailable", "open_cgroups",
]
