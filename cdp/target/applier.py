"""The applier: moves records that leave the history window into the base replica.

Records leave the journal in seq order, by time (older than the history window) or by
size (the journal is over its limit: the oldest whole segments go). Each round is
planned first (:meth:`Applier.plan`), the plan is reported, then executed: records are
read back from the journal and verified again (a record corrupted on disk is reported
with its segment and seq, never applied), the replica is synced, the applied seq is
stored, and the segments wholly below it are released. A crash between those steps
re-applies a suffix of the same records in the same order, which leaves the same bytes.
The replica's region checksums move in the same round, before the applied seq (see
:class:`cdp.target.replica.ReplicaSet`): a region is verified before it is written.

Images read the base while apply is paused (:meth:`Applier.pause`); only the journal
size limit may override a pause, and then :attr:`Applier.base_generation` changes so
the reader knows its view moved.

Neither the window nor the size limit goes past the **ceiling** (:meth:`Applier.ceiling`):
a base hold (a failover's chain), the **pin** of a standing suspicion (the history before
the onset: the window's worth of it and every clean point) and the **retention lock**
(history received within the lock). When the ceiling keeps the journal over its size
limit, intake stops instead (:meth:`Applier.over_limit_blocker`). Time-based cuts use
trusted time (:class:`cdp.target.retention_guard.ClockGuard`) and stand still while the
clock jumped. docs/ARCHITECTURE.md, "Attack-aware retention" and "Retention lock".
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp import codec
from cdp.errors import JournalCorruptError
from cdp.journal.index import Index
from cdp.journal.journal import Journal
from cdp.record import KIND_WRITE
from cdp.target.replica import ReplicaSet
from cdp.target.retention_guard import HOLD, LOCK, PIN, ClockGuard, boot_clock_ns

log = logging.getLogger(__name__)

DEFAULT_APPLY_BATCH_RECORDS = 16384
"""Records applied per round, at most (one replica sync per round)."""
REPORT_EVERY_NS = 60 * 10**9
"""Time-based retention is reported at most this often."""
SIZE_CUT_TARGET = 0.9
"""After a size cut the journal is brought down to this share of its limit."""

_U64 = struct.Struct(">Q")


def _no_onset() -> tuple[int, int]:
    return 0, 0


def applied_key(group: str) -> str:
    """Metadata key holding a group's applied seq."""
    return f"applied/{group}"


def load_applied(index: Index, group: str) -> int:
    """The applied seq stored for a group; 0 if none."""
    raw = index.get_meta(applied_key(group))
    return int(_U64.unpack(raw)[0]) if raw else 0


@dataclass(frozen=True)
class RetentionPlan:
    """What the next apply round will take out of the history, and why."""

    first_seq: int
    upto_seq: int
    reason: str
    """"time" (older than the history window) or "size" (journal over its limit)."""

    @property
    def records(self) -> int:
        """How many records leave the journal."""
        return self.upto_seq - self.first_seq + 1


