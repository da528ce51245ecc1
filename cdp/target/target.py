"""The replication target: groups, sessions, intake, group commit and apply.

``async with Target(config) as target`` opens the index and every known group (each a
:class:`cdp.target.member.ReplicatedGroup`, re-exported here with its states), starts
their committers and apply loops, and on exit drains and closes them. The RPC edge
(``cdp/rpc/server.py``) calls :meth:`Target.open_session`, :meth:`Target.submit` and
:meth:`Target.status`; nothing here knows about grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from cdp.errors import (
    CdpError,
    ImageMovedError,
    NotFoundError,
    PreconditionError,
    SessionError,
    StorageFullError,
)
from cdp.group import GroupSpec, check_name, validate_group
from cdp.journal.index import POINT_CRASH, Index, Point
from cdp.journal.journal import DEFAULT_SEGMENT_BYTES, check_no_orphans
from cdp.record import KIND_BOOKMARK, Record
from cdp.restore.catalog import (
    DEFAULT_CHECKPOINT_INTERVAL_S,
    DEFAULT_HISTORY_WINDOW_S,
    PageKey,
    Timeline,
)
from cdp.restore.history import History, MultiHistory, SingleHistory
from cdp.restore.image import ImagePlan, plan_image, read_image, region_hashes
from cdp.target import intake
from cdp.target.committer import Ack
from cdp.target.member import GroupState as GroupState
from cdp.target.member import ReplicatedGroup as ReplicatedGroup
from cdp.target.member import member_key
from cdp.target.replica import extent_path
from cdp.target.resync_progress import ResyncProgress

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
DEFAULT_WINDOW_BYTES = 64 * 2**20
"""Send-window credit given to each source: payload bytes in flight, unacked."""
DEFAULT_APPLY_IDLE_S = 0.02
"""How long an apply loop sleeps when there is nothing to apply."""
APPLY_RETRY_S = 1.0
"""How long an apply loop waits after the volume was full."""
DEFAULT_JOURNAL_LIMIT_BYTES = 16 * 2**30
"""Per-group journal size limit; past it the oldest history is applied early."""


@dataclass(frozen=True)
class TargetConfig:
    """Settings of a target; every path is under ``data_dir``."""

    data_dir: str
    history_window_s: float = DEFAULT_HISTORY_WINDOW_S
    """How long records stay in the journal before they are applied to the base."""
    journal_limit_bytes: int = DEFAULT_JOURNAL_LIMIT_BYTES
    """Hard size limit of each group's journal; 0 for none."""
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    limits: intake.Limits = field(default_factory=intake.Limits)
    window_bytes: int = DEFAULT_WINDOW_BYTES
    apply_idle_s: float = DEFAULT_APPLY_IDLE_S
    journal_fsync: Callable[[int], None] = os.fdatasync
    """fdatasync of journal segments; a seam for fault injection (EIO) in tests."""

    @property
    def journal_dir(self) -> str:
        """Folder of the journals, one sub-folder per group."""
        return os.path.join(self.data_dir, "journal")

    @property
    def replica_dir(self) -> str:
        """The recovery datastore folder: one sub-folder per replica VM."""
        return os.path.join(self.data_dir, "replicas")

    @property
    def index_dir(self) -> str:
        """The RocksDB index."""
        return os.path.join(self.data_dir, "index")


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


@dataclass(frozen=True)
class GroupStatus:
    """A snapshot of one group's replication state."""

    spec: GroupSpec
    """The member's VMs (``spec.group_id`` is the member key)."""
    group_id: str
    member_id: str
    state: str
    source_id: str
    durable_seq: int
    durable_source_ns: int
    applied_seq: int
    lag_s: float
    journal_bytes: int
    received_bytes: int
    error: str
    resync: ResyncProgress


