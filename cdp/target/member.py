"""One member journal of a consistency group at the target, and its session behaviour.

A :class:`Member` holds what the target keeps for one member key (see
:func:`member_key`): its journal, committer, replica set, applier and catalog, and the
state of the source session that streams into it. It runs that session itself: the
handshake decision (:meth:`Member.open_session`, incl. whether a resync is required),
taking batches (:meth:`Member.accept`), the end of a session and a status snapshot.
:class:`cdp.target.target.Target` keeps the registry of members, the map from session id
to member, and the task loops; nothing here starts a task, knows a session map or
knows about grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial

from cdp.errors import (
    CdpError,
    JournalCorruptError,
    JournalSyncError,
    PointOutsideHistoryError,
    PreconditionError,
    ReplicaCorruptError,
)
from cdp.group import GroupSpec
from cdp.journal.index import POINT_CRASH, Index, IndexEntry, Point
from cdp.journal.journal import Journal
from cdp.lifecycle import Lifecycle, decode, fenced_reason, meta_key
from cdp.record import KIND_BOOKMARK, KIND_RESYNC_START, Record
from cdp.restore.catalog import Catalog
from cdp.restore.image import PlanCache
from cdp.restore.spec import format_ns
from cdp.status import GroupState, GroupStatus
from cdp.target import intake
from cdp.target.applier import Applier, load_applied
from cdp.target.committer import Ack, Committer
from cdp.target.config import TargetConfig
from cdp.target.detect import DetectorState
from cdp.target.detection import Detection
from cdp.target.holds import BaseHolds
from cdp.target.keeping import Keeping
from cdp.target.replica import ReplicaSet
from cdp.target.resync_progress import ResyncProgress
from cdp.target.scrub import ScrubReport, scrub_live
from cdp.target.seal import Seal, Sealed
from cdp.target.verdicts import Verdicts
from cdp.verdict import Suspicion
from cdp.waiting import wait_set

log = logging.getLogger("cdp.target")
"""The target's logger: to an operator a member's messages are the target's."""

RESYNC_REQUIRED_META = "resync_required"
"""Index meta key prefix (``<prefix>/<member key>``): why the member needs a resync, until
a RESYNC_START is durable (empty: none needed). Kept so a target restart keeps it sticky."""

MEMBER_SEPARATOR = "@"
"""Joins a group id and a member id into a member key; not allowed in either name."""


def member_key(group_id: str, member_id: str) -> str:
    """The key of a group's member journal: the group id alone for a single source."""
    return f"{group_id}{MEMBER_SEPARATOR}{member_id}" if member_id else group_id


def split_key(key: str) -> tuple[str, str]:
    """(group id, member id) of a member key; the member id is "" for a single source."""
    group_id, _, member_id = key.partition(MEMBER_SEPARATOR)
    return group_id, member_id


@dataclass(frozen=True)
class SessionInfo:
    """The target's answer to a handshake."""

    session_id: str
    durable_seq: int
    durable_source_ns: int
    resync_required: bool
    resync_reason: str
    limits: intake.Limits
    window_bytes: int


