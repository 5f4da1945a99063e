"""Parking: an app no offer could take waits without being placed again on every pass.

The pure rules (`decide/parking.py`) are table- and property-tested; the scenarios run a whole
scheduler core (real SQLite store, fake backend and clock) and count the placements each app
gets, so they see what the loop really does: nothing for a parked app while nothing changes,
and a placement (then a launch) as soon as resources free or the app changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.decide import scheduling
from scheduler.decide.parking import RECHECK_SECONDS, Parked, park_after_pass, still_parked
from scheduler.decide.scheduling import Launch, Pass, QueueStatus
from scheduler.engine.core import Scheduler
from scheduler.engine.loop import FULL_PASS_SECONDS

from .fakes import FakeBackend, FakeClock, active, agent, build_scheduler, service, shutdown, step

# -- the pure rules ---------------------------------------------------------------------------


def placed(count: int) -> QueueStatus:
    return QueueStatus(count, "no offer with enough mem", {"mem": 3}, placed=True, offers_seen=3, offers_unused=True)


def launch(app_id: str) -> Launch:
    return Launch(app_id, "agent-1", "host-1", ())


@pytest.mark.parametrize("status, launched, parked", [
    (placed(2), False, True),                                   # tried, nothing fitted: parked
    (placed(2), True, False),                                   # some fitted: placed again next pass
    (QueueStatus(2, "waiting for backoff: 3.0 s left"), False, False),  # backoff: not placement's verdict
    (None, False, False),                                       # left the queue
    (QueueStatus(0, placed=True), False, False),                # waits for nothing
])
def test_park_after_pass(status: QueueStatus | None, launched: bool, parked: bool):
    decided = Pass(queue={"/a": status}, launches=(launch("/a"),) if launched else ())
    result = park_after_pass({"/a": Parked(5, 0, 0.0)}, decided, epoch=7, now=100.0)
    assert (result.get("/a") == Parked(2, 7, 100.0)) if parked else ("/a" not in result)


def test_apps_the_pass_did_not_place_keep_their_entry():
    before = {"/a": Parked(2, 3, 10.0)}
    assert park_after_pass(before, Pass(queue={"/b": placed(1)}), epoch=4, now=20.0) == {
        "/a": Parked(2, 3, 10.0), "/b": Parked(1, 4, 20.0)}


@pytest.mark.parametrize("epoch, touched, known, now, holds", [
    (3, set(), {"/a"}, 10.0, True),
    (4, set(), {"/a"}, 10.0, False),                    # resources may have freed
    (3, {"/a"}, {"/a"}, 10.0, False),                   # the app or one of its instances changed
    (3, set(), set(), 10.0, False),                     # the app was removed
    (3, set(), {"/a"}, 5.0 + RECHECK_SECONDS, False),   # the backstop is due
    (3, set(), {"/a"}, 5.0 + RECHECK_SECONDS - 0.1, True),
])
def test_still_parked(epoch: int, touched: set[str], known: set[str], now: float, holds: bool):
    result = still_parked({"/a": Parked(1, 3, 5.0)}, epoch=epoch, touched=touched, known=known, now=now)
    assert ("/a" in result) is holds


app_ids = st.sampled_from(["/a", "/b", "/c", "/d"])
parked_maps = st.dictionaries(app_ids, st.builds(Parked, st.integers(1, 5), st.integers(0, 3), st.floats(0, 50)))


@given(parked_maps, st.integers(0, 3), st.sets(app_ids), st.sets(app_ids), st.floats(0, 100))
def test_still_parked_only_ever_drops_entries(parked: dict[str, Parked], epoch: int, touched: set[str],
                                              known: set[str], now: float):
    result = still_parked(parked, epoch=epoch, touched=touched, known=known, now=now)
    assert result.items() <= parked.items()
    assert all(p.epoch == epoch and a in known and a not in touched for a, p in result.items())


@given(parked_maps, st.dictionaries(app_ids, st.one_of(st.none(), st.integers(0, 4).map(placed))),
       st.sets(app_ids), st.integers(0, 3))
def test_a_launching_app_is_never_parked(parked: dict[str, Parked], queue: dict[str, QueueStatus | None],
                                         launching: set[str], epoch: int):
    decided = Pass(queue=queue, launches=tuple(launch(a) for a in sorted(launching)))
    result = park_after_pass(parked, decided, epoch, now=1.0)
    assert not launching & result.keys()
    for app_id, status in queue.items():
        if status is None:
            assert app_id not in result


# -- on a whole core ----------------------------------------------------------------------------

@pytest.fixture
async def core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Scheduler, FakeBackend,
                                                                                       FakeClock, Counter[str]]]:
    """One 4-cpu/4096-MB agent; `placements` counts the placement attempts of each app."""
    placements: Counter[str] = Counter()
    real_place = scheduling.place_tasks

    def counting(request: Any, count: int, *args: Any, **kwargs: Any) -> Any:
        placements[request.app_id] += 1
        return real_place(request, count, *args, **kwargs)

    monkeypatch.setattr(scheduling, "place_tasks", counting)
    clock = FakeClock()
    sched, backend = build_scheduler(tmp_path / "state.db", clock, [agent(1)])
    await sched.start()
    yield sched, backend, clock, placements
    await shutdown(sched)


async def rounds(sched: Scheduler, clock: FakeClock, seconds: float) -> None:
    """A round every simulated second (the loop's tick), full passes included."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await step(sched)


async def test_a_parked_app_is_not_placed_again_until_resources_free(core):
    sched, backend, clock, placements = core
    sched.writes.create_app(service("/hog", 1, mem=3000))
    await rounds(sched, clock, 2)
    assert len(active(sched, "/hog")) == 1
    sched.writes.create_app(service("/big", 2, mem=2000))       # 1096 MB left: neither instance fits
    await rounds(sched, clock, 2)
    tried = placements["/big"]
    assert tried >= 1 and sched.state.queue["/big"].count == 2
    assert "mem" in (sched.state.queue["/big"].message or "")

    await rounds(sched, clock, 3 * FULL_PASS_SECONDS)            # ticks and full passes, nothing changes
    assert placements["/big"] == tried
    assert sched.state.queue["/big"].count == 2 and "mem" in (sched.state.queue["/big"].message or "")

    sched.writes.update_apps([("/hog", {"instances": 0})])        # its task ends: 4096 MB free
    await rounds(sched, clock, 3)
    assert placements["/big"] > tried
    assert len(active(sched, "/big")) == 2 and "/big" not in sched.state.queue


async def test_a_parked_app_is_placed_again_when_it_changes(core):
    sched, backend, clock, placements = core
    sched.writes.create_app(service("/big", 1, mem=8000))
    await rounds(sched, clock, 2)
    tried = placements["/big"]
    await rounds(sched, clock, FULL_PASS_SECONDS + 1)
    assert placements["/big"] == tried
    sched.writes.update_apps([("/big", {"mem": 1000})], force=True)
    await rounds(sched, clock, 2)
    assert len(active(sched, "/big")) == 1


async def test_a_parked_app_is_placed_again_when_the_backstop_is_due(core):
    sched, backend, clock, placements = core
    sched.writes.create_app(service("/big", 1, mem=8000))
    await rounds(sched, clock, 2)
    tried = placements["/big"]
    await rounds(sched, clock, RECHECK_SECONDS + FULL_PASS_SECONDS)
    assert tried < placements["/big"] <= tried + 2


async def test_new_offers_unpark(core):
    sched, backend, clock, placements = core
    sched.writes.create_app(service("/big", 1, mem=8000))
    await rounds(sched, clock, 2)
    tried = placements["/big"]
    sched.tasks.on_offers()                                       # what a Mesos backend calls on OFFERS
    await rounds(sched, clock, 1)
    assert placements["/big"] == tried + 1
