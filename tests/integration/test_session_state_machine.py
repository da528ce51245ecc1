"""Issue 11's invariant over the whole session state machine, against a real target.

A hypothesis ``RuleBasedStateMachine`` plays an honest source (the protocol as docs/PROTOCOL.md
states it) and its faults against an in-process :class:`Target` with real RocksDB under a
temporary folder and a real grpc.aio server on port 0: writes to random disks/offsets,
bookmarks (in-band and by RPC), link cuts (a batch sent, the stream cancelled before its
ack), source kill -9 (its unacked buffer lost; the restarted source knows nothing of its
seqs and resyncs everything), target restarts on the same data folder, resync
start/steps/finish (CompareRegions, RESYNC_START, region writes, RESYNC_END), handshakes
with arbitrary ``next_seq``/``oldest_held_seq``, and a skewed source clock: writes stamped
hours in the past, going backwards, or ahead within the 300 s bound, and refused times
(<= 0, beyond the bound) that must change nothing durable.

The test keeps the source's disks and, per seq, the source's image at that record (``None``
for a seq inside a resync: no consistent image exists there). After every step: every point
the target offers (ListRestorePoints, the restorable spans of GetTimeline, and ``at``
resolution of ``latest``, a seq and a time) has a shadow image, sampled points read back
(ReadImage) equal to it byte for byte, and no point offered before is dropped (the history
window is an hour of *trusted* time: retention removes nothing here, whatever the source
clock says). The time probe is a point's exact listed nanosecond time: it resolves to that
point or a later one of the same time, never to an earlier one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import tempfile
import time

import pytest
from conftest import Running, small_group, start_target, stop_target
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cdp import codec
from cdp.errors import CdpError, RemoteError
from cdp.record import KIND_BOOKMARK, KIND_RESYNC_END, KIND_RESYNC_START, KIND_WRITE, Record
from cdp.rpc.client import GrpcJournalStream

GROUP = "sm"
DISKS = 2
SIZE = 32 * 1024
REGION = 4096
BLOCK = 512
VM = f"{GROUP}-vm0"
SPEC = small_group(GROUP, disks=DISKS, size=SIZE)
Image = tuple[bytes, ...]

JOURNALING, TRACKING, RESYNCING = "journaling", "tracking", "resyncing"


def _iso(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


class SessionMachine(RuleBasedStateMachine):
    """An honest source and its faults against a real target; images checked every step."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.mkdtemp(prefix="cdp-sm-")
        self.target: Running | None = None
        self.disk = [bytearray(SIZE) for _ in range(DISKS)]
        self.shadow: dict[int, Image | None] = {0: self._snapshot()}
        self.held: list[Record] = []
        """Records appended, not yet acked (the source buffer)."""
        self.next_seq = 1
        self.durable = 0
        self.mode = TRACKING  # a new source (like `cdp sim run`) starts with an initial sync
        self.session = ""
        self.stream: GrpcJournalStream | None = None
        self.offered: set[int] = set()
        self.skew_ns = 0
        """Source clock minus true time: hours behind, or ahead within the 300 s bound."""
        self.bookmarks = 0

    # -- plumbing -------------------------------------------------------------------------

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
        if self.target is not None:
            self.run(stop_target(self.target))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _snapshot(self) -> Image:
        return tuple(bytes(d) for d in self.disk)

    def _ns(self) -> int:
        """The source clock: skewed, and free to go backwards when the skew changes."""
        return time.time_ns() + self.skew_ns

    def _append(self, kind: int, disk: int = 0, offset: int = 0, data: bytes = b"",
                label: str = "", shadow: Image | None = None) -> Record:  # fmt: skip
        if kind == KIND_WRITE:
            rec = Record(self.next_seq, disk, offset, len(data), self._ns(),
                         codec.checksum(data), codec.compress(data))  # fmt: skip
        else:
            raw = label.encode()
            rec = Record(self.next_seq, 0, 0, 0, self._ns(), codec.checksum(raw), raw, kind)
        self.shadow[rec.seq] = shadow
        self.held.append(rec)
        self.next_seq += 1
        return rec

    def _consistent(self) -> Image | None:
        """The shadow of a record written now: the disk, unless a resync is open."""
        return self._snapshot() if self.mode == JOURNALING else None

    async def _handshake(self, oldest: int, next_seq: int) -> bool:
        assert self.target is not None
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        reply = await self.target.client.open_session("src", SPEC, oldest, next_seq)
        self.session, self.durable = reply.session_id, reply.durable_seq
        self.stream = self.target.client.stream(reply.session_id)
        return reply.resync_required

    async def _connect(self) -> None:
        """The honest handshake, and what the source does with its answer."""
        oldest = self.held[0].seq if self.held else 0
        required = await self._handshake(oldest, self.next_seq)
        self.held = [r for r in self.held if r.seq > self.durable]
        if required or (self.mode == TRACKING and self.next_seq != self.durable + 1):
            self._rejoin()

    def _rejoin(self) -> None:
        """The target cannot continue from this source: drop the buffer, renumber after
        the target's durable seq, resync everything."""
        self.held = []
        for seq in [s for s in self.shadow if s > self.durable]:
            del self.shadow[seq]
        self.next_seq = self.durable + 1
        self.mode = TRACKING

    async def _flush(self) -> None:
        """Send every held record and wait until the target acks it."""
        if not self.held:
            return
        if self.stream is None:
            await self._connect()
            if not self.held:
                return
        assert self.stream is not None
        last = self.held[-1].seq
        await self.stream.send(list(self.held))
        while self.durable < last:
            ack = await asyncio.wait_for(self.stream.recv(), 30)
            assert ack is not None, "stream ended before the ack"
            self.durable = max(self.durable, ack.durable_seq)
        self.held = []

    async def _compare(self) -> list[tuple[int, int]]:
        """Regions whose content differs at the target (its newest durable state)."""
        assert self.target is not None
        out = []
        for disk in range(DISKS):
            offsets = list(range(0, SIZE, REGION))
            hashes = [codec.checksum(self.disk[disk][o : o + REGION]) for o in offsets]
            differ = await self.target.client.compare_regions(
                self.session, disk, REGION, offsets, hashes
            )
            out += [(disk, o) for o in differ]
        return out

    # -- rules ----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.target = self.run(
            start_target(os.path.join(self.folder, "t"), history_window_s=3600.0)
        )

    @rule(
        disk=st.integers(0, DISKS - 1), block=st.integers(0, SIZE // BLOCK - 1),
        blocks=st.integers(1, 16), fill=st.integers(1, 255),
    )  # fmt: skip
    def write(self, disk: int, block: int, blocks: int, fill: int) -> None:
        offset = block * BLOCK
        length = min(blocks * BLOCK, SIZE - offset)
        self.disk[disk][offset : offset + length] = bytes([fill]) * length
        if self.mode == TRACKING:
            return  # only the dirty map knows: the resync sends it
        self._append(KIND_WRITE, disk, offset, bytes([fill]) * length, shadow=self._consistent())
        if self.target is not None:
            self.run(self._flush())

    @precondition(lambda self: self.mode == JOURNALING and self.target is not None)
    @rule()
    def bookmark_in_band(self) -> None:
        self.bookmarks += 1
        self._append(KIND_BOOKMARK, label=f"bm-{self.bookmarks}", shadow=self._snapshot())
        self.run(self._flush())

    @precondition(lambda self: self.target is not None and self.mode == JOURNALING)
    @rule()
    def bookmark_rpc(self) -> None:
        assert self.target is not None
        self.run(self._flush())
        self.bookmarks += 1
        try:
            self.run(self.target.client.create_bookmark(GROUP, f"rpc-{self.bookmarks}"))
        except RemoteError as exc:  # no point yet
            assert exc.code == "NOT_FOUND", exc

    @precondition(lambda self: self.target is not None and self.mode != TRACKING)
    @rule(fill=st.integers(1, 255), disk=st.integers(0, DISKS - 1))
    def cut_link(self, fill: int, disk: int) -> None:
        """A batch goes out and the link drops before its ack: it may or may not be durable."""
        if self.stream is None:
            self.run(self._connect())
        if self.mode == TRACKING or self.stream is None:
            return
        self.disk[disk][0:BLOCK] = bytes([fill]) * BLOCK
        self._append(KIND_WRITE, disk, 0, bytes([fill]) * BLOCK, shadow=self._consistent())
        self.run(self.stream.send(list(self.held)))
        self.stream.cancel()
        self.stream = None

    @rule()
    def kill_source(self) -> None:
        """kill -9: the buffer is gone; the restarted source knows no seq and resyncs all."""
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.held = []
        self.next_seq = 1
        self.mode = TRACKING

    @precondition(lambda self: self.target is not None)
    @rule()
    def restart_target(self) -> None:
        assert self.target is not None
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.run(stop_target(self.target))
        self.target = self.run(start_target(self.target.data_dir, history_window_s=3600.0))

    @precondition(lambda self: self.target is not None)
    @rule(oldest=st.integers(0, 60), next_seq=st.integers(0, 60))
    def probe_handshake(self, oldest: int, next_seq: int) -> None:
        """A handshake with arbitrary numbers: records lost must mean resync_required."""
        required = self.run(self._handshake(oldest, next_seq))
        d = self.durable
        if oldest > d + 1 or (oldest == 0 and next_seq > d + 1) or 0 < next_seq <= d:
            assert required, f"durable {d}, oldest_held {oldest}, next {next_seq}: no resync"
        self.stream.cancel()  # type: ignore[union-attr]
        self.stream = None  # the source's own session was superseded: it re-opens honestly

    @rule(skew_s=st.sampled_from([0, -7200, -90, -1, 5, 120]))
    def skew_clock(self, skew_s: int) -> None:
        """The source clock jumps: hours behind (older than the window), backwards, ahead."""
        self.skew_ns = skew_s * 10**9

    @precondition(lambda self: self.target is not None and self.mode == JOURNALING)
    @rule(ts=st.sampled_from(["zero", "negative", "far-ahead"]), fill=st.integers(1, 255))
    def refused_time(self, ts: str, fill: int) -> None:
        """A write stamped <= 0 or beyond 300 s ahead is INVALID_ARGUMENT and changes nothing."""
        assert self.target is not None
        self.run(self._flush())
        if self.stream is None:
            self.run(self._connect())
        if self.mode != JOURNALING or self.stream is None:
            return
        before = self.run(self.target.client.status(GROUP)).groups[0].durable_seq
        source_ns = {"zero": 0, "negative": -1, "far-ahead": time.time_ns() + 400 * 10**9}[ts]
        data = bytes([fill]) * BLOCK
        rec = Record(self.next_seq, 0, 0, BLOCK, source_ns, codec.checksum(data),
                     codec.compress(data))  # fmt: skip
        code = self.run(self._refusal(rec))
        assert code == "INVALID_ARGUMENT", f"source time {source_ns} answered {code}"
        after = self.run(self.target.client.status(GROUP)).groups[0].durable_seq
        assert after == before, f"refused batch changed durable_seq {before} -> {after}"
        self.stream = None  # the refusal ended the stream; the seq is still free

    async def _refusal(self, rec: Record) -> str:
        """Send one batch that must be refused; the error code the stream ends with."""
        assert self.stream is not None
        try:
            await self.stream.send([rec])
            ack = await asyncio.wait_for(self.stream.recv(), 30)
        except RemoteError as exc:
            return exc.code
        return f"accepted (ack {ack})"

    @precondition(lambda self: self.target is not None and self.mode == TRACKING)
    @rule()
    def resync_start(self) -> None:
        self.run(self._flush())
        if self.stream is None:
            self.run(self._connect())
        if self.mode != TRACKING:
            return
        before = self.shadow.get(self.next_seq - 1)  # the target's state: the last point
        self.run(self._compare())
        self._append(KIND_RESYNC_START, label=f"resync bytes={DISKS * SIZE} cause=test",
                     shadow=before)  # fmt: skip
        self.mode = RESYNCING
        self.run(self._flush())

    @precondition(lambda self: self.target is not None and self.mode == RESYNCING)
    @rule(regions=st.integers(1, 4))
    def resync_step(self, regions: int) -> None:
        self.run(self._flush())
        if self.stream is None:
            self.run(self._connect())
        if self.mode != RESYNCING:
            return
        for disk, offset in self.run(self._compare())[:regions]:
            self._append(KIND_WRITE, disk, offset, bytes(self.disk[disk][offset : offset + REGION]))
        self.run(self._flush())

    @precondition(lambda self: self.target is not None and self.mode == RESYNCING)
    @rule()
    def resync_finish(self) -> None:
        self.run(self._flush())
        if self.stream is None:
            self.run(self._connect())
        if self.mode != RESYNCING:
            return
        for disk, offset in self.run(self._compare()):
            self._append(KIND_WRITE, disk, offset, bytes(self.disk[disk][offset : offset + REGION]))
        self._append(KIND_RESYNC_END, label="resync", shadow=self._snapshot())
        self.run(self._flush())
        self.mode = JOURNALING

    # -- the invariant --------------------------------------------------------------------

    @invariant()
    def offered_points_are_source_states(self) -> None:
        if self.target is not None:
            self.run(self._check())

    async def _check(self) -> None:
        assert self.target is not None
        await self._apply_round()
        try:
            points = await self.target.client.list_points(GROUP)
        except RemoteError as exc:  # no session opened yet
            assert exc.code == "NOT_FOUND", exc
            points = []
        seqs = {p.seq for p in points}
        for seq in sorted(seqs):
            assert self.shadow.get(seq) is not None, f"point {seq} offered: no source state"
        lost = self.offered - seqs
        assert not lost, f"points dropped: {sorted(lost)}"
        self.offered |= seqs
        if not seqs:
            return
        timeline = await self.target.client.timeline(GROUP)
        for span in timeline.spans:
            if span.restorable:
                inside = [s for s in range(span.start_seq, span.end_seq + 1) if s in self.shadow]
                bad = [s for s in inside if self.shadow[s] is None]
                assert not bad, f"restorable span {span.start_seq}..{span.end_seq} holds {bad}"
        ordered = sorted(points, key=lambda p: p.seq)
        newest, oldest, middle = ordered[-1], ordered[0], ordered[len(ordered) // 2]
        for at in ("latest", str(newest.seq), str(oldest.seq)):
            await self._read(at)
        got = await self._read(_iso(middle.source_time_unix_ns))  # the exact nanosecond time
        assert got.seq >= middle.seq and got.source_time_unix_ns == middle.source_time_unix_ns, (
            f"at {middle.source_time_unix_ns} ns (point {middle.seq}) resolved to {got.seq}"
        )

    async def _apply_round(self) -> None:
        """One apply round now (retention decided at this step, not by loop timing)."""
        assert self.target is not None
        try:
            members = self.target.target.members(GROUP)
        except CdpError:  # no session opened yet
            return
        for member in members:
            await asyncio.to_thread(member.apply_once)

    async def _read(self, at: str):  # type: ignore[no-untyped-def]
        assert self.target is not None
        seq = -1
        image = [bytearray(SIZE) for _ in range(DISKS)]
        for disk in range(DISKS):
            # the first disk resolves `at`; the others read that seq (a batch sent on a cut
            # link may become durable meanwhile and move `latest` or a time's point)
            exact = at if seq == -1 else str(seq)
            async for msg in self.target.client.read_image(GROUP, VM, disk, exact):
                if msg.HasField("plan"):
                    assert seq in (-1, msg.plan.point.seq), f"at {exact!r}: {msg.plan.point.seq}"
                    seq, point = msg.plan.point.seq, msg.plan.point
                else:
                    image[disk][msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
        want = self.shadow.get(seq)
        assert want is not None, f"at {at!r} resolved to {seq}: no source state there"
        for disk in range(DISKS):
            assert bytes(image[disk]) == want[disk], f"at {at!r} (seq {seq}) disk {disk} differs"
        return point


_FAST = settings(
    max_examples=15, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip

TestSessionStateMachine = SessionMachine.TestCase
TestSessionStateMachine.settings = _FAST


class SoakMachine(SessionMachine):
    """The same machine, longer runs (pytest -m soak)."""


TestSessionStateMachineSoak = pytest.mark.soak(SoakMachine.TestCase)
TestSessionStateMachineSoak.settings = settings(_FAST, max_examples=200, stateful_step_count=60)