class Member:
    """The target-side state of one member journal and of the session streaming into it."""

    def __init__(self, key: str, spec: GroupSpec, config: TargetConfig, index: Index) -> None:
        self.key = key
        """The member key (see :func:`member_key`): names the journal, index rows, catalog."""
        self.group_id, self.member_id = split_key(key)
        self.spec = spec
        """The member's VMs; ``spec.group_id`` is the group (as on the wire)."""
        self._limits, self._window_bytes = config.limits, config.window_bytes
        self.capacities = tuple(d.spec.capacity_bytes for d in spec.disks())
        self.journal = Journal(
            config.journal_dir, key, index, config.journal_segment_bytes, config.journal_fsync,
            config.journal_keys,
        )  # fmt: skip
        self.committer = Committer(self.journal, self.fail)
        had_data = load_applied(index, key) > 0
        self.replica = ReplicaSet(config.replica_dir, spec, had_data)
        self.verdicts = Verdicts(index, key)
        """Suspicions on this member's history (clean / suspect / unknown points)."""
        self.holds = BaseHolds(index, key)
        """Who keeps the base at or before which seq (copy-free failovers)."""
        self.keeping = Keeping(
            key, self.group_id, config.policy_for(self.group_id), index, self.verdicts,
            self.holds, self.journal.dir,
        )  # fmt: skip
        """The group's policy and retention lock, and why intake is refused (if it is)."""
        pol = self.keeping.policy
        self.applier = Applier(
            self.journal, self.replica, index, pol.history_window_s, pol.journal_limit_bytes,
            retention_lock_s=self.keeping.lock.lock_s, onset=self.keeping.onset,
        )  # fmt: skip
        self.keeping.attach(self.applier)
        self.applier.hold_base(self.holds.lowest())
        self._detection = Detection(
            index, key, self.capacities, config.detect_training_s, self.verdicts
        )
        """The encryption detector, fed every durable batch (it raises suspicions)."""
        self._last_checkpoint_s = 0.0
        """Monotonic time of the last checkpoint request."""
        self.catalog = Catalog(index, key)
        self.created_ns = int(index.get_meta(f"created/{key}") or time.time_ns())
        self.session_id = ""
        """The live session writing this member ("" when none)."""
        self.source_id = ""
        self.state = GroupState.DISCONNECTED
        self.error: CdpError | None = None
        self.plans = PlanCache()
        """Image plans of the last (base, point) read, for every disk at once."""
        self.bookmark_lock = asyncio.Lock()
        self._expected_seq = 1
        self._received_bytes = 0
        self._pending: set[asyncio.Future[Ack]] = set()
        self._pending_bookmarks: set[str] = set()
        """Names of in-band bookmarks in batches not yet durable (for the uniqueness check)."""
        self._resync = ResyncProgress()
        self.source_identity = ""
        """The mTLS identity that opened the current session ("" without mTLS)."""
        self.lifecycle: Lifecycle = decode(index.get_meta(meta_key(self.group_id)))
        """The group's lifecycle and fencing epoch (the target persists and sets it)."""
        self._durable_news = asyncio.Event()
        """Set when a batch became durable: wakes an idle apply loop at once."""
        self._idle_ns = 0
        """Target time of the last heartbeat that found the source fully acked (0: none)."""
        self.seal = Seal()
        """A planned failover's seal of this member (cdp/target/seal.py)."""

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Recover the journal from disk; a corrupt journal or replica puts the member in ERROR."""
        try:
            report = self.journal.open(floor_seq=self.applier.applied_seq)
        except JournalCorruptError as exc:
            log.error("group %s: %s", self.key, exc)
            self.fail(exc)
            return
        self._expected_seq = self.journal.durable_seq + 1
        self.journal.keep_received_after(self.applier.clock.high_water_ns)
        events = self.catalog.index.events(self.key)
        self._resync.active = bool(events) and events[-1].kind == KIND_RESYNC_START
        self._detection.set_resyncing(self._resync.active)
        log.info("group %s: journal open: %s", self.key, report)
        try:
            self.replica.check()
        except ReplicaCorruptError as exc:  # kept, never recreated blank
            log.error("group %s: %s", self.key, exc)
            self.fail(exc)

    def start(self) -> None:
        """Open the journal and start the committer."""
        self.open()
        self.committer.start()

    async def stop(self) -> None:
        """Wait for every queued batch and its judging, then stop the committer."""
        await self.quiesce()
        await self._detection.settled()  # its verdicts are written before the index closes
        self.committer.stop()

    def close(self) -> None:
        """Close the replica files and the journal (after :meth:`stop`)."""
        self.applier.clock.flush()
        self._detection.close()
        self.replica.close()
        self.journal.close()

    def fail(self, exc: CdpError) -> None:
        """Stop the member: no intake, no apply, until an operator acts."""
        self.state, self.error = GroupState.ERROR, exc

    def reopen_after_sync_failure(self) -> None:
        """A group stopped by a failed fsync reopens its journal from disk (on a handshake)."""
        if isinstance(self.error, JournalSyncError):
            self.journal.reopen(floor_seq=self.applier.applied_seq)
            self.journal.keep_received_after(self.applier.clock.high_water_ns)
            self.state, self.error = GroupState.DISCONNECTED, None
            log.warning("group %s: journal reopened from disk after a failed fsync", self.key)

    def damage(self) -> JournalCorruptError | None:
        """The corruption that ends the journal early, naming the newest intact point."""
        return self.journal.damage_error() if self.journal.damage is not None else None

    def check_usable(self) -> None:
        """Raise the member's error if it is in ERROR."""
        if self.error is not None:
            raise self.error

    async def quiesce(self) -> None:
        """Wait until every queued batch is durable or failed."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    # -- the session ----------------------------------------------------------------------

    async def open_session(
        self, source_id: str, oldest_held_seq: int, next_seq: int, epoch: int = 0
    ) -> SessionInfo:
        """Handshake: end the old session, wait for its batches, say where to resume.

        The member needs a resync (and takes no records until one starts) when the
        journal cannot continue from what the source holds. A source of an epoch below
        the group's is fenced: refused, and the current session stays.
        """
        self.check_epoch(epoch)
        self.session_id = ""  # the old stream submits nothing more
        await self.quiesce()
        await asyncio.to_thread(self.reopen_after_sync_failure)
        self.check_usable()
        durable = self.journal.durable_seq
        self._expected_seq = durable + 1
        reason = self._required_reason() or (
            resync_reason(durable, oldest_held_seq, next_seq) or self.replica.take_damage_reason()
        )
        if reason:
            self._require_resync(reason)
        self.session_id, self.source_id = uuid.uuid4().hex, source_id
        self.source_identity = ""
        self.state = GroupState.RESYNC_REQUIRED if reason else (
            GroupState.RESYNCING if self._resync.active else GroupState.REPLICATING
        )  # fmt: skip
        log.info("group %s: session %s from %s at seq %d", self.key, self.session_id, source_id,
                 durable)  # fmt: skip
        return SessionInfo(
            self.session_id, durable, self.journal.durable_ns, bool(reason), reason,
            self._limits, self._window_bytes,
        )  # fmt: skip

    def accept(
        self, records: list[Record], verdicts: list[CdpError | None] | None = None
    ) -> asyncio.Future[Ack]:
        """Validate a batch and queue it for group commit; the future resolves on durability.

        Exact re-sends of durable records are dropped; a bad batch changes nothing.
        """
        self.check_usable()
        self.keeping.check_room()
        if self.state == GroupState.RESYNC_REQUIRED:
            self._check_resync_start(records)
        view = intake.GroupView(
            self.key, self.capacities, self.journal.durable_seq, self._expected_seq,
            self.journal.lookup, self.bookmark_taken, now_ns=time.time_ns(),
        )  # fmt: skip
        fresh = intake.validate(view, records, verdicts)
        fut = asyncio.wrap_future(self.committer.submit(fresh))
        fut.add_done_callback(partial(self._detection.durable, fresh, view.now_ns))
        names = {r.frame.decode() for r in fresh if r.kind == KIND_BOOKMARK}
        if names:
            self._pending_bookmarks |= names
            fut.add_done_callback(lambda _: self._pending_bookmarks.difference_update(names))
        self._expected_seq += len(fresh)
        self._received_bytes += sum(r.length for r in fresh)  # guest bytes, uncompressed
        self._resync.observe(fresh)
        if self.state == GroupState.RESYNC_REQUIRED:  # a RESYNC_START at durable + 1
            self.state = GroupState.RESYNCING
            fut.add_done_callback(self._resync_started)
        elif self.state in (GroupState.REPLICATING, GroupState.RESYNCING):
            self.state = GroupState.RESYNCING if self._resync.active else GroupState.REPLICATING
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        fut.add_done_callback(lambda _: self._durable_news.set())
        return fut

    async def hold_base(self, holder: str, seq: int) -> None:
        """Keep the base at or before ``seq`` for ``holder``; persisted.

        Waits for an apply round in flight; OUT_OF_RANGE if the base already passed ``seq``.
        """
        async with self.paused():
            if seq < self.applier.applied_seq:
                raise PointOutsideHistoryError(
                    f"group {self.key!r}: the base is at seq {self.applier.applied_seq}, past {seq}"
                )
            self.holds.put(holder, seq)
            self.applier.hold_base(self.holds.lowest())

    def release_base(self, holder: str) -> bool:
        """Lift ``holder``'s hold; False if it held nothing."""
        dropped = self.holds.drop(holder)
        self.applier.hold_base(self.holds.lowest())
        return dropped

    def _required_reason(self) -> str:
        """Why an earlier handshake required a resync that has not started yet ("" if none)."""
        raw = self.catalog.index.get_meta(f"{RESYNC_REQUIRED_META}/{self.key}")
        return raw.decode() if raw else ""

    def _require_resync(self, reason: str) -> None:
        """Remember durably that the member needs a resync: every handshake says so again."""
        if self._required_reason() != reason:
            self.catalog.index.put_meta(f"{RESYNC_REQUIRED_META}/{self.key}", reason.encode())

    def _check_resync_start(self, records: list[Record]) -> None:
        """Refuse a batch unless it starts the resync: RESYNC_START at durable_seq + 1."""
        first = records[0] if records else None
        want = self.journal.durable_seq + 1
        if first is None or first.kind != KIND_RESYNC_START or first.seq != want:
            raise PreconditionError(
                f"records[0]: group {self.key!r} needs a resync ({self._required_reason()}); "
                f"only a batch starting with RESYNC_START at seq {want} is taken",
                hint="CompareRegions, then send RESYNC_START at durable_seq + 1, the differing "
                "regions, and RESYNC_END",
            )

    def _resync_started(self, fut: asyncio.Future[Ack]) -> None:
        """The RESYNC_START is durable (or failed): the resync requirement is met (or stays)."""
        if fut.cancelled() or fut.exception() is not None:
            return
        self.catalog.index.put_meta(f"{RESYNC_REQUIRED_META}/{self.key}", b"")

    def note_identity(self, session_id: str, identity: str) -> None:
        """Record the certificate identity that opened ``session_id`` (if it is still live)."""
        if session_id and session_id == self.session_id:
            self.source_identity = identity

    def check_epoch(self, epoch: int) -> None:
        """Refuse (PreconditionError naming the failover) a source of an older epoch."""
        when = format_ns(self.lifecycle.fenced_ns) if self.lifecycle.fenced_ns else "?"
        reason = fenced_reason(self.group_id, self.lifecycle, epoch, when)
        if reason:
            raise PreconditionError(reason)

    def set_lifecycle(self, lifecycle: Lifecycle) -> str:
        """Take the group's new lifecycle; a raised epoch ends the current session.

        A failback (back to protecting after a failover) requires a full resync, durably.

        Returns the id of the session it ended ("" if none).
        """
        ended = ""
        if lifecycle.failed_back_ns != self.lifecycle.failed_back_ns:
            self._require_resync(
                f"the group failed back at {format_ns(lifecycle.failed_back_ns)}: production's "
                "disks changed outside this journal, so every region is compared"
            )
        if lifecycle.epoch > self.lifecycle.epoch and self.session_id:
            ended = self.session_id
            log.warning("group %s: epoch %d fences session %s of %s", self.key,
                        lifecycle.epoch, ended, self.source_id)  # fmt: skip
            self.end_session(ended)
        self.lifecycle = lifecycle
        return ended

    def end_session(self, session_id: str) -> None:
        """The source of ``session_id`` went away: disconnected until the next handshake."""
        if self.session_id != session_id:
            return
        self.session_id = ""
        if self.state == GroupState.REPLICATING:
            self.state = GroupState.DISCONNECTED

    def status(self, now_ns: int) -> GroupStatus:
        """A snapshot of the member's replication state at ``now_ns``."""
        durable_ns = self.journal.durable_ns
        return GroupStatus(
            spec=self.spec, group_id=self.group_id, member_id=self.member_id, state=self.state,
            source_id=self.source_id, durable_seq=self.journal.durable_seq,
            durable_source_ns=durable_ns, applied_seq=self.applier.applied_seq,
            lag_s=(now_ns - durable_ns) / 1e9 if durable_ns else 0.0,
            journal_bytes=self.journal.bytes_on_disk(), received_bytes=self._received_bytes,
            error=str(self.error) if self.error else "", resync=self._resync.snapshot(),
            clock_skew_s=self.journal.clock_skew_ns / 1e9,
            rpo_s=self._rpo_s(now_ns),
            lifecycle=self.lifecycle, source_connected=bool(self.session_id),
            source_identity=self.source_identity,
            standing_suspicions=len(standing := self.verdicts.standing()),
            suspicion_onset_ns=min((s.start_ns for s in standing), default=0),
            guard=self.keeping.guard_status(), detector=self._detection.status(),
        )  # fmt: skip

    def note_heartbeat(self, next_seq: int, now_ns: int) -> Ack:
        """A heartbeat of the live session: "nothing unacked"; the ack is the durable state.

        It counts (the group is idle, not lagging, as of ``now_ns``) only when the
        source's ``next_seq`` is durable_seq + 1 and no batch is in flight; any other
        heartbeat is acked and ignored (docs/PROTOCOL.md, Heartbeats).
        """
        self.check_usable()
        durable = self.journal.durable_seq
        if next_seq == durable + 1 == self._expected_seq and self.state == GroupState.REPLICATING:
            self._idle_ns = now_ns
        return Ack(durable, self.journal.durable_ns)

    def note_seal(self, request_id: str, next_seq: int, now_ns: int) -> Ack:
        """The source's seal: confirmed when it holds nothing unacked (as a heartbeat counts)."""
        ack = self.note_heartbeat(next_seq, now_ns)
        if next_seq == ack.durable_seq + 1 == self._expected_seq and not self._pending:
            sealed = Sealed(self.member_id, self.source_id, ack.durable_seq, now_ns)
            if self.seal.confirm(request_id, sealed):
                log.warning("group %s: sealed at seq %d by %s", self.key, ack.durable_seq,
                            self.source_id)  # fmt: skip
        return ack

    def _rpo_s(self, now_ns: int) -> float:
        """Seconds from the time of the newest restorable point to ``now_ns`` (0 before any).

        Inside an open resync gap that point is the RESYNC_START marker, not the newest write.
        Otherwise the last heartbeat that found the source fully acked counts as a point
        too: every write before it is durable, so an idle group's RPO stays near 0.
        """
        newest_ns = self.journal.durable_ns
        if self._resync.active:
            gap = self.catalog.in_gap(self.journal.durable_seq)
            start = self.catalog.index.point_at(self.key, gap.start_seq - 1) if gap else None
            newest_ns = start.source_ns if start else newest_ns
        elif self.state not in (GroupState.RESYNC_REQUIRED, GroupState.ERROR):
            newest_ns = max(newest_ns, self._idle_ns)
        return max(0.0, (now_ns - newest_ns) / 1e9) if newest_ns else 0.0

    # -- what history, images and the loops read --------------------------------------------

    @property
    def durable_seq(self) -> int:
        """Newest seq durable in the journal."""
        return self.journal.durable_seq

    @property
    def durable_ns(self) -> int:
        """Source time of the newest durable record (0 before any)."""
        return self.journal.durable_ns

    @property
    def applied_seq(self) -> int:
        """Newest seq applied to the base replica."""
        return self.applier.applied_seq

    @property
    def size_cuts(self) -> int:
        """Apply rounds forced by the journal size limit."""
        return self.applier.size_cuts

    @property
    def base_generation(self) -> int:
        """Changes whenever the base moves while apply is paused (see the applier)."""
        return self.applier.base_generation

    def journal_bytes(self) -> int:
        """Bytes of journal segments on disk."""
        return self.journal.bytes_on_disk()

    def lookup(self, seq: int) -> IndexEntry | None:
        """The index entry of a durable seq still in the journal."""
        return self.journal.lookup(seq)

    def latest_point(self) -> Point:
        """The newest durable state as a crash-consistent point."""
        return Point(self.journal.durable_seq, self.journal.durable_ns, POINT_CRASH)

    def verdict(self, seq: int) -> str:
        """clean, suspect or unknown for the member's point at ``seq``."""
        return self.verdicts.verdict(seq)

    def suspicions(self) -> list[Suspicion]:
        """Every suspicion on the member's history, dismissed ones too, oldest first."""
        return self.verdicts.all()

    def retention_notice(self) -> str:
        """A timeline gap cause while a pin or lock stops intake ("" while it runs)."""
        return self.keeping.notice()

    def holds_vm(self, vm_id: str) -> bool:
        """Whether one of the member's VMs is ``vm_id``."""
        return any(vm.vm_id == vm_id for vm in self.spec.vms)

    def bookmark_taken(self, name: str) -> bool:
        """Whether a bookmark has this name, durable or in a batch still in flight."""
        return name in self._pending_bookmarks or (
            self.catalog.index.get_bookmark(self.key, name) is not None
        )

    def detector_state(self) -> DetectorState:
        """What the encryption detector is doing (training, watching, alerting)."""
        return self._detection.state()

    async def detection_settled(self) -> None:
        """Wait until every batch durable so far was judged by the encryption detector."""
        await self._detection.settled()

    def apply_once(self) -> int:
        """One apply round (call from a thread); the number of records applied."""
        return self.applier.apply_once()

    async def checkpoint(self) -> None:
        """Make the next durable batch end a checkpoint (on the target's cadence).

        The encryption detector judges the windows that ended meanwhile (an idle member's).

        The kind is set when the point is indexed, never changed later: a point listed
        as crash-consistent stays crash-consistent (docs/PROTOCOL.md 5).
        """
        self._last_checkpoint_s = time.monotonic()
        self._detection.tick(time.time_ns(), self.journal.durable_seq + 1)
        if self.error is None:
            self.journal.request_checkpoint()

    def checkpoint_due(self, now_s: float) -> bool:
        """Whether the policy's checkpoint interval has passed at monotonic ``now_s``."""
        return now_s - self._last_checkpoint_s >= self.keeping.policy.checkpoint_interval_s

    def scrub(self, report: ScrubReport, rate_bytes_s: int, stopping: Callable[[], bool]) -> int:
        """Check the base replica against its sums (in a thread); the damage found now.

        Apply is paused one chunk of regions at a time. A damaged region is marked, so
        reads refuse it and the next handshake asks the source for a resync.
        """
        before = len(report.damage)
        scrub_live(self.spec, self.replica, self._apply_paused, report, rate_bytes_s, stopping)
        return len(report.damage) - before

    @contextlib.contextmanager
    def _apply_paused(self) -> Iterator[None]:
        self.applier.pause()
        try:
            yield
        finally:
            self.applier.resume()

    async def wait_for_work(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, waking at once when a batch becomes durable."""
        await wait_set(self._durable_news, timeout_s)
        self._durable_news.clear()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Apply stays paused (the base does not move) inside the block.

        The pause is taken on the loop, before anything can be cancelled, and released
        exactly once by the ``finally``, also when the wait for a running round is
        cancelled (a read's deadline, Ctrl-C, a dropped link).
        """
        self.applier.hold()
        try:
            await asyncio.to_thread(self.applier.wait_round)
            yield
        finally:
            self.applier.resume()


def resync_reason(durable: int, oldest_held_seq: int, next_seq: int) -> str:
    """Why the journal cannot continue from what the source holds; "" if it can."""
    if oldest_held_seq and durable + 1 < oldest_held_seq:
        return (
            f"target is durable to seq {durable} but the source holds records "
            f"from seq {oldest_held_seq} on; seqs in between are lost"
        )
    if not oldest_held_seq and next_seq > durable + 1:
        return (
            f"target is durable to seq {durable} but the source's next seq is {next_seq} and "
            f"it holds nothing older; seqs {durable + 1}..{next_seq - 1} are lost"
        )
    if next_seq and durable >= next_seq:
        return (
            f"target is durable to seq {durable} but the source's next seq is {next_seq}; "
            "the source lost its journal state"
        )
    return ""
