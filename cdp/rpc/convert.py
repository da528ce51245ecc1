"""Conversions between cdp.v1 messages, domain values and their JSON form; no logic.

The journal stream's codecs, which both ends of the link use, are in :mod:`cdp.rpc.wire`.

The JSON form of a status or timeline message is shared by ``cdp status --json``,
``cdp timeline --json`` and the web edge (``cdp/web.py``), so the three never drift.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from cdp import lifecycle, progress
from cdp.audit import AuditEntry
from cdp.errors import InvalidInputError
from cdp.journal.index import Point
from cdp.progress import OperationProgress, StepProgress
from cdp.restore.catalog import Span, Timeline
from cdp.restore.clean import Band
from cdp.restore.image import ImagePlan
from cdp.restore.spec import format_ns
from cdp.rpc.wire import vms_to_pb
from cdp.status import GroupState, GroupStatus
from cdp.v1 import replication_pb2 as pb
from cdp.verdict import CLEAN, SUSPECT, UNKNOWN, Suspicion

STATES = {
    GroupState.REPLICATING: pb.GROUP_STATE_REPLICATING,
    GroupState.DISCONNECTED: pb.GROUP_STATE_DISCONNECTED,
    GroupState.RESYNC_REQUIRED: pb.GROUP_STATE_RESYNC_REQUIRED,
    GroupState.ERROR: pb.GROUP_STATE_ERROR,
    GroupState.RESYNCING: pb.GROUP_STATE_RESYNCING,
}
STATE_NAMES = {v: k for k, v in STATES.items()}
LIFECYCLES = {
    lifecycle.PROTECTING: pb.LIFECYCLE_STATE_PROTECTING,
    lifecycle.TEST_RUNNING: pb.LIFECYCLE_STATE_TEST_RUNNING,
    lifecycle.FAILING_OVER: pb.LIFECYCLE_STATE_FAILING_OVER,
    lifecycle.FAILED_OVER_AWAITING_COMMIT: pb.LIFECYCLE_STATE_FAILED_OVER_AWAITING_COMMIT,
    lifecycle.FAILED_OVER_COMMITTED: pb.LIFECYCLE_STATE_FAILED_OVER_COMMITTED,
    lifecycle.REVERSE_PROTECTING: pb.LIFECYCLE_STATE_REVERSE_PROTECTING,
    lifecycle.FAILING_BACK: pb.LIFECYCLE_STATE_FAILING_BACK,
}
"""Lifecycle state name -> its LifecycleState on the wire."""
LIFECYCLE_NAMES = {v: k for k, v in LIFECYCLES.items()} | {0: lifecycle.PROTECTING}
"""LifecycleState number -> name; never set (0) reads as protecting."""
LIFECYCLES_BY_NUMBER = {v: k for k, v in LIFECYCLES.items()}
"""LifecycleState number -> name, without UNSPECIFIED (what SetLifecycle accepts)."""


def status_to_pb(s: GroupStatus) -> pb.GroupStatus:
    """One group's status message."""
    return pb.GroupStatus(
        group_id=s.group_id, member_id=s.member_id, durable_seq=s.durable_seq,
        durable_source_time_unix_ns=s.durable_source_ns, applied_seq=s.applied_seq,
        lag_seconds=s.lag_s, journal_bytes=s.journal_bytes, received_bytes=s.received_bytes,
        state=STATES[s.state], source_id=s.source_id, vms=vms_to_pb(s.spec),
        resync_total_bytes=s.resync.total_bytes, resync_received_bytes=s.resync.received_bytes,
        resync_eta_seconds=s.resync.eta_s, rpo_seconds=s.rpo_s,
        source_clock_skew_seconds=s.clock_skew_s, lifecycle=LIFECYCLES[s.lifecycle.state],
        epoch=s.lifecycle.epoch, lifecycle_changed_unix_ns=s.lifecycle.changed_ns,
        lifecycle_note=s.lifecycle.note, source_connected=s.source_connected,
        source_identity=s.source_identity,
        resync_stalled_reason=s.resync.stalled, error=s.error,
        standing_suspicions=s.standing_suspicions, suspicion_onset_unix_ns=s.suspicion_onset_ns,
        last_clean_seq=s.last_clean_seq, last_clean_time_unix_ns=s.last_clean_ns,
        intake_refused_by=s.guard.intake_refused_by,
        intake_refused_reason=s.guard.intake_refused_reason,
        clock_jump_seconds=s.guard.clock_jump_s, retention_lock_seconds=s.guard.retention_lock_s,
        detector_phase=s.detector.phase,
        detector_training_until_unix_ns=s.detector.training_until_ns,
        detector_watching_from_seq=s.detector.watching_from_seq,
        lifecycle_failed_back_unix_ns=s.lifecycle.failed_back_ns,
    )  # fmt: skip


