"""The target-side state of one member journal of a consistency group.

A :class:`ReplicatedGroup` holds what the target keeps for one member key (see
:func:`member_key`): its journal, committer, replica set, applier and catalog, and the
state of the source session that streams into it. :class:`cdp.target.target.Target` owns the
groups, their sessions and loops; nothing here starts a task, knows a session map or
knows about grpc.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from cdp.errors import CdpError, JournalCorruptError, JournalSyncError
from cdp.group import GroupSpec
from cdp.journal.index import Index
from cdp.journal.journal import Journal
from cdp.record import KIND_RESYNC_START
from cdp.restore.catalog import Catalog
from cdp.restore.image import PlanCache
from cdp.target.applier import Applier
from cdp.target.committer import Ack, Committer
from cdp.target.replica import ReplicaSet
from cdp.target.resync_progress import ResyncProgress

if TYPE_CHECKING:
    from cdp.target.target import TargetConfig

log = logging.getLogger("cdp.target")
"""The target's logger: to an operator a group's messages are the target's."""

MEMBER_SEPARATOR = "@"
"""Joins a group id and a member id into a member key; not allowed in either name."""


def member_key(group_id: str, member_id: str) -> str:
    """The key of a group's member journal: the group id alone for a single source."""
    return f"{group_id}{MEMBER_SEPARATOR}{member_id}" if member_id else group_id


class GroupState:
    """Replication states of a group, as the status call reports them."""

    REPLICATING = "replicating"
    DISCONNECTED = "disconnected"
    RESYNC_REQUIRED = "resync_required"
    RESYNCING = "resyncing"
    ERROR = "error"


class ReplicatedGroup:
    """The target-side state of one consistency group."""

    def __init__(self, spec: GroupSpec, config: TargetConfig, index: Index) -> None:
        self.spec = spec
        """The member's VMs; ``spec.group_id`` is the member key (see :func:`member_key`)."""
        self.key = spec.group_id
        self.group_id, _, self.member_id = spec.group_id.partition(MEMBER_SEPARATOR)
        self.capacities = tuple(d.spec.capacity_bytes for d in spec.disks())
        self.journal = Journal(
            config.journal_dir, spec.group_id, index, config.segment_bytes, config.journal_fsync
        )
        self.committer = Committer(self.journal, self.fail)
        self.replica = ReplicaSet(config.replica_dir, spec)
        self.applier = Applier(
            self.journal, self.replica, index, config.history_window_s, config.journal_limit_bytes
        )
        self.catalog = Catalog(index, spec.group_id)
        self.created_ns = int(index.get_meta(f"created/{spec.group_id}") or time.time_ns())
        self.checkpoint_seq = 0
        self.session_id = ""
        self.source_id = ""
        self.expected_seq = 1
        self.state = GroupState.DISCONNECTED
        self.error: CdpError | None = None
        self.received_bytes = 0
        self.pending: set[asyncio.Future[Ack]] = set()
        self.resync = ResyncProgress()
        self.plans = PlanCache()
        """Image plans of the last (base, point) read, for every disk at once."""
        self.pending_bookmarks: set[str] = set()
        """Names of in-band bookmarks in batches not yet durable (for the uniqueness check)."""
        self.bookmark_lock = asyncio.Lock()

    def open(self) -> None:
        """Recover the journal from disk; a corrupt journal puts the group in ERROR."""
        try:
            report = self.journal.open(floor_seq=self.applier.applied_seq)
        except JournalCorruptError as exc:
            log.error("group %s: %s", self.spec.group_id, exc)
            self.fail(exc)
            return
        self.expected_seq = self.journal.durable_seq + 1
        events = self.catalog.index.events(self.key)
        self.resync.active = bool(events) and events[-1].kind == KIND_RESYNC_START
        log.info("group %s: journal open: %s", self.spec.group_id, report)

    def fail(self, exc: CdpError) -> None:
        """Stop the group: no intake, no apply, until an operator acts."""
        self.state, self.error = GroupState.ERROR, exc

    def reopen_after_sync_failure(self) -> None:
        """A group stopped by a failed fsync reopens its journal from disk (on a handshake)."""
        if isinstance(self.error, JournalSyncError):
            self.journal.reopen(floor_seq=self.applier.applied_seq)
            self.state, self.error = GroupState.DISCONNECTED, None
            log.warning("group %s: journal reopened from disk after a failed fsync", self.key)

    def check_usable(self) -> None:
        """Raise the group's error if it is in ERROR."""
        if self.error is not None:
            raise self.error

    def bookmark_taken(self, name: str) -> bool:
        """Whether a bookmark has this name, durable or in a batch still in flight."""
        return name in self.pending_bookmarks or (
            self.catalog.index.get_bookmark(self.key, name) is not None
        )

    async def quiesce(self) -> None:
        """Wait until every queued batch is durable or failed."""
        if self.pending:
            await asyncio.wait(set(self.pending))
