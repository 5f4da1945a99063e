"""``pacer executor``: Pacer as a Mesos custom executor, speaking the v1 executor HTTP API.

The agent starts this process with ``MESOS_*`` variables (``mesos_protocol.config_from_env``).
It subscribes with ``POST /api/v1/executor`` (a ``SUBSCRIBE`` call; the answer is a RecordIO
stream of JSON events, the first ``SUBSCRIBED``); every other call is a separate POST answered
202. The executor API has no ``Mesos-Stream-Id``: the agent knows the executor by its ids.

Tasks run through the same ``ProcessRuntime`` as the embedded agents' (own session and process
group, the task's environment, SIGTERM then SIGKILL after the kill grace period); no cgroups of
its own: on Mesos the agent's containerizer isolates the executor's container, tasks included.

Life cycle, and why:

* ``LAUNCH`` → TASK_STARTING, the process starts, TASK_RUNNING (with the pid and usage in
  ``data``); its end → TASK_FINISHED / TASK_FAILED / TASK_KILLED with the exit status in the
  message. ``KILL`` → TASK_KILLING first (the framework has TASK_KILLING_STATE), then the kill.
* Updates are sent in order by one sender; each stays in the ``Ledger`` until the agent's
  ``ACKNOWLEDGED`` and is listed again in the next ``SUBSCRIBE``.
* The stream ends (the agent restarted): with ``MESOS_CHECKPOINT`` the executor re-subscribes
  with backoff (at most ``MESOS_SUBSCRIPTION_BACKOFF_MAX`` apart) for ``MESOS_RECOVERY_TIMEOUT``;
  the tasks keep running meanwhile. Past it, or without checkpointing, it kills its tasks and
  exits 1 (``AgentUnreachable``): nobody could report their ends any more.
* ``SHUTDOWN`` (or SIGTERM) kills every task within ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``,
  sends the last updates and exits 0; so does the end of the last task once all its updates
  were acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any


import aiohttp

from executor.errors import AgentUnreachable, InvalidTaskSpec, LaunchFailed, RecordIOError
from executor.mesos_protocol import (
    TASK_KILLING,
    TASK_RUNNING,
    TASK_STARTING,
    ExecutorConfig,
    Json,
    Ledger,
    backoff,
    exit_status,
    grace_seconds,
    launch_spec,
    subscribe_call,
    task_status,
    update_call,
    usage_data,
)
from executor.process import DEFAULT_KILL_GRACE_SECONDS, ProcessRuntime
from executor.recordio import RecordIODecoder
from executor.states import TASK_FAILED, TASK_KILLED, TaskExit
from executor.stats import process_group_usage

log = logging.getLogger(__name__)

FIRST_SUBSCRIBE_SECONDS = 60.0
"""At most this long (or the recovery timeout, if shorter) to reach the agent the first time."""
CALL_TIMEOUT = 10.0
SHUTDOWN_MARGIN = 0.5
"""Of the shutdown grace period, kept for sending the last updates after the kills."""

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class _StreamEnded(Exception):
    """The subscription's stream ended (or could not be opened): reconnect, or give up."""