class Applier:
    """Applies one group's journal to its base replica."""

    def __init__(
        self,
        journal: Journal,
        replica: ReplicaSet,
        index: Index,
        history_window_s: float = 0.0,
        journal_limit_bytes: int = 0,
        clock_ns: Callable[[], int] = time.time_ns,
        *,
        retention_lock_s: float = 0.0,
        mono_ns: Callable[[], int] | None = None,
        onset: Callable[[], tuple[int, int]] = _no_onset,
    ) -> None:
        self.journal = journal
        self.replica = replica
        self._index = index
        self.history_window_s = history_window_s
        self.journal_limit_bytes = journal_limit_bytes
        """0 means no size limit."""
        self._clock_ns = clock_ns
        self.retention_lock_s = retention_lock_s
        """History received within this many seconds is never applied (0: no lock)."""
        self._onset = onset
        """(seq, trusted ns) of the earliest standing suspicion; (0, 0) when none stands."""
        if mono_ns is None:  # a test that sets the wall clock alone moves both clocks
            mono_ns = boot_clock_ns if clock_ns is time.time_ns else clock_ns
        self.clock = ClockGuard(index, journal.group, clock_ns, mono_ns)
        """Trusted time for the window and the lock."""
        self.applied_seq = load_applied(index, journal.group)
        self.applied_bytes = 0
        self.base_generation = 0
        """Grows whenever the base replica changes."""
        self.size_cuts = 0
        """Rounds in which the size limit, not the window, pushed history out."""
        self._pauses = 0
        self._pauses_lock = threading.Lock()
        """Guards ``_pauses``: it changes from the event loop and from threads."""
        self._round = threading.Lock()
        """Held for the whole of an apply round."""
        self._last_report_ns = 0
        self.hold_seq = 0
        """Apply never goes past this seq while it is set (0: no hold); see :meth:`hold_base`."""

    def hold_base(self, seq: int) -> None:
        """Keep the base at or before ``seq`` (0 lifts the hold), even past the size limit.

        A failover's disk chain reads the base under a delta of the records up to its
        point; the chain stays the point's image as long as the base does not pass it.
        """
        self.hold_seq = seq

    def over_limit_blocker(self) -> str:
        """What keeps the journal over its size limit: hold, pin or lock ("" if nothing).

        Intake must stop while this is set: the size cut the limit needs would pass the
        ceiling. Reads the last trusted time (safe on the loop while a round runs).
        """
        limit = self.journal_limit_bytes
        pinned = self._onset()[0] > self.applied_seq
        if not limit or not (self.hold_seq or self.retention_lock_s > 0 or pinned):
            return ""  # nothing can keep the journal full: the cheap answer for every batch
        if sum(size for _, _, size in self.journal.segment_spans()) <= limit:
            return ""
        need = self._size_limit() or self.journal.durable_seq
        ceiling, who = self.ceiling(self.clock.trusted_ns)
        return who if who and ceiling < need else ""

    def ceiling(self, now_ns: int) -> tuple[int, str]:
        """The newest seq apply may reach at trusted ``now_ns``, and what sets it.

        ("" and the durable seq when nothing does.) The pin keeps every point before the
        onset of the earliest standing suspicion that is younger than the history window
        was at the onset; the lock keeps every point received within the lock.
        """
        found = [(self.journal.durable_seq, "")]
        if self.hold_seq:
            found.append((self.hold_seq, HOLD))
        onset_seq, onset_ns = self._onset()
        if onset_seq > self.applied_seq:  # else the base holds suspect writes: nothing to keep
            found.append((self._pin_upto(onset_seq, onset_ns), PIN))
        if self.retention_lock_s > 0:
            cutoff = now_ns - int(self.retention_lock_s * 1e9)
            found.append((self._index.seq_received_before(self.journal.group, cutoff) or 0, LOCK))
        return min(found)

    def _pin_upto(self, onset_seq: int, onset_ns: int) -> int:
        """Newest seq the pin of a suspicion starting at ``onset_seq`` lets apply reach."""
        if self.history_window_s <= 0:
            return onset_seq - 1
        cutoff = onset_ns - int(self.history_window_s * 1e9)
        before = self._index.seq_received_before(self.journal.group, cutoff) or 0
        return min(onset_seq - 1, before)

    def set_retention(
        self, history_window_s: float, journal_limit_bytes: int, retention_lock_s: float = 0.0
    ) -> None:
        """Apply by a new history window, size limit and lock from the next round on."""
        self.history_window_s = history_window_s
        self.journal_limit_bytes = journal_limit_bytes
        self.retention_lock_s = retention_lock_s

    def pause(self) -> None:
        """Stop changing the base (an image is reading it); nests.

        Blocks until a round already running has finished, so after it returns
        ``applied_seq`` and the base stay put (call it from a thread, not the loop).
        """
        self.hold()
        self.wait_round()

    def hold(self) -> None:
        """Take one pause without waiting (safe on the loop); undo with :meth:`resume`.

        No new round starts changing the base after this; one already running may still
        finish: :meth:`wait_round` waits for it.
        """
        with self._pauses_lock:
            self._pauses += 1

    def wait_round(self) -> None:
        """Block until an apply round already running has finished (call from a thread)."""
        with self._round:
            pass

    def resume(self) -> None:
        """Undo one :meth:`pause` or :meth:`hold`."""
        with self._pauses_lock:
            self._pauses = max(0, self._pauses - 1)

    def plan(self) -> RetentionPlan | None:
        """What the next round would apply, or None if nothing is due."""
        durable = self.journal.durable_seq
        now = self.clock.now_ns()
        ceiling = self.ceiling(now)[0]
        upto, reason = min(self._time_limit(durable, now), ceiling), "time"
        size_upto = min(self._size_limit(), ceiling)
        if size_upto > upto:
            upto, reason = size_upto, "size"
        if upto <= self.applied_seq:
            return None
        return RetentionPlan(self.applied_seq + 1, upto, reason)

    def _time_limit(self, durable: int, now_ns: int) -> int:
        if self.history_window_s <= 0:
            return durable
        if self.clock.jumped:  # nothing leaves by time while the clock is not trusted
            return 0
        cutoff = now_ns - int(self.history_window_s * 1e9)
        at = self._index.seq_received_before(self.journal.group, cutoff)  # trusted time only
        return min(durable, at or 0)

    def _size_limit(self) -> int:
        """Seq to apply up to so that the journal fits its limit again (0 if it fits)."""
        limit = self.journal_limit_bytes
        if not limit:
            return 0
        spans = self.journal.segment_spans()
        total = sum(size for _, _, size in spans)
        if total <= limit:
            return 0
        upto = 0
        for _, last, size in spans[:-1]:  # the active segment is never released
            upto = last
            total -= size
            if total <= limit * SIZE_CUT_TARGET:
                break
        return min(upto, self.journal.durable_seq)

    def apply_once(self, max_records: int = DEFAULT_APPLY_BATCH_RECORDS) -> int:
        """Plan, report and apply the next run of records; return how many were applied."""
        with self._round:
            return self._apply_round(max_records)

    def _apply_round(self, max_records: int) -> int:
        plan = self.plan()
        if plan is None:
            return 0
        if self._pauses and plan.reason != "size":
            return 0
        self._report(plan)
        if plan.reason == "size":
            self.size_cuts += 1
            log.warning(
                "group %s: journal over its limit of %d bytes: applying seqs %d..%d early; "
                "restore points before seq %d leave the history",
                self.journal.group, self.journal_limit_bytes, plan.first_seq, plan.upto_seq,
                plan.upto_seq,
            )  # fmt: skip
        last = min(plan.upto_seq, self.applied_seq + max_records)
        entries = self.journal.index_entries(self.applied_seq + 1, last)
        writes = [(e.disk, e.disk_offset, e.length) for e in entries if e.kind == KIND_WRITE]
        self.replica.begin(writes)
        count = self._apply_range(self.applied_seq + 1, last)
        self.replica.sync()  # new region sums too, before the applied seq moves
        self._index.put_meta(applied_key(self.journal.group), _U64.pack(last))
        self.replica.finish()
        self.applied_seq = last
        self.base_generation += 1
        self.journal.release_upto(last)
        return count

    def _report(self, plan: RetentionPlan) -> None:
        """Say what retention is about to drop (at most once a minute for time cuts)."""
        if self.history_window_s <= 0 or plan.reason != "time":
            return
        now = self.clock.trusted_ns
        if now - self._last_report_ns < REPORT_EVERY_NS:
            return
        self._last_report_ns = now
        log.info(
            "group %s: retention: seqs %d..%d leave the %g s history window and go into "
            "the base replica; restore points before seq %d will no longer be offered",
            self.journal.group, plan.first_seq, plan.upto_seq, self.history_window_s,
            plan.upto_seq,
        )  # fmt: skip

    def _apply_range(self, first: int, last: int) -> int:
        count = 0
        for rec in self.journal.read_range(first, last):
            if rec.is_marker:
                continue
            data = codec.decompress(rec.frame, rec.length)
            if codec.checksum(data) != rec.data_xxh3:
                raise JournalCorruptError(
                    self.journal.dir, 0, "payload checksum mismatch on apply", rec.seq
                )
            self.replica.write(rec.disk, rec.offset, data)
            self.applied_bytes += rec.length
            count += 1
        return count
