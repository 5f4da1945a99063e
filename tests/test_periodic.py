"""The guarded periodic loop: failures are counted and survived, cancellation always ends it.

Every check waits for an event or a counter, with a generous deadline as a safety net only;
where a test needs "nothing happened", the loop's interval is huge, so any round that does
happen can only come from the behaviour under test (a wake, a new interval value).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from periodic import LoopStats, run_periodically

HUGE = 1e6          # an interval no test outlives: a round after it must have been woken
DEADLINE = 10.0     # safety net for "wait until it happens", never the assertion itself
LOG = logging.getLogger("tests.periodic")


class Steps:
    """A step that counts its rounds and raises the queued errors, one per round."""

    def __init__(self, errors: list[Exception | None] | None = None) -> None:
        self.calls = 0
        self.errors = list(errors or [])
        self.during: Callable[[int], None] | None = None

    def __call__(self) -> None:
        self.calls += 1
        if self.during is not None:
            self.during(self.calls)
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`; fail (not hang) if it never comes."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failing_round_is_counted_and_the_loop_goes_on() -> None:
    steps = Steps([ValueError("one"), KeyError("two"), None])
    stats = LoopStats()
    task = asyncio.create_task(run_periodically("t", steps, 0, log=LOG, stats=stats))
    await until(lambda: steps.calls >= 4)
    await stop(task)
    assert stats.errors == 2
    assert stats.rounds >= 3
    assert stats.last_error is None      # a good round clears it


async def test_the_last_error_is_kept_while_rounds_fail() -> None:
    steps = Steps([RuntimeError("down")] * 1000)
    stats = LoopStats()
    task = asyncio.create_task(run_periodically("t", steps, 0, log=LOG, stats=stats))
    await until(lambda: stats.errors >= 3)
    await stop(task)
    assert stats.last_error == "RuntimeError: down"


async def test_an_async_step_is_awaited() -> None:
    done = asyncio.Event()

    async def step() -> None:
        await asyncio.sleep(0)
        done.set()

    task = asyncio.create_task(run_periodically("t", step, HUGE, log=LOG))
    await asyncio.wait_for(done.wait(), DEADLINE)
    await stop(task)


async def test_cancellation_during_the_wait_ends_the_loop() -> None:
    steps = Steps()
    stats = LoopStats()
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG, wake=asyncio.Event(), stats=stats))
    await until(lambda: stats.rounds == 1)
    await stop(task)
    assert stats.errors == 0


async def test_cancellation_inside_a_round_propagates_and_is_no_error() -> None:
    entered = asyncio.Event()
    stats = LoopStats()

    async def step() -> None:
        entered.set()
        await asyncio.Event().wait()     # a round that only cancellation ends

    task = asyncio.create_task(run_periodically("t", step, 0, log=LOG, stats=stats))
    await asyncio.wait_for(entered.wait(), DEADLINE)
    await stop(task)
    assert stats.errors == 0 and stats.rounds == 0


async def test_cancellation_in_the_same_pass_as_a_wake_still_ends_the_loop() -> None:
    # On Python 3.11 `asyncio.wait_for` returns normally when both land together; the loop
    # must not treat that as a wake and run on.
    wake = asyncio.Event()
    steps = Steps()
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG, wake=wake))
    await until(lambda: steps.calls == 1)
    await asyncio.sleep(0)               # let the loop reach its wait
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=DEADLINE)
    assert task in done, "the cancellation was swallowed: the loop is still running"
    assert task.cancelled()


async def test_wake_ends_the_wait_early() -> None:
    wake = asyncio.Event()
    steps = Steps()
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG, wake=wake))
    await until(lambda: steps.calls == 1)
    wake.set()
    await until(lambda: steps.calls == 2)
    assert not wake.is_set()             # cleared for the next round
    await stop(task)


async def test_a_wake_during_a_round_gives_one_more_round() -> None:
    wake = asyncio.Event()
    steps = Steps()
    steps.during = lambda n: wake.set() if n == 1 else None
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG, wake=wake))
    await until(lambda: steps.calls == 2)
    await stop(task)


async def test_a_callable_interval_is_read_every_round() -> None:
    steps = Steps()
    reads: list[int] = []

    def interval() -> float:
        reads.append(steps.calls)
        return 0 if steps.calls < 3 else HUGE

    task = asyncio.create_task(run_periodically("t", steps, interval, log=LOG))
    await until(lambda: steps.calls == 3 and len(reads) == 3)
    for _ in range(20):                  # had the first value stuck, rounds would go on
        await asyncio.sleep(0)
    await stop(task)
    assert steps.calls == 3
    assert reads == [1, 2, 3]


async def test_the_same_error_is_logged_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    steps = Steps([RuntimeError("boom")] * 1000)
    stats = LoopStats()
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        task = asyncio.create_task(run_periodically("sampler", steps, 0, log=LOG, stats=stats))
        await until(lambda: stats.errors >= 5)
        await stop(task)
    records = [r for r in caplog.records if r.name == LOG.name]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR and "sampler" in records[0].getMessage()
    assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], RuntimeError)


async def test_a_new_error_or_a_recurrence_after_a_good_round_is_logged_again(
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    steps = Steps([a, a, b, b, None, b, b])
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        task = asyncio.create_task(run_periodically("t", steps, 0, log=LOG))
        await until(lambda: steps.calls >= 8)
        await stop(task)
    logged = [r.exc_info[1] for r in caplog.records if r.name == LOG.name and r.exc_info]
    assert logged == [a, b, b]


async def test_first_delay_waits_before_the_first_round() -> None:
    wake = asyncio.Event()
    steps = Steps()
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG, wake=wake, first_delay=True))
    for _ in range(20):
        await asyncio.sleep(0)
    assert steps.calls == 0
    wake.set()
    await until(lambda: steps.calls == 1)
    await stop(task)


async def test_without_first_delay_the_first_round_runs_at_once() -> None:
    steps = Steps()
    task = asyncio.create_task(run_periodically("t", steps, HUGE, log=LOG))
    await until(lambda: steps.calls == 1)
    await stop(task)


def test_fixed_beat_keeps_rounds_apart_by_the_interval_and_restarts_after_an_overrun() -> None:
    from periodic import FixedBeat

    now = [100.0]
    beat = FixedBeat(10.0, lambda: now[0])
    now[0] = 103.0                      # a round took 3 s: wait the rest of the beat
    assert beat() == 7.0
    now[0] = 110.5                      # the next round started on the beat and took 0.5 s
    assert beat() == 9.5
    now[0] = 145.0                      # a round overran by far: no burst, a fresh beat
    assert beat() == 10.0
