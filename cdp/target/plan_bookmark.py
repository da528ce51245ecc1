"""One bookmark name across several groups, taken at one instant of the target.

A plan fails its groups over together, so they must be restored to the same moment.
Bookmarking each group in turn (one call per group) names points a round trip and a
quiesce apart; here every member's bookmark lock is held (in key order, so two plan
bookmarks never deadlock), every batch already received is made durable, and then each
group's newest durable point is read without yielding to the event loop: acks and
durable seqs change only on the loop, so no batch is acked between two groups' reads.
The target's clock at that step is the bookmark's trusted instant.

Never writes anything unless every group's name check passed (all or nothing for the
check; the index writes that follow are one per group).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from cdp.journal.index import Point
from cdp.restore.history import History
from cdp.restore.spec import check_bookmark_name, check_label
from cdp.target.member import Member

MAX_PLAN_GROUPS = 64
"""Most groups one plan-wide bookmark may name."""


@dataclass(frozen=True)
class PlanBookmark:
    """A plan-wide bookmark: one point per group, all read at ``taken_ns``."""

    points: tuple[tuple[str, Point], ...]
    """(group id, point) in request order."""
    taken_ns: int
    """The target's clock (trusted time) when the points were read, Unix ns."""


def check_groups(group_ids: Sequence[str]) -> list[str]:
    """The group ids, checked: 1..MAX_PLAN_GROUPS, none empty, none twice."""
    ids = list(group_ids)
    if not ids or len(ids) > MAX_PLAN_GROUPS:
        raise InvalidInputError("group_ids", f"must name 1..{MAX_PLAN_GROUPS} groups")
    for i, g in enumerate(ids):
        if not g:
            raise InvalidInputError(f"group_ids[{i}]", "must not be empty")
        if g in ids[:i]:
            raise InvalidInputError(f"group_ids[{i}]", f"group {g!r} is named twice")
    return ids


async def create(
    histories: Sequence[tuple[str, History[Member]]], members: Sequence[Member], name: str
) -> PlanBookmark:
    """Name each group's newest durable point ``name``, all at one instant."""
    check_bookmark_name("name", check_label("name", name.encode()))
    async with contextlib.AsyncExitStack() as locks:
        for m in sorted(members, key=lambda m: m.key):
            await locks.enter_async_context(m.bookmark_lock)
        await asyncio.gather(*(m.quiesce() for m in members))
        # From here to the end of the comprehension: no await, one instant of the loop.
        taken_ns = time.time_ns()
        points = [(g, h.bookmark_point(name)) for g, h in histories]
        for (_, h), (_, point) in zip(histories, points, strict=True):
            await h.put_bookmark(name, point)
    return PlanBookmark(tuple(points), taken_ns)