_STATUS_INTS = (
    "durable_seq",
    "applied_seq",
    "journal_bytes",
    "received_bytes",
    "durable_source_time_unix_ns",
    "resync_total_bytes",
    "resync_received_bytes",
    "epoch",
    "lifecycle_changed_unix_ns",
    "suspicion_onset_unix_ns",
    "last_clean_seq",
    "last_clean_time_unix_ns",
    "detector_training_until_unix_ns",
    "detector_watching_from_seq",
    "lifecycle_failed_back_unix_ns",
)
"""uint64 fields, which protobuf's JSON mapping renders as strings."""


def status_to_dict(g: pb.GroupStatus) -> dict[str, Any]:
    """One group's status as JSON-able data, with the state by name."""
    out = json_format.MessageToDict(
        g, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    out["state"] = STATE_NAMES.get(g.state, "unknown")
    out["lifecycle"] = LIFECYCLE_NAMES.get(g.lifecycle, "unknown")
    for key in _STATUS_INTS:
        out[key] = int(out[key])
    for vm in out.get("vms", []):  # uint64 comes out of MessageToDict as a string
        for disk in vm.get("disks", []):
            disk["capacity_bytes"] = int(disk.get("capacity_bytes", 0))
    return out


VERDICTS = {CLEAN: pb.VERDICT_CLEAN, SUSPECT: pb.VERDICT_SUSPECT, UNKNOWN: pb.VERDICT_UNKNOWN}
"""Verdict name -> its Verdict on the wire."""
VERDICT_NAMES = {v: k for k, v in VERDICTS.items()}
"""Verdict number -> name ("" for UNSPECIFIED)."""


def point_to_pb(p: Point, verdict: str = "") -> pb.RestorePoint:
    """A restore point message (index point kinds equal the PointKind numbers)."""
    kind = pb.PointKind.Name(p.kind)
    return pb.RestorePoint(
        seq=p.seq, source_time_unix_ns=p.source_ns, kind=kind, label=p.label,
        verdict=VERDICTS.get(verdict, pb.VERDICT_UNSPECIFIED),
    )  # fmt: skip


def suspicion_to_pb(member_id: str, s: Suspicion) -> pb.Suspicion:
    """A suspicion message."""
    return pb.Suspicion(
        suspicion_id=s.id, member_id=member_id, start_seq=s.start_seq,
        start_time_unix_ns=s.start_ns, end_seq=s.end_seq, end_time_unix_ns=s.end_ns,
        disks=list(s.disks), signal=s.signal, raised_by=s.raised_by, raised_unix_ns=s.raised_ns,
        dismissed=not s.stands, dismissed_by=s.dismissed_by, dismissed_unix_ns=s.dismissed_ns,
        reason=s.reason,
    )  # fmt: skip


def suspicion_to_dict(s: pb.Suspicion) -> dict[str, Any]:
    """A suspicion as JSON-able data (times as ISO-8601 UTC, 0 as None)."""

    def when(ns: int) -> str | None:
        return format_ns(ns) if ns else None

    return {
        "id": s.suspicion_id, "member_id": s.member_id, "start_seq": s.start_seq,
        "start": when(s.start_time_unix_ns), "end_seq": s.end_seq,
        "end": when(s.end_time_unix_ns), "open": s.end_seq == 0, "disks": list(s.disks),
        "signal": s.signal, "raised_by": s.raised_by, "raised": when(s.raised_unix_ns),
        "dismissed": s.dismissed, "dismissed_by": s.dismissed_by,
        "dismissed_at": when(s.dismissed_unix_ns), "reason": s.reason,
    }  # fmt: skip


def band_to_pb(b: Band) -> pb.SuspectBand:
    """One suspect band of a timeline."""
    return pb.SuspectBand(
        suspicion_id=b.suspicion_id, member_id=b.member_id, start_seq=b.start_seq,
        end_seq=b.end_seq, start_time_unix_ns=b.start_ns, end_time_unix_ns=b.end_ns,
        open=b.open, signal=b.signal,
    )  # fmt: skip


def span_to_pb(s: Span) -> pb.TimelineSpan:
    """One timeline span."""
    return pb.TimelineSpan(
        start_seq=s.start_seq, end_seq=s.end_seq, start_time_unix_ns=s.start_ns,
        end_time_unix_ns=s.end_ns, restorable=s.restorable, cause=s.cause, points=s.points,
    )  # fmt: skip


def timeline_to_pb(t: Timeline, bands: list[Band] | None = None) -> pb.GetTimelineResponse:
    """A group's timeline message, with the bands its standing suspicions cover."""
    return pb.GetTimelineResponse(
        spans=[span_to_pb(s) for s in t.spans],
        history_window_seconds=t.history_window_s, available_history_seconds=t.available_s,
        history_health=t.health, history_message=t.message, journal_bytes=t.journal_bytes,
        journal_limit_bytes=t.journal_limit_bytes,
        suspect_bands=[band_to_pb(b) for b in bands or []],
    )  # fmt: skip


def timeline_to_dict(group: str, t: pb.GetTimelineResponse) -> dict[str, Any]:
    """The timeline as JSON-able data (times as ISO-8601 UTC)."""
    spans = [
        {
            "restorable": s.restorable, "cause": s.cause, "start_seq": s.start_seq,
            "end_seq": s.end_seq, "points": s.points,
            "start": format_ns(s.start_time_unix_ns) if s.start_time_unix_ns else None,
            "end": format_ns(s.end_time_unix_ns) if s.end_time_unix_ns else None,
        }
        for s in t.spans
    ]  # fmt: skip
    bands = [
        {
            "suspicion_id": b.suspicion_id, "member_id": b.member_id, "start_seq": b.start_seq,
            "end_seq": b.end_seq, "open": b.open, "signal": b.signal,
            "start": format_ns(b.start_time_unix_ns) if b.start_time_unix_ns else None,
            "end": format_ns(b.end_time_unix_ns) if b.end_time_unix_ns else None,
        }
        for b in t.suspect_bands
    ]  # fmt: skip
    return {
        "group": group, "spans": spans, "suspect_bands": bands,
        "history_window_s": t.history_window_seconds,
        "available_history_s": round(t.available_history_seconds, 3),
        "history_health": t.history_health, "history_message": t.history_message,
        "journal_bytes": t.journal_bytes, "journal_limit_bytes": t.journal_limit_bytes,
    }  # fmt: skip


def plan_to_pb(plan: ImagePlan) -> pb.ImagePlan:
    """An image plan."""
    return pb.ImagePlan(
        point=point_to_pb(plan.point), base_seq=plan.base_seq, records=len(plan.entries),
        record_bytes=plan.record_bytes, capacity_bytes=plan.capacity_bytes,
    )  # fmt: skip


def encode_page_token(page: list[Point], after: tuple[int, int, int] | None) -> str:
    """Opaque token for the page after ``page``: last (time, seq, entries of that seq)."""
    last = page[-1]
    given = sum(1 for p in page if p.seq == last.seq)
    if after is not None and after[1] == last.seq:
        given += after[2]
    return f"{last.source_ns}:{last.seq}:{given}"


def decode_page_token(token: str) -> tuple[int, int, int] | None:
    """Inverse of :func:`encode_page_token`; None for the first page."""
    if not token:
        return None
    try:
        ns, seq, given = (int(x) for x in token.split(":"))
    except ValueError as exc:
        raise InvalidInputError("page_token", "is not a token this target handed out") from exc
    if not (-(2**63) <= ns < 2**63 and 0 < seq < 2**63 and 0 <= given <= 2**32):
        raise InvalidInputError("page_token", "is not a token this target handed out")
    return ns, seq, given


def audit_to_pb(entry: AuditEntry) -> pb.AuditEntry:
    """An audit entry as its message."""
    return pb.AuditEntry(
        time_unix_ns=entry.time_ns, identity=entry.identity, action=entry.action,
        object=entry.object, outcome=entry.outcome,
    )  # fmt: skip


def audit_from_pb(msg: pb.AuditEntry) -> AuditEntry:
    """An audit entry from its message."""
    return AuditEntry(
        time_ns=msg.time_unix_ns, identity=msg.identity, action=msg.action,
        object=msg.object, outcome=msg.outcome,
    )  # fmt: skip


STEP_STATES = {
    progress.PENDING: pb.FAILOVER_STEP_STATE_PENDING,
    progress.RUNNING: pb.FAILOVER_STEP_STATE_RUNNING,
    progress.OK: pb.FAILOVER_STEP_STATE_OK,
    progress.FAILED: pb.FAILOVER_STEP_STATE_FAILED,
}
STEP_STATE_NAMES = {v: k for k, v in STEP_STATES.items()}


def progress_to_pb(p: OperationProgress) -> pb.ReportFailoverProgressRequest:
    """A failover operation's progress as the report the CLI sends."""
    steps = [
        pb.FailoverStep(
            step_id=s.step_id,
            kind=s.kind,
            phase=s.phase,
            description=s.description,
            state=STEP_STATES[s.state],
            seconds=s.seconds,
            error=s.error,
        )  # fmt: skip
        for s in p.steps
    ]
    return pb.ReportFailoverProgressRequest(
        plan=p.plan, group_ids=list(p.group_ids), kind=p.kind, status=p.status,
        phase=p.phase, phases=p.phases, started_unix_ns=p.started_ns,
        started_by=p.started_by, steps=steps, finished=p.finished,
    )  # fmt: skip


def progress_from_pb(req: pb.ReportFailoverProgressRequest) -> OperationProgress:
    """The report as a value; an unset step state is INVALID_ARGUMENT naming the step."""
    steps = []
    for i, s in enumerate(req.steps):
        state = STEP_STATE_NAMES.get(s.state)
        if state is None:
            raise InvalidInputError(f"steps[{i}].state", "must be a FailoverStepState, not 0")
        steps.append(
            StepProgress(
                step_id=s.step_id,
                kind=s.kind,
                phase=s.phase,
                description=s.description,
                state=state,
                seconds=s.seconds,
                error=s.error,
            )  # fmt: skip
        )
    return OperationProgress(
        plan=req.plan, group_ids=tuple(req.group_ids), kind=req.kind, status=req.status,
        phase=req.phase, phases=req.phases, started_ns=req.started_unix_ns,
        started_by=req.started_by, steps=tuple(steps), finished=req.finished,
    )  # fmt: skip
