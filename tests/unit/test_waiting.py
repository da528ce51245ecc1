"""A cancellation that arrives in the step in which the awaited event is set is kept.

The hang of `test_seal_shipper` under load (pytest -n 2, a 600 s teardown timeout with
every thread idle): the shipper's hold loop waited with ``asyncio.wait_for(event.wait(),
t)``, which on Python 3.11 swallows a cancel that lands right after the event was set (a
busy guest sets it every millisecond), so the cancelled shipper task ran on and the
fixture awaiting it never returned. The same pattern sat in the target's apply, scrub and
idle loops and the source's bandwidth and resync waits.
"""

from __future__ import annotations

import asyncio

import pytest

from cdp.waiting import wait_set


async def test_a_cancel_in_the_step_the_event_is_set_is_not_lost() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:  # like the shipper's hold loop: wait, clear, again
        nonlocal rounds
        while True:
            await wait_set(event, 10.0)
            event.clear()
            rounds += 1

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0)  # the loop waits on the event
    event.set()
    await asyncio.sleep(0)  # the event's waiter finished; the loop has not resumed yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)  # (TimeoutError here: the cancel was lost)
    assert rounds <= 1  # it may finish the round the event started, never loop on


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True
    assert await wait_set(event, -1.0) is True  # a past deadline still sees a set event
