"""Failover progress as the target shows it: the newest report of each plan's operation.

The failover CLI runs the steps (on the host that holds the vCenter credentials) and
tells the target its whole picture after every change (``ReportFailoverProgress``):
:class:`OperationProgress` with its :class:`StepProgress` list. The target keeps the
newest report per plan in a :class:`ProgressBoard` (memory only: a restarted target
shows the operation again at its next step) and the web page and ``/api/v1/status``
show it on every group of the plan. A finished report stays :data:`FINISHED_KEEP_S`.

Pure values: imports nothing of the project but the error tree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cdp.errors import InvalidInputError

PENDING, RUNNING, OK, FAILED = "pending", "running", "ok", "failed"
STEP_STATES = (PENDING, RUNNING, OK, FAILED)
"""Where a step got, in the order of the wire enum (1..4; 0 is "not set")."""
KINDS = ("test", "live", "planned", "stop-test", "rollback", "failback", "verify")
"""What an operation can be."""
STATUS_FAILED = "failed"
"""Status of an operation whose command stopped on a failed step (a re-run resumes it)."""
FINISHED_KEEP_S = 3600.0
"""How long the target shows a finished operation, seconds."""
MAX_GROUPS = 64
MAX_STEPS = 10_000
MAX_NAME_CHARS = 200
MAX_ERROR_CHARS = 1024
MAX_WORD_CHARS = 32


@dataclass(frozen=True)
class StepProgress:
    """One step of an operation and where it got."""

    step_id: str
    kind: str
    phase: int
    description: str
    state: str
    """One of :data:`STEP_STATES`."""
    seconds: float = 0.0
    """Seconds it took (ok) or has been running (running)."""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (web API)."""
        return {
            "id": self.step_id, "kind": self.kind, "phase": self.phase,
            "description": self.description, "state": self.state,
            "seconds": self.seconds, "error": self.error,
        }  # fmt: skip


@dataclass(frozen=True)
class OperationProgress:
    """The whole picture of one failover operation of a plan."""

    plan: str
    group_ids: tuple[str, ...]
    kind: str
    """One of :data:`KINDS`."""
    status: str
    """The step log's status (``running``, ``testing``, ...) or :data:`STATUS_FAILED`."""
    phase: int
    phases: int
    started_ns: int
    """When the operation started, Unix ns (the failover host's clock)."""
    started_by: str
    """Who started it, as the failover CLI knows it."""
    steps: tuple[StepProgress, ...]
    finished: bool = False
    reported_by: str = ""
    """The certificate identity of the reporting caller (set by the target)."""
    received_ns: int = 0
    """Target time of the report, Unix ns (set by the target)."""

    def check(self) -> None:
        """Refuse a malformed report, naming the field."""
        _text("plan", self.plan, MAX_NAME_CHARS, required=True)
        if not 1 <= len(self.group_ids) <= MAX_GROUPS:
            raise InvalidInputError("group_ids", f"must name 1-{MAX_GROUPS} groups")
        for i, g in enumerate(self.group_ids):
            _text(f"group_ids[{i}]", g, MAX_NAME_CHARS, required=True)
        if self.kind not in KINDS:
            raise InvalidInputError("kind", f"must be one of {', '.join(KINDS)}; got {self.kind!r}")
        _text("status", self.status, MAX_WORD_CHARS, required=True)
        _text("started_by", self.started_by, MAX_NAME_CHARS)
        if self.started_ns < 0:
            raise InvalidInputError("started_unix_ns", "must not be negative")
        if len(self.steps) > MAX_STEPS:
            raise InvalidInputError("steps", f"at most {MAX_STEPS}")
        for i, s in enumerate(self.steps):
            _check_step(f"steps[{i}]", s)

    def counts(self) -> dict[str, int]:
        """Steps per state."""
        return {state: sum(1 for s in self.steps if s.state == state) for state in STEP_STATES}

    def to_json(self) -> dict[str, Any]:
        """The JSON form (web API); times as Unix seconds."""
        return {
            "plan": self.plan, "groups": list(self.group_ids), "kind": self.kind,
            "status": self.status, "phase": self.phase, "phases": self.phases,
            "started_unix": self.started_ns / 1e9, "started_by": self.started_by,
            "reported_by": self.reported_by, "updated_unix": self.received_ns / 1e9,
            "finished": self.finished, "counts": self.counts(),
            "steps": [s.to_json() for s in self.steps],
        }  # fmt: skip


def _text(name: str, value: str, most: int, required: bool = False) -> None:
    if required and not value:
        raise InvalidInputError(name, "must not be empty")
    if len(value) > most:
        raise InvalidInputError(name, f"at most {most} characters")


def _check_step(where: str, s: StepProgress) -> None:
    _text(f"{where}.step_id", s.step_id, MAX_NAME_CHARS, required=True)
    _text(f"{where}.kind", s.kind, MAX_NAME_CHARS)
    _text(f"{where}.description", s.description, MAX_ERROR_CHARS)
    _text(f"{where}.error", s.error, MAX_ERROR_CHARS)
    if s.state not in STEP_STATES:
        raise InvalidInputError(f"{where}.state", f"must be one of {', '.join(STEP_STATES)}")
    if s.seconds < 0 or s.seconds != s.seconds:
        raise InvalidInputError(f"{where}.seconds", "must be a number >= 0")


class ProgressBoard:
    """The newest report of each plan; what is shown on which group."""

    def __init__(self) -> None:
        self._by_plan: dict[str, OperationProgress] = {}

    def report(self, progress: OperationProgress, who: str, now_ns: int) -> OperationProgress:
        """Keep ``progress`` (checked) as its plan's newest report; return it as stored."""
        progress.check()
        stored = replace(progress, reported_by=who, received_ns=now_ns)
        self._by_plan[progress.plan] = stored
        self._expire(now_ns)
        return stored

    def for_group(self, group_id: str, now_ns: int) -> list[OperationProgress]:
        """Reports naming ``group_id``: active ones first, then finished, newest first."""
        self._expire(now_ns)
        found = [p for p in self._by_plan.values() if group_id in p.group_ids]
        return sorted(found, key=lambda p: (p.finished, -p.received_ns))

    def _expire(self, now_ns: int) -> None:
        cutoff = now_ns - int(FINISHED_KEEP_S * 1e9)
        for plan, p in list(self._by_plan.items()):
            if p.finished and p.received_ns < cutoff:
                del self._by_plan[plan]
