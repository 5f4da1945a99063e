"""Memory of `pacer serve` on the embedded default, against baselines measured in the same run.

Starts `pacer serve` (local agents, SQLite state, embedded metrics store, autoscaler on; the
HAProxy bridge off as in the tests, since it would bind ports 80/443; as many agents as give
every task a host port, an agent having 1,000), then populates --apps apps x --per-app tasks
(real `sleep` processes) through the API, as bench/api.py does, and prints VmRSS and VmHWM (from /proc/PID/status) of the serve process:

  * empty (started, nothing defined),
  * after populating (every task running, no deployment left),
  * after --idle-seconds of idling (health checks, sampler and autoscaler passes),

each against the aim (<= 100 MB RSS at 1,000 apps / 5,000 tasks) and as a ratio against two
baselines measured in this run: a bare `python -c "import aiohttp, pydantic, numpy"` (the
floor of any process built on the same libraries) and the same `pacer serve` empty.

The sampler writes two series per task (the autoscaler's cpu and mem measurements) into
the embedded store; at the default 10 s interval the rings grow for an hour before they are
full, which no benchmark waits for. So the store's cost at full retention for this many tasks
is measured apart, in a child process filling an `EmbeddedStore` exactly as the sampler
would, and added to the idle figure as the steady-state projection.

--trace runs serve under tracemalloc (25 frames) and prints, after the idle wait, the top
allocations by file and by line; its RSS figures are then inflated by tracemalloc's own
bookkeeping and are not the ones to compare.

--trim asks serve, after the idle wait, for pymalloc's statistics (arena MB held vs. in use:
the gap is fragmentation) and then for malloc_trim(0), and prints the RSS after it (what glibc
held free). Both --trace and --trim run serve through a small wrapper of this file, started
before the benchmark's own imports so they do not count in serve's RSS.

Every process started here is stopped by its pid.
Usage: python bench/memory.py [--apps 1000] [--per-app 5] [--idle-seconds 60] [--trace [--snapshots DIR]]
                              [--trim] [--skip-store] [--agents N]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRACE_FRAMES = 25

# -- serve instrumented (a child process) ---------------------------------------------------------
def instrumented_serve(snapshot: Path, trace: bool, argv: list[str]) -> int:
    """`pacer serve` answering two signals: SIGUSR2 writes a tracemalloc snapshot to `snapshot`
    (when `trace`), SIGUSR1 writes pymalloc's statistics next to it and then asks glibc to
    return the free pages of its heaps (`malloc_trim`), so the RSS read after it tells the
    memory held live from the memory malloc kept free."""
    import ctypes

    if trace:
        tracemalloc.start(TRACE_FRAMES)

    def dump(signum: int, frame: object) -> None:
        tracemalloc.take_snapshot().dump(str(snapshot) + ".tmp")
        os.replace(str(snapshot) + ".tmp", snapshot)

    def trim(signum: int, frame: object) -> None:
        stats = snapshot.with_suffix(".mallocstats")
        with open(stats.with_suffix(".tmp"), "w") as out:
            saved = os.dup(2)               # _debugmallocstats writes to the C-level stderr
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        os.replace(stats.with_suffix(".tmp"), stats)

    signal.signal(signal.SIGUSR2, dump)
    signal.signal(signal.SIGUSR1, trim)
    from pacer.cli import main

    sys.argv = ["pacer", *argv]
    return int(main() or 0)


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == "--instrumented-serve":
    # before the imports below: serve must not carry the benchmark's own modules in its RSS
    sys.exit(instrumented_serve(Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]))


from bench.api import populate  # noqa: E402
from tests.support import REPO, PacerServer, kill_task_processes, wait_until  # noqa: E402

AIM_MB = 100.0
PORTS_PER_AGENT = 999     # an agent's host-port range when there are several (scheduler.backends.agents)
AIM_APPS, AIM_TASKS = 1000, 5000
BASELINE_IMPORTS = "import aiohttp, pydantic, numpy"


def status_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB (MiB, as the kernel's kB are KiB)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def mappings_mb(pid: int, limit: int = 12) -> list[str]:
    """The process's resident memory by mapping (/proc/PID/smaps): heap, anonymous maps (pymalloc
    arenas, numpy buffers, thread stacks), and each shared library, largest first."""
    by_name: dict[str, float] = {}
    name = "[anon]"
    for text in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = text.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and not text.endswith(" kB"):
            name = head[5].strip() if len(head) == 6 and head[5].strip() else "[anon]"
            name = name.rsplit("/", 1)[-1]
        elif text.startswith("Rss:"):
            by_name[name] = by_name.get(name, 0.0) + int(text.split()[1]) / 1024
    ranked = sorted(by_name.items(), key=lambda item: -item[1])
    return [f"  {mb:7.1f} MB  {where}" for where, mb in ranked[:limit]]


def baseline_imports_mb() -> float:
    """RSS of a bare interpreter holding the libraries pacer serve cannot do without."""
    code = f"{BASELINE_IMPORTS}\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1024


# -- the embedded store at full retention (a child process) -------------------------------------
def store_at_retention(tasks: int) -> None:
    """Fill an `EmbeddedStore` configured as `pacer serve` configures it with a full hour of the
    sampler's points for `tasks` tasks, and print the RSS it added (MB) and its series count."""
    import gc

    from metrics import open_metrics
    from metrics.options import MetricsOptions
    from metrics.schema import VALUE, Point, TaskSample, task_points

    options = MetricsOptions()
    backend = open_metrics(options)
    store = backend.sink
    before = status_mb(os.getpid())[0]
    capacity = getattr(store, "capacity")
    t0 = 1_700_000_000 * 10**9
    step = int(options.interval * 1e9)
    kept = store.measurements or frozenset()   # type: ignore[attr-defined]
    # the tags the sampler writes, from its own function; then only the points the store keeps
    series = [(p.measurement, p.tags) for i in range(tasks) for p in task_points(TaskSample(
        app_id=f"/bench/app-{i // 5:04d}", task_id=f"bench_app-{i // 5:04d}.instance-{i:036d}._app.1",
        agent_id="agent-1", machine="host", time_ns=t0, cpu_user_ns=0, cpu_system_ns=0,
        memory_usage_bytes=1 << 20, cpus=0.001, mem_mb=1.0, container_name=f"task-{i}"))
        if p.measurement in kept]
    for n in range(capacity):
        t = t0 + n * step
        store.write([Point(measurement, tags, {VALUE: n * 1000 + 1}, t) for measurement, tags in series])
    gc.collect()
    after, peak = status_mb(os.getpid())
    print(f"{after - before:.1f} {peak - before:.1f} {len(store)} {capacity}")  # type: ignore[arg-type]


