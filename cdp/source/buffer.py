"""The source journal buffer: every intercepted write, in seq order, until it is acked.

Bounded by the bytes of compressed payload it holds. Records get their seq here, so
seq order is the order in which the filter saw the writes. The shipper reads batches
from it and releases records as acks arrive; it never drops an unacked record.
"""

from __future__ import annotations

import asyncio

from cdp import codec
from cdp.record import Record

DEFAULT_BUFFER_BYTES = 256 * 2**20
"""Compressed payload bytes the buffer may hold before the filter must wait."""


class SourceBuffer:
    """Ordered, bounded buffer of unacked write records of one group."""

    def __init__(self, capacity_bytes: int = DEFAULT_BUFFER_BYTES, next_seq: int = 1) -> None:
        self.capacity_bytes = capacity_bytes
        self.next_seq = next_seq
        """Seq the next appended write gets."""
        self.acked_seq = next_seq - 1
        self.acked_ns = 0
        """Source timestamp of the newest acked record (0 before the first ack)."""
        self.bytes_held = 0
        self._records: list[Record] = []
        self._head = 0
        self.changed = asyncio.Event()
        """Set whenever a record is appended or acked; the shipper waits on it."""
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._records) - self._head

    def has_room(self) -> bool:
        """Whether one more record may be appended."""
        return self.bytes_held < self.capacity_bytes

    async def wait_room(self) -> None:
        """Wait until :meth:`has_room` is true."""
        while not self.has_room():
            self._room.clear()
            await self._room.wait()

    def append(self, disk: int, offset: int, data: bytes, source_ns: int) -> Record:
        """Record a write (compress, checksum, give it the next seq)."""
        rec = Record(
            self.next_seq, disk, offset, len(data), source_ns, codec.checksum(data),
            codec.compress(data),
        )  # fmt: skip
        self._records.append(rec)
        self.next_seq += 1
        self.bytes_held += len(rec.frame)
        self.changed.set()
        return rec

    def append_marker(self, kind: int, label: str, source_ns: int) -> Record:
        """Record a marker (bookmark or app-consistent point) at this place in the writes."""
        raw = label.encode()
        rec = Record(self.next_seq, 0, 0, 0, source_ns, codec.checksum(raw), raw, kind)
        self._records.append(rec)
        self.next_seq += 1
        self.bytes_held += len(raw)
        self.changed.set()
        return rec

    def restart_after(self, durable_seq: int, durable_ns: int = 0) -> int:
        """Drop every held record and number new ones from ``durable_seq + 1``.

        ``durable_ns`` is the target's time of ``durable_seq`` (what RPO is measured from).

        For a source whose journal cannot meet the target's (a restart lost records, or
        records are missing on both sides); a resync then covers what was dropped.
        Returns how many records were dropped.
        """
        dropped = len(self)
        self._records, self._head = [], 0
        self.bytes_held = 0
        self.next_seq = durable_seq + 1
        self.acked_seq = durable_seq
        self.acked_ns = durable_ns or self.acked_ns
        self._room.set()
        self.changed.set()
        return dropped

    def oldest_seq(self) -> int:
        """Seq of the oldest held record; 0 if the buffer is empty."""
        return self._records[self._head].seq if len(self) else 0

    def newest_ns(self) -> int:
        """Source timestamp of the newest held record, or of the newest acked one if empty."""
        return self._records[-1].source_ns if len(self) else self.acked_ns

    def oldest_ns(self) -> int:
        """Source timestamp of the oldest held record; 0 if empty."""
        return self._records[self._head].source_ns if len(self) else 0

    def take(self, from_seq: int, max_records: int, max_bytes: int) -> list[Record]:
        """Up to ``max_records`` records from ``from_seq`` on, within ``max_bytes`` of frames."""
        if not len(self) or from_seq >= self.next_seq:
            return []
        start = self._head + (from_seq - self._records[self._head].seq)
        out: list[Record] = []
        size = 0
        for rec in self._records[start : start + max_records]:
            if out and size + len(rec.frame) > max_bytes:
                break
            out.append(rec)
            size += len(rec.frame)
        return out

    def ack(self, durable_seq: int, source_ns: int) -> int:
        """Release every record with seq <= ``durable_seq``; return the frame bytes freed."""
        if durable_seq <= self.acked_seq:
            return 0
        freed = 0
        while self._head < len(self._records) and self._records[self._head].seq <= durable_seq:
            freed += len(self._records[self._head].frame)
            self._head += 1
        if self._head > 4096 and self._head * 2 > len(self._records):
            del self._records[: self._head]
            self._head = 0
        self.acked_seq = durable_seq
        self.acked_ns = source_ns
        self.bytes_held -= freed
        if self.has_room():
            self._room.set()
        self.changed.set()
        return freed
