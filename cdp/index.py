"""The journal index seam: seq -> record location, time -> seq, and small metadata.

The index is derived data: the journal rebuilds it from the segments on open, so it is
written without fsync on the hot path. Implementations live in ``cdp/store/``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where a record lives, and what the duplicate check needs to know of it."""

    seq: int
    segment: int
    """First seq of the segment that holds the record."""
    offset: int
    """Byte offset of the record in that segment."""
    source_ns: int
    data_xxh3: int


ENTRY = struct.Struct(">QQqQ")
"""Packed value of an entry: segment, offset, source_ns, data_xxh3."""


def pack_entry(e: IndexEntry) -> bytes:
    """Bytes stored for ``e`` (its seq is the key)."""
    return ENTRY.pack(e.segment, e.offset, e.source_ns, e.data_xxh3)


def unpack_entry(seq: int, value: bytes) -> IndexEntry:
    """Inverse of :func:`pack_entry`."""
    return IndexEntry(seq, *ENTRY.unpack(value))


class Index(Protocol):
    """What the journal needs of an index; one instance serves every group."""

    def put_batch(self, group: str, entries: list[IndexEntry]) -> None:
        """Record entries of one durable batch; its last entry is a time point."""

    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``, if indexed."""

    def last_seq(self, group: str) -> int:
        """Highest indexed seq of the group; 0 if none."""

    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Last seq of the newest batch whose last record is at or before ``source_ns``."""

    def delete_upto(self, group: str, seq: int) -> None:
        """Forget every entry and time point with seq <= ``seq``."""

    def get_meta(self, key: str) -> bytes | None:
        """Small metadata value, or None."""

    def put_meta(self, key: str, value: bytes) -> None:
        """Store a small metadata value durably (synced before returning)."""

    def close(self) -> None:
        """Flush and close."""