def measure_store(tasks: int) -> tuple[float, float, int, int]:
    out = subprocess.run([sys.executable, __file__, "--store-child", str(tasks)], check=True,
                         capture_output=True, text=True, cwd=REPO).stdout.split()
    return float(out[0]), float(out[1]), int(out[2]), int(out[3])


class TracedServer(PacerServer):
    """`PacerServer` whose process runs `instrumented_serve`."""

    def __init__(self, home: Path, *extra: str, trace: bool = True) -> None:
        super().__init__(home, *extra)
        self.snapshot = home.parent / "serve.tracemalloc"
        self.trace = trace

    def start(self) -> "TracedServer":
        log = open(self.home.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--instrumented-serve", str(self.snapshot), str(int(self.trace)), "serve",
             "--listen", f"127.0.0.1:{self.port}", "--home", str(self.home), *self.extra],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ping, timeout=240, what="pacer serve to answer /ping")   # tracemalloc slows imports
        return self

    def trim(self) -> tuple[float, float]:
        """(arenas' MB pymalloc holds, MB of them in use) after glibc gave back its free pages."""
        assert self.proc is not None
        stats = self.snapshot.with_suffix(".mallocstats")
        stats.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(stats.exists, timeout=60, interval=0.2, what="malloc statistics")
        arenas = used = 0.0
        for text in stats.read_text().splitlines():
            name, _, number = text.partition("=")
            if name.strip().startswith("# bytes in allocated blocks"):
                used = int(number.strip().replace(",", "")) / 2**20
            elif name.strip().startswith("Total") and not arenas:    # the first Total: all arenas
                arenas = int(number.strip().replace(",", "")) / 2**20
        return arenas, used

    def snapshot_now(self) -> "tracemalloc.Snapshot":
        """A snapshot of serve's traced allocations, tracemalloc's own left out."""
        import tracemalloc

        assert self.proc is not None
        self.snapshot.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR2)
        wait_until(self.snapshot.exists, timeout=120, interval=0.5, what="the tracemalloc snapshot")
        return tracemalloc.Snapshot.load(str(self.snapshot)).filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])

    @staticmethod
    def growth(before: "tracemalloc.Snapshot", after: "tracemalloc.Snapshot", limit: int = 30) -> list[str]:
        """What was allocated between two snapshots and is still held, by file and by line."""
        lines = []
        for key in ("filename", "lineno"):
            diff = after.compare_to(before, key)
            total = sum(d.size_diff for d in diff) / 2**20
            lines.append(f"tracemalloc growth by {key}: {total:+.1f} MB traced in all")
            for stat in diff[:limit]:
                frame = stat.traceback[0]
                where = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
                lines.append(f"  {stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+8d} blocks  {where}")
        return lines


