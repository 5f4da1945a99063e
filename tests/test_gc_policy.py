"""The collector policy of `pacer serve`: survivors of a full collection frozen, thawed now and then."""

from __future__ import annotations

import asyncio
import gc

from pacer.gc_policy import FreezeAfterFullCollections


async def test_a_full_collection_freezes_its_survivors_and_a_later_one_past_the_thaw_time_gives_them_back() -> None:
    now = [1000.0]
    policy = FreezeAfterFullCollections(asyncio.get_running_loop(), thaw_seconds=900.0, now=lambda: now[0])
    gc.callbacks.append(policy)
    gc.unfreeze()
    try:
        kept = [{"n": n} for n in range(1000)]       # alive across the collection
        gc.collect(1)
        await asyncio.sleep(0)
        assert gc.get_freeze_count() == 0           # a young collection changes nothing
        gc.collect()
        await asyncio.sleep(0)
        assert policy.freezes == 1 and gc.get_freeze_count() >= len(kept)
        now[0] += 901.0
        gc.collect()
        await asyncio.sleep(0)
        assert policy.thaws == 1 and gc.get_freeze_count() == 0
        gc.collect()
        await asyncio.sleep(0)
        assert policy.freezes == 2 and gc.get_freeze_count() >= len(kept)
    finally:
        policy.uninstall()
        gc.unfreeze()


def test_nothing_is_scheduled_on_a_closed_loop() -> None:
    loop = asyncio.new_event_loop()
    policy = FreezeAfterFullCollections(loop)
    loop.close()
    policy("stop", {"generation": 2})       # must not raise inside the collector
    assert policy.freezes == 0
