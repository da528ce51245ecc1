"""Holds on a member's base replica: who keeps the base at or before which seq.

A copy-free failover or test runs its VMs on a disk chain whose bottom is the base
replica extent itself (see docs/FAILOVER.md, "Copy-free recovery"). The chain shows the
restore point's image only while the base has not moved past that point, so the
failover places a hold at the point's seq before it builds the chain and lifts it when
the recovered VM's folder is deleted. Holds are persisted in the index (a restart keeps
them); the applier is told the lowest held seq. This module owns the hold table only.
"""

from __future__ import annotations

import json

from cdp.errors import InvalidInputError
from cdp.journal.index import Index

MAX_HOLDER_CHARS = 128
"""Longest holder name accepted."""


def holds_key(member_key: str) -> str:
    """Index meta key of a member's hold table."""
    return f"holds/{member_key}"


class BaseHolds:
    """The persisted holds of one member: holder name -> member seq."""

    def __init__(self, index: Index, member_key: str) -> None:
        self._index, self._key = index, holds_key(member_key)
        raw = index.get_meta(self._key)
        self._held: dict[str, int] = {str(k): int(v) for k, v in json.loads(raw or b"{}").items()}

    def lowest(self) -> int:
        """The lowest held seq, 0 when nothing is held."""
        return min(self._held.values(), default=0)

    def items(self) -> dict[str, int]:
        """A copy of the table."""
        return dict(self._held)

    def put(self, holder: str, seq: int) -> None:
        """Hold at ``seq`` for ``holder`` (replaces that holder's earlier hold), durably."""
        check_holder(holder)
        self._held[holder] = seq
        self._store()

    def drop(self, holder: str) -> bool:
        """Lift ``holder``'s hold; False if it held nothing."""
        if self._held.pop(holder, None) is None:
            return False
        self._store()
        return True

    def _store(self) -> None:
        self._index.put_meta(self._key, json.dumps(self._held, sort_keys=True).encode())


def check_holder(holder: str) -> str:
    """A holder name: 1-128 printable characters."""
    if not holder or len(holder) > MAX_HOLDER_CHARS or not holder.isprintable():
        raise InvalidInputError("holder", f"1-{MAX_HOLDER_CHARS} printable characters")
    return holder
