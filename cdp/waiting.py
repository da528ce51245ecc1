"""Waiting for an event with a time limit, without ever losing a cancellation.

``asyncio.wait_for(event.wait(), t)`` on Python 3.11 returns normally when the task is
cancelled in the same step in which the event was set (the waited-for future is already
done, so ``wait_for`` hands back its result): the cancellation is lost, and a loop built on
it — a shipper, an apply loop — runs on after it was told to stop, so whoever awaits it
hangs. ``asyncio.timeout`` keeps a cancellation it did not cause. Pure: imports only asyncio.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passed (None: no limit); whether it was."""
    try:
        async with asyncio.timeout(None if timeout_s is None else max(timeout_s, 0.0)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
