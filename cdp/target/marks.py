"""Verdicts from outside: a range marked compromised, a suspicion dismissed as a false alarm.

An EDR or SIEM marks a time range (or, for a group one source streams alone, a seq
range) compromised; an operator dismisses a suspicion. This module checks the request,
names the field of a bad one before anything is written, maps a time range to each
member's seqs, and writes through each member's ``Verdicts`` table. It decides nothing
about what is suspicious (that is ``cdp.target.detect``) and knows no caller: the RPC
edge passes the identity and records the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp.errors import InvalidInputError, NotFoundError
from cdp.target.member import Member
from cdp.target.verdicts import MAX_REASON_CHARS
from cdp.verdict import Suspicion

Found = tuple[str, Suspicion]
"""A suspicion with the id of the member whose history holds it."""


@dataclass(frozen=True)
class MarkRange:
    """What an outside tool says is compromised: a time range or a seq range, and why."""

    start_ns: int = 0
    """Start, Unix ns, matched against point times as listed; 0 with a seq range."""
    end_ns: int = 0
    """End, Unix ns; 0: open."""
    start_seq: int = 0
    """First suspect seq; 0 with a time range."""
    end_seq: int = 0
    """Last suspect seq; 0: open."""
    reason: str = ""

    def check(self, members: list[Member]) -> None:
        """Raise InvalidInputError naming the field of a bad range; write nothing."""
        check_reason(self.reason)
        by_time, by_seq = bool(self.start_ns or self.end_ns), bool(self.start_seq or self.end_seq)
        if by_time == by_seq:
            field = "start_seq" if by_time else "start_time_unix_ns"
            raise InvalidInputError(field, "give either a time range or a seq range (not both)")
        if by_time:
            if self.start_ns <= 0:
                raise InvalidInputError("start_time_unix_ns", "must be positive")
            if self.end_ns and self.end_ns < self.start_ns:
                raise InvalidInputError("end_time_unix_ns", "is before start_time_unix_ns")
            return
        if len(members) > 1 or members[0].member_id:
            raise InvalidInputError(
                "start_seq", "a group on several hosts has seqs per member: mark it by time"
            )
        durable = members[0].durable_seq
        if not 1 <= self.start_seq <= durable:
            raise InvalidInputError("start_seq", f"must be 1..{durable} (the newest durable seq)")
        if self.end_seq and not self.start_seq <= self.end_seq <= durable:
            raise InvalidInputError("end_seq", f"must be {self.start_seq}..{durable} or 0 (open)")


def check_reason(reason: str) -> str:
    """A mark's or dismissal's reason: 1-512 printable characters."""
    if not 0 < len(reason) <= MAX_REASON_CHARS or not reason.isprintable():
        raise InvalidInputError("reason", f"must be 1-{MAX_REASON_CHARS} printable characters")
    return reason


def mark(members: list[Member], r: MarkRange, who: str, now_ns: int) -> list[Found]:
    """Record ``r`` on every member (checked first, all or nothing for bad input)."""
    r.check(members)
    out: list[Found] = []
    for m in members:
        start_seq, start_ns, end_seq, end_ns = _seqs(m, r)
        s = m.verdicts.mark(
            start_seq, start_ns, end_seq, end_ns, who=who, reason=r.reason, now_ns=now_ns
        )
        out.append((m.member_id, s))
    return out


def _seqs(m: Member, r: MarkRange) -> tuple[int, int, int, int]:
    """(start seq, start ns, end seq, end ns) of ``r`` in ``m``'s journal.

    A time range starts right after the newest point listed before its start (the batch
    that holds the start is suspect: conservative) and ends at the newest point at or
    before its end.
    """
    if r.start_seq:
        return r.start_seq, _time(m, r.start_seq), r.end_seq, _time(m, r.end_seq)
    index = m.catalog.index
    start_seq = (index.seq_at_time(m.key, r.start_ns - 1) or 0) + 1
    if not r.end_ns:
        return start_seq, r.start_ns, 0, 0
    end_seq = max(index.seq_at_time(m.key, r.end_ns) or 0, start_seq)
    return start_seq, r.start_ns, end_seq, r.end_ns


def _time(m: Member, seq: int) -> int:
    entry = m.lookup(seq) if seq else None
    return entry.source_ns if entry else 0


def dismiss(
    members: list[Member], member_id: str, suspicion_id: str, who: str, reason: str,
    now_ns: int,
) -> Found:  # fmt: skip
    """``who`` says a suspicion was a false alarm; a second dismissal changes nothing."""
    check_reason(reason)
    if not suspicion_id:
        raise InvalidInputError("suspicion_id", "is empty")
    if not member_id and len(members) > 1:
        raise InvalidInputError("member_id", "the group is on several hosts: name the member")
    m = next((m for m in members if m.member_id == member_id or len(members) == 1), None)
    if m is None or (member_id and m.member_id != member_id):
        raise NotFoundError(f"member_id: the group has no member {member_id!r}")
    if all(s.id != suspicion_id for s in m.suspicions()):
        raise NotFoundError(f"suspicion_id: no suspicion {suspicion_id!r} in this group")
    return m.member_id, m.verdicts.dismiss(suspicion_id, who, now_ns, reason)


def listed(members: list[Member], standing_only: bool) -> list[Found]:
    """Every member's suspicions (or the standing ones), members in key order."""
    return [
        (m.member_id, s) for m in members for s in m.suspicions() if s.stands or not standing_only
    ]
