"""Marathon's health-check rules as a table: grace, 1xx, kills at maxConsecutiveFailures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.health.state import CheckPolicy, HealthRecord, instance_health, record_check, should_kill

HTTP = CheckPolicy("HTTP", grace_period_seconds=10, max_consecutive_failures=3)


def run(policy: CheckPolicy, results: list[bool | None], *, start: float = 0.0, step: float = 5.0,
        status: int | None = None) -> list:
    rec, outcomes = HealthRecord("t"), []
    for n, ok in enumerate(results):
        out = record_check(rec, policy, ok=ok, status=status, cause=None if ok else "boom",
                           now=start + (n + 1) * step, started_at=start)
        outcomes.append(out)
        rec = out.record
    return outcomes


def test_failures_inside_grace_are_ignored_until_first_success():
    outs = run(HTTP, [False, False, False, False], step=2)   # t=2,4,6,8 < grace 10
    assert all(not o.counted_failure and not o.kill for o in outs)
    assert outs[-1].record.consecutive_failures == 0


def test_after_first_success_grace_no_longer_protects():
    outs = run(HTTP, [True, False, False, False], step=1)
    assert outs[0].flipped and outs[0].record.alive
    assert [o.counted_failure for o in outs[1:]] == [True, True, True]
    assert outs[1].flipped and not outs[1].record.alive
    assert [o.kill for o in outs] == [False, False, False, True]


@pytest.mark.parametrize("protocol, maximum, failures, kill", [
    ("HTTP", 3, 2, False), ("HTTP", 3, 3, True), ("HTTP", 0, 50, False), ("TCP", 1, 1, True),
    ("HTTPS", 0, 1, False), ("COMMAND", 0, 1, True), ("MESOS_HTTP", 2, 2, True), ("MESOS_TCP", 2, 1, False),
])
def test_kill_threshold(protocol, maximum, failures, kill):
    assert should_kill(CheckPolicy(protocol, 0, maximum), failures) is kill


def test_ignored_1xx_changes_nothing():
    policy = CheckPolicy("HTTP", 0, 1, ignore_http_1xx=True)
    out = run(policy, [False], status=101)[0]
    assert out.record == HealthRecord("t") and not out.kill


def test_success_resets_the_failure_count_and_keeps_first_success():
    outs = run(CheckPolicy("HTTP", 0, 5), [True, False, False, True])
    last = outs[-1].record
    assert last.consecutive_failures == 0 and last.alive and last.first_success == 5.0 and last.last_success == 20.0
    assert last.last_failure == 15.0 and last.last_failure_cause == "boom"


def test_instance_health_summary():
    alive, dead, fresh = HealthRecord("t", alive=True, last_success=1), HealthRecord("t", last_failure=1), \
        HealthRecord("t")
    assert instance_health(None, has_checks=False) is None
    assert instance_health([], has_checks=True) is None
    assert instance_health([alive], True) is True
    assert instance_health([alive, dead], True) is False
    assert instance_health([fresh], True) is None
    assert instance_health([alive, fresh], True) is False


@given(st.lists(st.booleans(), max_size=30), st.integers(0, 5))
def test_consecutive_failures_count_trailing_failures_after_grace(results, maximum):
    policy = CheckPolicy("HTTP", 0, maximum)
    outs = run(policy, results)
    trailing = len(results) - len("".join("1" if r else "0" for r in results).rstrip("0"))
    if outs:
        assert outs[-1].record.consecutive_failures == trailing
        assert outs[-1].record.alive == (bool(results) and results[-1])
        assert any(o.kill for o in outs) == (maximum > 0 and any(
            o.record.consecutive_failures >= maximum for o in outs))
