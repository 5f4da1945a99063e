"""The writes a scheduling pass makes, committed behind it on a thread of their own.

A pass changes instances (a launch, a status update) and deployment progress (a step done, a
deployment finished). None of that needs to be durable before the next request is answered:
a restarted scheduler reconciles instances with its backend and resumes a deployment from
its last stored step, whose actions are idempotent. But every one of those commits is an
fsync, and at 1,000 apps x 5 tasks the event loop spent close to half its time waiting in
them (670 commits in 10 s of writes, `pacer_store_write_duration_seconds`), so every API
request queued behind the disk.

So those writes are buffered by record (the last write of a record wins) and each flush hands
the buffer to one writer thread as one transaction, while the loop goes on. A flush that
finds a transaction still in flight leaves the buffer to the next one, which starts as soon
as the first ends: under load the buffer grows and the commits become fewer and larger (group
commit), instead of queueing fsyncs. A failed transaction (a full disk, ZooKeeper away)
puts its writes back under any newer ones of the same records, and the next flush tries again.

Writes that must be durable before they are acknowledged (apps, a deployment an API request
starts or cancels) still commit at once, on the caller's thread: `before_commit` first waits
for the transaction in flight (so an older write can never land after a newer one), and
`committed` then drops buffered writes of the same records, which the newer write replaced.

Without a running event loop (tests driving the scheduler step by step, the last flush at
shutdown), a flush commits on the caller's thread, as `drain` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from scheduler.state.store import DeleteDeployment, DeleteInstance, Fence, PutDeployment, PutInstance, Write

log = logging.getLogger(__name__)

Key = tuple[str, str]
Commit = Callable[[Sequence[Write], "Fence | None"], None]


def record_key(write: Write) -> Key | None:
    """Which stored record a write replaces (None: not a write this buffer takes)."""
    match write:
        case PutInstance(inst):
            return ("instance", inst.instance_id)
        case DeleteInstance(instance_id):
            return ("instance", instance_id)
        case PutDeployment(deployment_id, _) | DeleteDeployment(deployment_id):
            return ("deployment", deployment_id)
    return None


class WriteBehind:
    """Buffered writes of one `ClusterState`, and the one transaction of them in flight."""

    def __init__(self, commit: Commit, fence: Callable[[], Fence | None], *, background: bool) -> None:
        """`commit`: the store's; `fence`: the token for a commit made now (raises `FencedOut`
        when this instance may not write); `background`: commit on a thread of its own."""
        self._commit = commit
        self._fence = fence
        self._buffer: dict[Key, Write] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pacer-store") if background else None
        self._in_flight: dict[Key, Write] | None = None
        self._future: Future[None] | None = None

    def __bool__(self) -> bool:
        return bool(self._buffer) or self._in_flight is not None

    def put(self, write: Write) -> None:
        key = record_key(write)
        if key is None:
            raise TypeError(f"not a write that can be buffered: {write!r}")
        self._buffer[key] = write

    def forget(self, keys: Sequence[Key]) -> None:
        """Drop buffered writes of records a restart re-reads anyway (re-adopted instances)."""
        for key in keys:
            self._buffer.pop(key, None)

    # -- writes committed at once ------------------------------------------------------------
    def before_commit(self) -> None:
        """Wait for the transaction in flight: a write committed now must land after it."""
        self._settle(wait=True)

    def committed(self, writes: Sequence[Write]) -> None:
        """`writes` were committed at once: buffered writes of the same records are older."""
        for write in writes:
            key = record_key(write)
            if key is not None:
                self._buffer.pop(key, None)

    # -- flushing ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit the buffer: behind the loop when there is one, else here."""
        if self._executor is None or not _in_loop():
            self.drain()
            return
        self._settle(wait=False)
        if self._in_flight is not None or not self._buffer:
            return      # the one in flight starts the next when it ends
        fence = self._fence()
        batch, self._buffer = self._buffer, {}
        self._in_flight = batch
        future = self._executor.submit(self._commit, list(batch.values()), fence)
        self._future = future
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._ended, f))

    def drain(self) -> None:
        """Commit everything here and now; raises what the commit raised (the writes are kept)."""
        self._settle(wait=True)
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, {}
        try:
            self._commit(list(batch.values()), self._fence())
        except BaseException:
            self._requeue(batch)
            raise

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _ended(self, future: Future[None]) -> None:
        if future is not self._future:
            return      # settled already by a commit that waited for it
        self._settle(wait=False)
        if self._buffer:
            try:
                self.flush()
            except Exception as exc:    # no fence (leadership lost): kept for the next pass
                log.warning("state store: %d buffered writes wait for the next pass: %s", len(self._buffer), exc)

    def _settle(self, *, wait: bool) -> None:
        """Take the result of the transaction in flight, if it ended (or, with `wait`, once it has)."""
        future, batch = self._future, self._in_flight
        if future is None or batch is None or not (wait or future.done()):
            return
        self._future, self._in_flight = None, None
        try:
            future.result()
        except Exception as exc:
            self._requeue(batch)
            log.warning("state store: %d writes of the last pass were not stored, retried with the next: %s",
                        len(batch), exc)

    def _requeue(self, batch: dict[Key, Write]) -> None:
        for key, write in batch.items():
            self._buffer.setdefault(key, write)   # a newer write of the same record wins


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["WriteBehind", "record_key"]
