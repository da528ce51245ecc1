"""The gRPC client: the shipper's :class:`cdp.source.shipper.Transport` and the status call.

gRPC errors become :class:`cdp.errors.RemoteError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from cdp.errors import InvalidInputError, RemoteError
from cdp.group import GroupSpec
from cdp.record import Record
from cdp.rpc import wire
from cdp.source.shipper import AckReply, SessionReply
from cdp.tls import ClientTLS
from cdp.v1 import replication_pb2 as pb
from cdp.v1 import replication_pb2_grpc as pb_grpc

READY = grpc.ChannelConnectivity.READY
CONNECT_TIMEOUT_S = 30.0
"""How long a call without its own deadline waits for a connection."""
TLS_HINT = (
    "check that the target runs at {address} and serves mTLS. The target refuses in the "
    "TLS handshake a client certificate that is missing, expired or not signed by its CA "
    "(its log names the reason); this client refuses a target certificate that is not "
    "signed by the CA in --tls-dir or does not name the host of {address} "
    "(cdp certs init --host)"
)
PLAIN_HINT = (
    "check that the target runs at {address}; a target serving mTLS closes plain-text "
    "connections: pass --tls-dir instead of --insecure"
)
_OPTIONS = [
    *wire.MESSAGE_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def check_address(address: str) -> str:
    """Return ``address`` if it looks like HOST:PORT, else raise naming the flag."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError("--target", f"{address!r} is not HOST:PORT")
    return address


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn gRPC errors raised inside into :class:`RemoteError`."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise RemoteError(exc.code().name, exc.details() or "") from exc


class GrpcJournalStream:
    """A StreamJournal call."""

    def __init__(self, call: grpc.aio.StreamStreamCall[Any, Any], session_id: str) -> None:
        self._call = call
        self._session_id = session_id

    async def send(self, records: list[Record]) -> None:
        """Send one batch."""
        msg = wire.records_to_pb(self._session_id, records)
        try:
            await self._call.write(msg)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError) as exc:
            # The call already ended (often: the target rejected an earlier batch). The
            # write's own error says little ("Internal error from Core"); the call's
            # status says why.
            with translated():
                code, details = await self._call.code(), await self._call.details()
            raise RemoteError(code.name, details or "journal stream ended") from exc

    async def heartbeat(self, next_seq: int) -> None:
        """Send a heartbeat: nothing unacked, ``next_seq`` is the seq the next record gets."""
        msg = pb.StreamJournalRequest(session_id=self._session_id, next_seq=next_seq)
        try:
            await self._call.write(msg)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError) as exc:
            with translated():
                code, details = await self._call.code(), await self._call.details()
            raise RemoteError(code.name, details or "journal stream ended") from exc

    async def seal(self, request_id: str, next_seq: int) -> None:
        """Answer the target's seal request: every record below ``next_seq`` is acked."""
        msg = pb.StreamJournalRequest(
            session_id=self._session_id, next_seq=next_seq, seal_request_id=request_id
        )
        try:
            await self._call.write(msg)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError) as exc:
            with translated():
                code, details = await self._call.code(), await self._call.details()
            raise RemoteError(code.name, details or "journal stream ended") from exc

    async def recv(self) -> AckReply | None:
        """Next ack, or None at a clean end of stream."""
        with translated():
            msg = await self._call.read()
        if msg is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        assert isinstance(msg, pb.StreamJournalResponse)
        return AckReply(
            msg.durable_seq, msg.durable_source_time_unix_ns, msg.window_bytes,
            msg.seal_request_id,
        )  # fmt: skip

    def cancel(self) -> None:
        """Abandon the call."""
        self._call.cancel()


