"""The journal of one consistency group: its segments, its durable point, its index.

Invariants:
- seqs in the journal are gap-free: segment k+1 starts right after segment k ends;
- ``durable_seq`` only grows, and only after the bytes up to it were fdatasync'd;
- the index never points past ``durable_seq`` (it is written after the sync), and it
  is rebuilt from the segments on open when it lags;
- records are chained (cdp/journal/seal.py): every read checks a record's chain tag
  against the previous record's, each segment header holds the head of the one before,
  and each checkpoint stores the head at its seq in the index meta. Open checks every
  segment header and link, the checkpointed head and the whole last segment; the
  records inside sealed segments are checked when read (apply, images) and by
  ``cdp journal verify`` (docs/ARCHITECTURE.md: open time stays O(segments)).

Appends and syncs come from one thread (the committer); reads and releases may come
from another (the applier). The segment list is guarded by a lock.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cdp import fsutil, naming
from cdp.errors import IndexCorruptError, JournalCorruptError, JournalSyncError
from cdp.fsutil import fsync_dir
from cdp.journal.index import Index, IndexEntry
from cdp.journal.seal import GCM_TAG_SIZE, ZERO_HEAD, Keyring
from cdp.journal.segment import Segment, scan
from cdp.record import CHAINED_HEADER_SIZE, KIND_WRITE, Record

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 2**20
"""A segment is sealed and a new one started once it would grow past this."""


@dataclass(frozen=True)
class OpenReport:
    """What :meth:`Journal.open` found on disk."""

    segments: int
    durable_seq: int
    torn_bytes_cut: int
    reindexed: int


CHECKPOINT_HEAD = struct.Struct("<Q16s")
"""Index meta value of a group's checkpointed chain head: (seq, chain tag after it)."""


def checkpoint_head_key(group: str) -> str:
    """Index meta key of a group's checkpointed chain head."""
    return f"journal-head/{group}"


def checkpoint_head(index: Index, group: str) -> tuple[int, bytes] | None:
    """(seq, chain head) the group's last checkpoint recorded, if any."""
    raw = index.get_meta(checkpoint_head_key(group))
    if not raw:
        return None
    seq, head = CHECKPOINT_HEAD.unpack(raw)
    return seq, head


def orphan_journals(journal_dir: str, known: set[str]) -> list[str]:
    """Groups with segments on disk that the index does not know (its metadata was lost)."""
    if not os.path.isdir(journal_dir):
        return []
    return sorted(
        g for g in os.listdir(journal_dir) if g not in known and _has_segments(journal_dir, g)
    )


def _has_segments(journal_dir: str, group: str) -> bool:
    folder = os.path.join(journal_dir, group)
    return os.path.isdir(folder) and any(
        naming.parse_segment(n) is not None for n in os.listdir(folder)
    )


def check_no_orphans(data_dir: str, journal_dir: str, index_dir: str, known: set[str]) -> None:
    """Refuse to start over journals the index lost: that would silently start empty."""
    orphans = orphan_journals(journal_dir, known)
    if not orphans:
        return
    aside = os.path.join(data_dir, "orphaned")
    moves = " && ".join(f"mv {os.path.join(journal_dir, g)} {aside}/" for g in orphans)
    raise IndexCorruptError(
        index_dir,
        f"the index does not know groups {orphans} whose journals are on disk (the index "
        "and its group metadata were lost or damaged beyond repair)",
        hint=f"restore {index_dir} from a backup (a damaged one is kept beside it as "
        f"*.damaged-*), or set the journals aside to start without them: mkdir -p {aside} "
        f"&& {moves}; the source's next handshake registers the group again (full resync)",
    )


