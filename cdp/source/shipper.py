"""The shipper: streams a source buffer to the target, resuming after any disconnect.

One session at a time: handshake (learn the durable seq), drop what is already
durable, then send batches from durable + 1 while the send window allows, and release
records as acks arrive. Every unacked record stays in the buffer, so after a reconnect
the shipper simply starts again from the new durable seq. Transient failures
(target down, stream cut, disk full at the target) back off and retry; errors that a
retry cannot fix (bad input, resync required) end :meth:`Shipper.run`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cdp.errors import CdpError, PreconditionError, RemoteError
from cdp.group import GroupSpec
from cdp.record import Record
from cdp.source.bandwidth import Throttle
from cdp.source.buffer import SourceBuffer
from cdp.waiting import wait_set

log = logging.getLogger(__name__)

DEFAULT_BATCH_BYTES = 1 * 2**20
"""Compressed payload bytes per batch message the shipper aims for."""
DEFAULT_LINGER_S = 0.002
"""How long a small batch waits for more writes before it is sent."""
DEFAULT_HOLD_S = 0.010
"""How long a small batch may wait behind an unacked one for more writes (Nagle)."""
RETRYABLE = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "CANCELLED",
             "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL", "UNKNOWN"}  # fmt: skip
"""gRPC codes after which the shipper reconnects; any other code ends the run."""


def _small(batch: list[Record], max_bytes: int) -> bool:
    """Worth waiting for more writes: under a quarter of the batch size."""
    return sum(len(r.frame) for r in batch) < max_bytes // 4


class ResyncRequiredError(PreconditionError):
    """The target cannot continue the journal from what this source holds."""


@dataclass(frozen=True)
class SessionReply:
    """The target's handshake answer, as the shipper needs it."""

    session_id: str
    durable_seq: int
    durable_ns: int
    resync_required: bool
    resync_reason: str
    max_payload_bytes: int
    max_records: int
    window_bytes: int
    heartbeat_s: float = 0.0
    """Seconds between heartbeats while idle and fully acked (0: the target wants none)."""


@dataclass(frozen=True)
class AckReply:
    """One ack from the target."""

    durable_seq: int
    durable_ns: int
    window_bytes: int
    seal_request_id: str = ""
    """Non-empty while the target asks this source to seal (a planned failover)."""


class JournalStream(Protocol):
    """One open StreamJournal call."""

    async def send(self, records: list[Record]) -> None:
        """Send one batch."""

    async def heartbeat(self, next_seq: int) -> None:
        """Say that nothing is unacked; ``next_seq`` is the seq the next record gets."""

    async def seal(self, request_id: str, next_seq: int) -> None:
        """Answer a seal request: guest writes are held, every record below ``next_seq`` acked."""

    async def recv(self) -> AckReply | None:
        """Next ack; None when the target closed the stream cleanly."""

    def cancel(self) -> None:
        """Abandon the call."""


class Transport(Protocol):
    """How the shipper talks to a target (the seam tests may wrap)."""

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest_held_seq: int, next_seq: int,
        member_id: str = "", epoch: int = 0,
    ) -> SessionReply:  # fmt: skip
        """Handshake (``epoch``: the fencing epoch this source writes under, 0: legacy)."""

    def stream(self, session_id: str) -> JournalStream:
        """Open a journal stream for a session."""


@dataclass(frozen=True)
class ShipperConfig:
    """Tuning of a shipper."""

    source_id: str
    member_id: str = ""
    """Member of a group that spans hosts; empty when this source streams the group alone."""
    batch_bytes: int = DEFAULT_BATCH_BYTES
    linger_s: float = DEFAULT_LINGER_S
    hold_s: float = DEFAULT_HOLD_S
    """A small batch (under a quarter of the batch size) with an earlier batch still
    unacked waits up to this long, until that ack comes or the batch has grown: many
    slow groups then send fewer, fuller batches (each costs a message, an fsync and an
    ack). On an idle link only ``linger_s`` applies. 0 turns the hold off."""
    epoch: int = 0
    """Fencing epoch sent in the handshake; a target whose group was failed over to a
    higher epoch refuses this source (0: the legacy epoch every group starts in)."""
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 2.0
    new_source: bool = False
    """A source that starts with a full initial sync (failback's reverse source): the
    target answering that it already holds the group is expected — logged at INFO, and
    the shipper reconnects after the rejoin without reporting an error."""