# -- the run ------------------------------------------------------------------------------------
def line(what: str, rss: float, hwm: float, floor: float, empty: float | None) -> str:
    ratios = f"{rss / floor:4.2f}x the bare imports" + (f", {rss / empty:4.2f}x serve empty" if empty else "")
    return f"{what:<34} VmRSS {rss:6.1f} MB  VmHWM {hwm:6.1f} MB  |  {ratios}"


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--store-child":
        store_at_retention(int(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=AIM_APPS)
    parser.add_argument("--per-app", type=int, default=AIM_TASKS // AIM_APPS)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--trace", action="store_true", help="tracemalloc top allocations after the idle wait")
    parser.add_argument("--trim", action="store_true",
                        help="after the idle wait, print pymalloc's arena use and the RSS after malloc_trim")
    parser.add_argument("--snapshots", type=Path, metavar="DIR",
                        help="with --trace: keep the empty and idle tracemalloc snapshots in DIR")
    parser.add_argument("--skip-store", action="store_true", help="do not measure the store at full retention")
    parser.add_argument("--agents", type=int, default=0,
                        help="embedded agents (default: enough host ports for one per task)")
    args = parser.parse_args()
    tasks = args.apps * args.per_app
    agents = args.agents or tasks // PORTS_PER_AGENT + 1   # each task takes a host port
    # stopped from a script or a backgrounded shell: still stop serve and its tasks (finally)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    floor = baseline_imports_mb()
    print(f"baseline: `python -c '{BASELINE_IMPORTS}'` VmRSS {floor:.1f} MB", flush=True)
    with tempfile.TemporaryDirectory(prefix="pacer-bench-memory-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        flags = ("--agents", str(agents), "--agent-resources", "cpus=100000,mem=1000000,disk=1000000")
        server = (TracedServer(home, *flags, trace=args.trace) if args.trace or args.trim else PacerServer(home, *flags)).start()
        assert server.proc is not None
        pid = server.proc.pid
        try:
            time.sleep(2.0)   # the first sampler and autoscaler passes
            empty, empty_hwm = status_mb(pid)
            print("\n".join(["empty, resident by mapping:", *mappings_mb(pid, 6)]), flush=True)
            before = server.snapshot_now() if isinstance(server, TracedServer) and args.trace else None
            print(line("pacer serve empty", empty, empty_hwm, floor, None), flush=True)
            started = time.monotonic()
            populate(server, args.apps, args.per_app)
            rss, hwm = status_mb(pid)
            print(line(f"after populating {args.apps} x {args.per_app} "
                       f"({time.monotonic() - started:.0f} s)", rss, hwm, floor, empty), flush=True)
            time.sleep(args.idle_seconds)
            idle, idle_hwm = status_mb(pid)
            print(line(f"after {args.idle_seconds:.0f} s idle", idle, idle_hwm, floor, empty), flush=True)
            per_task_kb = (idle - empty) * 1024 / tasks if tasks else 0.0
            print(f"per task (idle - empty) / tasks: {per_task_kb:.1f} KB", flush=True)
            print("resident by mapping (/proc/PID/smaps):", flush=True)
            for text in mappings_mb(pid):
                print(text, flush=True)
            if isinstance(server, TracedServer) and args.trim:
                arenas, used = server.trim()
                trimmed = status_mb(pid)[0]
                print(f"pymalloc arenas {arenas:.1f} MB, {used:.1f} MB of them in use; RSS after malloc_trim(0) "
                      f"{trimmed:.1f} MB ({idle - trimmed:.1f} MB was free memory glibc kept)", flush=True)
            if isinstance(server, TracedServer) and before is not None:
                after = server.snapshot_now()
                for text in server.growth(before, after):
                    print(text, flush=True)
                if args.snapshots is not None:
                    args.snapshots.mkdir(parents=True, exist_ok=True)
                    before.dump(str(args.snapshots / "empty.tracemalloc"))
                    after.dump(str(args.snapshots / "idle.tracemalloc"))
        finally:
            server.stop()
            kill_task_processes(home)
    if not args.skip_store:
        added, added_peak, series, capacity = measure_store(tasks)
        projected = idle + added
        print(f"embedded metrics store at full retention ({series} series x {capacity} samples), measured "
              f"apart: +{added:.1f} MB (peak +{added_peak:.1f} MB) -> projected steady state {projected:.1f} MB "
              f"({projected / floor:.2f}x the bare imports)", flush=True)
    else:
        projected = idle
    scale = f" (the aim is for {AIM_APPS} apps / {AIM_TASKS} tasks)" if (args.apps, tasks) != (AIM_APPS, AIM_TASKS) else ""
    verdict = "ok" if max(idle, projected) <= AIM_MB else "MISSED"
    print(f"aim <= {AIM_MB:.0f} MB RSS at {args.apps} apps / {tasks} tasks{scale}: idle {idle:.1f} MB, "
          f"steady state {projected:.1f} MB, peak {idle_hwm:.1f} MB -> {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
