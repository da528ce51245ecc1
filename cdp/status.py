"""Replication status of a group member as values: its state names and a snapshot.

Pure values, shared by the target (which takes the snapshot), the RPC edge and the web
page (which encode it) and the CLI (which prints the decoded message). Imports nothing
of the project but the group value types.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp.group import GroupSpec
from cdp.lifecycle import Lifecycle


class GroupState:
    """Replication states of a group member, as the status call reports them."""

    REPLICATING = "replicating"
    DISCONNECTED = "disconnected"
    RESYNC_REQUIRED = "resync_required"
    RESYNCING = "resyncing"
    ERROR = "error"


@dataclass(frozen=True)
class ResyncStatus:
    """A member's resync at the time of the snapshot."""

    active: bool
    total_bytes: int
    """Bytes the source announced it will send (0: unknown)."""
    received_bytes: int
    eta_s: float
    """Seconds left at the rate so far; 0 when unknown or not running."""
    stalled: str = ""
    """Why the resync is not converging and what to do; empty while it converges."""

    @property
    def remaining_bytes(self) -> int:
        """Bytes still to come while the resync runs; 0 when none runs."""
        return max(0, self.total_bytes - self.received_bytes) if self.active else 0


@dataclass(frozen=True)
class GuardStatus:
    """What keeps a member's history: intake refusals, the clock guard and the lock."""

    intake_refused_by: str = ""
    """hold, pin or lock while new writes are refused to keep history; "" while they are taken."""
    intake_refused_reason: str = ""
    """The refusal's cause and remedy as the source is told it; "" while writes are taken."""
    clock_jump_s: float = 0.0
    """Signed size of an unexplained jump of the target's wall clock; 0 while it is trusted
    (while not 0 nothing leaves the history by time)."""
    retention_lock_s: float = 0.0
    """The retention lock in force (the longest ever stored), seconds; 0: none."""


@dataclass(frozen=True)
class DetectorStatus:
    """A member's encryption detector, for status surfaces."""

    phase: str = ""
    """training, watching or alerting; "" for a member that is not open."""
    training_until_ns: int = 0
    """While training: when it can end at the earliest, Unix ns (0: before the first write)."""
    watching_from_seq: int = 0
    """First seq judged after training (points before it are unknown); 0 until then."""


@dataclass(frozen=True)
class GroupStatus:
    """A snapshot of one group member's replication state."""

    spec: GroupSpec
    """The member's VMs (``spec.group_id`` is the group)."""
    group_id: str
    member_id: str
    state: str
    source_id: str
    durable_seq: int
    durable_source_ns: int
    applied_seq: int
    lag_s: float
    """Seconds from the source time of the newest durable write to now (0 before any)."""
    journal_bytes: int
    received_bytes: int
    error: str
    resync: ResyncStatus
    rpo_s: float = 0.0
    """Age of the newest restorable point: while a resync is open or required no new point
    can be offered, so it grows although writes arrive (never the age of a write in a gap)."""
    clock_skew_s: float = 0.0
    """Source time minus the target's receive time of the newest write, seconds: positive
    when the source's clock is ahead (the transit time lowers it)."""
    lifecycle: Lifecycle = Lifecycle()
    """The group's failover lifecycle and fencing epoch (same for every member)."""
    source_connected: bool = False
    """Whether a source session is open on the member now."""
    source_identity: str = ""
    """The certificate identity (``cdp://source/NAME``) that opened the session under mTLS."""
    standing_suspicions: int = 0
    """Suspicions on the member's history not dismissed: each one is an open alert."""
    suspicion_onset_ns: int = 0
    """Trusted time of the earliest standing suspicion's start, Unix ns; 0 when none stands."""
    last_clean_seq: int = 0
    """The group's newest restorable point whose verdict is clean (``last-clean``); 0: none."""
    last_clean_ns: int = 0
    """That point's time as listed, Unix ns; 0 when there is none."""
    guard: GuardStatus = GuardStatus()
    """Intake refused to keep history, the target clock's trust and the retention lock."""
    detector: DetectorStatus = DetectorStatus()
    """What the member's encryption detector is doing."""
