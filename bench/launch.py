"""Launch benchmark: Pacer against spawning the same processes directly, in the same run.

Prints three figures:
  * time to get N instances RUNNING through the API vs. spawning N processes directly: R rounds
    (5 by default), alternating which goes first so a load drift on the shared machine hits both;
    the medians and the ratio of the medians (aim <= 1.5x). One round varies 0.7-2.9x here, the
    median of five does not;
  * Docker: time to get D containers RUNNING through Pacer vs. the same `docker run -d` of the
    same image with the same limits 8, 16 and 32 at a time, in R rounds (3 by default) alternating
    which goes first; the ratio is Pacer's median against the fastest median (aim <= 1.0x): one
    round alone swings by +-10% on a shared machine. One-by-one is measured once, for reference.
    Uses the machine's engine, or a private dockerd (see tests/docker_support.py), and the
    busybox test image;
  * peak RSS of `pacer serve` holding A apps / T tasks (real processes).

Usage: python bench/launch.py [--instances 200] [--rounds 5] [--docker-instances 50] [--docker-rounds 3]
                              [--apps 1000] [--tasks 5000] [--skip-memory] [--skip-docker] [--skip-processes]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import PacerServer, kill_task_processes, task_pids, wait_until  # noqa: E402

SLEEP = ["sleep", "100000"]


def spawn_directly(n: int) -> float:
    """Baseline: fork/exec N processes in their own sessions, as the runtime does."""
    start = time.perf_counter()
    procs = [subprocess.Popen(SLEEP, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(n)]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()
    return elapsed


def spawn_into_cgroups(n: int) -> float | None:
    """The floor for isolated tasks: N processes each born in a fresh cgroup of every v1
    hierarchy Pacer uses (mkdir, then the child joins them before exec). None without
    writable v1 cgroups. Joining a v1 cgroup is the kernel's slow part (it waits for every CPU
    to pass a quiescent state), and a bare spawn pays none of it."""
    import uuid

    from executor.cgroup_limits import CgroupOptions
    from executor.cgroups import DEFAULT_ROOT, Unavailable, open_cgroups

    found = open_cgroups(DEFAULT_ROOT, f"pacer/bench-{uuid.uuid4().hex[:12]}", CgroupOptions())
    if isinstance(found, Unavailable) or found.version != 1:
        return None
    parents = [mount / found.parent for mount in dict.fromkeys(found.mounts.values())]
    procs = []
    start = time.perf_counter()
    for i in range(n):
        dirs = [parent / f"t{i}" for parent in parents]
        for directory in dirs:
            directory.mkdir(parents=True, exist_ok=True)
        procs_files = [str(directory / "cgroup.procs") for directory in dirs]

        def join(files: list[str] = procs_files) -> None:
            for name in files:
                with open(name, "w") as f:
                    f.write("0")           # "0": the writing process itself

        procs.append(subprocess.Popen(SLEEP, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=join))
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()
    for parent in parents:
        for child in sorted(parent.glob("t*"), reverse=True):
            _rmdir_when_empty(child)
        _rmdir_when_empty(parent)
    return elapsed


def _rmdir_when_empty(directory: Path) -> None:
    for _ in range(200):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:                  # EBUSY while the killed process is still leaving
            time.sleep(0.01)


def launch_through_pacer(n: int, home: Path) -> float:
    server = PacerServer(home, "--agent-resources", "cpus=1000,mem=1000000,disk=100000").start()
    try:
        app = {"id": "/bench", "args": SLEEP, "instances": n, "cpus": 0.001, "mem": 1}
        start = time.perf_counter()
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body
        wait_until(lambda: server.get("/v2/apps/bench")[1]["app"]["tasksRunning"] == n, timeout=600,
                   interval=0.05, what=f"{n} running")
        return time.perf_counter() - start
    finally:
        server.stop()
        kill_task_processes(home)


def process_rounds(n: int, rounds: int, tmp: Path) -> None:
    """Alternate bare spawns, spawns into cgroups and launches through Pacer; print each round,
    the medians, and Pacer's ratio to both floors."""
    direct: list[float] = []
    isolated: list[float] = []
    through: list[float] = []
    for k in range(rounds):
        order = ("direct", "cgroups", "pacer") if k % 2 == 0 else ("pacer", "cgroups", "direct")
        for which in order:
            if which == "direct":
                direct.append(spawn_directly(n))
            elif which == "cgroups":
                floor = spawn_into_cgroups(n)
                if floor is not None:
                    isolated.append(floor)
            else:
                through.append(launch_through_pacer(n, tmp / f"launch-{k}"))
        in_cgroups = f", into cgroups {isolated[-1]:.3f} s" if isolated else ""
        print(f"  round {k + 1}: direct {direct[-1]:.3f} s{in_cgroups}, through Pacer {through[-1]:.3f} s "
              f"({through[-1] / direct[-1]:.2f}x)", flush=True)
    bare, pacer = statistics.median(direct), statistics.median(through)
    print(f"launch {n} processes, median of {rounds} rounds: direct {bare:.3f} s, through Pacer {pacer:.3f} s, "
          f"ratio {pacer / bare:.2f}x (aim <= 1.5x)")
    if isolated:
        floor = statistics.median(isolated)
        print(f"  each born in its own v1 cgroups, as Pacer's tasks are: {floor:.3f} s ({floor / bare:.2f}x a bare "
              f"spawn); Pacer {pacer / floor:.2f}x that floor")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_with(apps: int, tasks: int, home: Path) -> tuple[float, float]:
    server = PacerServer(home, "--agent-resources", "cpus=100000,mem=10000000,disk=100000").start()
    try:
        assert server.proc is not None
        idle = peak_rss_mb(server.proc.pid)
        per_app, extra = divmod(tasks, apps)
        for i in range(apps):
            n = per_app + (1 if i < extra else 0)
            app = {"id": f"/mem/app-{i:04d}", "args": SLEEP, "instances": n, "cpus": 0.001, "mem": 1,
                   "portDefinitions": [],
                   "labels": {"team": f"t{i % 10}"}}
            status, body, _ = server.request("POST", "/v2/apps", app)
            assert status == 201, body
            if i % 100 == 99:
                print(f"  defined {i + 1}/{apps} apps", flush=True)
        wait_until(lambda: len(server.get("/v2/tasks?status=running")[1]["tasks"]) == tasks, timeout=900,
                   interval=1.0, what=f"{tasks} running")
        server.get("/v2/apps?embed=apps.tasks")
        return idle, peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
        kill_task_processes(home)


