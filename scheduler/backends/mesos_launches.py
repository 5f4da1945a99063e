"""Launches on pushed offers: one ACCEPT per agent per scheduling pass, and what happens when
the offers a pass placed on go away before that ACCEPT could be sent.

A pass places its launches on the offers held at that moment; `Launcher.open_batches` then hands
every offer of each agent that got launches to a `Batch`. The instances' `launch` calls (which
bring the app definition a TaskInfo needs) add their TaskInfos to the batch, and the batch goes
out as one ACCEPT when every instance of it arrived, or after a short window (an instance may
never arrive: it was killed, or its launch is queued behind others). The window opens only once
the event loop has moved on from the pass: a pass of a hundred thousand launches takes seconds
to apply and to write down, and its launches must not find their batches closed by a window
that elapsed meanwhile.

A launch that finds no open batch (it came late, the offers were rescinded, the subscription
ended before the ACCEPT left) waits for an offer instead: the next offers of its agent that fit
serve it first, before a scheduling pass sees them. A launch whose ACCEPT may have reached the
master is never sent again: reconciliation after the next subscription tells what became of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app_definitions import AppDefinition

from scheduler.backends.mesos_connection import LazyCall
from scheduler.backends.mesos_errors import CallRejected, LaunchAborted, NotSubscribed
from scheduler.backends.mesos_offers import Claim, HeldOffer, OfferBook, ResourcePool
from scheduler.backends.mesos_tasks import executor_needs, launch_needs, needs, task_info
from scheduler.state.model import Instance

log = logging.getLogger(__name__)

Json = dict[str, Any]

RUNNING = "running"     # the task reached TASK_RUNNING (or moved past it)
RETRY = "retry"         # its ACCEPT never left: wait for another offer


@dataclass
class Attempt:
    """One instance being launched, and how its current try ends."""

    instance: Instance
    app: AppDefinition
    outcome: asyncio.Future[str]
    sent: bool = False          # its ACCEPT left: the master may know the task from now on
    accepting: asyncio.Future[None] | None = None   # that ACCEPT, until the master answered it

    @property
    def in_flight(self) -> bool:
        """Its ACCEPT left and was not answered yet: the master may not know the task yet."""
        return self.accepting is not None and not self.accepting.done()

    @property
    def task_id(self) -> str:
        return self.instance.instance_id

    def settle(self, result: str | BaseException) -> None:
        """End the current try (once): with a result, or by raising in `launch`."""
        if self.outcome.done():
            return
        if isinstance(result, BaseException):
            self.outcome.set_exception(result)
        else:
            self.outcome.set_result(result)


@dataclass
class Batch:
    """The offers of one agent and the tasks launched on them by one ACCEPT."""

    agent_id: str
    offers: list[HeldOffer]
    expected: set[str]
    generation: int
    pool: ResourcePool = field(init=False)
    tasks: dict[str, tuple[Attempt, Claim]] = field(default_factory=dict)   # with the resources each takes
    executor_claims: dict[str, Claim] = field(default_factory=dict)        # `pacer executor`'s share, by task
    closed: bool = False
    timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.pool = ResourcePool(self.offers)

    @property
    def complete(self) -> bool:
        return self.expected <= set(self.tasks)

    def close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def accept_call(self) -> Json:
        """The ACCEPT, TaskInfos and all. Built when it is sent, not when the batch closes: a pass
        of a hundred thousand launches would otherwise hold all their TaskInfos at once."""
        infos = [task_info(attempt.instance, attempt.app, claim.resources(), self._executor_resources(task_id))
                 for task_id, (attempt, claim) in self.tasks.items()]
        return {"type": "ACCEPT", "accept": {
            "offer_ids": [{"value": o.offer_id} for o in self.offers],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
            "filters": {"refuse_seconds": 0.0}}}    # what is left of the offers comes back at once


    def _executor_resources(self, task_id: str) -> list[Json] | None:
        claim = self.executor_claims.get(task_id)
        return None if claim is None else claim.resources()

    def claim(self, attempt: Attempt, pool: ResourcePool | None = None) -> None:
        """Take the attempt's resources, and its executor's if it has one of Pacer's, from `pool`
        (default: the batch's) and add it to the batch; LaunchAborted when they do not fit."""
        pool = self.pool if pool is None else pool
        app, ports = attempt.app, attempt.instance.ports
        extra = executor_needs(app)
        if extra and not pool.fits(launch_needs(app), ports):
            raise LaunchAborted(f"the offers no longer hold the task and its executor "
                                f"({', '.join(f'{n}={v:g}' for n, v in launch_needs(app).items() if v > 0)})")
        self.tasks[attempt.task_id] = (attempt, pool.claim(needs(app), ports))
        if extra:
            self.executor_claims[attempt.task_id] = pool.claim(extra, ())


@dataclass(eq=False)
class OfferWait:
    attempt: Attempt
    placed: asyncio.Future[None]


class LaunchHost(Protocol):
    """What the launcher needs of the backend."""

    book: OfferBook

    def generation(self) -> int | None:
        """The live subscription's number, None when there is none."""

    def submit(self, call: LazyCall, generation: int) -> asyncio.Future[None]:
        """Send `call` on subscription `generation` (NotSubscribed if that one ended)."""

    def decline(self, offers: Sequence[HeldOffer], seconds: float) -> None: ...

    def want_offers(self) -> None:
        """A launch waits for offers: make sure they come (REVIVE if suppressed)."""


class Launcher:
    def __init__(self, host: LaunchHost, batch_window: float, offer_wait: float) -> None:
        self._host = host
        self._window = batch_window
        self._offer_wait = offer_wait
        self._batches: dict[str, Batch] = {}     # instance id -> its open batch
        self._waits: dict[str, dict[str, OfferWait]] = {}    # agent id -> instance id -> its wait

    @property
    def busy(self) -> bool:
        """Launches are under way that still need offers or an ACCEPT."""
        return bool(self._batches or self._waits)

    def open_batches(self, launched: Sequence[Instance]) -> None:
        """After a pass: every offer of each agent that got launches goes to one batch."""
        generation = self._host.generation()
        by_agent: dict[str, list[str]] = {}
        for inst in launched:
            by_agent.setdefault(inst.agent_id, []).append(inst.instance_id)
        opened = []
        for agent_id, ids in by_agent.items():
            offers = self._host.book.take_agent(agent_id)
            if not offers or generation is None:
                continue                     # these launches will wait for the agent's next offer
            batch = Batch(agent_id, offers, set(ids), generation)
            opened.append(batch)
            for iid in ids:
                self._batches[iid] = batch
        if opened:
            # Armed from the next turn of the loop: the launches this pass spawned are queued
            # before it, so they reach their batches before any window can close one.
            asyncio.get_running_loop().call_soon(self._arm, opened)

    def _arm(self, batches: list[Batch]) -> None:
        loop = asyncio.get_running_loop()
        for batch in batches:
            if not batch.closed:
                batch.timer = loop.call_later(self._window, self._flush, batch)

    async def place(self, attempt: Attempt, deadline: float) -> None:
        """Put the attempt's TaskInfo into an ACCEPT: its pass's batch, or the next fitting offer."""
        if not self._join(attempt):
            await self._wait_for_offer(attempt, deadline)

    def _join(self, attempt: Attempt) -> bool:
        batch = self._batches.pop(attempt.task_id, None)
        if batch is None or batch.closed:
            return False
        try:
            batch.claim(attempt)
        except LaunchAborted:
            batch.expected.discard(attempt.task_id)
            if batch.complete:
                self._flush(batch)
            return False
        if batch.complete:
            self._flush(batch)
        return True

    def _close(self, batch: Batch) -> None:
        batch.close()
        for iid in batch.expected:
            if self._batches.get(iid) is batch:
                del self._batches[iid]

    def _flush(self, batch: Batch) -> None:
        if batch.closed:
            return
        self._close(batch)
        if not batch.tasks:
            self._host.decline(batch.offers, 0.0)
            return
        future = self._host.submit(LazyCall("ACCEPT", batch.accept_call), batch.generation)
        for attempt, _ in batch.tasks.values():
            attempt.sent = True
            attempt.accepting = future
        future.add_done_callback(lambda f: self._accepted(batch, f))

    def _accepted(self, batch: Batch, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        exc = future.exception()
        for attempt, _ in batch.tasks.values():
            if isinstance(exc, NotSubscribed):
                attempt.sent = False
                attempt.settle(RETRY)                 # never sent: try the next offer
            elif isinstance(exc, CallRejected):
                attempt.sent = False
                attempt.settle(LaunchAborted(str(exc)))
            # otherwise the master may have it: reconciliation after the next subscription says
        if not isinstance(exc, NotSubscribed):
            log.warning("ACCEPT on agent %s failed: %s", batch.agent_id, exc)

    def abandon_all(self) -> None:
        """The subscription ended: open batches' offers died with it."""
        for batch in set(self._batches.values()):
            self._abandon(batch)

    def rescinded(self, offer_id: str) -> None:
        batch = next((b for b in self._batches.values() if any(o.offer_id == offer_id for o in b.offers)), None)
        if batch is None:
            return
        log.info("offer %s was rescinded before its ACCEPT; its launches wait for the next offer of agent %s",
                 offer_id, batch.agent_id)
        others = [o for o in batch.offers if o.offer_id != offer_id]
        if others:
            self._host.decline(others, 0.0)
        self._abandon(batch)

    def _abandon(self, batch: Batch) -> None:
        """The batch's offers are gone before its ACCEPT left: its tasks wait for new offers."""
        if batch.closed:
            return
        self._close(batch)
        for attempt, _ in batch.tasks.values():
            attempt.settle(RETRY)

    async def _wait_for_offer(self, attempt: Attempt, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        wait = OfferWait(attempt, loop.create_future())
        agent_id = attempt.instance.agent_id
        self._waits.setdefault(agent_id, {})[attempt.task_id] = wait
        self._host.want_offers()
        self.serve_waits([agent_id])
        try:
            async with asyncio.timeout_at(deadline):
                await wait.placed
        except TimeoutError:
            raise LaunchAborted(f"no offer of agent {agent_id} had room for the task within "
                                f"{self._offer_wait:.0f} s") from None
        finally:
            self._unwait(agent_id, attempt.task_id, wait)

    def _unwait(self, agent_id: str, task_id: str, wait: OfferWait | None = None) -> OfferWait | None:
        waits = self._waits.get(agent_id, {})
        found = waits.get(task_id)
        if found is None or (wait is not None and found is not wait):
            return None
        del waits[task_id]
        if not waits:
            self._waits.pop(agent_id, None)
        return found

    def serve_waits(self, agents: Sequence[str] | None = None) -> None:
        """Launches waiting for an offer get the next fitting offers of their agent first
        (`agents`: only those agents got offers; None: any may have)."""
        generation = self._host.generation()
        if not self._waits or generation is None:
            return
        for agent_id in list(self._waits if agents is None else agents):
            waits = self._waits.get(agent_id)
            offers = self._host.book.of_agent(agent_id) if waits else None
            if not waits or not offers:
                continue
            pool = ResourcePool(offers)
            chosen = []
            for wait in waits.values():     # which fit, together: claimed on a scratch pool
                app, inst = wait.attempt.app, wait.attempt.instance
                if pool.fits(launch_needs(app), inst.ports):
                    pool.claim(launch_needs(app), inst.ports)
                    chosen.append(wait)
            if not chosen:
                continue
            batch = Batch(agent_id, self._host.book.take_agent(agent_id), set(), generation)
            for wait in chosen:
                batch.claim(wait.attempt)
                batch.expected.add(wait.attempt.task_id)
                self._unwait(agent_id, wait.attempt.task_id)
                wait.placed.set_result(None)
            self._flush(batch)

    def cancel(self, task_id: str) -> bool:
        """Take back a launch whose ACCEPT has not left; False when there is none."""
        batch = self._batches.pop(task_id, None)
        if batch is not None and not batch.closed:
            batch.expected.discard(task_id)
            entry = batch.tasks.pop(task_id, None)
            batch.executor_claims.pop(task_id, None)
            if entry is not None:
                entry[0].settle(LaunchAborted("killed before it was launched"))
            if batch.complete:
                self._flush(batch)
            return True
        for agent_id in list(self._waits):
            wait = self._unwait(agent_id, task_id)
            if wait is not None:
                wait.placed.set_exception(LaunchAborted("killed before it was launched"))
                return True
        return False
