"""API latency at scale, each request against the floor of a Python HTTP server, in one run.

Starts `pacer serve` holding --apps apps x --per-app tasks (real `sleep` processes), then times
sequential keep-alive requests:

  * GET /v2/apps?embed=apps.tasks, GET /v2/tasks, GET /v2/apps, GET /v2/apps/{id}: p50/p99 next
    to the same bytes served by a bare aiohttp handler (a subprocess of this benchmark, started
    the same way and measured with the same client: the floor for a Python HTTP server). Aim:
    p99 <= 3x the floor and <= 50 ms.
  * POST /v2/apps (a new 1-instance app), PUT /v2/apps/{id} (scale by one), and a PUT that starts
    a rolling restart: p50/p99 against "10 ms plus one fsync", the fsync's p99 measured in the
    same run on the same file system.
  * peak RSS of `pacer serve` holding that state (aim <= 100 MB at 1,000 apps / 5,000 tasks).
  * waiting: --waiting apps that cannot be placed are added; the scheduler's CPU share over
    --idle-seconds (aim < 5% of a core) and GET /v2/tasks p50 against the figure before them (aim <= 1.2x).

Every process started here is stopped by its pid.
Usage: python bench/api.py [--apps 1000] [--per-app 5] [--rounds 50] [--waiting 1000] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import PacerServer, free_port, kill_task_processes, wait_until  # noqa: E402

SLEEP = ["sleep", "100000"]
GET_AIM_MS = 50.0
GET_FLOOR_RATIO = 3.0
WRITE_AIM_MS = 10.0


# -- the floor: a bare aiohttp handler serving fixed bytes (script mode) --------------------------
def serve_floor(port: int, bodies_dir: Path) -> None:
    from aiohttp import web

    bodies = {json.loads(p.with_suffix(".path").read_text()): p.read_bytes() for p in bodies_dir.glob("*.json")}

    async def handler(request: web.Request) -> web.Response:
        body = bodies.get(request.path_qs)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- a client -----------------------------------------------------------------------------------
class Client:
    """One keep-alive connection, timed per request."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> tuple[float, int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        start = time.perf_counter()
        self.conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        return (time.perf_counter() - start) * 1000, resp.status, data

    def close(self) -> None:
        self.conn.close()


def full_collections(port: int) -> tuple[float, float, float]:
    """(count, total seconds, upper bound of the slowest bucket hit) of the scheduler's full
    garbage collections so far, from its /metrics: a p99 far above the p50 with nothing slow in
    the handlers is often one of these."""
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/metrics", headers={"Accept": "text/plain"})
    text = conn.getresponse().read().decode()
    conn.close()
    count = total = slowest = 0.0
    below = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "pacer_gc_pause_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("generation") != "2":
                continue
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                if sample.value > below:        # the first bucket holding the slowest pause
                    slowest, below = bound, sample.value
    return count, total, slowest


def gc_line(port: int, before: tuple[float, float, float], what: str) -> str:
    count, total, slowest = full_collections(port)
    n = count - before[0]
    if n <= 0:
        return f"  full garbage collections during {what}: none"
    return (f"  full garbage collections during {what}: {n:.0f}, {1000 * (total - before[1]) / n:.1f} ms each "
            f"on average (slowest since start <= {1000 * slowest:.0f} ms)")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def fsync_ms(directory: Path, rounds: int) -> list[float]:
    """The cost of one small write + fsync where the scheduler keeps its state."""
    path = directory / "fsync-probe"
    out = []
    with open(path, "ab") as f:
        for _ in range(rounds):
            start = time.perf_counter()
            f.write(b"x" * 512)
            f.flush()
            os.fsync(f.fileno())
            out.append((time.perf_counter() - start) * 1000)
    path.unlink()
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the run ------------------------------------------------------------------------------------
def populate(server: PacerServer, apps: int, per_app: int) -> None:
    batch = 100
    for start in range(0, apps, batch):
        defs = [{"id": f"/bench/app-{i:04d}", "args": SLEEP, "instances": per_app, "cpus": 0.001, "mem": 1,
                 "labels": {"team": f"t{i % 10}", "HAPROXY_GROUP": "external"},
                 "portDefinitions": [{"port": 0, "name": "http"}]}
                for i in range(start, min(apps, start + batch))]
        status, body, _ = server.request("PUT", "/v2/apps", defs, timeout=120)
        assert status == 200, body
        print(f"  defined {min(apps, start + batch)}/{apps} apps", flush=True)
    total = apps * per_app
    last = [-1]

    def all_running() -> bool:
        status, body, _ = server.request("GET", "/v2/info", timeout=120)
        running = len(server.request("GET", "/v2/tasks?status=running", timeout=120)[1]["tasks"])
        if running // 500 != last[0] // 500:
            print(f"  {running}/{total} tasks running", flush=True)
        last[0] = running
        return running == total

    wait_until(all_running, timeout=1800, interval=2.0, what=f"{total} tasks running")
    wait_until(lambda: not server.get("/v2/deployments")[1], timeout=600, interval=1.0, what="no deployments")


