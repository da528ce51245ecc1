"""A plan-wide bookmark (issue 13 #12): one name in several groups, at one instant.

A real target behind a real grpc.aio server, two groups each streamed by its own
shipper while their guests keep writing. Bookmarking them one call per group names
points a round trip apart; ``CreatePlanBookmark`` reads every group's newest durable
point in one step of the target, so both points were the newest durable ones at the
same trusted instant, and each exists (resolvable by name) in its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest
from conftest import Running, small_group

from cdp.errors import RemoteError
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.v1 import replication_pb2 as pb

SPECS = [small_group("pa", vms=1, disks=1), small_group("pb", vms=1, disks=1)]


async def writer(buffer: SourceBuffer, seed: int, stop: asyncio.Event) -> None:
    """A guest that writes 4 KiB blocks as fast as the buffer allows."""
    noise = random.Random(seed)
    while not stop.is_set():
        await buffer.wait_room()
        buffer.append(0, noise.randrange(1024) * 4096, noise.randbytes(4096), time.time_ns())
        await asyncio.sleep(0.0005)


async def test_plan_bookmark_names_both_groups_at_one_instant(running_history: Running) -> None:
    # A history window, not 0: with none, apply moves the base past the bookmark as soon
    # as the next batch is durable and the point (rightly) leaves the listing, so a check
    # that "the point exists in its group" raced the applier.
    running = running_history
    stop = asyncio.Event()
    buffers = [SourceBuffer(), SourceBuffer()]
    shippers = [
        Shipper(spec, buf, running.client, ShipperConfig(f"host-{i}", linger_s=0))
        for i, (spec, buf) in enumerate(zip(SPECS, buffers, strict=True))
    ]
    tasks = [asyncio.ensure_future(s.run()) for s in shippers]
    tasks += [asyncio.ensure_future(writer(b, i, stop)) for i, b in enumerate(buffers)]
    try:
        while min(b.acked_seq for b in buffers) < 50:  # both groups are busy
            await asyncio.sleep(0.02)
        before = time.time_ns()
        made = await running.client.create_plan_bookmark(["pa", "pb"], "plan-x")
        after = time.time_ns()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    assert [g.group_id for g in made.groups] == ["pa", "pb"]
    assert before <= made.taken_unix_ns <= after  # the target's clock, one instant
    for g in made.groups:
        assert g.point.kind == pb.POINT_KIND_BOOKMARK and g.point.label == "plan-x"
        named = [
            p for p in await running.client.list_points(g.group_id, labelled_only=True)
            if p.label == "plan-x"
        ]  # fmt: skip
        assert [p.seq for p in named] == [g.point.seq]  # the point exists in its group
        # The point was received (trusted time) no later than the instant it was read at.
        assert 0 < g.point.source_time_unix_ns <= made.taken_unix_ns
    times = [g.point.source_time_unix_ns for g in made.groups]
    # Each was its group's newest durable point at that instant: a batch or so apart (the
    # bound is loose for a loaded CI machine; the one-instant proof is taken_unix_ns).
    assert abs(times[0] - times[1]) < 1_000_000_000


async def test_plan_bookmark_is_all_or_nothing_for_a_taken_name(running: Running) -> None:
    buffers = [SourceBuffer(), SourceBuffer()]
    for buf in buffers:
        buf.append(0, 0, b"x" * 4096, time.time_ns())
    shippers = [
        Shipper(spec, buf, running.client, ShipperConfig(f"host-{i}", linger_s=0))
        for i, (spec, buf) in enumerate(zip(SPECS, buffers, strict=True))
    ]
    tasks = [asyncio.ensure_future(s.run()) for s in shippers]
    try:
        while min(b.acked_seq for b in buffers) < 1:
            await asyncio.sleep(0.01)
        await running.client.create_bookmark("pb", "taken")
        with pytest.raises(RemoteError, match="taken"):
            await running.client.create_plan_bookmark(["pa", "pb"], "taken")
        with pytest.raises(RemoteError, match=r"group_ids\[1\]"):
            await running.client.create_plan_bookmark(["pa", "pa"], "other")
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    names = [p.label for p in await running.client.list_points("pa", labelled_only=True)]
    assert "taken" not in names  # nothing written in the group whose name was free
