"""Chaos: faults injected at random moments into a real `pacer serve`, and what survived.

    python bench/chaos.py [--tries 20] [--fault NAME ...] [--seed N]

Each fault is tried `--tries` times on a fresh home. After each try the scheduler must
converge (every app at its declared count, RUNNING, no deployment left) and the tally counts:

- lost: writes the API acknowledged (201/200) that are gone after the fault;
- duplicates: instances of an app beyond its declared count, or two tasks with one id;
- orphans: task processes of this home that the scheduler does not know (escapees, leftovers).

Faults: `kill9-after-201` (SIGKILL right after an app was acknowledged), `kill9-mid-scale`,
`kill9-mid-restart` (at a random moment of a scale or a rolling restart), `agent-restart`
(a graceful stop and start: tasks outlive their agents and are re-adopted), `setsid-escapee`
(a task whose child leaves its process group; deleting the app must end it too), `full-disk`
(the home's disk fills up; writes are refused, never half-done, and the server lives on).
`tests/test_chaos.py` runs one try of each in `make test`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import PacerServer, kill_task_processes, task_pids, wait_until  # noqa: E402

SERVE_ARGS = ("--agent-resources", "cpus=64,mem=65536,disk=100000", "--no-autoscaler")
CONVERGE_SECONDS = 90.0
CHECK = {"protocol": "COMMAND", "command": {"value": "true"}, "gracePeriodSeconds": 0, "intervalSeconds": 1,
         "timeoutSeconds": 5, "maxConsecutiveFailures": 3}


def sleeper(app_id: str, instances: int, **extra: object) -> dict:
    return {"id": app_id, "cmd": "sleep 3600", "instances": instances, "cpus": 0.01, "mem": 1, **extra}


@dataclass
class Tally:
    tries: int = 0
    converged: int = 0
    lost: int = 0
    duplicates: int = 0
    orphans: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (f"{name:18s} tries {self.tries:3d}  converged {self.converged:3d}  lost {self.lost}  "
                f"duplicates {self.duplicates}  orphans {self.orphans}")


class Home:
    """A fresh home with one `pacer serve` at a time; acknowledged apps are remembered."""

    def __init__(self, root: Path, *extra_args: str) -> None:
        self.root = root
        self.extra_args = extra_args
        self.path = root / "home"
        self.path.mkdir(parents=True)
        self.server: PacerServer | None = None
        self.acknowledged: dict[str, int] = {}     # app id -> instances as last acknowledged

    def start(self) -> PacerServer:
        self.server = PacerServer(self.path, *SERVE_ARGS, *self.extra_args).start()
        return self.server

    def crash(self, sig: int = signal.SIGKILL) -> None:
        assert self.server is not None
        self.server.stop(sig)

    def put(self, app: dict) -> int:
        assert self.server is not None
        method, path = ("PUT", f"/v2/apps{app['id']}") if app["id"] in self.acknowledged else ("POST", "/v2/apps")
        status, _, _ = self.server.request(method, path, app)
        if status in (200, 201):
            self.acknowledged[app["id"]] = int(app["instances"])
        return status

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        kill_task_processes(self.path)

    def judge(self, tally: Tally) -> None:
        """Wait for convergence, then count lost writes, duplicates and orphans."""
        server = self.server
        assert server is not None

        def settled() -> bool:
            try:
                apps = {a["id"]: a for a in server.get("/v2/apps?embed=apps.tasks")[1]["apps"]}
                busy = server.get("/v2/deployments")[1]
            except OSError:
                return False
            return not busy and all(a["id"] in apps and apps[a["id"]]["tasksRunning"] == n ==
                                    len(apps[a["id"]]["tasks"]) for a in ({"id": i} for i in self.acknowledged)
                                    for n in (self.acknowledged[a["id"]],))

        try:
            wait_until(settled, timeout=CONVERGE_SECONDS, interval=0.5, what="convergence")
            tally.converged += 1
        except AssertionError as exc:
            tally.notes.append(str(exc)[:300])
        apps = {a["id"]: a for a in server.get("/v2/apps?embed=apps.tasks")[1]["apps"]}
        tally.lost += sum(1 for app_id in self.acknowledged if app_id not in apps)
        known: set[str] = set()
        for app_id, n in self.acknowledged.items():
            tasks = [t["id"] for t in apps.get(app_id, {}).get("tasks", [])]
            tally.duplicates += max(0, len(tasks) - n) + (len(tasks) - len(set(tasks)))
            known |= set(tasks)
        known |= {t["id"] for t in server.get("/v2/tasks")[1]["tasks"]}
        time.sleep(0.5)          # kills asked for before convergence may still be ending
        running = task_pids(self.path)
        tally.orphans += sum(1 for task_id in set(running.values()) if task_id not in known)


def kill9_after_201(home: Home, rng: random.Random, tally: Tally) -> None:
    home.start()
    home.put(sleeper("/base", 2))
    status = home.put(sleeper(f"/fresh-{rng.randrange(10**6)}", rng.randint(1, 3)))
    assert status == 201, status
    home.crash()
    home.start()
    home.judge(tally)


def kill9_mid_scale(home: Home, rng: random.Random, tally: Tally) -> None:
    home.start()
    home.put(sleeper("/scaled", 3))
    wait_until(lambda: home.server and home.server.running("/scaled") and len(home.server.running("/scaled")) == 3,
               timeout=30, what="the first instances")
    home.put(sleeper("/scaled", rng.choice([0, 1, 6, 10])))
    time.sleep(rng.uniform(0, 0.6))
    home.crash()
    home.start()
    home.judge(tally)


def kill9_mid_restart(home: Home, rng: random.Random, tally: Tally) -> None:
    home.start()
    home.put(sleeper("/rolled", 4, healthChecks=[CHECK]))
    wait_until(lambda: home.server and len(home.server.running("/rolled")) == 4, timeout=30, what="4 instances")
    home.put(sleeper("/rolled", 4, healthChecks=[CHECK], env={"RELEASE": str(rng.randrange(10**6))}))
    time.sleep(rng.uniform(0, 3.0))
    home.crash()
    home.start()
    home.judge(tally)


def agent_restart(home: Home, rng: random.Random, tally: Tally) -> None:
    home.start()
    home.put(sleeper("/steady", rng.randint(2, 5)))
    wait_until(lambda: home.server and len(home.server.running("/steady")) == home.acknowledged["/steady"],
               timeout=30, what="instances")
    assert home.server is not None
    before = {t["id"] for t in home.server.tasks("/steady")}
    home.crash(signal.SIGTERM)
    home.start()
    home.judge(tally)
    after = {t["id"] for t in home.server.tasks("/steady")} if home.server else set()
    if after != before:
        tally.notes.append(f"agent restart replaced tasks: {sorted(before ^ after)}")


def setsid_escapee(home: Home, rng: random.Random, tally: Tally) -> None:
    server = home.start()
    app = {"id": "/escape", "cmd": "setsid sleep 3600 & exec sleep 3600", "instances": 2, "cpus": 0.01, "mem": 4}
    home.put(app)
    wait_until(lambda: len(server.running("/escape")) == 2, timeout=30, what="the escaping app")
    time.sleep(rng.uniform(0.2, 1.0))
    assert server.request("DELETE", "/v2/apps/escape")[0] == 200
    del home.acknowledged["/escape"]
    home.judge(tally)


def full_disk(home: Home, rng: random.Random, tally: Tally) -> None:
    server = home.start()
    home.put(sleeper("/before", 1))
    filler = home.root / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    for i in range(rng.randint(1, 4)):
        status = home.put(sleeper(f"/during-{i}", 1))     # refused (507) or stored, never half-done
        if status not in (201, 507):
            tally.notes.append(f"write on a full disk answered {status}")
    if server.request("DELETE", "/v2/apps/before")[0] == 200:
        del home.acknowledged["/before"]
    filler.unlink()
    home.put(sleeper("/after", 1))
    home.judge(tally)


FAULTS: dict[str, Callable[[Home, random.Random, Tally], None]] = {
    "kill9-after-201": kill9_after_201, "kill9-mid-scale": kill9_mid_scale, "kill9-mid-restart": kill9_mid_restart,
    "agent-restart": agent_restart, "setsid-escapee": setsid_escapee, "full-disk": full_disk,
}


def mounted_tmpfs(target: Path, megabytes: int) -> bool:
    return os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(target)], capture_output=True).returncode == 0


def run_fault(name: str, tries: int, seed: int, progress: Callable[[str], None] = lambda _: None) -> Tally:
    tally = Tally()
    rng = random.Random(seed)
    for n in range(tries):
        root = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
        disk = name == "full-disk"
        if disk and not mounted_tmpfs(root, 48):
            tally.notes.append("full-disk needs root to mount a tmpfs; skipped")
            shutil.rmtree(root, ignore_errors=True)
            return tally
        # the small disk of the full-disk fault is all below the default free-space watermark
        home = Home(root, "--min-free-disk-mb", "4", "--disk-watch-interval", "1") if disk else Home(root)
        try:
            tally.tries += 1
            FAULTS[name](home, rng, tally)
        except Exception as exc:  # a failed try is counted and described, the run goes on
            tally.notes.append(f"try {n + 1}: {type(exc).__name__}: {exc}"[:300])
        finally:
            home.close()
            if disk:
                subprocess.run(["umount", "-l", str(root)], check=False)
            shutil.rmtree(root, ignore_errors=True)
        progress(f"{name}: try {n + 1}/{tries} done ({tally.converged} converged)")
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), help="default: every fault")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = {}
    for name in args.fault or list(FAULTS):
        results[name] = run_fault(name, args.tries, args.seed, lambda line: print("  " + line, flush=True))
    print()
    for name, tally in results.items():
        print(tally.line(name))
        for note in tally.notes[:5]:
            print(f"    {note}")


if __name__ == "__main__":
    main()
