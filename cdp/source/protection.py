"""Keeping a source protected through outages: journal, dirty map, resync.

:class:`Protection` is the source-side state machine every guest write goes through:

- JOURNALING: writes go into the source buffer (and on to the target);
- TRACKING: the buffer was full or the link stayed down past ``dirty_after_s``; writes
  only mark the dirty map, so the guest runs at full speed;
- RESYNCING: connected again; the buffered journal was drained, a RESYNC_START marker
  was placed, and dirty regions are compared by hash with the target and sent in disk
  order, only where they differ. Writes keep marking the dirty map meanwhile. The last
  pass runs with guest writes held, then RESYNC_END is placed and journaling resumes.

The same path does initial sync and seeding: a source whose disks already hold data
starts with every region dirty, and regions the target already holds (a pre-seeded
replica) are skipped by their hashes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cdp import codec
from cdp.errors import CdpError
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START
from cdp.source.buffer import SourceBuffer
from cdp.source.dirtymap import DEFAULT_REGION_BYTES, DirtyMap

log = logging.getLogger(__name__)

DEFAULT_DIRTY_AFTER_S = 10.0
"""How long the link may stay down before writes go to the dirty map instead."""
COMPARE_BATCH = 1024
"""Regions compared per CompareRegions call."""
FINAL_PASS_REGIONS = 64
RECENT_ERROR_S = 5.0
"""An error of the shipper this recent explains why the buffer filled."""
HELD_PASS_TIMEOUT_S = 10.0
"""A pass with guest writes held that takes longer fails (the writes are released)."""
"""At most this many dirty regions are left for the pass with guest writes held."""


class Mode(enum.Enum):
    """Where guest writes go."""

    JOURNALING = "journaling"
    TRACKING = "tracking"
    RESYNCING = "resyncing"


class RegionTransport(Protocol):
    """The target call a resync needs."""

    async def compare_regions(
        self, session_id: str, disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
    ) -> list[int]:
        """Offsets whose region differs at the target."""


class ShipperView(Protocol):
    """What a resync needs to know of the shipper."""

    connected: bool
    session_id: str
    last_error: CdpError | None
    last_error_s: float

    async def drain(self, poll_s: float = ...) -> None:
        """Wait until the buffer is empty."""


@dataclass(frozen=True)
class ProtectionConfig:
    """Tuning of the fallback and the resync."""

    region_bytes: int = DEFAULT_REGION_BYTES
    dirty_after_s: float = DEFAULT_DIRTY_AFTER_S
    initial_sync: bool = False
    """Start with every region dirty (the disks already hold data)."""


@dataclass
class ResyncStats:
    """What resyncs did, for status and tests."""

    resyncs: int = 0
    regions_compared: int = 0
    regions_sent: int = 0
    bytes_sent: int = 0
    last_resync_s: float = 0.0
    progress_bytes: int = 0
    total_bytes: int = 0


class Protection:
    """Decides where each guest write goes and runs resyncs."""

    def __init__(
        self,
        buffer: SourceBuffer,
        capacities: list[int],
        read_disk: Callable[[int, int, int], bytes],
        hold: Callable[[], None],
        release: Callable[[], None],
        config: ProtectionConfig = ProtectionConfig(),
    ) -> None:
        self.buffer = buffer
        self.dirty = DirtyMap(capacities, config.region_bytes)
        self.read_disk = read_disk
        """(disk, offset, length) -> the source disk's current bytes."""
        self.hold, self.release = hold, release
        self.config = config
        self.mode = Mode.JOURNALING
        self.stats = ResyncStats()
        self.link_down_since: float | None = None
        self.consistent_ns = 0
        """Source time of the newest journaled write when tracking began."""
        self.cause = "initial sync" if config.initial_sync else ""
        """Why writes went to the dirty map (carried by the resync start marker)."""
        self._shipper: ShipperView | None = None
        self.tracking_since_s = 0.0
        if config.initial_sync:
            self.dirty.mark_all()
            self.mode = Mode.TRACKING

    def on_write(self, disk: int, offset: int, data: bytes, source_ns: int) -> int:
        """Route one guest write; return its seq, or 0 if it only marked the dirty map."""
        if self.mode is Mode.JOURNALING:
            if self.buffer.has_room() and not self._link_down_too_long():
                return self.buffer.append(disk, offset, data, source_ns).seq
            if not self.buffer.has_room():
                self._track("target journal full" if self._target_full() else "source buffer full")
            else:
                self._track("link down")
        self.dirty.mark(disk, offset, len(data))
        return 0

    def rejoin(self, durable_seq: int, durable_ns: int = 0) -> None:
        """Start again after the target's durable seq; a full resync covers the rest.

        For when the target cannot continue from this source's journal.
        """
        dropped = self.buffer.restart_after(durable_seq, durable_ns)
        if self.cause == "initial sync" and not self.stats.resyncs and not dropped:
            log.info(
                "protection: the target already holds this group to seq %d; the initial "
                "sync compares every region (expected)", durable_seq,
            )  # fmt: skip
            self.dirty.mark_all()
            return
        log.warning(
            "protection: rejoining after target seq %d (%d unplaceable records dropped); "
            "every region is compared again", durable_seq, dropped,
        )  # fmt: skip
        self.dirty.mark_all()
        self._track("the target cannot continue from this source's journal")

    def _target_full(self, since_s: float | None = None) -> bool:
        """Whether the target answered RESOURCE_EXHAUSTED recently (or since ``since_s``)."""
        s = self._shipper
        if s is None or s.last_error is None:
            return False
        after = time.monotonic() - RECENT_ERROR_S if since_s is None else since_s
        return s.last_error_s >= after and getattr(s.last_error, "code", "") == "RESOURCE_EXHAUSTED"

    def _link_down_too_long(self) -> bool:
        since = self.link_down_since
        return since is not None and time.monotonic() - since > self.config.dirty_after_s

    def _track(self, why: str) -> None:
        log.warning("protection: %s; tracking writes in the dirty map until a resync", why)
        self.consistent_ns = self.buffer.newest_ns()
        self.cause = why
        self.tracking_since_s = time.monotonic()
        self.mode = Mode.TRACKING

    def journaling_all(self) -> bool:
        """Whether every write is in the buffer, none only in the dirty map.

        The shipper's heartbeat may then say "nothing unacked" once the buffer is acked.
        """
        return self.mode is Mode.JOURNALING and not len(self.dirty)

    def rpo_s(self, now_ns: int) -> float | None:
        """RPO while writes are not journaled (time since the last journaled write); else None."""
        if self.mode is Mode.JOURNALING:
            return None
        return max(0.0, (now_ns - self.consistent_ns) / 1e9) if self.consistent_ns else 0.0

    async def run(self, shipper: ShipperView, transport: RegionTransport) -> None:
        """Watch the link; resync whenever writes were tracked and the link is up."""
        self._shipper = shipper
        while True:
            self.link_down_since = None if shipper.connected else (
                self.link_down_since or time.monotonic()
            )  # fmt: skip
            if self.mode is not Mode.JOURNALING and shipper.connected:
                try:
                    await self.resync(shipper, transport)
                except Exception:  # top of a background loop: log, try again later
                    log.exception("protection: resync failed; will retry")
                    if self.mode is Mode.RESYNCING:
                        self.mode = Mode.TRACKING
            await asyncio.sleep(0.05)

    async def resync(self, shipper: ShipperView, transport: RegionTransport) -> None:
        """One resync: drain, start marker, compare and send, final pass held, end marker."""
        started = time.monotonic()
        await shipper.drain()
        self.mode = Mode.RESYNCING
        total = self.dirty.dirty_bytes()
        self.stats.total_bytes, self.stats.progress_bytes = total, 0
        if self.cause == "source buffer full" and self._target_full(self.tracking_since_s):
            self.cause = "target journal full"  # known only once the target said so
        label = f"resync bytes={total} cause={self.cause or 'unknown'}"
        self.buffer.append_marker(KIND_RESYNC_START, label, time.time_ns())
        await self._unheld_passes(shipper, transport)
        self.hold()
        try:
            while len(self.dirty):
                async with asyncio.timeout(HELD_PASS_TIMEOUT_S):  # (wait_for may lose a cancel)
                    await self._pass(shipper, transport, COMPARE_BATCH)
            self.buffer.append_marker(KIND_RESYNC_END, "resync", time.time_ns())
            self.stats.resyncs += 1
            self.stats.last_resync_s = time.monotonic() - started
            self.mode = Mode.JOURNALING
        finally:
            self.release()
        log.info("protection: resync done in %.2f s (%d regions sent)",
                 self.stats.last_resync_s, self.stats.regions_sent)  # fmt: skip

    async def _unheld_passes(self, shipper: ShipperView, transport: RegionTransport) -> None:
        """Passes with guest writes flowing, until few regions are left or one stops helping.

        A pass that does not shrink the dirty map means the guest dirties regions as fast as
        they are sent: only the held pass converges then.
        """
        left = len(self.dirty)
        while left > FINAL_PASS_REGIONS:
            await self._pass(shipper, transport, COMPARE_BATCH)
            if len(self.dirty) >= left:
                log.info("protection: %d regions dirty again after a pass; holding writes for "
                         "the final pass", len(self.dirty))  # fmt: skip
                return
            left = len(self.dirty)

    async def _pass(self, shipper: ShipperView, transport: RegionTransport, limit: int) -> None:
        """Compare up to ``limit`` dirty regions (in disk order) and send those that differ."""
        await shipper.drain()  # the target's state includes every region sent before
        regions = self.dirty.take(limit)
        try:
            await self._compare_and_send(shipper, transport, regions)
        except BaseException:
            for disk, offset in regions:  # not known to be sent: dirty again
                self.dirty.mark(disk, offset, 1)
            raise

    async def _compare_and_send(
        self, shipper: ShipperView, transport: RegionTransport, regions: list[tuple[int, int]]
    ) -> None:
        by_disk: dict[int, list[tuple[int, bytes]]] = {}
        for disk, offset in regions:
            length = min(self.dirty.region_bytes, self.dirty.capacities[disk] - offset)
            by_disk.setdefault(disk, []).append((offset, self.read_disk(disk, offset, length)))
        for disk, items in by_disk.items():
            offsets = [o for o, _ in items]
            hashes = [codec.checksum(d) for _, d in items]
            differing = set(
                await transport.compare_regions(
                    shipper.session_id, disk, self.dirty.region_bytes, offsets, hashes
                )
            )
            self.stats.regions_compared += len(items)
            for offset, data in items:
                self.stats.progress_bytes += len(data)
                if offset in differing:
                    await self.buffer.wait_room()
                    self.buffer.append(disk, offset, data, time.time_ns())
                    self.stats.regions_sent += 1
                    self.stats.bytes_sent += len(data)
