"""/v2/queue's reason with pushed offers: a pass with no offer to weigh keeps the last reason.

A Mesos master pushes offers; those a constraint refused are declined, and the passes after that
see none until something frees up. Their own verdict, "no agent offers resources", would hide
the constraint: they keep the reason (and its rejection counts) of the last pass that weighed
offers. A backoff's message or a backend's refusal is not kept: it said something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from scheduler.decide.scheduling import Pass, QueueStatus, decide
from scheduler.engine.apply import _apply_queue
from scheduler.state.cluster import QueueEntry

from .test_decide import NOW, app, inst, view

UNIQUE = "constraint [hostname, UNIQUE] unmet on all 2 agents"


def _pass(previous: str | None, *, offers: bool, unsupported: str | None = None) -> QueueStatus | None:
    web = app("/web", instances=3, constraints=[["hostname", "UNIQUE"]])
    world = view([web], [inst(web, 1, agent_n=1), inst(web, 2, agent_n=2)],
                 unsupported=lambda record: unsupported)
    if not offers:
        world = replace(world, offers=lambda: [])
    world = replace(world, queue_reasons={} if previous is None else {"/web": previous})
    return decide(world, NOW).queue["/web"]


def test_offers_weighed_give_the_constraint():
    status = _pass(None, offers=True)
    assert status is not None and status.message == UNIQUE and not status.reason_kept
    assert status.rejections == {"UnfulfilledConstraint": 2}


@pytest.mark.parametrize("previous, unsupported, kept", [
    (UNIQUE, None, True),                                      # the constraint is still the reason
    (None, None, False),                                       # nothing known: no offers it is
    ("waiting for backoff: 1.0 s left", None, False),          # the backoff is over: not the reason now
    (UNIQUE, "container type DOCKER: no Docker engine", False),  # the backend's refusal is news
])
def test_no_offers_keep_the_last_placement_reason(previous: str | None, unsupported: str | None, kept: bool):
    status = _pass(previous, offers=False, unsupported=unsupported)
    assert status is not None and status.placed and status.offers_seen == 0 and status.reason_kept is kept
    if kept:
        assert status.message == previous
    else:
        assert status.message is not None and status.message.startswith("no agent offers resources")


@dataclass
class Queue:
    """The queue half of `ClusterState`."""

    queue: dict[str, QueueEntry] = field(default_factory=dict)

    def set_queue(self, app_id: str, entry: QueueEntry | None) -> None:
        if entry is None:
            self.queue.pop(app_id, None)
        else:
            self.queue[app_id] = entry


@pytest.mark.parametrize("kept, rejections", [(True, {"UnfulfilledConstraint": 2}), (False, {})])
def test_a_kept_reason_keeps_its_rejection_counts(kept: bool, rejections: dict[str, int]):
    state = Queue({"/web": QueueEntry(count=1, since=NOW - 10, message=UNIQUE,
                                      rejections={"UnfulfilledConstraint": 2})})
    message = UNIQUE if kept else "no agent offers resources"
    status = QueueStatus(1, message, {}, placed=True, reason_kept=kept)
    _apply_queue(Pass(queue={"/web": status}), NOW, state)     # type: ignore[arg-type]
    assert (state.queue["/web"].message, state.queue["/web"].rejections) == (message, rejections)
