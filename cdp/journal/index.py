"""The journal index seam: seq -> record location, time -> seq, and small metadata.

The index is derived data: the journal rebuilds it from the segments on open, so it is
written without fsync on the hot path. Implementations live in ``cdp/journal/store/``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where a record lives, and what images and duplicate checks need of it."""

    seq: int
    segment: int
    """First seq of the segment that holds the record."""
    position: int
    """Byte position of the record in that segment."""
    source_ns: int
    data_xxh3: int
    kind: int = 1
    disk: int = 0
    disk_offset: int = 0
    length: int = 0
    label: str = ""
    """Marker label (kept in the points table, not in the packed entry)."""
    received_ns: int = 0
    """Trusted time: the target's clock when the record arrived (kept in the trusted-time
    table of points, not in the packed entry); 0 = not known."""


ENTRY = struct.Struct(">QQqQBIQI")
"""Packed value of an entry: segment, position, source_ns, data_xxh3, kind, disk,
disk_offset, length."""


def pack_entry(e: IndexEntry) -> bytes:
    """Bytes stored for ``e`` (its seq is the key)."""
    return ENTRY.pack(
        e.segment, e.position, e.source_ns, e.data_xxh3, e.kind, e.disk, e.disk_offset, e.length
    )


def unpack_entry(seq: int, value: bytes) -> IndexEntry:
    """Inverse of :func:`pack_entry`."""
    return IndexEntry(seq, *ENTRY.unpack(value))


@dataclass(frozen=True, slots=True)
class Point:
    """A restore point as the index stores it."""

    seq: int
    source_ns: int
    kind: int
    label: str = ""
    bookmarks: tuple[str, ...] = ()
    """Names of the bookmarks at this seq (a bookmark names a point; several may)."""


POINT_CRASH = 1
POINT_CHECKPOINT = 2
POINT_BOOKMARK = 3
POINT_APP_CONSISTENT = 4
POINT_CONSISTENCY = 5
POINT_OF_RECORD_KIND = {2: POINT_BOOKMARK, 3: POINT_APP_CONSISTENT, 4: POINT_CONSISTENCY}
"""Restore point kind of a marker record kind."""


class Index(Protocol):
    """What the journal needs of an index; one instance serves every group."""

    def put_batch(
        self, group: str, entries: list[IndexEntry], ends: Sequence[int] = (),
        checkpoints: Sequence[int] = (),
    ) -> None:  # fmt: skip
        """Record entries of durable batches atomically: batch ends and markers are points.

        ``ends`` are the seqs that end a batch; by default the last entry's. Batch ends in
        ``checkpoints`` are checkpoints from the start (a point's kind never changes).
        """

    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``, if indexed."""

    def last_seq(self, group: str) -> int:
        """Highest indexed seq of the group; 0 if none."""

    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Seq of the newest point at or before ``source_ns``."""

    def seq_received_before(self, group: str, received_ns: int) -> int | None:
        """Seq of the newest point received (trusted time) at or before ``received_ns``."""

    def put_received(self, group: str, seqs: Sequence[int], received_ns: int) -> None:
        """Record ``received_ns`` as the trusted time of the points at ``seqs``."""

    def points(
        self, group: str, start_ns: int, end_ns: int, after: tuple[int, int] | None, limit: int
    ) -> list[Point]:
        """Points with start_ns <= time <= end_ns, after (time, seq) ``after``, oldest first."""

    def point_at(self, group: str, seq: int) -> Point | None:
        """The point at ``seq``, if ``seq`` is a restore point."""

    def tag_point(self, group: str, point: Point) -> None:
        """Store ``point`` (replacing the kind and label of the point at its seq)."""

    def entries(self, group: str, first: int, last: int) -> list[IndexEntry]:
        """Entries with first <= seq <= last, in seq order."""

    def events(self, group: str) -> list[Point]:
        """Resync markers of the group (``kind`` is the record kind), in seq order."""

    def get_bookmark(self, group: str, name: str) -> int | None:
        """Seq of a bookmark."""

    def put_bookmark(self, group: str, name: str, seq: int) -> None:
        """Name the point at ``seq`` (points list their bookmarks in ``Point.bookmarks``)."""

    def delete_upto(self, group: str, seq: int) -> None:
        """Forget every entry and point with seq < ``seq`` (the point at seq stays)."""

    def get_meta(self, key: str) -> bytes | None:
        """Small metadata value, or None."""

    def put_meta(self, key: str, value: bytes) -> None:
        """Store a small metadata value durably (synced before returning)."""

    def close(self) -> None:
        """Flush and close."""
