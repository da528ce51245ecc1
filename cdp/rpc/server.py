"""The target's gRPC server: ReplicationService, health and reflection.

Thin adapter: decode, call :class:`cdp.target.target.Target`, encode. Domain errors become
gRPC status codes in exactly one place: :func:`status_of` is the table, and every handler
is wrapped by :func:`unary` or :func:`streaming`, which end the call with that status.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
)
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from cdp import audit, errors
from cdp.record import Record
from cdp.rpc import auth, convert, decode, failover_calls, verdict_calls, wire
from cdp.target.committer import Ack
from cdp.target.intake import Limits, check_limits
from cdp.target.target import Target
from cdp.tls import ServerTLS
from cdp.v1 import replication_pb2 as pb
from cdp.v1 import replication_pb2_grpc as pb_grpc
from cdp.waiting import wait_set

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10000
DRAIN_GRACE_S = 0.5
"""After a bad batch, how long the client's in-flight writes are drained before the call ends."""
MAX_QUEUED_BATCHES = 256
"""Batches of one stream waiting for durability before the reader pauses."""

_CODES: list[tuple[type[errors.CdpError], grpc.StatusCode]] = [
    (errors.InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.PreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.SeqConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.ChecksumError, grpc.StatusCode.DATA_LOSS),
    (errors.JournalCorruptError, grpc.StatusCode.DATA_LOSS),
    (errors.ReplicaCorruptError, grpc.StatusCode.DATA_LOSS),
    (errors.IndexCorruptError, grpc.StatusCode.DATA_LOSS),
    (errors.JournalSyncError, grpc.StatusCode.UNAVAILABLE),
    (errors.StorageFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.BookmarkExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PointOutsideHistoryError, grpc.StatusCode.OUT_OF_RANGE),
    (errors.ImageMovedError, grpc.StatusCode.ABORTED),
]


