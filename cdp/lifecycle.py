"""A protected group's failover lifecycle and fencing epoch, as values.

The target keeps one :class:`Lifecycle` per group (persisted in its index meta), the
failover orchestrator sets it through ``SetLifecycle``, and status, the web page and
``/metrics`` show it. The epoch fences old writers: a live failover raises it, and a
source that opens a session with an older epoch is refused (see :func:`fenced_reason`).
Pure values: imports nothing of the project but the error tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from cdp.errors import InvalidInputError, PreconditionError

PROTECTING = "protecting"
TEST_RUNNING = "test_running"
FAILING_OVER = "failing_over"
FAILED_OVER_AWAITING_COMMIT = "failed_over_awaiting_commit"
FAILED_OVER_COMMITTED = "failed_over_committed"
REVERSE_PROTECTING = "reverse_protecting"
FAILING_BACK = "failing_back"

STATES = (
    PROTECTING, TEST_RUNNING, FAILING_OVER, FAILED_OVER_AWAITING_COMMIT,
    FAILED_OVER_COMMITTED, REVERSE_PROTECTING, FAILING_BACK,
)  # fmt: skip
"""Every lifecycle state, in the order of the wire enum (1..7; 0 is "never set")."""

FAILED_OVER_STATES = (FAILED_OVER_COMMITTED, REVERSE_PROTECTING, FAILING_BACK)
"""States in which production runs from the recovered copy (or is on its way home): a
change from one of them to protecting is a failback, after which the group's disks at the
original site have changed outside the journal (see :attr:`Lifecycle.failed_back_ns`)."""

MAX_NOTE_BYTES = 200
"""Longest note recorded with a lifecycle change."""


@dataclass(frozen=True)
class Lifecycle:
    """Where a group is in its failover lifecycle, and its fencing epoch."""

    state: str = PROTECTING
    epoch: int = 0
    """Sessions that send an epoch below this one are refused (0: never fenced)."""
    previous_epoch: int | None = None
    """The epoch before the open fence (None: no fence to undo; a commit closes it)."""
    changed_ns: int = 0
    """Target time of the last change, Unix ns (0: never set)."""
    note: str = ""
    """Who set it and why (e.g. "failover run of plan dr-test")."""
    fenced_ns: int = 0
    """Target time the epoch was last raised, Unix ns (0: never)."""
    failed_back_ns: int = 0
    """Target time the group last returned to protecting after a failover (a failback),
    Unix ns (0: never). Restore points older than it predate production's current disks."""

    def change(self, state: str, fence: bool, unfence: bool, note: str, now_ns: int) -> Lifecycle:
        """The lifecycle after an operator's change; bad input raises naming the field."""
        check_change(state, fence, unfence, note)
        out = replace(self, state=state, changed_ns=now_ns, note=note)
        if fence and self.previous_epoch is None:  # a fence already open stays as it is
            return replace(out, epoch=self.epoch + 1, previous_epoch=self.epoch, fenced_ns=now_ns)
        if unfence:
            if self.previous_epoch is None:
                raise PreconditionError(
                    f"unfence: epoch {self.epoch} has no open fence to undo (never fenced, "
                    "or the failover was committed: its recovered copy is production now)"
                )
            return replace(out, epoch=self.previous_epoch, previous_epoch=None)
        if state == FAILED_OVER_COMMITTED:
            return replace(out, previous_epoch=None)  # a commit makes the fence final
        if state == PROTECTING and self.state in FAILED_OVER_STATES:
            return replace(out, failed_back_ns=now_ns)
        return out

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "state": self.state, "epoch": self.epoch, "previous_epoch": self.previous_epoch,
            "changed_ns": self.changed_ns, "note": self.note, "fenced_ns": self.fenced_ns,
            "failed_back_ns": self.failed_back_ns,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lifecycle:
        """Read the stored form."""
        return cls(
            state=str(data["state"]), epoch=int(data["epoch"]),
            previous_epoch=None if data.get("previous_epoch") is None
            else int(data["previous_epoch"]),
            changed_ns=int(data.get("changed_ns", 0)), note=str(data.get("note", "")),
            fenced_ns=int(data.get("fenced_ns", 0)),
            failed_back_ns=int(data.get("failed_back_ns", 0)),
        )  # fmt: skip


def check_change(state: str, fence: bool, unfence: bool, note: str) -> None:
    """Refuse a malformed change, naming the field."""
    if state not in STATES:
        raise InvalidInputError("state", f"must be one of {', '.join(STATES)}; got {state!r}")
    if fence and unfence:
        raise InvalidInputError("unfence", "fence and unfence together make no sense")
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise InvalidInputError("note", f"at most {MAX_NOTE_BYTES} bytes")


def meta_key(group_id: str) -> str:
    """The index meta key of a group's lifecycle."""
    return f"lifecycle/{group_id}"


def decode(raw: bytes | None) -> Lifecycle:
    """A stored lifecycle (the default when the group never had one)."""
    return Lifecycle() if raw is None else Lifecycle.from_json(json.loads(raw))


def encode(lifecycle: Lifecycle) -> bytes:
    """The stored bytes of a lifecycle."""
    return json.dumps(lifecycle.to_json()).encode()


def fenced_reason(group_id: str, lifecycle: Lifecycle, epoch: int, when: str) -> str:
    """Why a session of ``epoch`` is refused ("" if it may write); ``when``: the fence time."""
    if epoch >= lifecycle.epoch:
        return ""
    state = lifecycle.state
    if lifecycle.failed_back_ns and state == PROTECTING:
        state = "failed back since"
    return (
        f"group {group_id} was failed over at {when} (epoch {lifecycle.epoch}, "
        f"{state}); this source is fenced by that failover: it sends epoch "
        f"{epoch}, so it may never write the group again. Protect the group anew from the "
        f"site that runs it now, or start this source with epoch {lifecycle.epoch} once "
        "its VMs are the only copy"
    )
