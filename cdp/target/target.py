"""The replication target: the registry of members, their lifecycle and task loops.

``async with Target(config) as target`` opens the index and every known member journal
(each a :class:`cdp.target.member.Member`), starts their committers and apply loops, and
on exit drains and closes them. The RPC edge (``cdp/rpc/server.py``) calls
:meth:`Target.open_session`, :meth:`Target.submit` and :meth:`Target.status`, which find
the member and tell it what to do; nothing here knows about grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import json
import logging
import os
import resource
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType

from cdp import fsutil
from cdp.errors import (
    CdpError,
    ImageMovedError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    PreconditionError,
    SessionError,
    StorageFullError,
)
from cdp.group import GroupSpec, check_name, validate_group
from cdp.journal.index import Index, Point
from cdp.journal.journal import check_no_orphans
from cdp.lifecycle import Lifecycle, encode, meta_key
from cdp.progress import ProgressBoard
from cdp.record import Record
from cdp.restore.catalog import PageKey, Timeline
from cdp.restore.clean import Band
from cdp.restore.history import History, MultiHistory, SingleHistory
from cdp.restore.image import ImagePlan, plan_image, read_image, region_hashes
from cdp.status import GroupState, GroupStatus, ResyncStatus
from cdp.target import intake, plan_bookmark
from cdp.target.committer import Ack
from cdp.target.config import TargetConfig
from cdp.target.holds import check_holder
from cdp.target.member import Member, SessionInfo, member_key, split_key
from cdp.target.plan_bookmark import PlanBookmark
from cdp.target.retention_guard import check_retention_lock
from cdp.target.scrub import ScrubReport
from cdp.target.scrub_schedule import ScrubSchedule
from cdp.waiting import wait_set

log = logging.getLogger(__name__)

APPLY_RETRY_S = 1.0
"""How long an apply loop waits after the volume was full."""
APPLY_IDLE_MAX_S = 0.5
"""Longest sleep of an idle apply loop (it doubles from ``apply_idle_s``); new durable
records wake it at once, so this only bounds how late a history-window cutoff is seen."""


class Target:
    """The replication target of one data dir: a registry of member journals."""

    def __init__(self, config: TargetConfig, index_factory: Callable[[str], Index]) -> None:
        self.config = config
        self._index_factory = index_factory
        self.index: Index | None = None
        self.groups: dict[str, Member] = {}
        """Member key -> member journal."""
        self._sessions: dict[str, str] = {}
        """Live session id -> member key."""
        self.unopened: dict[str, tuple[GroupSpec, str]] = {}
        """Stored members that could not be opened at start -> (spec, why); shown in ERROR."""
        self._tasks: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self.scrubs = ScrubSchedule(
            lambda: list(self.groups.values()), lambda: self.config, self._stop, self.end_session
        )
        """The scheduled scrub of every replica against its sums."""
        self.progress = ProgressBoard()
        """The newest failover progress report of each plan (memory only)."""

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Target:
        await asyncio.to_thread(self._set_access)
        self.index = await asyncio.to_thread(self._index_factory, self.config.index_dir)
        specs = self._stored_specs()
        c = self.config
        try:
            check_no_orphans(c.data_dir, c.journal_dir, c.index_dir, {key for key, _ in specs})
            for group_id in {split_key(key)[0] for key, _ in specs}:  # a shorter lock: refused
                p = c.policy_for(group_id)
                check_retention_lock(self.index, group_id, p.retention_lock_s, p.history_window_s)
        except CdpError:
            self.index.close()
            raise
        for key, spec in specs:
            try:
                await asyncio.to_thread(self._start_member, key, spec)
            except OSError as exc:  # one group that cannot open never keeps the rest down
                log.error("group %s: cannot open, not served: %s", key, exc)
                self.unopened[key] = (spec, f"{exc.strerror or exc} ({exc.filename or key})")
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for member in self.groups.values():
            self._tasks.create_task(self._apply_loop(member))
        self._tasks.create_task(self._checkpoint_loop())
        self._tasks.create_task(self.scrubs.loop())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.scrubs.request()  # wakes the scrub loop, which then sees the stop
        for member in self.groups.values():
            await member.stop()
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)  # the body's error goes up as is
        for member in self.groups.values():
            member.close()
        if self.index is not None:
            self.index.close()

    def _set_access(self) -> None:
        """Make the data dir private, or shared with the data group; also what exists."""
        c = self.config
        os.makedirs(c.data_dir, mode=fsutil.PRIVATE_DIR_MODE, exist_ok=True)
        try:
            changed, foreign = fsutil.apply_access(c.data_dir, c.data_gid)
        except OSError as exc:
            raise PreconditionError(
                f"cannot set the access of {exc.filename}: {exc.strerror}",
                hint="every file under the data dir must belong to the target's user, "
                "and the user must be a member of data_group",
            ) from exc
        if changed:
            log.info("data dir %s: access of %d entries set (%s)", c.data_dir, changed,
                     "owner only" if c.data_gid is None else f"group id {c.data_gid}")  # fmt: skip
        if foreign:
            log.warning("data dir %s: %d entries of another user keep their access, e.g. %s",
                        c.data_dir, len(foreign), foreign[0])  # fmt: skip
        for d in (c.journal_dir, c.replica_dir, c.index_dir):
            fsutil.make_dirs(d)

    def _stored_specs(self) -> list[tuple[str, GroupSpec]]:
        """(member key, spec) of every stored member; the stored spec's group_id is the key."""
        assert self.index is not None
        raw = self.index.get_meta("groups")
        names: list[str] = json.loads(raw) if raw else []
        specs = []
        for name in names:
            data = self.index.get_meta(f"group/{name}")
            assert data is not None, name
            stored = GroupSpec.from_json(json.loads(data))
            specs.append((name, GroupSpec(split_key(name)[0], stored.vms)))
        return specs

    def _start_member(self, key: str, spec: GroupSpec) -> Member:
        assert self.index is not None
        _check_file_budget(key, spec)
        member = Member(key, spec, self.config, self.index)
        member.start()
        self.groups[key] = member
        return member

    def _register_member(self, key: str, spec: GroupSpec) -> Member:
        """Persist a new member's spec and start it."""
        assert self.index is not None
        for other in self.groups.values():
            clash = {vm.vm_id for vm in other.spec.vms} & {vm.vm_id for vm in spec.vms}
            if clash:
                raise PreconditionError(
                    f"vms: VM {sorted(clash)[0]!r} is already protected in group {other.key!r}"
                )
        member = self._open_new_member(key, spec)  # files first: a failure stores nothing
        stored = GroupSpec(key, spec.vms)  # on disk, a member's spec is named by its key
        self.index.put_meta(f"group/{key}", json.dumps(stored.to_json()).encode())
        self.index.put_meta(f"created/{key}", str(time.time_ns()).encode())
        names = sorted([*self.groups, key])
        self.index.put_meta("groups", json.dumps(names).encode())
        self.groups[key] = member
        return member

    def _open_new_member(self, key: str, spec: GroupSpec) -> Member:
        """Create and open a new member's files, or raise a clear error with nothing kept open."""
        assert self.index is not None
        member: Member | None = None
        try:
            _check_file_budget(key, spec)
            member = Member(key, spec, self.config, self.index)
            member.start()
        except OSError as exc:
            if member is not None:
                with contextlib.suppress(Exception):
                    member.committer.stop()
                    member.close()
            error = _registration_error(key, exc)
            exc.__traceback__ = None  # its frames hold the half-built member's open files
        else:
            return member
        # Collect the half-built member now, or the next handshake meets the same EMFILE.
        member = None
        gc.collect()
        raise error

    async def _apply_loop(self, member: Member) -> None:
        """Apply forever; the step is :meth:`Member.apply_once`."""
        idle_s = 0.0
        while not self._stop.is_set():
            if member.error is not None:
                await self._idle(1.0)
                continue
            try:
                n = await asyncio.to_thread(member.apply_once)
            except StorageFullError as exc:  # transient: retry once space returns
                log.warning("group %s: apply waits for space: %s", member.key, exc)
                await self._idle(APPLY_RETRY_S)
                continue
            except CdpError as exc:  # top of a background loop: the member stops, loudly
                log.error("group %s: apply stopped: %s", member.key, exc)
                member.fail(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - never let one member end the target
                log.exception("group %s: apply failed unexpectedly", member.key)
                member.fail(CdpError(f"apply failed: {exc!r}"))
                continue
            if n > 0:
                idle_s = 0.0
            else:  # back off while idle: 200 idle groups must not keep a core busy
                idle_s = min(max(idle_s * 2, self.config.apply_idle_s), APPLY_IDLE_MAX_S)
                await self._idle_member(member, idle_s)

    async def _checkpoint_loop(self) -> None:
        """Tag the newest durable point of each member as a checkpoint, on its policy's cadence."""
        while not self._stop.is_set():
            await self._idle(self._checkpoint_tick_s())
            now = time.monotonic()
            for member in [m for m in self.groups.values() if m.checkpoint_due(now)]:
                try:
                    await member.checkpoint()
                except CdpError as exc:  # e.g. a full disk: try again next interval
                    log.warning("group %s: checkpoint not tagged: %s", member.key, exc)

    def _checkpoint_tick_s(self) -> float:
        """How often the checkpoint loop looks: the shortest interval of any policy."""
        intervals = [m.keeping.policy.checkpoint_interval_s for m in self.groups.values()]
        return min([self.config.default_policy.checkpoint_interval_s, *intervals])

    def reconfigure(self, config: TargetConfig) -> None:
        """Take a reloaded config: every member is kept by its (new) policy from now on.

        Only what can change live is read again (policies; the scrub interval from the
        next scrub on); the caller says what needs a restart.
        """
        self.check_config(config)
        self.config = config
        for member in self.groups.values():
            member.keeping.set_policy(config.policy_for(member.group_id))

    def check_config(self, config: TargetConfig) -> None:
        """Refuse (ConfigError naming the field) a config that shortens a locked history."""
        for member in self.groups.values():
            member.keeping.check_policy(config.policy_for(member.group_id))

    def request_scrub(self) -> None:
        """Scrub every replica now (e.g. on SIGUSR1), not only on the schedule."""
        self.scrubs.request()

    async def scrub_once(self) -> ScrubReport:
        """One scrub of every member's replica now (see :class:`ScrubSchedule`)."""
        return await self.scrubs.once()

    @property
    def last_scrub(self) -> tuple[float, ScrubReport] | None:
        """When the newest scheduled scrub finished (Unix s) and what it found."""
        return self.scrubs.last

    async def _idle_member(self, member: Member, seconds: float) -> None:
        """Sleep, but wake at once when the member has new durable records or the target stops."""
        stop = asyncio.ensure_future(self._stop.wait())
        work = asyncio.ensure_future(member.wait_for_work(seconds))
        try:
            await asyncio.wait([stop, work], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            work.cancel()

    async def _idle(self, seconds: float) -> None:
        """Sleep, but wake at once when the target stops."""
        await wait_set(self._stop, seconds)

    # -- the RPC-facing operations -------------------------------------------------------

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest_held_seq: int, next_seq: int,
        member_id: str = "", epoch: int = 0,
    ) -> SessionInfo:  # fmt: skip
        """Handshake: register or check the member, supersede old sessions, say where to resume."""
        validate_group(spec)
        if member_id:
            check_name("member_id", member_id)
        self._check_membership(spec.group_id, member_id)
        key = member_key(spec.group_id, member_id)
        if key in self.unopened:
            raise PreconditionError(
                f"group_id: group {key!r} could not be opened at start: {self.unopened[key][1]}",
                hint="see the target's log, fix the cause (e.g. ulimit -n) and restart the target",
            )
        member = self.groups.get(key)
        if member is None:
            self._check_room(key, spec)
            member = await asyncio.to_thread(self._register_member, key, spec)
            assert self._tasks is not None
            self._tasks.create_task(self._apply_loop(member))
        elif member.spec.vms != spec.vms:
            raise PreconditionError(
                f"vms: group {key!r} was protected with other VMs or disks "
                f"({_describe(member.spec)}); got {_describe(spec)}"
            )
        member.check_epoch(epoch)  # a fenced source never supersedes the live session
        self._sessions.pop(member.session_id, None)
        info = await member.open_session(source_id, oldest_held_seq, next_seq, epoch)
        self._sessions[info.session_id] = key
        return info

    async def set_lifecycle(
        self, group_id: str, state: str, fence: bool, unfence: bool, note: str
    ) -> Lifecycle:
        """Persist a group's new lifecycle and tell its members; fencing ends live sessions."""
        members = self.members(group_id)
        assert self.index is not None
        changed = members[0].lifecycle.change(state, fence, unfence, note, time.time_ns())
        await asyncio.to_thread(self.index.put_meta, meta_key(group_id), encode(changed))
        for member in members:
            ended = member.set_lifecycle(changed)
            self._sessions.pop(ended, None)
        log.warning("group %s: lifecycle %s, epoch %d (%s)", group_id, changed.state,
                    changed.epoch, note or "no note")  # fmt: skip
        return changed

    def _check_room(self, key: str, spec: GroupSpec) -> None:
        """Refuse a new member past the target's registration limits (told in the handshake)."""
        disks, most = len(spec.disks()), self.config.max_disks_per_group
        if disks > most:
            raise InvalidInputError(
                "vms", f"{disks} disks in group {key!r}; max_disks_per_group is {most}",
                hint="split the VMs over several groups",
            )  # fmt: skip
        if len(self.groups) + len(self.unopened) >= self.config.max_groups:
            raise LimitExceededError(
                "group_id", f"this target holds {self.config.max_groups} groups, "
                f"max_groups; cannot add {key!r}",
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

    def group_of_session(self, session_id: str) -> Member:
        """The member a live session writes to; raise if the session is not live."""
        key = self._sessions.get(session_id)
        if key is None:
            raise SessionError(
                f"session_id: {_short(session_id)!r} is unknown or superseded",
                hint="call OpenSession again and resume from its durable_seq",
            )
        return self.groups[key]

    def session_live(self, session_id: str) -> bool:
        """Whether ``session_id`` is a live session (not ended, not superseded)."""
        return session_id in self._sessions

    def note_identity(self, session_id: str, identity: str) -> None:
        """Record the mTLS identity that opened a live session (shown by status)."""
        key = self._sessions.get(session_id)
        if key is not None:
            self.groups[key].note_identity(session_id, identity)

    def submit(
        self, session_id: str, records: list[Record],
        verdicts: list[CdpError | None] | None = None,
    ) -> asyncio.Future[Ack]:  # fmt: skip
        """Validate a batch and queue it for group commit; the future resolves on durability.

        ``verdicts``: from :meth:`check_payloads` (None: the payloads are checked here).
        """
        return self.group_of_session(session_id).accept(records, verdicts)

    def heartbeat(self, session_id: str, next_seq: int) -> Ack:
        """A live session's heartbeat (no records): note it; the ack of the durable state."""
        return self.group_of_session(session_id).note_heartbeat(next_seq, time.time_ns())

    def note_seal(self, session_id: str, request_id: str, next_seq: int) -> Ack:
        """A live session's seal (cdp/target/seal.py); the ack of the durable state."""
        return self.group_of_session(session_id).note_seal(request_id, next_seq, time.time_ns())

    def seal_request(self, session_id: str) -> str:
        """The seal id asked of the member ``session_id`` writes ("" when none or not live)."""
        key = self._sessions.get(session_id)
        return self.groups[key].seal.request_id if key else ""

    async def check_payloads(self, session_id: str, records: list[Record]) -> list[CdpError | None]:
        """Decompress and hash a batch in a thread, off the event loop (see intake)."""
        key = self.group_of_session(session_id).key
        return await asyncio.to_thread(intake.check_payloads, key, records)

    def end_session(self, session_id: str) -> None:
        """A source went away: its member is disconnected until the next handshake."""
        key = self._sessions.pop(session_id, None)
        member = self.groups.get(key) if key else None
        if member is not None:
            member.end_session(session_id)

    def status(self, group_id: str = "") -> list[GroupStatus]:
        """A snapshot of every member of one group (or of all), sorted by key."""
        now = time.time_ns()
        found = [m.status(now) for m in self.groups.values()]
        found += [_unopened_status(k, *v) for k, v in self.unopened.items()]
        found = [st for st in found if not group_id or st.group_id == group_id]
        if group_id and not found:
            raise NotFoundError(f"group_id: no group {group_id!r} at this target")
        clean = {g: self._last_clean(g) for g in {st.group_id for st in found}}
        found = [
            dataclasses.replace(st, last_clean_seq=clean[st.group_id].seq,
                                last_clean_ns=clean[st.group_id].source_ns)
            for st in found
        ]  # fmt: skip
        return sorted(found, key=lambda st: member_key(st.group_id, st.member_id))

    def _last_clean(self, group_id: str) -> Point:
        """The group's ``last-clean`` point for status; seq 0 when there is none."""
        try:
            return self.history(group_id).last_clean()
        except CdpError:  # none clean, or the group is not opened: status says 0
            return Point(0, 0, 0)

    # -- verdicts (marks and dismissals: cdp.target.marks, called by the RPC edge) ---------

    def verdicts(self, group_id: str, points: list[Point]) -> list[str]:
        """The verdict on each of a group's listed points."""
        return self.history(group_id).verdicts(points)

    def suspect_bands(self, group_id: str) -> list[Band]:
        """The stretches of a group's timeline that standing suspicions cover."""
        return self.history(group_id).suspect_bands()

    # -- restore points and images ---------------------------------------------------------

    def members(self, group_id: str) -> list[Member]:
        """The member journals of a group, sorted by key; NOT_FOUND if there is none."""
        found = [g for k, g in sorted(self.groups.items()) if g.group_id == group_id]
        if not found:
            raise NotFoundError(f"group_id: no group {group_id!r} at this target")
        return found

    def history(self, group_id: str) -> History[Member]:
        """The group's history: single-source, or across the members on several hosts."""
        members = self.members(group_id)
        policy = members[0].keeping.policy
        window_s, limit = policy.history_window_s, policy.journal_limit_bytes
        if len(members) == 1 and not members[0].member_id:
            return SingleHistory(members[0], window_s, limit)
        return MultiHistory(group_id, members, window_s, limit)

    async def compare_regions(
        self, session_id: str, disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
    ) -> list[int]:
        """Offsets whose region differs from the newest durable state of a disk."""
        m = self.group_of_session(session_id)
        m.check_usable()
        capacity = intake.check_regions(m.capacities, disk, region_bytes, offsets, hashes)
        async with m.paused():
            plan = await asyncio.to_thread(
                plan_image, m.journal, m.latest_point(), m.applied_seq, disk, capacity, m.plans
            )
            base = m.replica.base(disk)
            theirs = await asyncio.to_thread(
                region_hashes, m.journal, base, plan, offsets, region_bytes
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

    async def create_plan_bookmark(self, group_ids: list[str], name: str) -> PlanBookmark:
        """Name the newest durable point of every group ``name``, at one instant."""
        ids = plan_bookmark.check_groups(group_ids)
        histories = [(g, self.history(g)) for g in ids]
        members = [m for g in ids for m in self.members(g)]
        return await plan_bookmark.create(histories, members, name)

    def timeline(self, group_id: str) -> Timeline:
        """Restorable intervals and gaps of a group, with the history's health."""
        return self.history(group_id).timeline()

    async def hold_base(self, group_id: str, holder: str, at: str) -> Point:
        """Keep every member's base at or before the point ``at`` names; return the point."""
        check_holder(holder)
        history = self.history(group_id)
        point = history.resolve(at)
        for m in self.members(group_id):
            await m.hold_base(holder, history.member_seq(point, m))
        return point

    def release_base(self, group_id: str, holder: str) -> bool:
        """Lift ``holder``'s hold on every member; False if it held nothing."""
        check_holder(holder)
        return any([m.release_base(holder) for m in self.members(group_id)])

    @contextlib.asynccontextmanager
    async def image(
        self, group_id: str, vm_id: str, disk: int, at: str, tail_only: bool = False
    ) -> AsyncIterator[tuple[ImagePlan, Callable[[int, int], Iterator[tuple[int, bytes]]]]]:
        """Pause apply, plan the image; yield the plan and a reader; resume apply."""
        history = self.history(group_id)
        m = history.member_of(vm_id)
        ref = next((d for d in m.spec.disks() if d.vm_id == vm_id and d.index_in_vm == disk), None)
        if ref is None:
            raise NotFoundError(
                f"vm_id/disk: group {group_id!r} has no disk {disk} of VM {vm_id!r}"
            )
        async with m.paused():
            base = m.applied_seq
            point = history.resolve(at)
            member_point = Point(history.member_seq(point, m), point.source_ns, point.kind)
            plan = await asyncio.to_thread(
                plan_image, m.journal, member_point, base, ref.number, ref.spec.capacity_bytes,
                m.plans,
            )  # fmt: skip
            plan = dataclasses.replace(plan, point=point)
            generation = m.base_generation
            extent = m.replica.base(ref.number)

            def reader(offset: int, length: int) -> Iterator[tuple[int, bytes]]:
                for chunk in read_image(m.journal, extent, plan, offset, length, tail_only):
                    if m.base_generation != generation:
                        raise ImageMovedError(
                            f"group {group_id!r}: the journal reached its size limit while the "
                            "image was read, so the base moved; read it again"
                        )
                    yield chunk

            yield plan, reader


def _describe(spec: GroupSpec) -> str:
    return ", ".join(
        f"{vm.vm_id}[" + ",".join(f"{d.disk_id}:{d.capacity_bytes}" for d in vm.disks) + "]"
        for vm in spec.vms
    )


FILES_RESERVED = 64
"""Open files kept free for gRPC, RocksDB and the web port when a group is opened."""


def _check_file_budget(key: str, spec: GroupSpec) -> None:
    """Raise EMFILE before opening a member that would leave the process without files.

    Opening up to the limit would starve gRPC's own descriptors (an epoll or socket
    failing there aborts the whole process), so a group needs its files plus a reserve.
    """
    fds = "/proc/self/fd"
    if not os.path.isdir(fds):  # not Linux: rely on EMFILE itself
        return
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = 2 * len(spec.disks()) + 8  # extent and sums per disk; journal segment, notes
    room = soft - len(os.listdir(fds)) - FILES_RESERVED
    if soft != resource.RLIM_INFINITY and need > room:
        raise OSError(
            errno.EMFILE,
            f"Too many open files: group {key!r} needs {need}, {max(room, 0)} are left "
            f"under the open-file limit {soft} (keeping {FILES_RESERVED} in reserve)",
        )


def _unopened_status(key: str, spec: GroupSpec, why: str) -> GroupStatus:
    """The status of a stored member that could not be opened: ERROR, with why."""
    group_id, member_id = split_key(key)
    return GroupStatus(
        spec=spec, group_id=group_id, member_id=member_id, state=GroupState.ERROR,
        source_id="", durable_seq=0, durable_source_ns=0, applied_seq=0, lag_s=0.0,
        journal_bytes=0, received_bytes=0, error=f"could not be opened at start: {why}",
        resync=ResyncStatus(active=False, total_bytes=0, received_bytes=0, eta_s=0.0),
    )  # fmt: skip


def _registration_error(key: str, exc: OSError) -> CdpError:
    """A new group's files could not be made: what the client is told (never UNKNOWN)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(exc.filename or key, f"no space for group {key!r}: {exc.strerror}")
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return LimitExceededError(
            "vms", f"group {key!r} needs more open files than this target may have "
            f"({exc.strerror}); protect fewer disks per group",
            hint="raise the target's open-file limit (ulimit -n) or split the group",
        )  # fmt: skip
    if exc.errno == errno.EFBIG:
        return LimitExceededError(
            "vms.disks.capacity_bytes",
            f"group {key!r}: a disk is larger than the target's filesystem allows ({exc.strerror})",
        )
    return StorageFullError(exc.filename or key, f"cannot create group {key!r}: {exc}")


MAX_ECHO_CHARS = 64
"""Longest piece of a client's input repeated in an error message."""


def _short(text: str) -> str:
    """``text`` cut to :data:`MAX_ECHO_CHARS` for an error message (a client may send 1 MiB)."""
    if len(text) <= MAX_ECHO_CHARS:
        return text
    return f"{text[:MAX_ECHO_CHARS]}... ({len(text)} chars)"
