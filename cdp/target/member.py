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
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cdp.errors import CdpError, JournalCorruptError, PreconditionError, ReplicaCorruptError
from cdp.group import GroupSpec
from cdp.journal.index import POINT_CRASH, Index, IndexEntry, Point
from cdp.journal.journal import Journal
from cdp.record import KIND_BOOKMARK, KIND_RESYNC_START, Record
from cdp.restore.catalog import Catalog
from cdp.restore.image import PlanCache
from cdp.status import GroupState, GroupStatus
from cdp.target import intake
from cdp.target.applier import Applier, load_applied
from cdp.target.committer import Ack, Committer
from cdp.target.config import TargetConfig
from cdp.target.replica import ReplicaSet
from cdp.target.resync_progress import ResyncProgress

log = logging.getLogger("cdp.target")
"""The target's logger: to an operator a member's messages are the target's."""

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
        self.journal = Journal(config.journal_dir, key, index, config.segment_bytes)
        self.committer = Committer(self.journal)
        had_data = load_applied(index, key) > 0
        self.replica = ReplicaSet(config.replica_dir, spec, had_data)
        self.applier = Applier(
            self.journal, self.replica, index, config.history_window_s, config.journal_limit_bytes
        )
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
        self._checkpoint_seq = 0
        self._expected_seq = 1
        self._received_bytes = 0
        self._pending: set[asyncio.Future[Ack]] = set()
        self._pending_bookmarks: set[str] = set()
        """Names of in-band bookmarks in batches not yet durable (for the uniqueness check)."""
        self._resync = ResyncProgress()
        self._durable_news = asyncio.Event()
        """Set when a batch became durable: wakes an idle apply loop at once."""

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
        events = self.catalog.index.events(self.key)
        self._resync.active = bool(events) and events[-1].kind == KIND_RESYNC_START
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
        """Wait for every queued batch, then stop the committer."""
        await self.quiesce()
        self.committer.stop()

    def close(self) -> None:
        """Close the replica files and the journal (after :meth:`stop`)."""
        self.replica.close()
        self.journal.close()

    def fail(self, exc: CdpError) -> None:
        """Stop the member: no intake, no apply, until an operator acts."""
        self.state, self.error = GroupState.ERROR, exc

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
        self, source_id: str, oldest_held_seq: int, next_seq: int
    ) -> SessionInfo:
        """Handshake: end the old session, wait for its batches, say where to resume.

        The member needs a resync (and takes no records until one starts) when the
        journal cannot continue from what the source holds.
        """
        self.check_usable()
        self.session_id = ""
        await self.quiesce()
        durable = self.journal.durable_seq
        self._expected_seq = durable + 1
        reason = (
            resync_reason(durable, oldest_held_seq, next_seq) or self.replica.take_damage_reason()
        )
        self.session_id, self.source_id = uuid.uuid4().hex, source_id
        self.state = GroupState.RESYNC_REQUIRED if reason else GroupState.REPLICATING
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
        if self.state == GroupState.RESYNC_REQUIRED:
            raise PreconditionError("session_id: the group needs a resync before journaling")
        view = intake.GroupView(
            self.key, self.capacities, self.journal.durable_seq, self._expected_seq,
            self.journal.lookup, self.bookmark_taken,
        )  # fmt: skip
        fresh = intake.validate(view, records, verdicts)
        fut = asyncio.wrap_future(self.committer.submit(fresh))
        names = {r.frame.decode() for r in fresh if r.kind == KIND_BOOKMARK}
        if names:
            self._pending_bookmarks |= names
            fut.add_done_callback(lambda _: self._pending_bookmarks.difference_update(names))
        self._expected_seq += len(fresh)
        self._received_bytes += sum(r.length for r in fresh)
        self._resync.observe(fresh)
        if self.state in (GroupState.REPLICATING, GroupState.RESYNCING):
            self.state = GroupState.RESYNCING if self._resync.active else GroupState.REPLICATING
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        fut.add_done_callback(lambda _: self._durable_news.set())
        return fut

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
        )  # fmt: skip

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

    def holds_vm(self, vm_id: str) -> bool:
        """Whether one of the member's VMs is ``vm_id``."""
        return any(vm.vm_id == vm_id for vm in self.spec.vms)

    def bookmark_taken(self, name: str) -> bool:
        """Whether a bookmark has this name, durable or in a batch still in flight."""
        return name in self._pending_bookmarks or (
            self.catalog.index.get_bookmark(self.key, name) is not None
        )

    def apply_once(self) -> int:
        """One apply round (call from a thread); the number of records applied."""
        return self.applier.apply_once()

    async def checkpoint(self) -> None:
        """Tag the newest durable point a checkpoint, if it moved since the last one."""
        durable = self.journal.durable_seq
        if durable > self._checkpoint_seq and self.error is None:
            await asyncio.to_thread(self.catalog.tag_checkpoint, durable, self.journal.durable_ns)
            self._checkpoint_seq = durable

    async def wait_for_work(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, waking at once when a batch becomes durable."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._durable_news.wait(), timeout_s)
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
    if next_seq and durable >= next_seq:
        return (
            f"target is durable to seq {durable} but the source's next seq is {next_seq}; "
            "the source lost its journal state"
        )
    return ""