class MesosExecutor:
    """One executor run: subscribe, run what the agent launches, report, leave when done."""

    def __init__(self, config: ExecutorConfig, *, clock: Callable[[], float] = time.time,
                 new_uuid: Callable[[], bytes] = lambda: os.urandom(16)) -> None:
        self.config = config
        self.ledger = Ledger()
        self._clock = clock
        self._new_uuid = new_uuid
        self._runtime = ProcessRuntime(self._on_exit)
        self._agent_id: str | None = None
        self._grace: dict[str, float] = {}
        self._killing: set[str] = set()
        self._kills: set[asyncio.Task[None]] = set()
        self._outbox: asyncio.Queue[Json] = asyncio.Queue()
        self._resent: set[str] = set()           # uuids the last SUBSCRIBE carried: not posted again
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._exit = 0
        self._session: aiohttp.ClientSession | None = None
        self._shutting_down: asyncio.Task[None] | None = None

    # -- the run ------------------------------------------------------------------------------
    async def run(self) -> int:
        """0 after SHUTDOWN, SIGTERM, or once every task ended and was acknowledged; 1 when the
        agent could not be reached (``AgentUnreachable`` is logged, not raised)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        self._session = aiohttp.ClientSession(headers=HEADERS)
        sender = loop.create_task(self._send_forever(), name="executor-updates")
        try:
            await self._subscribe_forever()
        except AgentUnreachable as exc:
            log.error("pacer executor %s: %s", self.config.executor_id, exc)
            self._exit = 1
        finally:
            await self._runtime.close(kill=True)
            sender.cancel()
            await asyncio.gather(sender, *self._kills, return_exceptions=True)
            await self._session.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return self._exit

    async def _subscribe_forever(self) -> None:
        loop = asyncio.get_running_loop()
        subscribed_once = False
        lost_at = loop.time()
        limit = min(self.config.recovery_timeout, FIRST_SUBSCRIBE_SECONDS)
        attempt = 0
        while not self._done.is_set():
            try:
                await self._until_done(self._subscription())
            except _StreamEnded as exc:
                self._connected.clear()
                if self._done.is_set():
                    return
                if exc.args and exc.args[0] == "subscribed":   # it was up: the agent went away now
                    subscribed_once, lost_at, attempt = True, loop.time(), 0
                    limit = self.config.recovery_timeout
                    if not self.config.checkpoint:
                        raise AgentUnreachable("the agent closed the subscription and the framework does "
                                               "not checkpoint: not waiting for it") from None
                    log.warning("subscription to the agent lost; re-subscribing for up to %.0f s",
                                self.config.recovery_timeout)
                    continue
                waited = loop.time() - lost_at
                if waited >= limit:
                    what = "re-subscribe" if subscribed_once else "subscribe"
                    raise AgentUnreachable(f"could not {what} to the agent at {self.config.url} within "
                                           f"{limit:g} s: {exc}") from None
                delay = min(backoff(attempt, self.config.backoff_max), max(0.0, limit - waited))
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), delay)

    async def _until_done(self, work: Any) -> None:
        """Run ``work`` (a subscription) until it ends or the executor is done, whichever first:
        a SHUTDOWN must not wait for the agent's next event."""
        task = asyncio.ensure_future(work)
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({task, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (task, done):
                future.cancel()
            await asyncio.gather(done, return_exceptions=True)
        if task.done() and not task.cancelled():
            task.result()                            # _StreamEnded, or returns
        else:
            await asyncio.gather(task, return_exceptions=True)

    async def _subscription(self) -> None:
        """One SUBSCRIBE and its stream, until it ends; raises ``_StreamEnded("subscribed")``
        when it ended after SUBSCRIBED, ``_StreamEnded(reason)`` when it never got there."""
        assert self._session is not None
        updates = list(self.ledger.updates)
        call = subscribe_call(self.config, self.ledger.unacknowledged_tasks(), updates)
        timeout = aiohttp.ClientTimeout(total=None, connect=CALL_TIMEOUT, sock_connect=CALL_TIMEOUT)
        try:
            response = await self._session.post(self.config.url, data=json.dumps(call), timeout=timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _StreamEnded(f"{type(exc).__name__}: {exc}") from None
        subscribed = False
        try:
            if response.status != 200:
                raise _StreamEnded(f"SUBSCRIBE answered {response.status}: {(await response.text()).strip()}")
            decoder = RecordIODecoder()
            async for chunk in response.content.iter_any():
                for record in decoder.feed(chunk):
                    event = json.loads(record)
                    if event.get("type") == "SUBSCRIBED":
                        subscribed = True
                        self._resent = {u["uuid"] for u in updates}
                        self._subscribed(event["subscribed"])
                    await self._handle(event)
                if self._done.is_set():
                    return
        except (aiohttp.ClientError, OSError, RecordIOError, ValueError) as exc:
            log.info("executor stream ended: %s", exc)
        finally:
            response.close()
        raise _StreamEnded("subscribed" if subscribed else "the agent closed the stream before SUBSCRIBED")

    def _subscribed(self, subscribed: Json) -> None:
        self._agent_id = subscribed.get("agent_info", {}).get("id", {}).get("value")
        self._connected.set()
        log.info("subscribed to agent %s as executor %s", self._agent_id, self.config.executor_id)

    # -- events -------------------------------------------------------------------------------
    async def _handle(self, event: Json) -> None:
        kind = event.get("type")
        if kind == "LAUNCH":
            await self._launch(event["launch"]["task"])
        elif kind == "LAUNCH_GROUP":
            for task in event["launch_group"]["task_group"].get("tasks", []):
                self.ledger.launched(task)
                self._update(task["task_id"]["value"], TASK_FAILED, "task groups are not supported by "
                             "`pacer executor`", "REASON_TASK_GROUP_INVALID")
        elif kind == "KILL":
            self._kill(event["kill"]["task_id"]["value"], event["kill"].get("kill_policy"))
        elif kind == "ACKNOWLEDGED":
            ack = event["acknowledged"]
            if self.ledger.acknowledge(ack["task_id"]["value"], ack["uuid"]):
                log.info("update %s of task %s acknowledged", ack["uuid"], ack["task_id"]["value"])
            if self.ledger.all_done():
                log.info("every task ended and was acknowledged: exiting")
                self._done.set()
        elif kind == "SHUTDOWN":
            self._start_shutdown()
        elif kind == "MESSAGE":
            log.info("message from the framework (%d bytes)", len(base64.b64decode(event["message"]["data"])))
        elif kind == "ERROR":
            log.error("the agent reports an error: %s", event.get("error", {}).get("message"))

    async def _launch(self, task: Json) -> None:
        """STARTING, start, RUNNING: no await between the start and RUNNING, so the end of a task
        that exits at once is always reported after its RUNNING."""
        task_id = str(task["task_id"]["value"])
        if task_id in self.ledger.tasks:
            return                                   # a LAUNCH repeated after a re-subscription
        self.ledger.launched(task)
        try:
            spec = launch_spec(task, self.config.directory)
        except (InvalidTaskSpec, KeyError) as exc:
            self._update(task_id, TASK_FAILED, f"invalid task: {exc}", "REASON_TASK_INVALID")
            return
        self._update(task_id, TASK_STARTING)
        try:
            handle = await self._runtime.launch(spec)
        except LaunchFailed as exc:
            self._update(task_id, TASK_FAILED, str(exc), "REASON_CONTAINER_LAUNCH_FAILED")
            return
        self._grace[task_id] = spec.kill_grace_seconds
        self._update(task_id, TASK_RUNNING, data=usage_data(handle.pid, process_group_usage(handle.pid)))

    def _kill(self, task_id: str, kill_policy: Json | None, grace: float | None = None) -> None:
        if task_id not in self.ledger.tasks or self.ledger.ended(task_id):
            return
        if not self._runtime.is_running(task_id):      # never started: nothing to signal
            self._update(task_id, TASK_KILLED, "killed before it started")
            return
        if task_id not in self._killing:
            self._killing.add(task_id)
            self._update(task_id, TASK_KILLING)
        seconds = grace_seconds(kill_policy, self._grace.get(task_id, DEFAULT_KILL_GRACE_SECONDS))
        if grace is not None:
            seconds = min(seconds, grace)
        kill = asyncio.get_running_loop().create_task(self._runtime.kill(task_id, seconds), name=f"kill-{task_id}")
        self._kills.add(kill)
        kill.add_done_callback(self._kills.discard)

    def _on_exit(self, report: TaskExit) -> None:
        state, message, reason = exit_status(report)
        self._update(report.task_id, state, message, reason)

    def _on_signal(self) -> None:
        log.info("signalled: killing the tasks and exiting")
        self._start_shutdown()

    def _start_shutdown(self) -> None:
        if self._shutting_down is None:
            self._shutting_down = asyncio.get_running_loop().create_task(self._shutdown(), name="executor-shutdown")

    async def _shutdown(self) -> None:
        """Kill every task within the shutdown grace period, send the last updates, leave (0)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        grace = max(0.0, self.config.shutdown_grace - SHUTDOWN_MARGIN)
        for task_id in self.ledger.live():
            self._kill(task_id, None, grace)
        await asyncio.gather(*self._kills, return_exceptions=True)
        with contextlib.suppress(TimeoutError):     # the last updates, in what is left of the period
            await asyncio.wait_for(self._outbox.join(), max(SHUTDOWN_MARGIN, deadline - loop.time()))
        self._exit = 0
        self._done.set()

    # -- updates ------------------------------------------------------------------------------
    def _update(self, task_id: str, state: str, message: str = "", reason: str | None = None,
                data: bytes | None = None) -> None:
        if self.ledger.ended(task_id):
            return
        status = task_status(self.config, task_id, state, uuid=self._new_uuid(), now=self._clock(),
                             message=message, reason=reason, data=data, agent_id=self._agent_id)
        self.ledger.sent(status)
        self._outbox.put_nowait(status)

    async def _send_forever(self) -> None:
        """Post updates in order, while subscribed. One that cannot be posted stays in the ledger:
        the next SUBSCRIBE carries it (and it is not posted again after that)."""
        assert self._session is not None
        while True:
            status = await self._outbox.get()
            try:
                await self._connected.wait()
                if status["uuid"] in self._resent or status not in self.ledger.updates:
                    continue
                await self._post(update_call(self.config, status))
            finally:
                self._outbox.task_done()

    async def _post(self, call: Json) -> None:
        assert self._session is not None
        try:
            async with self._session.post(self.config.url, data=json.dumps(call),
                                          timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as response:
                if response.status != 202:
                    log.error("%s refused (%d): %s", call["type"], response.status, (await response.text()).strip())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("%s not delivered (%s); it goes with the next SUBSCRIBE", call["type"], exc)


def run_executor(config: ExecutorConfig) -> int:
    """Run one executor to its end; the exit status of ``pacer executor``."""
    return asyncio.run(_main(config))


async def _main(config: ExecutorConfig) -> int:
    return await MesosExecutor(config).run()


__all__: list[str] = ["MesosExecutor", "run_executor"]