def status_of(exc: errors.CdpError) -> grpc.StatusCode:
    """The gRPC status code for a domain error."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def unary(
    method: Callable[[S, Req, Context], Awaitable[Resp]],
) -> Callable[[S, Req, Context], Coroutine[Any, Any, Resp]]:
    """A unary handler whose domain errors end the call with their status (:func:`status_of`)."""

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except errors.CdpError as exc:
            await context.abort(status_of(exc), str(exc))

    return handler


def streaming(
    method: Callable[[S, Req, Context], AsyncGenerator[Resp, None]],
) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
    """A streaming handler whose domain errors end the call with their status."""

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:  # aclosing: a cancelled call closes the inner stream (and its pauses) at once
            async with contextlib.aclosing(method(self, request, context)) as messages:
                async for message in messages:
                    yield message
        except errors.CdpError as exc:
            await context.abort(status_of(exc), str(exc))

    return handler


class ReplicationServicer(pb_grpc.ReplicationServiceServicer):  # type: ignore[misc]
    """cdp.v1.ReplicationService over a :class:`Target`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._streams: set[_Stream] = set()
        """Open StreamJournal calls (ended at once when their session is superseded)."""

    @unary
    async def OpenSession(  # noqa: N802 - gRPC method name
        self, request: pb.OpenSessionRequest, context: Context
    ) -> pb.OpenSessionResponse:
        """Handshake for one group."""
        if request.protocol_version != wire.PROTOCOL_VERSION:
            raise errors.PreconditionError(
                f"protocol_version: {request.protocol_version} is not supported; "
                f"this target speaks {wire.PROTOCOL_VERSION}"
            )
        if not 0 < len(request.source_id) <= 128 or not request.source_id.isprintable():
            raise errors.InvalidInputError("source_id", "must be 1-128 printable characters")
        spec = wire.spec_from_pb(request.group_id, list(request.vms))
        info = await self.target.open_session(
            request.source_id, spec, request.oldest_held_seq, request.next_seq,
            request.member_id, request.epoch,
        )  # fmt: skip
        for stream in list(self._streams):
            stream.end_if_superseded(info.session_id)
        return pb.OpenSessionResponse(
            session_id=info.session_id, durable_seq=info.durable_seq,
            durable_source_time_unix_ns=info.durable_source_ns,
            resync_required=info.resync_required, resync_reason=info.resync_reason,
            max_batch_payload_bytes=info.limits.max_payload_bytes,
            max_batch_records=info.limits.max_records, window_bytes=info.window_bytes,
            max_disks_per_group=self.target.config.max_disks_per_group,
            max_groups=self.target.config.max_groups,
            heartbeat_interval_seconds=self.target.config.heartbeat_interval_s,
        )  # fmt: skip

    @streaming
    async def StreamJournal(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[pb.StreamJournalRequest],
        context: Context,
    ) -> AsyncGenerator[pb.StreamJournalResponse, None]:
        """Take batches, answer with acks as they become durable."""
        stream = _Stream(self.target)
        reader = asyncio.ensure_future(stream.read(request_iterator))
        self._streams.add(stream)
        try:
            async for ack in stream.acks():
                yield pb.StreamJournalResponse(
                    durable_seq=ack.durable_seq,
                    durable_source_time_unix_ns=ack.source_ns,
                    window_bytes=self.target.config.window_bytes,
                    seal_request_id=self.target.seal_request(stream.session),
                )
        finally:
            self._streams.discard(stream)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if stream.session:
                self.target.end_session(stream.session)

    @unary
    async def ListRestorePoints(  # noqa: N802 - gRPC method name
        self, request: pb.ListRestorePointsRequest, context: Context
    ) -> pb.ListRestorePointsResponse:
        """A page of restore points."""
        size = request.page_size or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise errors.InvalidInputError("page_size", f"at most {MAX_PAGE_SIZE}")
        end = request.end_time_unix_ns or 2**63 - 1
        if request.start_time_unix_ns > end:
            raise errors.InvalidInputError("end_time_unix_ns", "is before start_time_unix_ns")
        after = convert.decode_page_token(request.page_token)
        points = await asyncio.to_thread(
            self.target.list_points, request.group_id, request.start_time_unix_ns, end,
            after, size + 1, request.labelled_only,
        )  # fmt: skip
        token = convert.encode_page_token(points[:size], after) if len(points) > size else ""
        verdicts = await asyncio.to_thread(self.target.verdicts, request.group_id, points[:size])
        return pb.ListRestorePointsResponse(
            points=[
                convert.point_to_pb(p, v) for p, v in zip(points[:size], verdicts, strict=True)
            ],
            next_page_token=token,
        )

    @unary
    async def CreateBookmark(  # noqa: N802 - gRPC method name
        self, request: pb.CreateBookmarkRequest, context: Context
    ) -> pb.CreateBookmarkResponse:
        """Name the newest durable point; recorded in the audit log, whatever the outcome."""
        obj = f"group {request.group_id} bookmark {request.name}"
        with self._audited(context, "create_bookmark", obj):
            point = await self.target.create_bookmark(request.group_id, request.name)
        return pb.CreateBookmarkResponse(point=convert.point_to_pb(point))

    @unary
    async def CreatePlanBookmark(  # noqa: N802 - gRPC method name
        self, request: pb.CreatePlanBookmarkRequest, context: Context
    ) -> pb.CreatePlanBookmarkResponse:
        """One bookmark name across several groups at one instant; audited like CreateBookmark."""
        obj = f"groups {','.join(request.group_ids)} bookmark {request.name}"
        with self._audited(context, "create_bookmark", obj):
            made = await self.target.create_plan_bookmark(list(request.group_ids), request.name)
        groups = [
            pb.GroupBookmark(group_id=g, point=convert.point_to_pb(p)) for g, p in made.points
        ]
        return pb.CreatePlanBookmarkResponse(groups=groups, taken_unix_ns=made.taken_ns)

    def _audit(self, context: Context, action: str, obj: str, outcome: str) -> audit.AuditEntry:
        """Append an action to the target's audit log under the caller's identity."""
        log_ = audit.target_log(self.target.config.data_dir)
        return log_.append(self._who(context), action, obj, outcome)

    @contextlib.contextmanager
    def _audited(self, context: Context, action: str, obj: str) -> Iterator[list[str]]:
        """Record the body's ``action`` on ``obj`` in the audit log, whatever its outcome.

        The body may append words to the yielded list; they follow ``obj`` in the entry of
        a success (e.g. the ids a mark created).
        """
        more: list[str] = []
        try:
            yield more
        except errors.CdpError as exc:
            self._audit(context, action, obj, audit.outcome_of(exc))
            raise
        self._audit(context, action, " ".join([obj, *more]), audit.OK)

    @unary
    async def RecordAudit(  # noqa: N802 - gRPC method name
        self, request: pb.RecordAuditRequest, context: Context
    ) -> pb.RecordAuditResponse:
        """Record an action done elsewhere (a failover run in the CLI) under the caller."""
        for name in ("action", "object", "outcome"):
            text = getattr(request, name)
            if not text or len(text) > audit.MAX_FIELD_CHARS:
                raise errors.InvalidInputError(
                    name, f"must be 1-{audit.MAX_FIELD_CHARS} characters"
                )
        entry = self._audit(context, request.action, request.object, request.outcome)
        return pb.RecordAuditResponse(entry=convert.audit_to_pb(entry))

    @unary
    async def ListAudit(  # noqa: N802 - gRPC method name
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        """The target's audit log, oldest first."""
        log_ = audit.target_log(self.target.config.data_dir)
        found = log_.entries(request.since_unix_ns, request.limit)
        return pb.ListAuditResponse(entries=[convert.audit_to_pb(e) for e in found])

    @unary
    async def GetTimeline(  # noqa: N802 - gRPC method name
        self, request: pb.GetTimelineRequest, context: Context
    ) -> pb.GetTimelineResponse:
        """Intervals, gaps and history health."""
        t = await asyncio.to_thread(self.target.timeline, request.group_id)
        bands = await asyncio.to_thread(self.target.suspect_bands, request.group_id)
        return convert.timeline_to_pb(t, bands)

    ReportFailoverProgress = unary(failover_calls.report_failover_progress)
    SealGroup = unary(failover_calls.seal_group)
    ListSuspicions = unary(verdict_calls.list_suspicions)
    MarkCompromised = unary(verdict_calls.mark_compromised)
    DismissSuspicion = unary(verdict_calls.dismiss_suspicion)

    @staticmethod
    def _who(context: Context) -> str:
        """The caller's identity as the audit log writes it."""
        who = auth.identity_of(context)
        return str(who) if who else audit.INSECURE

    @streaming
    async def ReadImage(  # noqa: N802 - gRPC method name
        self, request: pb.ReadImageRequest, context: Context
    ) -> AsyncGenerator[pb.ReadImageResponse, None]:
        """The plan, then the image's data chunks in offset order."""
        for name in ("offset_bytes", "length_bytes"):
            if getattr(request, name) % 512:
                raise errors.InvalidInputError(name, "must be a multiple of 512")
        image = self.target.image(
            request.group_id, request.vm_id, request.disk, request.at, request.journal_tail_only
        )
        async with image as (plan, reader):
            if request.offset_bytes > plan.capacity_bytes:
                raise errors.InvalidInputError(
                    "offset_bytes", f"past the disk's capacity {plan.capacity_bytes}"
                )
            yield pb.ReadImageResponse(plan=convert.plan_to_pb(plan))
            if request.dry_run:
                return
            length = request.length_bytes or plan.capacity_bytes
            chunks = reader(request.offset_bytes, length)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                for offset, data in wire.image_pieces(*chunk):
                    yield pb.ReadImageResponse(offset_bytes=offset, data=data)

    @unary
    async def HoldBase(  # noqa: N802 - gRPC method name
        self, request: pb.HoldBaseRequest, context: Context
    ) -> pb.HoldBaseResponse:
        """Place or lift a hold on the group's base replica."""
        if request.release:
            released = self.target.release_base(request.group_id, request.holder)
            return pb.HoldBaseResponse(released=released)
        point = await self.target.hold_base(request.group_id, request.holder, request.at)
        return pb.HoldBaseResponse(point=convert.point_to_pb(point))

    @unary
    async def CompareRegions(  # noqa: N802 - gRPC method name
        self, request: pb.CompareRegionsRequest, context: Context
    ) -> pb.CompareRegionsResponse:
        """Regions whose hash differs at the target."""
        differing = await self.target.compare_regions(
            request.session_id, request.disk_index, request.region_bytes,
            list(request.offsets), list(request.xxh3_64),
        )  # fmt: skip
        return pb.CompareRegionsResponse(differing_offsets=differing)

    @unary
    async def GetStatus(  # noqa: N802 - gRPC method name
        self, request: pb.GetStatusRequest, context: Context
    ) -> pb.GetStatusResponse:
        """Status of one group or all."""
        found = self.target.status(request.group_id)
        return pb.GetStatusResponse(groups=[convert.status_to_pb(s) for s in found])

    @unary
    async def SetLifecycle(  # noqa: N802 - gRPC method name
        self, request: pb.SetLifecycleRequest, context: Context
    ) -> pb.SetLifecycleResponse:
        """Record a group's lifecycle state; fence or unfence its epoch."""
        state = convert.LIFECYCLES_BY_NUMBER.get(request.state)
        if state is None:
            raise errors.InvalidInputError(
                "state", f"must be a LifecycleState other than UNSPECIFIED; got {request.state}"
            )
        lc = await self.target.set_lifecycle(
            request.group_id, state, request.fence, request.unfence, request.note
        )
        return pb.SetLifecycleResponse(
            state=convert.LIFECYCLES[lc.state], epoch=lc.epoch, changed_unix_ns=lc.changed_ns
        )

    def _nudge(self, session_ids: list[str]) -> None:
        """Send the streams of these sessions a response now (a seal asked or lifted)."""
        for stream in list(self._streams):
            if stream.session in session_ids:
                stream.nudge()


_Item = tuple[str, list[Record], int, str]
"""A StreamJournal request as queued: session id, records, next_seq, seal_request_id."""


class _Stream:
    """One StreamJournal call: batches in, the newest ack out, the first error last.

    After a bad batch nothing more is accepted, but the call stays open until every
    earlier batch is durable and acked, and the client's writes already in flight are
    drained (discarded) for up to DRAIN_GRACE_S: grpc.aio clients that write into a call
    the server just ended see a local INTERNAL instead of the server's status.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.session = ""
        self._room = asyncio.Semaphore(MAX_QUEUED_BATCHES)
        self._changed = asyncio.Event()
        self._latest: Ack | None = None
        self._error: errors.CdpError | None = None
        self._outstanding = 0
        self._reading = True
        self._drained = asyncio.Event()
        self._unacked: collections.deque[tuple[int, int]] = collections.deque()
        """(last seq, payload bytes) of each batch received and not yet acked, oldest first."""
        self._unacked_bytes = 0
        self._beat: Ack | None = None
        """The ack owed for the newest heartbeat (sent even if it repeats the last ack)."""

    def _check_window(self, payload_bytes: int) -> None:
        """Refuse a batch that would put more unacked payload in flight than the window."""
        window = self.target.config.window_bytes
        if self._unacked_bytes + payload_bytes > window:
            raise errors.LimitExceededError(
                "window_bytes",
                f"{self._unacked_bytes + payload_bytes} payload bytes unacknowledged; "
                f"the window is {window}",
                hint="wait for acks before sending more than window_bytes",
            )

    def _acked(self, durable_seq: int) -> None:
        """An ack up to ``durable_seq`` went out: its batches leave the window."""
        while self._unacked and self._unacked[0][0] <= durable_seq:
            self._unacked_bytes -= self._unacked.popleft()[1]

    async def read(self, requests: AsyncIterator[pb.StreamJournalRequest]) -> None:
        """Take every batch until the source closes or one is bad; a second task checks them.

        Reading only parses and counts the window, so a source that sends past
        ``window_bytes`` is refused even while its batches wait for their payload check.
        """
        queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        submitter = asyncio.ensure_future(self._submit_all(queue))
        try:
            async for req in requests:
                if self._error is not None:
                    break
                if self.session and req.session_id != self.session:
                    raise errors.SessionError("session_id: changed within one stream")
                self.session = req.session_id
                if not req.records and not req.payload:  # a heartbeat or a seal
                    queue.put_nowait((req.session_id, [], req.next_seq, req.seal_request_id))
                    continue
                check_limits(len(req.records), len(req.payload), self.target.config.limits)
                records = wire.records_from_pb(req)
                self._check_window(len(req.payload))
                last = max((r.seq for r in records), default=0)
                self._unacked.append((last, len(req.payload)))
                self._unacked_bytes += len(req.payload)
                queue.put_nowait((req.session_id, records, 0, ""))
            queue.put_nowait(None)
            await submitter
            if self._error is not None:
                async for _ in requests:  # drain what the client already sent
                    pass
        except errors.CdpError as exc:
            self._error = self._error or exc
            self._reading = False
            self._changed.set()
            async for _ in requests:  # drain what the client already sent
                pass
        finally:
            submitter.cancel()
            self._reading = False
            self._drained.set()
            self._changed.set()

    def nudge(self) -> None:
        """Owe the source a response now, with the durable state (a seal asked or lifted)."""
        if not self.session or self._error is not None:
            return
        with contextlib.suppress(errors.CdpError):  # a gone session answers at its next message
            self._beat = self.target.heartbeat(self.session, 0)  # 0: acked, not counted
            self._changed.set()

    def end_if_superseded(self, new_session: str) -> None:
        """End this stream with FAILED_PRECONDITION if its session is no longer live.

        Called on every successful OpenSession, so an idle stream of a superseded
        session ends at once instead of at its next message.
        """
        if not self.session or self.target.session_live(self.session) or self._error:
            return
        self._error = errors.SessionError(
            f"session_id: session {self.session} was superseded by session {new_session}",
            hint="a newer OpenSession took over this group; this stream's source must stop",
        )
        self._changed.set()

    async def _submit_all(self, queue: asyncio.Queue[_Item | None]) -> None:
        """Check each batch's payloads off the loop, in order, one at a time, then submit it.

        One batch of this stream is decompressed at a time: a source of lz4 bombs stalls
        itself (and is refused at ``window_bytes``), not the other groups.
        """
        try:
            while (item := await queue.get()) is not None:
                session, records, next_seq, seal_id = item
                if not records and seal_id:  # a seal; after every earlier batch, as a beat
                    self._beat = self.target.note_seal(session, seal_id, next_seq)
                    self._changed.set()
                    continue
                if not records:  # after every earlier batch of the call was submitted
                    self._beat = self.target.heartbeat(session, next_seq)
                    self._changed.set()
                    continue
                verdicts = await self.target.check_payloads(session, records)
                await self._room.acquire()
                try:
                    fut = self.target.submit(session, records, verdicts)
                except BaseException:
                    self._room.release()
                    raise
                self._outstanding += 1
                fut.add_done_callback(self._durable)
        except errors.CdpError as exc:
            self._error = self._error or exc
            self._changed.set()

    def _durable(self, fut: asyncio.Future[Ack]) -> None:
        self._outstanding -= 1
        self._room.release()
        exc = fut.exception() if not fut.cancelled() else errors.CdpError("batch cancelled")
        if exc is None:
            ack = fut.result()
            if self._latest is None or ack.durable_seq > self._latest.durable_seq:
                self._latest = ack
        elif self._error is None:
            self._error = exc if isinstance(exc, errors.CdpError) else errors.CdpError(str(exc))
        self._changed.set()

    async def acks(self) -> AsyncIterator[Ack]:
        """Yield the newest ack whenever it advances; raise the stream's error at the end."""
        sent = -1
        while True:
            await self._changed.wait()
            self._changed.clear()
            while self._latest is not None and self._latest.durable_seq > sent:
                sent = self._latest.durable_seq  # re-checked: it may move during the yield
                yield self._latest
                self._acked(sent)
            if (beat := self._beat) is not None:
                self._beat = None
                sent = max(sent, beat.durable_seq)
                yield beat if beat.durable_seq == sent else (self._latest or beat)
                self._acked(sent)
            if self._error is not None and self._outstanding == 0:
                await wait_set(self._drained, DRAIN_GRACE_S)
                raise self._error
            if not self._reading and self._outstanding == 0:
                return


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
"""Server reflection, v1: the same messages as v1alpha under the service's final name."""


def _add_reflection(server: grpc.aio.Server, names: tuple[str, ...]) -> None:
    """Serve reflection as v1alpha (grpcio-reflection) and v1 (the same servicer).

    grpcio-reflection registers only ``grpc.reflection.v1alpha.ServerReflection``; v1's
    messages are field for field the same, so one servicer answers both names.
    """
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)  # type: ignore[attr-defined]
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


