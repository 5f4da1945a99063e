"""One try of each fault of `bench/chaos.py` (which runs many): nothing acknowledged is lost,
nothing runs twice, nothing is left behind."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("chaos", Path(__file__).resolve().parent.parent / "bench" / "chaos.py")
assert _spec is not None and _spec.loader is not None
chaos = importlib.util.module_from_spec(_spec)
sys.modules["chaos"] = chaos          # its dataclasses resolve their module by name
_spec.loader.exec_module(chaos)


@pytest.mark.parametrize("fault", sorted(chaos.FAULTS))
def test_one_try_of_each_fault_converges_with_nothing_lost(fault: str) -> None:
    tally = chaos.run_fault(fault, tries=1, seed=7)
    if fault == "full-disk" and tally.tries == 0:
        pytest.skip("mounting a tmpfs needs root")
    assert (tally.tries, tally.converged, tally.lost, tally.duplicates, tally.orphans) == (1, 1, 0, 0, 0), tally