def time_gets(pacer: Client, floor_port: int, paths: list[str], rounds: int, bodies_dir: Path) -> list[str]:
    for i, path in enumerate(paths):
        _, status, data = pacer.call("GET", path)
        assert status == 200, data[:200]
        (bodies_dir / f"{i}.json").write_bytes(data)
        (bodies_dir / f"{i}.path").write_text(json.dumps(path))
    floor_proc = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(floor_port), str(bodies_dir)])
    lines = []
    try:
        wait_until(lambda: _answers(floor_port), timeout=20, interval=0.1, what="the floor server")
        floor = Client(floor_port)
        for path in paths:
            ours, bare = [], []
            for _ in range(rounds):  # interleaved, so load drifts hit both alike
                ms, status, data = pacer.call("GET", path)
                ours.append(ms)
                ms, _, _ = floor.call("GET", path)
                bare.append(ms)
            (p50, p99), (f50, f99) = percentiles(ours), percentiles(bare)
            ok = p99 <= GET_FLOOR_RATIO * f99 and p99 <= GET_AIM_MS
            lines.append(f"GET {path:<28} {len(data) / 1e6:6.2f} MB  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  |  "
                         f"floor p50 {f50:6.1f} p99 {f99:6.1f}  |  p99 ratio {p99 / f99:4.2f}x "
                         f"(aim <= {GET_FLOOR_RATIO:.0f}x and <= {GET_AIM_MS:.0f} ms) {'ok' if ok else 'MISSED'}")
        floor.close()
    finally:
        floor_proc.terminate()
        floor_proc.wait(10)
    return lines


def _answers(port: int) -> bool:
    try:
        client = Client(port)
        client.call("GET", "/ping-none")
    except (OSError, http.client.HTTPException):
        return False
    client.close()
    return True


def time_writes(pacer: Client, rounds: int, home: Path, apps: int) -> list[str]:
    sync = percentiles(fsync_ms(home, rounds))[1]
    aim = WRITE_AIM_MS + sync
    cases: dict[str, list[float]] = {"POST /v2/apps (new app)": [], "PUT /v2/apps/{id} (scale)": [],
                                     "PUT /v2/apps/{id} (rolling restart)": []}
    for n in range(rounds):
        ms, status, data = pacer.call("POST", "/v2/apps", {"id": f"/bench-new/app-{n:04d}", "args": SLEEP,
                                                           "instances": 1, "cpus": 0.001, "mem": 1})
        assert status == 201, data[:300]
        cases["POST /v2/apps (new app)"].append(ms)
        ms, status, data = pacer.call("PUT", f"/v2/apps/bench/app-{n % apps:04d}", {"instances": 6})
        assert status == 200, data[:300]
        cases["PUT /v2/apps/{id} (scale)"].append(ms)
        ms, status, data = pacer.call("PUT", f"/v2/apps/bench/app-{(apps - 1 - n) % apps:04d}?force=true",
                                      {"env": {"ROUND": str(n)}})
        assert status == 200, data[:300]
        cases["PUT /v2/apps/{id} (rolling restart)"].append(ms)
    lines = [f"fsync of 512 bytes on {home}: p99 {sync:.2f} ms -> write aim p99 <= {aim:.1f} ms"]
    for name, samples in cases.items():
        p50, p99 = percentiles(samples)
        lines.append(f"{name:<38} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  |  p99 / aim {p99 / aim:4.2f} "
                     f"{'ok' if p99 <= aim else 'MISSED'}")
    return lines


