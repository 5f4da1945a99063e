"""Stopping a Pacer process: bounded, and at once on a second signal.

Tasks outlive the scheduler by design (the next start re-adopts them) and every acknowledged
write is committed before it is answered (SQLite, synchronous), so nothing a shutdown step
could still do is worth waiting for without bound. Hence:

* the first SIGTERM or SIGINT sets `StopSignals.stop`; the process then runs its shutdown
  steps, each with its own timeout, all of them within one deadline (`SHUTDOWN_SECONDS`); a
  step that runs out of time is logged with its name and left behind, the next one runs;
* a second SIGTERM or SIGINT ends the process at once (`os._exit` after one line on stderr):
  an operator who asks twice has decided not to wait;
* a watchdog thread ends the process `WATCHDOG_SECONDS` after the first signal whatever it
  is doing, for what no timeout reaches (an event loop blocked in a call);
* `run_main` replaces `asyncio.run`, which waits without a bound for leftover tasks and
  executor threads, and `leave` does not let the interpreter join worker threads still busy
  in a blocking call (a Docker request, a health probe) at exit.

The handlers are plain `signal.signal` handlers, not `loop.add_signal_handler` callbacks:
Python runs them between two bytecodes of the main thread, so a second signal works even
when the event loop is busy, and the first one only schedules the stop on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 8.0
"""All shutdown steps together: within the 10 s `docker stop` grants before its SIGKILL."""

WATCHDOG_SECONDS = 9.5
"""From the first signal to the end of the process, whatever is still running."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

ECHO_SECONDS = 0.2
"""A second signal this soon after the first is the same request delivered twice (`timeout`
and `kill -- -PGID` signal the process and its group), not an operator asking again."""

EXIT_WATCHDOG = 1
"""Exit status when the watchdog ended a shutdown that did not finish in time."""

SLOW_STEP_SECONDS = 0.5
"""A step that took this long is named in the log even when it finished."""

LEFTOVER_SECONDS = 1.0
"""After the main coroutine: how long cancelled leftover tasks and idle worker threads get."""


def exit_now(message: str, status: int) -> None:
    """One line on stderr, then end the process without running anything else.

    `os.write` rather than `print` or logging: this runs inside a signal handler or the
    watchdog thread, where the interrupted code may hold the locks those take.
    """
    try:
        os.write(2, f"pacer: {message}\n".encode(errors="replace"))
    finally:
        os._exit(status)


class StopSignals:
    """SIGTERM/SIGINT for one process run: the first asks for a stop, the second exits.

    `install` must be called from the main thread, inside the running event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, watchdog_seconds: float = WATCHDOG_SECONDS) -> None:
        self.stop = asyncio.Event()
        self._loop = loop
        self._watchdog_seconds = watchdog_seconds
        self._first: int | None = None
        self._first_at = 0.0
        self._armed = threading.Event()

    def install(self) -> None:
        """Take SIGTERM and SIGINT for the rest of the process's life (a signal after the loop
        closed ends the process at once), and start the watchdog, which waits for the first."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        threading.Thread(target=self._watchdog, name="pacer-shutdown-watchdog", daemon=True).start()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._first is not None:
            if time.monotonic() - self._first_at < ECHO_SECONDS:
                return
            exit_now(f"second {name} while stopping: exiting now", 128 + signum)
        self._first = signum
        self._first_at = time.monotonic()
        self._armed.set()
        try:
            self._loop.call_soon_threadsafe(self._begin, name)
        except RuntimeError:  # the loop is closed: the process is on its way out already
            exit_now(f"{name} while exiting: exiting now", 128 + signum)

    def _begin(self, name: str) -> None:
        log.info("%s received: stopping within %.0f s (a second signal exits at once)", name, self._watchdog_seconds)
        self.stop.set()

    def _watchdog(self) -> None:
        self._armed.wait()
        time.sleep(self._watchdog_seconds)
        exit_now(f"shutdown did not finish within {self._watchdog_seconds:.1f} s of the signal: exiting now",
                 EXIT_WATCHDOG)


@dataclass(frozen=True)
class Step:
    """One shutdown step: `run` gets at most `timeout` seconds (less if the deadline is nearer).

    `expired` runs, synchronously, when the step ran out of time or was skipped for lack of
    it: the last resort that must not wait (stop a child process by its pid).
    """

    name: str
    run: Callable[[], Awaitable[None]]
    timeout: float
    expired: Callable[[], None] | None = None


async def run_steps(steps: Sequence[Step], deadline_seconds: float = SHUTDOWN_SECONDS) -> list[str]:
    """Run the steps in order within the deadline; the names of those that did not finish.

    A step that raises is logged and counts as done: the steps after it still run.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    unfinished: list[str] = []
    for step in steps:
        started = loop.time()
        budget = min(step.timeout, deadline - started)
        if budget <= 0:
            log.warning("shutdown: skipped %s, the %.0f s shutdown deadline has passed", step.name, deadline_seconds)
            _expired(step, unfinished)
            continue
        try:
            async with asyncio.timeout(budget):
                await step.run()
        except TimeoutError:
            log.warning("shutdown: %s did not finish within %.1f s; left behind", step.name, budget)
            _expired(step, unfinished)
            continue
        except Exception as exc:  # one failed step must not keep the others from running
            log.warning("shutdown: %s failed: %s", step.name, exc)
            continue
        took = loop.time() - started
        log.log(logging.INFO if took >= SLOW_STEP_SECONDS else logging.DEBUG, "shutdown: %s done in %.2f s",
                step.name, took)
    return unfinished


def _expired(step: Step, unfinished: list[str]) -> None:
    unfinished.append(step.name)
    if step.expired is None:
        return
    try:
        step.expired()
    except Exception as exc:  # the last resort failed too: say so, go on
        log.warning("shutdown: %s: %s", step.name, exc)


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel the service tasks and wait until each has ended (the caller bounds the wait)."""
    for task in tasks:
        task.cancel()
    pending = [t for t in tasks if not t.done()]
    while pending:
        _, still = await asyncio.wait(pending, timeout=1.0)
        if still:
            log.info("shutdown: waiting for %s", ", ".join(sorted(t.get_name() for t in still)))
        pending = list(still)


async def until_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); True when `work` completed.

    A signal during start-up then stops the process without waiting for the start-up to end.
    """
    job = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        job.cancel()
        raise
    finally:
        stopped.cancel()
    if job.done():
        job.result()        # its exception, if it raised
        return True
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    return False


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """Run a service's main coroutine on a new event loop, like `asyncio.run`, and return its
    result; what is left afterwards (tasks, executor threads) gets `LEFTOVER_SECONDS`, not
    the unbounded waits of `asyncio.run` on Python 3.11."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()    # the default executor is shut down without waiting


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_SECONDS))
    for task in leftovers:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("task %s ended with %r while stopping", task.get_name(), task.exception())
    loop.run_until_complete(_bounded(loop.shutdown_asyncgens(), LEFTOVER_SECONDS))


async def _bounded(work: Awaitable[None], seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        pass


def leave(status: int) -> int:
    """`status`, once idle worker threads have ended; or, when some are still busy in a
    blocking call, the end of the process right now with `status`, which the interpreter
    would otherwise delay by joining them."""
    deadline = time.monotonic() + LEFTOVER_SECONDS
    for thread in _worker_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = sorted({thread.name for thread in _worker_threads()})
    if not busy:
        return status
    log.info("not waiting for %d busy worker thread(s): %s", len(busy), ", ".join(busy))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _worker_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate()
            if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()]