class ReplicationClient:
    """A channel to one target: mutual TLS with ``tls``, else plain text."""

    def __init__(self, address: str, tls: ClientTLS | None = None) -> None:
        self.address = check_address(address)
        self.tls = tls
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address, options=_OPTIONS)
        else:
            creds = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
            name = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
            self._channel = grpc.aio.secure_channel(address, creds, options=_OPTIONS + name)
        self._stub = pb_grpc.ReplicationServiceStub(self._channel)

    @contextlib.asynccontextmanager
    async def _rpc(self) -> AsyncIterator[None]:
        """Like :func:`translated`; a failure to connect also says why and what to check."""
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            raise await self._connect_error(exc) from exc

    async def _connect_error(self, exc: grpc.aio.AioRpcError) -> RemoteError:
        code, details = exc.code(), exc.details() or ""
        connect_codes = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        if code not in connect_codes or self._channel.get_state() is READY:
            return RemoteError(code.name, details)
        return await self._unreachable(details if code is grpc.StatusCode.UNAVAILABLE else "")

    async def _unreachable(self, details: str) -> RemoteError:
        """UNAVAILABLE with the channel's last connection error and what to check."""
        details = details or await self._last_connect_error() or "timed out"
        error = RemoteError("UNAVAILABLE", f"no connection to {self.address}: {details}")
        error.hint = (TLS_HINT if self.tls else PLAIN_HINT).format(address=self.address)
        return error

    async def _last_connect_error(self) -> str:
        """The channel's last connection error, from a call that does not wait for one."""
        try:
            await self._stub.GetStatus(pb.GetStatusRequest(), timeout=5, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNAVAILABLE:
                return exc.details() or ""
        return ""

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest_held_seq: int, next_seq: int,
        member_id: str = "", epoch: int = 0,
    ) -> SessionReply:  # fmt: skip
        """Handshake for one group (or one member of a group spanning hosts)."""
        req = pb.OpenSessionRequest(
            protocol_version=wire.PROTOCOL_VERSION, source_id=source_id, group_id=spec.group_id,
            vms=wire.vms_to_pb(spec), oldest_held_seq=oldest_held_seq, next_seq=next_seq,
            member_id=member_id, epoch=epoch,
        )  # fmt: skip
        async with self._rpc():
            r = await self._stub.OpenSession(req, wait_for_ready=True, timeout=30)
        return SessionReply(
            r.session_id, r.durable_seq, r.durable_source_time_unix_ns, r.resync_required,
            r.resync_reason, r.max_batch_payload_bytes, r.max_batch_records, r.window_bytes,
            heartbeat_s=r.heartbeat_interval_seconds,
        )  # fmt: skip

    def stream(self, session_id: str) -> GrpcJournalStream:
        """Open a journal stream."""
        return GrpcJournalStream(self._stub.StreamJournal(), session_id)

    async def status(self, group_id: str = "") -> pb.GetStatusResponse:
        """The target's status message for one group or all."""
        async with self._rpc():
            resp: pb.GetStatusResponse = await self._stub.GetStatus(
                pb.GetStatusRequest(group_id=group_id), timeout=10, wait_for_ready=True
            )
        return resp

    async def list_points(
        self, group_id: str, start_ns: int = 0, end_ns: int = 0, labelled_only: bool = False,
        page_size: int = 1000, limit: int = 0,
    ) -> list[pb.RestorePoint]:  # fmt: skip
        """Restore points of a group in a time range, oldest first, every page (or ``limit``)."""
        out: list[pb.RestorePoint] = []
        token = ""
        while True:
            req = pb.ListRestorePointsRequest(
                group_id=group_id, start_time_unix_ns=start_ns, end_time_unix_ns=end_ns,
                page_size=page_size, page_token=token, labelled_only=labelled_only,
            )  # fmt: skip
            async with self._rpc():
                resp = await self._stub.ListRestorePoints(req, timeout=30, wait_for_ready=True)
            out.extend(resp.points)
            token = resp.next_page_token
            if not token or (limit and len(out) >= limit):
                return out[:limit] if limit else out

    async def create_bookmark(self, group_id: str, name: str) -> pb.RestorePoint:
        """Bookmark the group's newest durable restore point."""
        async with self._rpc():
            resp = await self._stub.CreateBookmark(
                pb.CreateBookmarkRequest(group_id=group_id, name=name), timeout=30,
                wait_for_ready=True,
            )  # fmt: skip
        point: pb.RestorePoint = resp.point
        return point

    async def create_plan_bookmark(
        self, group_ids: list[str], name: str
    ) -> pb.CreatePlanBookmarkResponse:
        """Bookmark the newest durable point of every group under one name, at one instant."""
        async with self._rpc():
            resp: pb.CreatePlanBookmarkResponse = await self._stub.CreatePlanBookmark(
                pb.CreatePlanBookmarkRequest(group_ids=group_ids, name=name), timeout=30,
                wait_for_ready=True,
            )  # fmt: skip
        return resp

    async def seal_group(
        self, group_id: str, timeout_s: float = 0.0, release: bool = False
    ) -> pb.SealGroupResponse:
        """Seal a group's sources (wait up to ``timeout_s``; 0: the target's default) or lift it."""
        req = pb.SealGroupRequest(group_id=group_id, timeout_seconds=timeout_s, release=release)
        async with self._rpc():
            resp: pb.SealGroupResponse = await self._stub.SealGroup(
                req, timeout=(timeout_s or 30) + 30, wait_for_ready=True
            )
        return resp

    async def set_lifecycle(
        self, group_id: str, state: pb.LifecycleState, fence: bool = False, unfence: bool = False,
        note: str = "",
    ) -> pb.SetLifecycleResponse:  # fmt: skip
        """Record a group's lifecycle state (``state``: a ``pb.LIFECYCLE_STATE_*``)."""
        req = pb.SetLifecycleRequest(
            group_id=group_id, state=state, fence=fence, unfence=unfence, note=note
        )
        async with self._rpc():
            resp: pb.SetLifecycleResponse = await self._stub.SetLifecycle(
                req, timeout=30, wait_for_ready=True
            )
        return resp

    async def record_audit(self, action: str, obj: str, outcome: str) -> pb.AuditEntry:
        """Record an operator action done elsewhere in the target's audit log (as the caller)."""
        async with self._rpc():
            resp = await self._stub.RecordAudit(
                pb.RecordAuditRequest(action=action, object=obj, outcome=outcome), timeout=30,
            )  # fmt: skip
        entry: pb.AuditEntry = resp.entry
        return entry

    async def report_failover_progress(
        self, req: pb.ReportFailoverProgressRequest, timeout_s: float
    ) -> pb.ReportFailoverProgressResponse:
        """Tell the target a failover operation's progress (fails fast when unreachable)."""
        async with self._rpc():
            resp: pb.ReportFailoverProgressResponse = await self._stub.ReportFailoverProgress(
                req, timeout=timeout_s
            )
        return resp

    async def list_audit(self, since_ns: int = 0, limit: int = 0) -> list[pb.AuditEntry]:
        """The target's audit log, oldest first."""
        async with self._rpc():
            resp = await self._stub.ListAudit(
                pb.ListAuditRequest(since_unix_ns=since_ns, limit=limit), timeout=30,
                wait_for_ready=True,
            )  # fmt: skip
        return list(resp.entries)

    async def list_suspicions(
        self, group_id: str, standing_only: bool = False
    ) -> list[pb.Suspicion]:
        """A group's suspicions, oldest first per member."""
        async with self._rpc():
            resp = await self._stub.ListSuspicions(
                pb.ListSuspicionsRequest(group_id=group_id, standing_only=standing_only),
                timeout=30, wait_for_ready=True,
            )  # fmt: skip
        return list(resp.suspicions)

    async def mark_compromised(self, req: pb.MarkCompromisedRequest) -> list[pb.Suspicion]:
        """Mark a range of a group's history compromised (as the caller); one per member."""
        async with self._rpc():
            resp = await self._stub.MarkCompromised(req, timeout=30)
        return list(resp.suspicions)

    async def dismiss_suspicion(
        self, group_id: str, suspicion_id: str, reason: str, member_id: str = ""
    ) -> pb.Suspicion:
        """Dismiss a suspicion as a false alarm (as the caller)."""
        async with self._rpc():
            resp = await self._stub.DismissSuspicion(
                pb.DismissSuspicionRequest(
                    group_id=group_id, suspicion_id=suspicion_id, member_id=member_id,
                    reason=reason,
                ),
                timeout=30,
            )  # fmt: skip
        found: pb.Suspicion = resp.suspicion
        return found

    async def hold_base(
        self, group_id: str, holder: str, at: str = "", release: bool = False
    ) -> pb.HoldBaseResponse:
        """Place (or with ``release`` lift) a hold on the group's base replica."""
        async with self._rpc():
            resp: pb.HoldBaseResponse = await self._stub.HoldBase(
                pb.HoldBaseRequest(group_id=group_id, holder=holder, at=at, release=release),
                timeout=60, wait_for_ready=True,
            )  # fmt: skip
        return resp

    async def timeline(self, group_id: str) -> pb.GetTimelineResponse:
        """The group's timeline."""
        async with self._rpc():
            resp: pb.GetTimelineResponse = await self._stub.GetTimeline(
                pb.GetTimelineRequest(group_id=group_id), timeout=30, wait_for_ready=True
            )
        return resp

    async def read_image(
        self, group_id: str, vm_id: str, disk: int, at: str, dry_run: bool = False,
        offset: int = 0, length: int = 0, tail_only: bool = False,
    ) -> AsyncIterator[pb.ReadImageResponse]:  # fmt: skip
        """Stream an image: the first message has the plan, then data chunks."""
        req = pb.ReadImageRequest(
            group_id=group_id, vm_id=vm_id, disk=disk, at=at, dry_run=dry_run,
            offset_bytes=offset, length_bytes=length, journal_tail_only=tail_only,
        )  # fmt: skip
        try:  # the stream has no deadline: wait for the connection with one
            await asyncio.wait_for(self._channel.channel_ready(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise await self._unreachable("") from None
        call = self._stub.ReadImage(req, wait_for_ready=True)
        async with self._rpc():
            async for msg in call:
                yield msg

    async def compare_regions(
        self, session_id: str, disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
    ) -> list[int]:
        """Offsets whose region differs from the target's newest durable state."""
        req = pb.CompareRegionsRequest(
            session_id=session_id, disk_index=disk, region_bytes=region_bytes,
            offsets=offsets, xxh3_64=hashes,
        )  # fmt: skip
        async with self._rpc():
            resp = await self._stub.CompareRegions(req, timeout=60)
        return list(resp.differing_offsets)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(grace=None)

    async def __aenter__(self) -> ReplicationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def iterate(items: list[pb.StreamJournalRequest]) -> AsyncIterator[pb.StreamJournalRequest]:
    """Yield messages one by one (for raw stream calls in tools and tests)."""
    for item in items:
        yield item
