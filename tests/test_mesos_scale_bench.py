"""`bench/mesos_scale.py --quick`, at a tiny size: it runs to the end and every instance was
launched, RUNNING in the simulator and recorded so by the scheduler. No timing is asserted: the
figures are the benchmark's business, this only keeps it working."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "mesos_scale.py"


def test_the_quick_benchmark_launches_every_instance() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--agents", "20", "--apps", "4", "--per-app", "15",
                           "--timeout", "120"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "20 simulated agents, 4 apps × 15 = 60 instances" in out, out
    assert re.search(r"60 RUNNING in the simulator [\d.]+ s after", out), out
    assert "the scheduler recorded 60 RUNNING" in out, out
    assert re.search(r"placement alone .*\(60 in ", out), out
    accepts = int(re.search(r"ACCEPT ([\d,]+)", out).group(1).replace(",", ""))     # type: ignore[union-attr]
    assert 1 <= accepts <= 60, out
    assert "refused by the protos: 0" in out, out
