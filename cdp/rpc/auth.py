"""mTLS authorization at the gRPC edge: who is calling, and may they make this call.

The TLS handshake has already checked the client certificate against the CA (the server
requires one, so a client without a valid certificate never reaches this module). This
interceptor wraps every ReplicationService handler: it reads the caller's identity from
the certificate (:func:`cdp.tls.identity_of`), asks :mod:`cdp.authz` with the target's
authz.yaml, and answers a refusal with UNAUTHENTICATED or PERMISSION_DENIED before the
servicer runs. A source may open a session only as a member (``member_id``) that the
policy gives it, and each session is bound to the identity that opened it, so a session id
used by another identity is refused. Health and reflection stay open to every client the
handshake admitted. A method missing from the tables below is refused: a new RPC must
be classified here before it is reachable over mTLS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from cdp import authz, tls
from cdp.errors import CdpError, SessionError
from cdp.target.target import Target

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

SERVICE = "cdp.v1.ReplicationService"
OPEN_SESSION = "OpenSession"
"""Writes the group (and member) in the request; the session it returns is bound to the caller."""
SESSION_CALLS = frozenset({"StreamJournal", "CompareRegions"})
"""Write through a session: the caller must own it and may still write its group and member."""
READ_CALLS = frozenset(
    {
        "GetStatus", "ListRestorePoints", "GetTimeline", "ReadImage", "CreateBookmark",
        "HoldBase", "ListSuspicions",
    }
)  # fmt: skip
"""Operator calls, on every group; a source may make them on the groups it writes (a
failback's reverse source recovers its own groups: bookmark, hold the base, read)."""
OPERATOR_CALLS = frozenset({"SetLifecycle", "SealGroup"})
"""The lifecycle, fencing and seal of a group: an operator's; a source's on its own groups,
except an unfence (which would let an older source write again)."""
PLAN_CALLS = frozenset({"CreatePlanBookmark", "ReportFailoverProgress"})
"""Calls on several groups (``group_ids``): allowed if allowed on every one (a failover's
progress report is shown only, like a lifecycle change that loosens nothing)."""
AUDIT_CALLS = frozenset({"RecordAudit", "ListAudit"})
"""The audit log: an operator's only (it spans every group)."""
VERDICT_CALLS = frozenset({"MarkCompromised", "DismissSuspicion"})
"""Verdicts from outside (an EDR, SIEM or the on-call engineer): an operator's only, never
a source's (a compromised host must not clear its own alert)."""


class PolicyFile:
    """authz.yaml, re-read when it changes; a bad edit keeps the last good policy, loudly."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp = self._stat()
        self._policy = authz.load_policy(path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> authz.Policy:
        """The policy in force now."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._policy = authz.load_policy(self.path)
                log.warning("authz: reloaded %s", self.path)
            except CdpError as exc:
                log.error("authz: %s; the previous policy stays in force", exc)
        return self._policy


GroupMember = tuple[str, str]
"""What a live session writes: its group id and member id (empty for a group one source
streams alone)."""


class SessionOwners:
    """Which identity opened each live session; ``live`` maps a session to its group member."""

    def __init__(self, live: Callable[[str], GroupMember | None]) -> None:
        self._live = live
        self._owners: dict[str, tls.Identity] = {}

    def bind(self, session_id: str, who: tls.Identity) -> None:
        """Record the owner of a new session; forget sessions that are no longer live."""
        self._owners = {s: o for s, o in self._owners.items() if self._live(s) is not None}
        self._owners[session_id] = who

    def owner(self, session_id: str) -> tls.Identity | None:
        """The identity that opened the session (None: unknown, not live)."""
        return self._owners.get(session_id)

    def member_of(self, session_id: str) -> GroupMember | None:
        """The group and member a live session writes (None: not live)."""
        return self._live(session_id)


def live_member_of(target: Target) -> Callable[[str], GroupMember | None]:
    """A lookup from session id to the group and member it writes, None when not live."""

    def lookup(session_id: str) -> GroupMember | None:
        try:
            group = target.group_of_session(session_id)
        except SessionError:
            return None
        return group.group_id, group.member_id

    return lookup


def identity_of(context: Context) -> tls.Identity | None:
    """The cdp identity in the peer's certificate (None without one)."""
    auth: dict[str, list[bytes]] = context.auth_context()  # type: ignore[assignment]
    pems = auth.get("x509_pem_cert") or []
    return tls.identity_of(pems[0]) if pems else None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses ReplicationService calls the caller's identity may not make."""

    def __init__(
        self, policy: PolicyFile, sessions: SessionOwners,
        on_open: Callable[[str, str], None] = lambda session, who: None,
    ) -> None:  # fmt: skip
        self.policy = policy
        self.sessions = sessions
        self.on_open = on_open
        """Told (session id, identity) of every session opened, for status to show."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        """Wrap the handler of every ReplicationService method with the access check."""
        handler = await continuation(details)
        service, _, method = details.method.rpartition("/")
        if handler is None or service != f"/{SERVICE}":
            return handler
        return self._guarded(method, handler)

    def _decide(self, call: str, who: tls.Identity | None, request: Any) -> authz.Refusal | None:
        policy = self.policy.current()
        if call in OPERATOR_CALLS:
            return authz.check_lifecycle(
                policy, who, call, request.group_id, loosens=getattr(request, "unfence", False)
            )
        if call in AUDIT_CALLS or call in VERDICT_CALLS:
            return authz.check_read(policy, who, call)
        if call in PLAN_CALLS:
            return _check_groups(policy, who, call, list(request.group_ids))
        if call in READ_CALLS:
            return authz.check_read_group(policy, who, call, getattr(request, "group_id", ""))
        if call == OPEN_SESSION:
            return _check_writer(policy, who, call, (request.group_id, request.member_id))
        if call not in SESSION_CALLS:
            return authz.Refusal(authz.PERMISSION_DENIED, f"{call}: no access rule for it")
        session = getattr(request, "session_id", "") if request is not None else ""
        member = self.sessions.member_of(session)
        if member is None:  # no or no live session: the servicer answers for the session
            return authz.check_source(policy, who, call)
        return _check_writer(policy, who, call, member) or authz.check_session(
            self.sessions.owner(session), who, call
        )

    async def _admit(self, call: str, request: Any, context: Context) -> tls.Identity | None:
        """The caller's identity if the call is allowed; else abort the call."""
        who = identity_of(context)
        refusal = self._decide(call, who, request)
        if refusal is not None:
            log.warning("refused %s from %s (%s): %s", call, who, context.peer(), refusal.message)
            await context.abort(grpc.StatusCode[refusal.code], refusal.message)
        return who

    async def _admit_caller(self, call: str, context: Context) -> None:
        """Abort at call start unless the peer's certificate is a listed source at all."""
        who = identity_of(context)
        refusal = authz.check_source(self.policy.current(), who, call)
        if refusal is not None:
            log.warning("refused %s from %s (%s): %s", call, who, context.peer(), refusal.message)
            await context.abort(grpc.StatusCode[refusal.code], refusal.message)

    def _opened(self, who: tls.Identity | None, request: Any, response: Any) -> None:
        if who is not None:
            self.sessions.bind(response.session_id, who)
            self.on_open(response.session_id, who.uri)
            log.info("%s opened session %s for group %s member %r", who, response.session_id,
                     request.group_id, request.member_id)  # fmt: skip

    def _guarded(self, call: str, handler: Any) -> Any:
        """The same handler, with the access check in front of its behaviour."""
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                who = await self._admit(call, request, context)
                response = await inner_uu(request, context)
                if call == OPEN_SESSION:
                    self._opened(who, request, response)
                return response

            return grpc.unary_unary_rpc_method_handler(unary_unary, **codec)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                await self._admit(call, request, context)
                async for response in inner_us(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream, **codec)
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: Context) -> AsyncIterator[Any]:
                await self._admit_caller(call, context)  # before a message is read or buffered
                it = aiter(requests)
                first = await anext(it, None)  # the session is named in every message
                await self._admit(call, first, context)
                async for response in inner_ss(_prepend(first, it), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(stream_stream, **codec)
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: Context) -> Any:
            await self._admit(call, None, context)
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **codec)


def _check_groups(
    policy: authz.Policy, who: tls.Identity | None, call: str, group_ids: list[str]
) -> authz.Refusal | None:
    """Refuse unless ``who`` may read every group named (an operator reads all)."""
    for group_id in group_ids or [""]:
        refusal = authz.check_read_group(policy, who, call, group_id)
        if refusal is not None:
            return refusal
    return None


def _check_writer(
    policy: authz.Policy, who: tls.Identity | None, call: str, member: GroupMember
) -> authz.Refusal | None:
    """Refuse unless ``who`` may write ``member``: its group, as its member id."""
    group, member_id = member
    return authz.check_write(policy, who, call, group) or authz.check_member(
        policy, who, call, group, member_id
    )


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """``first`` (unless None) followed by the rest of the stream."""
    if first is not None:
        yield first
    async for item in rest:
        yield item


def interceptor_for(authz_path: str, target: Target) -> AuthInterceptor:
    """The interceptor for a target serving mTLS with the policy in ``authz_path``."""
    return AuthInterceptor(
        PolicyFile(authz_path), SessionOwners(live_member_of(target)), target.note_identity
    )