class Journal:
    """Append-only, durable store of one group's write records."""

    def __init__(
        self, root: str, group: str, index: Index, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: Callable[[int], None] = os.fdatasync, keys: Keyring | None = None,
    ) -> None:  # fmt: skip
        self._keys = keys
        """Journal keys: new segments are encrypted and keyed under the newest one."""
        self._fsync = fsync
        """fdatasync of a segment's fd; injectable (tests fail it with EIO)."""
        self.failure: JournalSyncError | None = None
        """Set when an fsync failed: nothing is appended until :meth:`reopen`."""
        self.dir = os.path.join(root, group)
        self.group = group
        self._index = index
        self._segment_bytes = segment_bytes
        self._segments: list[Segment] = []
        self._lock = threading.Lock()
        self._unsynced: list[list[IndexEntry]] = []
        self.durable_seq = 0
        self.durable_ns = 0
        self.appended_seq = 0
        """Highest seq appended (durable or not)."""
        self.damage: JournalCorruptError | None = None
        """Acknowledged records found damaged on open; the journal then ends before them."""
        self._checkpoint_due = False
        """The next synced batch end is a checkpoint (set on the target's cadence)."""
        self._last_ns = 0
        """Point time of the newest appended record: a source time never goes below it."""
        self._last_received_ns = 0
        """Trusted time of the newest appended record: receive times never go backwards."""
        self.clock_skew_ns = 0
        """Source time minus receive time of the newest appended record (0 before any):
        positive when the source's clock is ahead of the target's (transit time lowers it)."""

    # -- open and recovery -------------------------------------------------------------

    def open(self, floor_seq: int = 0) -> OpenReport:
        """Load the segments, cut a torn tail, rebuild a lagging index.

        ``floor_seq`` is the highest seq known applied to the replica (released
        segments are gone, so the journal may start above 1). Raises
        :class:`JournalCorruptError` when acknowledged records are missing or bad.
        """
        fsutil.make_dirs(self.dir)
        firsts = sorted(
            s for s in (naming.parse_segment(n) for n in os.listdir(self.dir)) if s is not None
        )
        cut = 0
        for i, first in enumerate(firsts):
            path = os.path.join(self.dir, naming.format_segment(first))
            if i + 1 < len(firsts):
                seg = Segment.load(path, first, firsts[i + 1] - 1, self._keys, self._fsync)
                self._segments.append(seg)
            else:
                cut = self._open_last(path, first)
        last = self._segments[-1].last_seq if self._segments else floor_seq
        self.durable_seq = self.appended_seq = max(last, floor_seq)
        self.damage = self.damage or self._index_ahead()
        self.durable_ns = self._source_ns_of(self.durable_seq)
        if self.damage is not None:  # the intact records before it stay readable
            raise self.damage
        reindexed = self._reconcile_index()
        try:
            self.damage = self._broken_link() or self._checkpoint_mismatch()
        except JournalCorruptError as exc:
            self.damage = exc
        if self.damage is not None:
            raise self.damage
        self.durable_ns = self._last_ns = self._source_ns_of(self.durable_seq)
        self._backfill_received()
        return OpenReport(len(self._segments), self.durable_seq, cut, reindexed)

    def damage_error(self) -> JournalCorruptError:
        """The damage, with a hint naming the newest intact point; only when damaged."""
        assert self.damage is not None
        d = self.damage
        err = JournalCorruptError(d.path, d.offset, d.reason, d.seq)
        err.hint = (
            f"the journal ends at seq {self.durable_seq} before the damage: points up to "
            f"it stay listable and exportable (--at <seq>); the group needs a resync"
        )
        return err

    def _open_last(self, path: str, first: int) -> int:
        """Scan the newest segment, cut its torn tail; return the bytes cut.

        Only bytes past every acknowledged record are cut: if the index knows a seq past
        the last valid record, the bytes are left as they are and the journal is corrupt.
        """
        found = scan(path, first, self._keys)
        last = found.records[-1].header.seq if found.records else first - 1
        seg = Segment(path, first, found.file_size, last, self._fsync, found.seal, found.head)
        # appends continue here only under the same (no) key: an encrypted segment gets a
        # new one (fresh nonces); a previous release's segment is never appended to
        seg.appendable = found.seal is not None and not found.seal.encrypted and not self._keys
        indexed = self._index.last_seq(self.group)
        if found.torn_bytes and indexed > last:  # kept as it is; records before it are read
            self.damage = JournalCorruptError(
                path, found.valid_end,
                f"acknowledged records {last + 1}..{indexed} fail their checks "
                f"({found.stop_reason}); the file is left untouched",
                last + 1,
            )  # fmt: skip
        elif found.torn_bytes:
            log.warning(
                "group %s: cutting %d bytes after seq %d in %s (%s)",
                self.group, found.torn_bytes, last, path, found.stop_reason,
            )  # fmt: skip
            seg.truncate(found.valid_end, found.head)
        self._segments.append(seg)
        return found.torn_bytes

    def _index_ahead(self) -> JournalCorruptError | None:
        """The damage if the index knows acknowledged records the disk lost."""
        indexed = self._index.last_seq(self.group)
        if indexed <= self.durable_seq:
            return None
        seg = self._segments[-1] if self._segments else None
        return JournalCorruptError(
            seg.path if seg else self.dir, seg.size if seg else 0,
            f"acknowledged records {self.durable_seq + 1}..{indexed} are missing or corrupt",
            self.durable_seq + 1,
        )  # fmt: skip

    def _broken_link(self) -> JournalCorruptError | None:
        """The first segment whose header does not continue the chain of the one before."""
        for a, b in itertools.pairwise(self._segments):
            why = ""
            if b.last_seq < b.first_seq and b is self._segments[-1]:
                continue  # holds nothing (a torn new segment cut back): replaced on append
            if b.seal is None:
                why = "an unchained segment after a chained one (replaced)" if a.seal else ""
            elif a.seal and a.seal.header.key_id and not b.seal.header.key_id:
                why = "a segment without a key after a keyed one (downgraded)"
            elif b.prev_head != self._last_tag(a):
                why = (f"its chain head does not continue {a.path}: records or a whole "
                       "segment before it were removed, edited or reordered")  # fmt: skip
            if why:
                return JournalCorruptError(b.path, 0, why, b.first_seq)
        return None

    def _head_before(self, seg: Segment) -> bytes:
        """Chain head after the segment before ``seg`` (zeros when none)."""
        i = self._segments.index(seg)
        return self._last_tag(self._segments[i - 1]) if i else ZERO_HEAD

    def _last_tag(self, seg: Segment) -> bytes:
        """Stored chain tag of a sealed segment's last record (zeros when unchained)."""
        if seg.seal is None:
            return ZERO_HEAD
        if seg.last_seq < seg.first_seq:
            return seg.prev_head
        entry = self._index.get(self.group, seg.last_seq)
        if entry is None or entry.segment != seg.first_seq:
            elsewhere = f"segment {entry.segment:016x}" if entry else "no segment"
            raise JournalCorruptError(
                seg.path, seg.size, f"seq {seg.last_seq} should end this segment; the index "
                f"places it in {elsewhere} (a segment was removed or cut)", seg.last_seq,
            )  # fmt: skip
        return seg.tag_at(entry.position)

    def _checkpoint_mismatch(self) -> JournalCorruptError | None:
        """The damage when the record at the last checkpoint has another head than then."""
        found = checkpoint_head(self._index, self.group)
        if found is None:
            return None
        seq, head = found
        if not self.first_seq() <= seq <= self.durable_seq:
            return None  # released since (or never durable: the index check covers it)
        seg = self._segment_of(seq)
        entry = self._index.get(self.group, seq)
        if seg.seal is None or entry is None or entry.segment != seg.first_seq:
            return None
        if seg.tag_at(entry.position) == head:
            return None
        return JournalCorruptError(
            seg.path, entry.position, "the chain head differs from the one the checkpoint "
            "recorded: records up to it were rewritten", seq,
        )  # fmt: skip

    def _reconcile_index(self) -> int:
        """Re-index records the index lacks (it never knows more: see :meth:`_index_ahead`)."""
        indexed = self._index.last_seq(self.group)
        count, prev_ns, now = 0, self._source_ns_of(indexed), time.time_ns()
        for seg in self._segments:
            if seg.last_seq <= indexed:
                continue
            for located in scan(seg.path, seg.first_seq, self._keys).records:
                h = located.header
                if h.seq > indexed:
                    label = ""
                    if h.kind != KIND_WRITE:
                        label = seg.read(located.offset, h.seq).frame.decode()
                    prev_ns = max(prev_ns, h.source_ns)  # clamped as on append
                    entry = IndexEntry(
                        h.seq, seg.first_seq, located.offset, prev_ns, h.data_xxh3,
                        h.kind, h.disk, h.offset, h.length, label, now,
                    )  # fmt: skip
                    self._index.put_batch(self.group, [entry])
                    count += 1
        return count

    def _backfill_received(self) -> None:
        """Give points of an older data dir (no trusted times stored) the time of this open.

        Data dirs written before trusted time existed have no receive times; their points
        count as received now, so they stay for a full window more and never leave early.
        """
        self._last_received_ns = time.time_ns()
        if not self.durable_seq or self._index.seq_received_before(self.group, 2**63 - 1):
            return
        seqs = [p.seq for p in self._index.points(self.group, -(2**63), 2**63 - 1, None, 2**31)]
        if seqs:
            log.info("group %s: %d points get trusted time now (older data dir)", self.group,
                     len(seqs))  # fmt: skip
            self._index.put_received(self.group, seqs, self._last_received_ns)

    def keep_received_after(self, ns: int) -> None:
        """Receive times from now on are at least ``ns`` (the clock's high-water mark).

        A clock set back across a restart then does not make new records look old.
        """
        self._last_received_ns = max(self._last_received_ns, ns)

    def _source_ns_of(self, seq: int) -> int:
        entry = self._index.get(self.group, seq) if seq else None
        return entry.source_ns if entry else 0

    # -- the write side (committer thread) ---------------------------------------------

    def append(self, records: list[Record], received_ns: int = 0) -> None:
        """Append a batch of consecutive records after ``appended_seq``; not yet durable.

        The segment keeps each record's source time as sent; the index gets it clamped to
        the previous record's (point times never go backwards) and ``received_ns``, the
        trusted time of the batch (default: now), clamped the same way.
        """
        received_ns = received_ns or time.time_ns()
        if not records:
            return
        if self.failure is not None:
            raise self.failure
        assert records[0].seq == self.appended_seq + 1, (records[0].seq, self.appended_seq)
        size = sum(CHAINED_HEADER_SIZE + GCM_TAG_SIZE + len(r.frame) for r in records)
        seg = self._active_for(records[0].seq, size)
        offsets = seg.append(records)
        entries = []
        for rec, off in zip(records, offsets, strict=True):
            label = rec.frame.decode() if rec.is_marker else ""
            self._last_ns = max(self._last_ns, rec.source_ns)  # clamped: never backwards
            self._last_received_ns = max(self._last_received_ns, received_ns)
            entries.append(
                IndexEntry(
                    rec.seq,
                    seg.first_seq,
                    off,
                    self._last_ns,
                    rec.data_xxh3,
                    rec.kind,
                    rec.disk,
                    rec.offset,
                    rec.length,
                    label,
                    self._last_received_ns,
                )  # fmt: skip
            )
        self._unsynced.append(entries)
        self.appended_seq = records[-1].seq
        self.clock_skew_ns = records[-1].source_ns - received_ns

    def _active_for(self, first_seq: int, size: int) -> Segment:
        """The segment the next append goes to, rolling to a new one when full."""
        active = self._segments[-1] if self._segments else None
        empty = active is not None and active.last_seq < active.first_seq
        fits = active is not None and (empty or active.size + size <= self._segment_bytes)
        if active is not None and active.appendable and fits:
            return active
        prev = ZERO_HEAD
        if active is not None:  # a sealed segment is fully durable before the next one starts
            self._synced(active)
            prev = active.head
        if active is not None and empty:  # holds no record: replaced (same name)
            prev = active.prev_head if active.seal else self._head_before(active)
            with self._lock:
                self._segments.pop().close()
        path = os.path.join(self.dir, naming.format_segment(first_seq))
        key = self._keys.newest if self._keys else None
        seg = Segment.create(path, first_seq, prev, key, self._fsync)
        fsync_dir(self.dir)
        with self._lock:
            self._segments.append(seg)
        return seg

    def sync(self) -> tuple[int, int]:
        """Make every append durable, index it; return (durable_seq, its source_ns)."""
        if not self._unsynced:
            return self.durable_seq, self.durable_ns
        if self.failure is not None:
            raise self.failure
        self._synced(self._segments[-1])
        entries = [e for batch in self._unsynced for e in batch]
        ends = [batch[-1].seq for batch in self._unsynced]
        checkpoints = ends[-1:] if self._checkpoint_due else []
        try:
            self._index.put_batch(self.group, entries, ends, checkpoints)
        except Exception:
            self._rollback_unsynced()
            raise
        self._checkpoint_due = False
        last = self._unsynced[-1][-1]
        self._unsynced.clear()
        self.durable_seq, self.durable_ns = last.seq, last.source_ns
        if checkpoints:  # the head at a checkpoint: what a later rewrite cannot match
            value = CHECKPOINT_HEAD.pack(checkpoints[0], self._segments[-1].head)
            self._index.put_meta(checkpoint_head_key(self.group), value)
        return self.durable_seq, self.durable_ns

    def _synced(self, seg: Segment) -> None:
        """Make ``seg`` durable; on failure cut every unsynced append and stop the journal.

        After a failed fsync the kernel may have dropped the pages (PostgreSQL's
        "fsyncgate"): a later fsync can succeed without them. So the records are cut, never
        acknowledged, and nothing more is appended until :meth:`reopen` re-reads the disk.
        """
        try:
            seg.sync()
        except OSError as exc:
            first = self._unsynced[0][0].seq if self._unsynced else self.durable_seq + 1
            self.failure = JournalSyncError(
                self.group, seg.path, first, self.appended_seq, os.strerror(exc.errno or 0)
            )
            log.error("%s", self.failure)
            if self._unsynced:
                with contextlib.suppress(OSError):  # reopen cuts them if this fails too
                    self._rollback_unsynced()
            raise self.failure from exc

    def reopen(self, floor_seq: int = 0) -> OpenReport:
        """After a failed fsync: forget every in-memory state and open again from disk."""
        self.close()
        self._unsynced.clear()
        self.failure, self.damage = None, None
        report = self.open(floor_seq)
        if self._segments:  # records re-read from disk are made durable again before use
            self._synced(self._segments[-1])
        return report

    def request_checkpoint(self) -> None:
        """Make the last batch end of the next sync a checkpoint (kind final when listed)."""
        self._checkpoint_due = True

    def _rollback_unsynced(self) -> None:
        """Cut away appends that were never acknowledged (their index write failed)."""
        first = self._unsynced[0][0]
        with self._lock:
            while self._segments[-1].first_seq > first.segment:  # started in this round
                seg = self._segments.pop()
                seg.close()
                os.unlink(seg.path)
            seg = self._segments[-1]
            seg.truncate(first.position)  # finds the chain head at the cut
            seg.last_seq = first.seq - 1
        fsync_dir(self.dir)
        self._unsynced.clear()
        self.appended_seq = self.durable_seq

    # -- the read side -----------------------------------------------------------------

    def lookup(self, seq: int) -> IndexEntry | None:
        """Index entry of a durable seq, if it is still in the journal."""
        return self._index.get(self.group, seq)

    def index_entries(self, first: int, last: int) -> list[IndexEntry]:
        """Index entries of durable records ``first..last``."""
        return self._index.entries(self.group, first, min(last, self.durable_seq))

    def read_entry(self, entry: IndexEntry) -> Record:
        """Read and verify the record an index entry points at."""
        seg = self._segment_of(entry.seq)
        if seg.first_seq != entry.segment:
            raise JournalCorruptError(seg.path, entry.position, "index points elsewhere", entry.seq)
        return seg.read(entry.position, entry.seq, self._prev_tag(seg, entry.seq))

    def first_seq(self) -> int:
        """Oldest seq still held in a segment (durable_seq + 1 when none is)."""
        with self._lock:
            return self._segments[0].first_seq if self._segments else self.durable_seq + 1

    def read_range(self, first: int, last: int) -> Iterator[Record]:
        """Yield verified durable records ``first..last`` in seq order."""
        last = min(last, self.durable_seq)
        seq = first
        while seq <= last:
            seg = self._segment_of(seq)
            entry = self._index.get(self.group, seq)
            if entry is None or entry.segment != seg.first_seq:
                raise JournalCorruptError(seg.path, 0, "record missing from the index", seq)
            upto = min(last, seg.last_seq)
            yield from seg.iter_from(entry.position, seq, upto, self._prev_tag(seg, seq))
            seq = upto + 1

    def _prev_tag(self, seg: Segment, seq: int) -> bytes | None:
        """Chain tag before ``seq`` in ``seg`` (None when unchained): what its tag extends."""
        if seg.seal is None:
            return None
        if seq == seg.first_seq:
            return seg.prev_head
        entry = self._index.get(self.group, seq - 1)
        if entry is None or entry.segment != seg.first_seq:
            raise JournalCorruptError(seg.path, 0, "record missing from the index", seq - 1)
        return seg.tag_at(entry.position)

    def _segment_of(self, seq: int) -> Segment:
        with self._lock:
            firsts = [s.first_seq for s in self._segments]
            i = bisect.bisect_right(firsts, seq) - 1
            if i < 0 or seq > self._segments[i].last_seq:
                raise JournalCorruptError(self.dir, 0, "no segment holds this seq", seq)
            return self._segments[i]

    def release_upto(self, seq: int) -> int:
        """Delete sealed segments whose records all have seq <= ``seq``; return bytes freed."""
        freed = 0
        with self._lock:
            while len(self._segments) > 1 and self._segments[0].last_seq <= seq:
                seg = self._segments.pop(0)
                seg.close()
                os.unlink(seg.path)
                freed += seg.size
                self._index.delete_upto(self.group, min(seg.last_seq + 1, seq))
        if freed:
            fsync_dir(self.dir)
        return freed

    def segment_spans(self) -> list[tuple[int, int, int]]:
        """(first seq, last seq, bytes) of every segment, oldest first."""
        with self._lock:
            return [(s.first_seq, s.last_seq, s.size) for s in self._segments]

    def bytes_on_disk(self) -> int:
        """Total size of the group's segments."""
        with self._lock:
            return sum(s.size for s in self._segments)

    def close(self) -> None:
        """Close every segment."""
        with self._lock:
            for seg in self._segments:
                seg.close()
            self._segments.clear()
