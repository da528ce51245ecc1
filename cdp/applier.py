"""The applier: writes durable records that left the history window into the replica.

Records are applied in seq order, read back from the journal and verified again (a
record corrupted on disk is reported with its segment and seq, never applied). After
each round the replica is synced, then the applied seq is stored, then the segments
wholly below it are released. A crash between those steps re-applies a suffix of the
same records in the same order, which leaves the same bytes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from cdp import codec
from cdp.errors import JournalCorruptError
from cdp.index import Index
from cdp.journal import Journal
from cdp.replica import ReplicaSet

DEFAULT_APPLY_BATCH_RECORDS = 16384
"""Records applied per round, at most (one replica sync per round)."""

_U64 = struct.Struct(">Q")


def applied_key(group: str) -> str:
    """Metadata key holding a group's applied seq."""
    return f"applied/{group}"


def load_applied(index: Index, group: str) -> int:
    """The applied seq stored for a group; 0 if none."""
    raw = index.get_meta(applied_key(group))
    return int(_U64.unpack(raw)[0]) if raw else 0


class Applier:
    """Applies one group's journal to its base replica."""

    def __init__(
        self,
        journal: Journal,
        replica: ReplicaSet,
        index: Index,
        history_window_s: float = 0.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.journal = journal
        self.replica = replica
        self._index = index
        self.history_window_s = history_window_s
        self._clock_ns = clock_ns
        self.applied_seq = load_applied(index, journal.group)
        self.applied_bytes = 0

    def limit(self) -> int:
        """Highest seq that may be applied now: durable and outside the history window."""
        durable = self.journal.durable_seq
        if self.history_window_s <= 0:
            return durable
        cutoff = self._clock_ns() - int(self.history_window_s * 1e9)
        at = self._index.seq_at_time(self.journal.group, cutoff)
        return min(durable, at or 0)

    def apply_once(self, max_records: int = DEFAULT_APPLY_BATCH_RECORDS) -> int:
        """Apply the next run of records; return how many were applied."""
        last = min(self.limit(), self.applied_seq + max_records)
        if last <= self.applied_seq:
            return 0
        count = 0
        for rec in self.journal.read_range(self.applied_seq + 1, last):
            data = codec.decompress(rec.frame, rec.length)
            if codec.checksum(data) != rec.data_xxh3:
                raise JournalCorruptError(
                    self.journal.dir, 0, "payload checksum mismatch on apply", rec.seq
                )
            self.replica.write(rec.disk, rec.offset, data)
            self.applied_bytes += rec.length
            count += 1
        self.replica.sync()
        self._index.put_meta(applied_key(self.journal.group), _U64.pack(last))
        self.applied_seq = last
        self.journal.release_upto(last)
        return count