def receive_limit(limits: Limits) -> int:
    """The server's gRPC receive cap, in bytes: what the batch limits need, not more.

    Twice the batch payload limit plus 1 MiB for the record heads, so a batch somewhat over
    the limit still arrives and gets INVALID_ARGUMENT naming ``payload``, while no client
    makes the target buffer a message of :data:`wire.MAX_MESSAGE_BYTES`.
    """
    return min(2 * limits.max_payload_bytes + 2**20, wire.MAX_MESSAGE_BYTES)


async def start_server(
    target: Target, listen: str, tls: ServerTLS | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start a server for ``target`` on ``listen`` (host:port, port 0 picks one).

    With ``tls``: mutual TLS only, and every call checked against its authz.yaml
    (:mod:`cdp.rpc.auth`). Without: plain text, no authentication (``--insecure``).
    """
    server = grpc.aio.server(
        interceptors=[
            decode.DecodeInterceptor(),
            *([auth.interceptor_for(tls.authz_path, target)] if tls else []),
        ],
        options=[
            ("grpc.max_receive_message_length", receive_limit(target.config.limits)),
            ("grpc.max_send_message_length", wire.MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_ReplicationServiceServicer_to_server(ReplicationServicer(target), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        pb.DESCRIPTOR.services_by_name["ReplicationService"].full_name,
        health.SERVICE_NAME,
        REFLECTION_V1,
        reflection.SERVICE_NAME,
    )
    _add_reflection(server, names)
    try:
        if tls is None:
            port = server.add_insecure_port(listen)
        else:
            creds = grpc.ssl_server_credentials(
                [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem,
                require_client_auth=True,
            )  # fmt: skip
            port = server.add_secure_port(listen, creds)
    except RuntimeError as exc:  # grpc's "Failed to bind": the port is taken or not ours
        raise errors.InvalidInputError(
            "--listen", f"cannot listen on {listen}: address in use or not available"
        ) from exc
    if port == 0:
        raise errors.InvalidInputError("--listen", f"cannot listen on {listen}")
    await server.start()
    for name in ("", names[0]):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port
