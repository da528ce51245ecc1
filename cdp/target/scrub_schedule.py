"""The target's scheduled scrub: every replica checked against its sums, on a timer or now.

Runs as one of the target's task loops: every ``scrub_interval_s`` (read from the live
config, so a reload changes it from the next scrub on) or at once on :meth:`request`
(SIGUSR1). A member with damage has its live session ended, so its source reconnects and
the handshake asks for the resync that rewrites the damaged regions. The scrub itself
(reading regions, comparing sums, marking damage) is :func:`cdp.target.member.Member.scrub`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cdp.target.config import TargetConfig
from cdp.target.scrub import ScrubReport
from cdp.waiting import wait_set

if TYPE_CHECKING:
    from cdp.target.member import Member

log = logging.getLogger("cdp.target.target")


class ScrubSchedule:
    """When the target scrubs, and what the newest scrub found."""

    def __init__(
        self, members: Callable[[], list[Member]], config: Callable[[], TargetConfig],
        stop: asyncio.Event, end_session: Callable[[str], None],
    ) -> None:  # fmt: skip
        self._members, self._config, self._stop = members, config, stop
        self._end_session = end_session
        self._now = asyncio.Event()
        self.last: tuple[float, ScrubReport] | None = None
        """When the newest scrub finished (Unix s) and what it found."""

    def request(self) -> None:
        """Scrub now, not only on the schedule (also wakes the loop to see a stop)."""
        self._now.set()

    async def loop(self) -> None:
        """Scrub every ``scrub_interval_s`` or on request, until the target stops."""
        while not self._stop.is_set():
            interval = self._config().scrub_interval_s or None
            await wait_set(self._now, interval)
            self._now.clear()
            if not self._stop.is_set():
                await self.once()

    async def once(self) -> ScrubReport:
        """One scrub of every member's replica; damaged regions are marked and logged."""
        report = ScrubReport()
        rate = self._config().scrub_rate_bytes_s
        for member in self._members():
            if member.error is not None:
                continue
            found = await asyncio.to_thread(member.scrub, report, rate, self._stop.is_set)
            if found and member.session_id:
                self._end_session(member.session_id)
        for d in report.damage:
            log.error("scrub: group %s VM %s disk %d region %s: %s", d.group, d.vm_id, d.disk,
                      d.region, d.detail)  # fmt: skip
        log.info("scrub: %d regions checked, %d damaged", report.regions_checked,
                 len(report.damage))  # fmt: skip
        self.last = (time.time(), report)
        return report