class Shipper:
    """Ships one group's buffer to one target."""

    def __init__(
        self, spec: GroupSpec, buffer: SourceBuffer, transport: Transport, config: ShipperConfig
    ) -> None:
        self.spec = spec
        self.buffer = buffer
        self.transport = transport
        self.config = config
        self.sessions = 0
        self.batches_sent = 0
        self.connected = False
        self.session_id = ""
        """Id of the current session ("" when not connected)."""
        self.last_error: CdpError | None = None
        self.last_error_s = 0.0
        """When ``last_error`` happened (time.monotonic)."""
        self.idle_check: Callable[[], bool] = lambda: True
        """Whether the source holds no write outside the buffer (e.g. in a dirty map): a
        heartbeat says "nothing unacked" only while it is true (set by the protection)."""
        self.heartbeats = 0
        """Heartbeats sent (one per ``heartbeat_s`` while idle and fully acked)."""
        self.resync_required = False
        """The last handshake answered resync_required: the target offers no new restore
        point until this source's resync ends (its RPO grows meanwhile)."""
        self.throttle: Throttle | None = None
        """Bandwidth caps consulted before each batch (None: the whole link). Resync
        regions go through the buffer, so they obey the same caps."""
        self.hold_writes: Callable[[], None] = lambda: None
        """Stop taking guest writes (they wait): called when the target asks for a seal."""
        self.release_writes: Callable[[], None] = lambda: None
        """Take guest writes again: called when the target lifts the seal."""
        self.seal_asked = ""
        """The seal id the target asks for ("" when none): guest writes are held meanwhile."""
        self.sealed = ""
        """The seal id this source answered on its current session ("" when none)."""
        self.on_resync_required: Callable[[int, int], None] | None = None
        """Called with the target's durable seq and its time when the journals cannot meet.

        (E.g. this source restarted and lost its buffer.) It must number the next record
        durable + 1 and make it a RESYNC_START: the session stays open for the resync, and
        every re-open answers resync_required again until one is durable.
        """

    async def run(self) -> None:
        """Ship until cancelled; reconnect with backoff after transient failures."""
        delay = self.config.reconnect_min_s
        while True:
            started = time.monotonic()
            try:
                await self.ship_session()
            except RemoteError as exc:
                if exc.code not in RETRYABLE:
                    raise
                self.last_error, self.last_error_s = exc, time.monotonic()
                log.warning("shipper %s: %s; reconnecting", self.config.source_id, exc)
            finally:
                self.connected = False
                self.session_id = ""
            if time.monotonic() - started > 5 * delay:
                delay = self.config.reconnect_min_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_s)

    async def ship_session(self) -> None:
        """One session: handshake, then stream until the stream fails."""
        buf = self.buffer
        reply = await self.transport.open_session(
            self.config.source_id, self.spec, buf.oldest_seq(), buf.next_seq, self.config.member_id,
            self.config.epoch,
        )  # fmt: skip
        if reply.resync_required:
            if self.on_resync_required is None:
                raise ResyncRequiredError(f"group {self.spec.group_id!r}: {reply.resync_reason}")
            if self.config.new_source:
                log.info(
                    "shipper %s: the target already holds group %r to seq %d; this new source "
                    "joins after it and its initial sync compares every region (expected)",
                    self.config.source_id, self.spec.group_id, reply.durable_seq,
                )  # fmt: skip
            else:
                log.warning("shipper %s: %s; resyncing", self.config.source_id, reply.resync_reason)
            self.on_resync_required(reply.durable_seq, reply.durable_ns)  # next: RESYNC_START
        self.resync_required = reply.resync_required
        self.sessions += 1
        buf.ack(reply.durable_seq, reply.durable_ns)
        stream = self.transport.stream(reply.session_id)
        self.session_id = reply.session_id
        self.connected = True
        self.sealed = ""  # a new session answers the seal again
        inflight: collections.deque[tuple[int, int]] = collections.deque()
        window = [reply.window_bytes]
        receiver = asyncio.ensure_future(self._receive(stream, inflight, window))
        try:
            await self._send_loop(stream, reply, inflight, window, receiver)
        finally:
            receiver.cancel()
            stream.cancel()

    async def _send_loop(
        self,
        stream: JournalStream,
        reply: SessionReply,
        inflight: collections.deque[tuple[int, int]],
        window: list[int],
        receiver: asyncio.Future[None],
    ) -> None:
        buf = self.buffer
        send_seq = reply.durable_seq + 1
        max_bytes = min(self.config.batch_bytes, reply.max_payload_bytes)
        if self.throttle is not None:  # small batches keep a higher priority's wait short
            max_bytes = min(max_bytes, self.throttle.max_batch_bytes())
        while True:
            if receiver.done():
                receiver.result()  # raises the stream's error
                raise RemoteError("UNAVAILABLE", "target closed the journal stream")
            send_seq = max(send_seq, buf.acked_seq + 1)
            room = window[0] - sum(n for _, n in inflight)  # the target refuses more
            limit = min(max_bytes, max(room, 1))
            batch = buf.take(send_seq, reply.max_records, limit)
            if batch and (not inflight or _frame_bytes(batch) <= room):
                if _small(batch, max_bytes) and self.config.linger_s:
                    await asyncio.sleep(self.config.linger_s)
                    batch = await self._hold(send_seq, reply, limit, inflight)
                if self.throttle is not None:
                    await self.throttle.acquire(_frame_bytes(batch))
                await stream.send(batch)
                self.batches_sent += 1
                inflight.append((batch[-1].seq, _frame_bytes(batch)))
                send_seq = batch[-1].seq + 1
                continue
            if self.seal_asked and self.sealed != self.seal_asked and self._idle(inflight):
                await stream.seal(self.seal_asked, buf.next_seq)  # everything taken is acked
                self.sealed = self.seal_asked
                log.warning("shipper %s: sealed at seq %d (planned failover)",
                            self.config.source_id, buf.next_seq - 1)  # fmt: skip
            await self._wait_or_heartbeat(stream, reply, inflight, receiver)

    def _idle(self, inflight: collections.deque[tuple[int, int]]) -> bool:
        """Nothing unacked, nothing to send: what a heartbeat tells the target."""
        buf = self.buffer
        acked = not inflight and not len(buf) and buf.acked_seq + 1 == buf.next_seq
        return acked and self.idle_check()

    async def _wait_or_heartbeat(
        self, stream: JournalStream, reply: SessionReply,
        inflight: collections.deque[tuple[int, int]], receiver: asyncio.Future[None],
    ) -> None:  # fmt: skip
        """Wait for a write or an ack; while idle, send a heartbeat every ``heartbeat_s``."""
        buf = self.buffer
        buf.changed.clear()
        beat_s = reply.heartbeat_s if reply.heartbeat_s > 0 and self._idle(inflight) else None
        waiter: asyncio.Future[Any] = asyncio.ensure_future(buf.changed.wait())
        try:
            done, _ = await asyncio.wait(
                [waiter, receiver], timeout=beat_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if not done and self._idle(inflight):
            await stream.heartbeat(buf.next_seq)
            self.heartbeats += 1

    async def _hold(
        self, send_seq: int, reply: SessionReply, max_bytes: int,
        inflight: collections.deque[tuple[int, int]],
    ) -> list[Record]:  # fmt: skip
        """The batch to send after letting a small one wait behind an unacked batch."""
        buf, loop = self.buffer, asyncio.get_running_loop()
        deadline = loop.time() + self.config.hold_s
        batch = buf.take(send_seq, reply.max_records, max_bytes)
        while inflight and _small(batch, max_bytes) and (left := deadline - loop.time()) > 0:
            buf.changed.clear()  # set again by the next write or ack
            await wait_set(buf.changed, left)
            batch = buf.take(send_seq, reply.max_records, max_bytes)
        return batch

    async def _receive(
        self,
        stream: JournalStream,
        inflight: collections.deque[tuple[int, int]],
        window: list[int],
    ) -> None:
        """Apply acks to the buffer until the stream ends."""
        while (ack := await stream.recv()) is not None:
            self._note_seal_request(ack.seal_request_id)
            self.buffer.ack(ack.durable_seq, ack.durable_ns)
            window[0] = ack.window_bytes
            while inflight and inflight[0][0] <= ack.durable_seq:
                inflight.popleft()

    def _note_seal_request(self, request_id: str) -> None:
        """Hold guest writes while the target asks for a seal; take them again once lifted."""
        if request_id == self.seal_asked:
            return
        if request_id and not self.seal_asked:
            self.hold_writes()
            log.warning("shipper %s: the target asks for a seal; guest writes held",
                        self.config.source_id)  # fmt: skip
        elif not request_id:
            self.release_writes()
            log.warning("shipper %s: seal lifted; guest writes resume", self.config.source_id)
        self.seal_asked, self.sealed = request_id, ""
        self.buffer.changed.set()  # wake the send loop: it answers once everything is acked

    async def drain(self, poll_s: float = 0.01) -> None:
        """Wait until every appended record is acked."""
        while len(self.buffer):
            await asyncio.sleep(poll_s)


def _frame_bytes(batch: list[Record]) -> int:
    """Payload bytes of a batch as sent (compressed frames): what the window counts."""
    return sum(len(r.frame) for r in batch)