class Target:
    """The replication target of one data dir."""

    def __init__(self, config: TargetConfig, index_factory: Callable[[str], Index]) -> None:
        self.config = config
        self._index_factory = index_factory
        self.index: Index | None = None
        self.groups: dict[str, ReplicatedGroup] = {}
        self._sessions: dict[str, str] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Target:
        for d in (self.config.journal_dir, self.config.replica_dir, self.config.index_dir):
            os.makedirs(d, exist_ok=True)
        self.index = await asyncio.to_thread(self._index_factory, self.config.index_dir)
        specs = self._stored_specs()
        c = self.config
        try:
            check_no_orphans(c.data_dir, c.journal_dir, c.index_dir, {s.group_id for s in specs})
        except CdpError:
            self.index.close()
            raise
        for spec in specs:
            await asyncio.to_thread(self._start_group, spec)
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for group in self.groups.values():
            self._tasks.create_task(self._apply_loop(group))
        self._tasks.create_task(self._checkpoint_loop())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for group in self.groups.values():
            await group.quiesce()
            group.committer.stop()
        self._stop.set()
        if self._tasks is not None:
            await self._tasks.__aexit__(et, e, tb)
        for group in self.groups.values():
            group.replica.close()
            group.journal.close()
        if self.index is not None:
            self.index.close()

    def _stored_specs(self) -> list[GroupSpec]:
        assert self.index is not None
        raw = self.index.get_meta("groups")
        names: list[str] = json.loads(raw) if raw else []
        specs = []
        for name in names:
            data = self.index.get_meta(f"group/{name}")
            assert data is not None, name
            specs.append(GroupSpec.from_json(json.loads(data)))
        return specs

    def _start_group(self, spec: GroupSpec) -> ReplicatedGroup:
        assert self.index is not None
        group = ReplicatedGroup(spec, self.config, self.index)
        group.open()
        group.committer.start()
        self.groups[spec.group_id] = group
        return group

    def _register_group(self, spec: GroupSpec) -> ReplicatedGroup:
        """Persist a new group's spec and start it."""
        assert self.index is not None
        for other in self.groups.values():
            clash = {vm.vm_id for vm in other.spec.vms} & {vm.vm_id for vm in spec.vms}
            if clash:
                raise PreconditionError(
                    f"vms: VM {sorted(clash)[0]!r} is already protected in group "
                    f"{other.spec.group_id!r}"
                )
        self.index.put_meta(f"group/{spec.group_id}", json.dumps(spec.to_json()).encode())
        self.index.put_meta(f"created/{spec.group_id}", str(time.time_ns()).encode())
        names = sorted([*self.groups, spec.group_id])
        self.index.put_meta("groups", json.dumps(names).encode())
        return self._start_group(spec)

    async def _apply_loop(self, group: ReplicatedGroup) -> None:
        """Apply forever; the step is :meth:`Applier.apply_once`."""
        while not self._stop.is_set():
            if group.error is not None:
                await self._idle(1.0)
                continue
            try:
                n = await asyncio.to_thread(group.applier.apply_once)
            except StorageFullError as exc:  # transient: retry once space returns
                log.warning("group %s: apply waits for space: %s", group.key, exc)
                await self._idle(APPLY_RETRY_S)
                continue
            except CdpError as exc:  # top of a background loop: the group stops, loudly
                log.error("group %s: apply stopped: %s", group.key, exc)
                group.fail(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - never let one group end the target
                log.exception("group %s: apply failed unexpectedly", group.key)
                group.fail(CdpError(f"apply failed: {exc!r}"))
                continue
            if n == 0:
                await self._idle(self.config.apply_idle_s)

    async def _checkpoint_loop(self) -> None:
        """Tag the newest durable point of each group as a checkpoint, every interval."""
        while not self._stop.is_set():
            await self._idle(self.config.checkpoint_interval_s)
            for group in list(self.groups.values()):
                durable = group.journal.durable_seq
                if durable > group.checkpoint_seq and group.error is None:
                    try:
                        await asyncio.to_thread(
                            group.catalog.tag_checkpoint, durable, group.journal.durable_ns
                        )
                    except CdpError as exc:  # e.g. a full disk: try again next interval
                        log.warning("group %s: checkpoint not tagged: %s", group.key, exc)
                        continue
                    group.checkpoint_seq = durable

    async def _idle(self, seconds: float) -> None:
        """Sleep, but wake at once when the target stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- the RPC-facing operations -------------------------------------------------------

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest_held_seq: int, next_seq: int,
        member_id: str = "",
    ) -> SessionInfo:  # fmt: skip
        """Handshake: register or check the member, supersede old sessions, say where to resume."""
        validate_group(spec)
        if member_id:
            check_name("member_id", member_id)
        self._check_membership(spec.group_id, member_id)
        spec = GroupSpec(member_key(spec.group_id, member_id), spec.vms)
        group = self.groups.get(spec.group_id)
        if group is None:
            group = await asyncio.to_thread(self._register_group, spec)
            assert self._tasks is not None
            self._tasks.create_task(self._apply_loop(group))
        elif group.spec != spec:
            raise PreconditionError(
                f"vms: group {spec.group_id!r} was protected with other VMs or disks "
                f"({_describe(group.spec)}); got {_describe(spec)}"
            )
        self._sessions.pop(group.session_id, None)  # the old stream submits nothing more
        group.session_id = ""
        await group.quiesce()
        await asyncio.to_thread(group.reopen_after_sync_failure)
        group.check_usable()
        durable = group.journal.durable_seq
        group.expected_seq = durable + 1
        reason = _resync_reason(durable, oldest_held_seq, next_seq)
        session_id = uuid.uuid4().hex
        group.session_id, group.source_id = session_id, source_id
        group.state = GroupState.RESYNC_REQUIRED if reason else GroupState.REPLICATING
        self._sessions[session_id] = spec.group_id
        log.info(
            "group %s: session %s from %s at seq %d", spec.group_id, session_id, source_id, durable
        )
        return SessionInfo(
            session_id, durable, group.journal.durable_ns, bool(reason), reason,
            self.config.limits, self.config.window_bytes,
        )  # fmt: skip

    def _check_membership(self, group_id: str, member_id: str) -> None:
        """A group is streamed either by one source alone or by named members, never both."""
        kinds = {bool(g.member_id) for g in self.groups.values() if g.group_id == group_id}
        if kinds and kinds != {bool(member_id)}:
            shape = "named members" if member_id == "" else "one source without a member_id"
            raise PreconditionError(
                f"member_id: group {group_id!r} is streamed by {shape}; "
                f"{'give' if member_id == '' else 'omit'} member_id"
            )

    def group_of_session(self, session_id: str) -> ReplicatedGroup:
        """The group a live session writes to; raise if the session is not live."""
        name = self._sessions.get(session_id)
        if name is None:
            raise SessionError(
                f"session_id: {session_id!r} is unknown or superseded",
                hint="call OpenSession again and resume from its durable_seq",
            )
        return self.groups[name]

    def submit(self, session_id: str, records: list[Record]) -> asyncio.Future[Ack]:
        """Validate a batch and queue it for group commit; the future resolves on durability."""
        group = self.group_of_session(session_id)
        group.check_usable()
        if group.state == GroupState.RESYNC_REQUIRED:
            raise PreconditionError("session_id: the group needs a resync before journaling")
        view = intake.GroupView(
            group.spec.group_id, group.capacities, group.journal.durable_seq,
            group.expected_seq, group.journal.lookup,
            group.bookmark_taken,
        )  # fmt: skip
        fresh = intake.validate(view, records)
        fut = asyncio.wrap_future(group.committer.submit(fresh))
        names = {r.frame.decode() for r in fresh if r.kind == KIND_BOOKMARK}
        if names:
            group.pending_bookmarks |= names
            fut.add_done_callback(lambda _: group.pending_bookmarks.difference_update(names))
        group.expected_seq += len(fresh)
        group.received_bytes += sum(r.length for r in fresh)
        group.resync.observe(fresh)
        if group.state in (GroupState.REPLICATING, GroupState.RESYNCING):
            group.state = GroupState.RESYNCING if group.resync.active else GroupState.REPLICATING
        group.pending.add(fut)
        fut.add_done_callback(group.pending.discard)
        return fut

    def end_session(self, session_id: str) -> None:
        """A source went away: its group is disconnected until the next handshake."""
        name = self._sessions.pop(session_id, None)
        group = self.groups.get(name) if name else None
        if group is not None and group.session_id == session_id:
            group.session_id = ""
            if group.state == GroupState.REPLICATING:
                group.state = GroupState.DISCONNECTED

    def status(self, group_id: str = "") -> list[GroupStatus]:
        """A snapshot of every member of one group (or of all), sorted by key."""
        members = (
            self.members(group_id) if group_id else [self.groups[k] for k in sorted(self.groups)]
        )
        now = time.time_ns()
        return [
            GroupStatus(
                g.spec,
                g.group_id,
                g.member_id,
                g.state,
                g.source_id,
                g.journal.durable_seq,
                g.journal.durable_ns,
                g.applier.applied_seq,
                (now - g.journal.durable_ns) / 1e9 if g.journal.durable_ns else 0.0,
                g.journal.bytes_on_disk(),
                g.received_bytes,
                str(g.error) if g.error else "",
                g.resync,
            )  # fmt: skip
            for g in members
        ]

    # -- restore points and images ---------------------------------------------------------

    def members(self, group_id: str) -> list[ReplicatedGroup]:
        """The member journals of a group, sorted by key; NOT_FOUND if there is none."""
        found = [g for k, g in sorted(self.groups.items()) if g.group_id == group_id]
        if not found:
            raise NotFoundError(f"group_id: no group {group_id!r} at this target")
        return found

    def history(self, group_id: str) -> History:
        """The group's history: single-source, or across the members on several hosts."""
        members = self.members(group_id)
        if len(members) == 1 and not members[0].member_id:
            return SingleHistory(members[0], self.config)
        return MultiHistory(group_id, members, self.config)

    async def compare_regions(
        self, session_id: str, disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
    ) -> list[int]:
        """Offsets whose region differs from the newest durable state of a disk."""
        g = self.group_of_session(session_id)
        g.check_usable()
        capacity = intake.check_regions(g.capacities, disk, region_bytes, offsets, hashes)
        async with _paused(g):
            latest = Point(g.journal.durable_seq, g.journal.durable_ns, POINT_CRASH)
            ref = g.spec.disks()[disk]
            plan = await asyncio.to_thread(
                plan_image, g.journal, latest, g.applier.applied_seq, disk, capacity, g.plans
            )
            extent = extent_path(self.config.replica_dir, ref.vm_id, ref.index_in_vm)
            theirs = await asyncio.to_thread(
                region_hashes, g.journal, extent, plan, offsets, region_bytes
            )
        return [o for o, mine, t in zip(offsets, hashes, theirs, strict=True) if mine != t]

    def list_points(
        self, group_id: str, start_ns: int, end_ns: int, after: PageKey | None,
        limit: int, labelled_only: bool,
    ) -> list[Point]:  # fmt: skip
        """Restorable points of a group, oldest first."""
        return self.history(group_id).points(start_ns, end_ns, after, limit, labelled_only)

    async def create_bookmark(self, group_id: str, name: str) -> Point:
        """Name the group's newest restorable point."""
        return await self.history(group_id).bookmark(name)

    def timeline(self, group_id: str) -> Timeline:
        """Restorable intervals and gaps of a group, with the history's health."""
        return self.history(group_id).timeline()

    @contextlib.asynccontextmanager
    async def image(
        self, group_id: str, vm_id: str, disk: int, at: str
    ) -> AsyncIterator[tuple[ImagePlan, Callable[[int, int], Iterator[tuple[int, bytes]]]]]:
        """Pause apply, plan the image; yield the plan and a reader; resume apply."""
        history = self.history(group_id)
        g = history.member_of(vm_id)
        ref = next((d for d in g.spec.disks() if d.vm_id == vm_id and d.index_in_vm == disk), None)
        if ref is None:
            raise NotFoundError(
                f"vm_id/disk: group {group_id!r} has no disk {disk} of VM {vm_id!r}"
            )
        async with _paused(g):
            base = g.applier.applied_seq
            point = history.resolve(at)
            member_point = Point(history.member_seq(point, g), point.source_ns, point.kind)
            plan = await asyncio.to_thread(
                plan_image, g.journal, member_point, base, ref.number, ref.spec.capacity_bytes,
                g.plans,
            )  # fmt: skip
            plan = dataclasses.replace(plan, point=point)
            generation = g.applier.base_generation
            extent = extent_path(self.config.replica_dir, vm_id, disk)

            def reader(offset: int, length: int) -> Iterator[tuple[int, bytes]]:
                for chunk in read_image(g.journal, extent, plan, offset, length):
                    if g.applier.base_generation != generation:
                        raise ImageMovedError(
                            f"group {group_id!r}: the journal reached its size limit while the "
                            "image was read, so the base moved; read it again"
                        )
                    yield chunk

            yield plan, reader


@contextlib.asynccontextmanager
async def _paused(g: ReplicatedGroup) -> AsyncIterator[None]:
    """Apply stays paused for the group (the base does not move) inside the block."""
    await asyncio.to_thread(g.applier.pause)
    try:
        yield
    finally:
        g.applier.resume()


def _resync_reason(durable: int, oldest_held_seq: int, next_seq: int) -> str:
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


def _describe(spec: GroupSpec) -> str:
    return ", ".join(
        f"{vm.vm_id}[" + ",".join(f"{d.disk_id}:{d.capacity_bytes}" for d in vm.disks) + "]"
        for vm in spec.vms
    )
