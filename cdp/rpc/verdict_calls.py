"""The verdict calls of ReplicationService: ListSuspicions, MarkCompromised, DismissSuspicion.

Thin adapters like the rest of :mod:`cdp.rpc.server`, which binds them into the servicer
under its error mapping (``unary``): decode, call the target, encode. Marks and dismissals
run on the event loop, not in a worker thread: a member's ``Verdicts`` table is rewritten
whole on each change, and its other writer (the detector) must never interleave with them.
Marks and dismissals are recorded in the target's audit log under the caller's identity,
whatever their outcome. Who may make them is :mod:`cdp.rpc.auth`'s ``VERDICT_CALLS``.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

import grpc

from cdp.restore.spec import format_ns
from cdp.rpc import convert
from cdp.target import marks
from cdp.target.marks import MarkRange
from cdp.target.target import Target
from cdp.v1 import replication_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


class Servicer(Protocol):
    """What the calls need of the servicer."""

    @property
    def target(self) -> Target:
        """The target served."""

    def _audited(
        self, context: Context, action: str, obj: str
    ) -> AbstractContextManager[list[str]]:
        """Record the body's action in the audit log, whatever its outcome."""

    def _who(self, context: Context) -> str:
        """The caller's identity as the audit log writes it."""


async def list_suspicions(
    self: Servicer, request: pb.ListSuspicionsRequest, context: Context
) -> pb.ListSuspicionsResponse:
    """A group's suspicions, standing and dismissed (or standing only)."""
    found = marks.listed(self.target.members(request.group_id), request.standing_only)
    return pb.ListSuspicionsResponse(suspicions=[convert.suspicion_to_pb(m, s) for m, s in found])


async def mark_compromised(
    self: Servicer, request: pb.MarkCompromisedRequest, context: Context
) -> pb.MarkCompromisedResponse:
    """An outside tool marks a range compromised; audited under the caller, whatever happens."""
    r = MarkRange(
        start_ns=request.start_time_unix_ns, end_ns=request.end_time_unix_ns,
        start_seq=request.start_seq, end_seq=request.end_seq, reason=request.reason,
    )  # fmt: skip
    obj = f"group {request.group_id} {_range_text(r)} reason {request.reason!r}"
    with self._audited(context, "suspicion.mark", obj) as more:
        members = self.target.members(request.group_id)
        found = marks.mark(members, r, self._who(context), time.time_ns())
        more += ["as", ",".join(s.id for _, s in found)]
    return pb.MarkCompromisedResponse(suspicions=[convert.suspicion_to_pb(m, s) for m, s in found])


async def dismiss_suspicion(
    self: Servicer, request: pb.DismissSuspicionRequest, context: Context
) -> pb.DismissSuspicionResponse:
    """An operator dismisses a false alarm; audited under the caller, whatever happens."""
    member = f"/{request.member_id}" if request.member_id else ""
    obj = (
        f"group {request.group_id}{member} suspicion {request.suspicion_id} "
        f"reason {request.reason!r}"
    )
    with self._audited(context, "suspicion.dismiss", obj):
        member_id, s = marks.dismiss(
            self.target.members(request.group_id), request.member_id, request.suspicion_id,
            self._who(context), request.reason, time.time_ns(),
        )  # fmt: skip
    return pb.DismissSuspicionResponse(suspicion=convert.suspicion_to_pb(member_id, s))


def _range_text(r: MarkRange) -> str:
    """A marked range in words, for the audit log."""
    if r.start_seq or r.end_seq:
        return f"seqs {r.start_seq}..{r.end_seq or ''}"
    end = format_ns(r.end_ns) if r.end_ns > 0 else ""
    return f"from {format_ns(r.start_ns) if r.start_ns > 0 else r.start_ns} to {end}"
