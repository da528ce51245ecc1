"""The seal of a planned failover (issue 13 #6): proof that a source has stopped writing.

A planned failover asks (``SealGroup``) every member's source to seal: stop taking guest
writes, send what it holds, and answer with a seal once all of it is acked. The target
confirms a seal only when the source's next seq is durable_seq + 1 with nothing in
flight, so a confirmed seal's seq is the member's last write, durable. A frozen source
never answers and the ask times out: timing alone (a quiet durable seq) proves nothing.

This module owns one member's seal state and the wait across a group's members; it
never touches the journal. The state lives in memory: a target restart lifts it (the
source then writes on, and the failover's bookmark check refuses writes past the seal).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdp.errors import InvalidInputError, PreconditionError
from cdp.waiting import wait_set

DEFAULT_SEAL_TIMEOUT_S = 30.0
"""How long SealGroup waits for every member's seal when the request says 0, seconds."""
MAX_SEAL_TIMEOUT_S = 600.0
"""The longest SealGroup wait a request may ask for, seconds."""


@dataclass(frozen=True)
class Sealed:
    """A confirmed seal: every write of the member is at or below ``seq``, durable."""

    member_id: str
    source_id: str
    seq: int
    sealed_ns: int
    """Target time of the confirmation, Unix ns."""


class Seal:
    """One member's seal: asked by a planned failover, confirmed by its source."""

    def __init__(self) -> None:
        self.request_id = ""
        """The id the source is asked to seal with ("" when no seal is asked)."""
        self.sealed: Sealed | None = None
        self._changed = asyncio.Event()

    def ask(self, request_id: str) -> None:
        """Ask for a seal under ``request_id`` (a new id forgets an earlier confirmation)."""
        if request_id != self.request_id:
            self.request_id, self.sealed = request_id, None
            self._changed.set()

    def confirm(self, request_id: str, sealed: Sealed) -> bool:
        """Take the source's seal if it answers the current request; whether it did."""
        if not request_id or request_id != self.request_id:
            return False
        if self.sealed is None:
            self.sealed = sealed
            self._changed.set()
        return True

    def release(self) -> bool:
        """Lift the seal (the source takes writes again); whether one was asked."""
        asked = bool(self.request_id)
        self.request_id, self.sealed = "", None
        self._changed.set()
        return asked

    async def wait_changed(self, timeout_s: float) -> None:
        """Wait until the seal changes or ``timeout_s`` passes."""
        self._changed.clear()
        await wait_set(self._changed, timeout_s)


class SealMember(Protocol):
    """What the group-wide seal needs of a member (cdp.target.member.Member)."""

    member_id: str
    source_id: str
    session_id: str
    seal: Seal


async def seal_members(
    group_id: str, members: Sequence[SealMember], timeout_s: float,
    nudge: Callable[[list[str]], None],
) -> list[Sealed]:  # fmt: skip
    """Ask every member to seal, tell their streams (``nudge``), wait for every seal.

    PreconditionError naming the member when one has no source connected or does not
    seal within ``timeout_s``; the request is then withdrawn from every member.
    """
    idle = [m for m in members if not m.session_id]
    if idle:
        raise PreconditionError(
            f"group {group_id!r}: {_who(idle[0])} has no source connected: nobody can seal it",
            hint="reconnect the source, or fail over without --planned (newest point)",
        )
    request_id = next((m.seal.request_id for m in members if m.seal.request_id), "")
    request_id = request_id or f"seal-{secrets.token_hex(6)}"
    for m in members:
        m.seal.ask(request_id)
    nudge([m.session_id for m in members])
    deadline = time.monotonic() + timeout_s
    while (waiting := [m for m in members if m.seal.sealed is None]) and (
        left := deadline - time.monotonic()
    ) > 0:
        await waiting[0].seal.wait_changed(left)
    if waiting:
        for m in members:
            m.seal.release()
        nudge([m.session_id for m in members if m.session_id])
        raise PreconditionError(
            f"group {group_id!r}: the source {waiting[0].source_id or '?'} of "
            f"{_who(waiting[0])} did not seal within {timeout_s:g} s: it may be frozen or "
            "hung (its writes cannot be proven to have reached the target), or it does "
            "not implement the seal (docs/PROTOCOL.md)",
            hint="check the protected host; a hung source must be restarted or the VMs "
            "failed over unplanned (newest point)",
        )
    return sorted((m.seal.sealed for m in members if m.seal.sealed), key=lambda s: s.member_id)


def _who(member: SealMember) -> str:
    return f"member {member.member_id!r}" if member.member_id else "the group"


def release_members(members: Sequence[SealMember]) -> bool:
    """Lift the seal of every member; whether any was asked."""
    return any([m.seal.release() for m in members])  # every member, not the first only


def check_timeout(timeout_s: float) -> float:
    """SealGroup's wait, seconds (0: the default); InvalidInputError naming the field."""
    timeout_s = timeout_s or DEFAULT_SEAL_TIMEOUT_S
    if not 0 < timeout_s <= MAX_SEAL_TIMEOUT_S:
        raise InvalidInputError(
            "timeout_seconds", f"must be 0 (default) or in (0, {MAX_SEAL_TIMEOUT_S:g}]"
        )
    return timeout_s
