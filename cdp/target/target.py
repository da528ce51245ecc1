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
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
from cdp.journal.index import Index, Point
from cdp.journal.journal import check_no_orphans
from cdp.record import Record
from cdp.restore.catalog import PageKey, Timeline
from cdp.restore.history import History, MultiHistory, SingleHistory
from cdp.restore.image import ImagePlan, plan_image, read_image, region_hashes
from cdp.status import GroupStatus
from cdp.target import intake
from cdp.target.committer import Ack
from cdp.target.config import TargetConfig
from cdp.target.holds import check_holder
from cdp.target.member import Member, SessionInfo, member_key, split_key
from cdp.target.scrub import ScrubReport

log = logging.getLogger(__name__)

APPLY_RETRY_S = 1.0
"""How long an apply loop waits after the volume was full."""


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
        self._tasks: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self._scrub_now = asyncio.Event()
        self.last_scrub: tuple[float, ScrubReport] | None = None
        """When the newest scheduled scrub finished (Unix s) and what it found."""

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Target:
        for d in (self.config.journal_dir, self.config.replica_dir, self.config.index_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)  # data at rest is private, also in folders made before
        os.chmod(self.config.data_dir, 0o700)
        self.index = await asyncio.to_thread(self._index_factory, self.config.index_dir)
        specs = self._stored_specs()
        c = self.config
        try:
            check_no_orphans(c.data_dir, c.journal_dir, c.index_dir, {key for key, _ in specs})
        except CdpError:
            self.index.close()
            raise
        for key, spec in specs:
            await asyncio.to_thread(self._start_member, key, spec)
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for member in self.groups.values():
            self._tasks.create_task(self._apply_loop(member))
        self._tasks.create_task(self._checkpoint_loop())
        self._tasks.create_task(self._scrub_loop())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._scrub_now.set()  # wakes the scrub loop, which then sees the stop
        for member in self.groups.values():
            await member.stop()
        if self._tasks is not None:
            await self._tasks.__aexit__(et, e, tb)
        for member in self.groups.values():
            member.close()
        if self.index is not None:
            self.index.close()

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
        stored = GroupSpec(key, spec.vms)  # on disk, a member's spec is named by its key
        self.index.put_meta(f"group/{key}", json.dumps(stored.to_json()).encode())
        self.index.put_meta(f"created/{key}", str(time.time_ns()).encode())
        names = sorted([*self.groups, key])
        self.index.put_meta("groups", json.dumps(names).encode())
        return self._start_member(key, spec)

    async def _apply_loop(self, member: Member) -> None:
        """Apply forever; the step is :meth:`Member.apply_once`."""
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
            if n == 0:
                await self._idle(self.config.apply_idle_s)

    async def _checkpoint_loop(self) -> None:
        """Tag the newest durable point of each member as a checkpoint, every interval."""
        while not self._stop.is_set():
            await self._idle(self.config.checkpoint_interval_s)
            for member in list(self.groups.values()):
                try:
                    await member.checkpoint()
                except CdpError as exc:  # e.g. a full disk: try again next interval
                    log.warning("group %s: checkpoint not tagged: %s", member.key, exc)

    def request_scrub(self) -> None:
        """Scrub every replica now (e.g. on SIGUSR1), not only on the schedule."""
        self._scrub_now.set()

    async def _scrub_loop(self) -> None:
        """Check every replica against its sums every ``scrub_interval_s`` or on request."""
        while not self._stop.is_set():
            interval = self.config.scrub_interval_s or None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._scrub_now.wait(), interval)
            self._scrub_now.clear()
            if not self._stop.is_set():
                await self.scrub_once()

    async def scrub_once(self) -> ScrubReport:
        """One scrub of every member's replica; damaged regions are marked and logged.

        A member with damage has its live session ended, so its source reconnects and the
        handshake asks for the resync that rewrites the damaged regions.
        """
        report = ScrubReport()
        for member in list(self.groups.values()):
            if member.error is not None:
                continue
            found = await asyncio.to_thread(
                member.scrub, report, self.config.scrub_rate_bytes_s, self._stop.is_set
            )
            if found and member.session_id:
                self.end_session(member.session_id)
        for d in report.damage:
            log.error("scrub: group %s VM %s disk %d region %s: %s", d.group, d.vm_id, d.disk,
                      d.region, d.detail)  # fmt: skip
        log.info("scrub: %d regions checked, %d damaged", report.regions_checked,
                 len(report.damage))  # fmt: skip
        self.last_scrub = (time.time(), report)
        return report

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
        key = member_key(spec.group_id, member_id)
        member = self.groups.get(key)
        if member is None:
            member = await asyncio.to_thread(self._register_member, key, spec)
            assert self._tasks is not None
            self._tasks.create_task(self._apply_loop(member))
        elif member.spec.vms != spec.vms:
            raise PreconditionError(
                f"vms: group {key!r} was protected with other VMs or disks "
                f"({_describe(member.spec)}); got {_describe(spec)}"
            )
        self._sessions.pop(member.session_id, None)
        info = await member.open_session(source_id, oldest_held_seq, next_seq)
        self._sessions[info.session_id] = key
        return info

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
                f"session_id: {session_id!r} is unknown or superseded",
                hint="call OpenSession again and resume from its durable_seq",
            )
        return self.groups[key]

    def session_live(self, session_id: str) -> bool:
        """Whether ``session_id`` is a live session (not ended, not superseded)."""
        return session_id in self._sessions

    def submit(self, session_id: str, records: list[Record]) -> asyncio.Future[Ack]:
        """Validate a batch and queue it for group commit; the future resolves on durability."""
        return self.group_of_session(session_id).accept(records)

    def end_session(self, session_id: str) -> None:
        """A source went away: its member is disconnected until the next handshake."""
        key = self._sessions.pop(session_id, None)
        member = self.groups.get(key) if key else None
        if member is not None:
            member.end_session(session_id)

    def status(self, group_id: str = "") -> list[GroupStatus]:
        """A snapshot of every member of one group (or of all), sorted by key."""
        members = (
            self.members(group_id) if group_id else [self.groups[k] for k in sorted(self.groups)]
        )
        now = time.time_ns()
        return [m.status(now) for m in members]

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
        window_s, limit = self.config.history_window_s, self.config.journal_limit_bytes
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