DOCKER_CPUS = 0.1
DOCKER_MEM_MB = 16
DOCKER_PARALLELISM = (8, 16, 32)


def docker_run_directly(url: str, image: str, n: int, parallel: int = 1) -> tuple[float, list[str]]:
    """Baseline: `docker run -d` N times (host network, same limits as Pacer sets); returns (s, ids)."""
    cpus_quota = int(DOCKER_CPUS * 100_000)
    command = ["docker", "-H", url, "run", "-d", "--network", "host", "--label", "pacer-test=1",
               "--cpu-shares", str(int(DOCKER_CPUS * 1024)), "--cpu-period", "100000",
               "--cpu-quota", str(cpus_quota), "--memory", f"{DOCKER_MEM_MB}m", image, "sleep", "100000"]

    def one(_: int) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        ids = list(pool.map(one, range(n)))
    return time.perf_counter() - start, ids


def docker_through_pacer(url: str, image: str, n: int, home: Path) -> float:
    os.environ["DOCKER_HOST"] = url
    server = PacerServer(home, "--agent-resources", "cpus=1000,mem=1000000,disk=100000").start()
    try:
        app = {"id": "/bench-docker", "args": ["sleep", "100000"], "instances": n, "cpus": DOCKER_CPUS,
               "mem": DOCKER_MEM_MB, "taskKillGracePeriodSeconds": 0,
               "container": {"type": "DOCKER", "docker": {"image": image}}}
        start = time.perf_counter()
        status, body, _ = server.request("POST", "/v2/apps", app)
        assert status == 201, body
        wait_until(lambda: server.get("/v2/apps/bench-docker")[1]["app"]["tasksRunning"] == n, timeout=600,
                   interval=0.05, what=f"{n} containers running")
        elapsed = time.perf_counter() - start
        assert server.request("DELETE", "/v2/apps/bench-docker")[0] == 200
        return elapsed
    finally:
        server.stop()