def time_waiting(server: PacerServer, pacer: Client, waiting: int, seconds: float, rounds: int) -> list[str]:
    assert server.proc is not None
    probe = "/v2/tasks"  # the same bytes before and after: waiting apps have no tasks
    idle_samples = [pacer.call("GET", probe)[0] for _ in range(rounds)]
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(seconds)
    idle_share = (cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
    batch = 100
    for start in range(0, waiting, batch):  # far more memory than any agent has: never placeable
        defs = [{"id": f"/waiting/app-{i:04d}", "args": SLEEP, "instances": 1, "cpus": 0.001, "mem": 10_000_000}
                for i in range(start, min(waiting, start + batch))]
        status, body, _ = server.request("PUT", "/v2/apps", defs, timeout=120)
        assert status == 200, body
    wait_until(lambda: len(server.get("/v2/queue")[1]["queue"]) >= waiting, timeout=300, interval=1.0,
               what=f"{waiting} apps in the queue")
    time.sleep(2)  # let the first placement attempts of the new apps pass
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(seconds)
    share = (cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
    busy_samples = [pacer.call("GET", probe)[0] for _ in range(rounds)]
    idle50, busy50 = statistics.median(idle_samples), statistics.median(busy_samples)
    return [f"waiting: {waiting} unplaceable apps: scheduler CPU {share * 100:.1f}% of a core "
            f"(idle before them {idle_share * 100:.1f}%; aim < 5%) {'ok' if share < 0.05 else 'MISSED'}",
            f"waiting: GET {probe} p50 {busy50:.1f} ms vs {idle50:.1f} ms before them: "
            f"ratio {busy50 / idle50:.2f}x (aim <= 1.2x) {'ok' if busy50 <= 1.2 * idle50 else 'MISSED'}"]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-floor":
        serve_floor(int(sys.argv[2]), Path(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--per-app", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacer-bench-api-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        # each task takes a host port, and an agent has 999 of them when there are several
        agents = (args.apps * (args.per_app + 1) + 2 * args.rounds) // 999 + 1
        server = PacerServer(home, "--agents", str(agents), "--agent-resources", "cpus=100000,mem=1000000,disk=1000000",
                             "--no-autoscaler").start()
        assert server.proc is not None
        try:
            started = time.monotonic()
            populate(server, args.apps, args.per_app)
            print(f"{args.apps} apps x {args.per_app} tasks running after {time.monotonic() - started:.0f} s",
                  flush=True)
            pacer = Client(server.port)
            paths = ["/v2/apps?embed=apps.tasks", "/v2/tasks", "/v2/apps", "/v2/apps/bench/app-0007"]
            bodies = Path(tmp) / "bodies"
            bodies.mkdir()
            collections = full_collections(server.port)
            for line in time_gets(pacer, free_port(), paths, args.rounds, bodies):
                print(line, flush=True)
            print(gc_line(server.port, collections, "the GETs"), flush=True)
            collections = full_collections(server.port)
            print(f"pacer serve peak RSS {peak_rss_mb(server.proc.pid):.0f} MB holding {args.apps} apps / "
                  f"{args.apps * args.per_app} tasks (aim <= 100 MB)", flush=True)
            for line in time_writes(pacer, args.rounds, home, args.apps):
                print(line, flush=True)
            print(gc_line(server.port, collections, "the writes"), flush=True)
            if args.waiting:
                for line in time_waiting(server, pacer, args.waiting, args.idle_seconds, args.rounds):
                    print(line, flush=True)
            pacer.close()
        finally:
            server.stop()
            kill_task_processes(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
