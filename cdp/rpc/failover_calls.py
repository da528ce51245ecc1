"""The failover calls of ReplicationService: ReportFailoverProgress and SealGroup.

Thin adapters like the rest of :mod:`cdp.rpc.server`, which binds them into the servicer
under its error mapping (``unary``): decode, call the target, encode. Progress reports are
kept in memory per plan (``cdp.target.progress``); a seal asks a group's sources on their
open streams to stop taking writes and waits for it (``cdp.target.seal``). Who may make
them is :mod:`cdp.rpc.auth`'s.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import grpc

from cdp import audit, errors
from cdp.rpc import auth, convert
from cdp.target import seal
from cdp.target.target import Target
from cdp.v1 import replication_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


class Servicer(Protocol):
    """What the calls need of the servicer."""

    @property
    def target(self) -> Target:
        """The target served."""

    def _nudge(self, session_ids: list[str]) -> None:
        """Send the streams of these sessions a response now (a seal asked or lifted)."""


async def report_failover_progress(
    self: Servicer, request: pb.ReportFailoverProgressRequest, context: Context
) -> pb.ReportFailoverProgressResponse:
    """Keep a failover operation's newest progress for the groups it names."""
    found = convert.progress_from_pb(request)
    found.check()
    for i, group_id in enumerate(found.group_ids):
        try:
            self.target.members(group_id)
        except errors.NotFoundError:
            raise errors.NotFoundError(
                f"group_ids[{i}]: no group {group_id!r} at this target"
            ) from None
    who = auth.identity_of(context)
    stored = self.target.progress.report(found, str(who) if who else audit.INSECURE, time.time_ns())
    return pb.ReportFailoverProgressResponse(
        received_unix_ns=stored.received_ns, reported_by=stored.reported_by
    )


async def seal_group(
    self: Servicer, request: pb.SealGroupRequest, context: Context
) -> pb.SealGroupResponse:
    """Ask a group's sources to seal and wait for it (cdp/target/seal.py), or lift it."""
    timeout_s = seal.check_timeout(request.timeout_seconds)
    members = self.target.members(request.group_id)
    if request.release:
        released = seal.release_members(members)
        self._nudge([m.session_id for m in members if m.session_id])
        return pb.SealGroupResponse(released=released)
    sealed = await seal.seal_members(request.group_id, members, timeout_s, self._nudge)
    return pb.SealGroupResponse(
        members=[
            pb.MemberSeal(
                member_id=s.member_id,
                source_id=s.source_id,
                sealed_seq=s.seq,
                sealed_unix_ns=s.sealed_ns,
            )  # fmt: skip
            for s in sealed
        ]
    )