def docker_run_removed(url: str, image: str, n: int, parallel: int, api: Any) -> float:
    """`docker_run_directly`, its containers removed afterwards (outside the timing)."""
    elapsed, ids = docker_run_directly(url, image, n, parallel=parallel)
    for container_id in ids:
        api.remove_container(container_id, force=True)
    return elapsed


def docker_column(n: int, rounds: int, tmp: Path) -> None:
    """Docker rounds: `docker run -d` 8, 16 and 32 at a time and Pacer, alternating which goes first
    (one engine, one machine: a load drift hits both); the ratio is Pacer's median against the
    fastest median. One by one is measured once, for reference (it takes as long as all the rest)."""
    from tests import docker_support

    if shutil.which("docker") is None:
        print("docker: skipped (no docker CLI for the baseline)")
        return
    session = docker_support.engine_session(tmp)
    try:
        engine = next(session)
    except BaseException as exc:  # pytest.skip outside pytest raises its Skipped outcome
        print(f"docker: skipped ({exc})")
        return
    try:
        image = docker_support.TEST_IMAGE
        one_by_one = docker_run_removed(engine.url, image, n, 1, engine.api)
        print(f"  docker run -d 1 at a time: {one_by_one:.3f} s", flush=True)
        baselines: dict[int, list[float]] = {parallel: [] for parallel in DOCKER_PARALLELISM}
        through: list[float] = []
        for k in range(rounds):
            home = tmp / f"docker-{k}"
            home.mkdir()
            if k % 2 == 1:
                through.append(docker_through_pacer(engine.url, image, n, home))
            for parallel in DOCKER_PARALLELISM:
                baselines[parallel].append(docker_run_removed(engine.url, image, n, parallel, engine.api))
            if k % 2 == 0:
                through.append(docker_through_pacer(engine.url, image, n, home))
            engine.remove_pacer_containers(home)
            print(f"  round {k + 1}: " + ", ".join(f"docker run -d {p} at a time {baselines[p][-1]:.3f} s"
                                                   for p in DOCKER_PARALLELISM)
                  + f", through Pacer {through[-1]:.3f} s", flush=True)
        medians = {parallel: statistics.median(times) for parallel, times in baselines.items()}
        fastest = min(DOCKER_PARALLELISM, key=lambda parallel: medians[parallel])
        pacer = statistics.median(through)
        print(f"launch {n} containers, median of {rounds} rounds: through Pacer {pacer:.3f} s; fastest docker run -d "
              f"({fastest} at a time) {medians[fastest]:.3f} s, ratio {pacer / medians[fastest]:.2f}x (aim <= 1.0x); "
              f"one by one {one_by_one:.3f} s ({pacer / one_by_one:.2f}x)")
    finally:
        next(session, None)  # removes leftovers, stops a private dockerd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="process launch rounds (the median is reported)")
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--docker-instances", type=int, default=50)
    parser.add_argument("--docker-rounds", type=int, default=3, help="Docker rounds (the medians are reported)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacer-bench-") as tmp:
        if not args.skip_processes:
            process_rounds(args.instances, args.rounds, Path(tmp))
        if not args.skip_docker:
            docker_column(args.docker_instances, args.docker_rounds, Path(tmp))
        if not args.skip_memory:
            idle, peak = memory_with(args.apps, args.tasks, Path(tmp) / "memory")
            print(f"pacer serve RSS: idle {idle:.0f} MB, peak with {args.apps} apps / {args.tasks} tasks "
                  f"{peak:.0f} MB (aim <= 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
