"""The failover operation record as typed values: what ``operation.json`` holds.

:class:`Operation` is one failover operation's log (plan, point per group, recovered VMs,
steps with their results and timing, the undo when one started, events); :class:`StepEntry`
is one step as the log records it. ``from_json``/``to_json`` are the JSON edge: the file
format (keys, values, version) is exactly what :mod:`cdp.failover.steplog` always wrote,
so logs on disk load unchanged. A log of an unknown (newer) version is refused by
:func:`check_version`, never guessed at. Step ``args`` and ``result`` stay JSON objects:
their shape belongs to each step kind (:mod:`cdp.failover.actions`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cdp.failover.errors import OperationStateError
from cdp.failover.replication import PointFacts
from cdp.failover.steps import MODE_TEST, SEAL, RecoveredVm, Step

LOG_VERSION = 1
"""The step log format this code writes and reads."""


def check_version(data: dict[str, Any], path: str) -> None:
    """Refuse a log written by a newer cdp (or with no version) before anything reads it."""
    version = data.get("version")
    if version != LOG_VERSION:
        raise OperationStateError(
            f"step log {path} has format version {version!r}; this cdp reads version {LOG_VERSION}",
            hint="finish or inspect the operation with the cdp version that wrote it",
        )


def _key(data: dict[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise OperationStateError(f"step log: {where}.{key} is missing".lstrip(".")) from None


_STEP_TIMING = ("result", "started_unix", "finished_unix", "seconds")


@dataclass
class StepEntry:
    """One step in the log: what it is, then (once done) its result and timing."""

    id: str
    kind: str
    phase: int
    vm: str
    group: str
    args: dict[str, Any]
    done: bool = False
    result: dict[str, Any] | None = None
    started_unix: float | None = None
    finished_unix: float | None = None
    seconds: float | None = None
    error: str | None = None
    """The last failure's message while not done (shown by ``status``)."""

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "step") -> StepEntry:
        """A step entry as the log holds it; OperationStateError names a missing key."""
        head = {k: _key(data, k, where) for k in ("id", "kind", "phase", "vm", "group", "args")}
        rest = {k: data[k] for k in (*_STEP_TIMING, "error") if k in data}
        return cls(**head, done=bool(_key(data, "done", where)), **rest)

    @classmethod
    def planned(cls, step: Step) -> StepEntry:
        """A planned step as the log records it (not done yet)."""
        return cls(**asdict(step))

    def step(self) -> Step:
        """The step this entry records."""
        return Step(self.id, self.kind, self.phase, self.vm, self.group, self.args)

    def describe(self) -> str:
        """One line for the operator (a done seal says which seq it sealed)."""
        text = self.step().describe()
        sealed = (self.result or {}).get("sealed") if self.kind == SEAL else None
        if sealed:
            text += ": sealed at seq " + ", ".join(
                f"{s}" if not m else f"{s} (member {m})" for m, s in sorted(sealed.items())
            )
        return text

    def record_done(self, result: dict[str, Any], started_unix: float, seconds: float) -> None:
        """Mark the step done with its result and timing; an earlier error is cleared."""
        self.done, self.result, self.error = True, result, None
        self.started_unix = round(started_unix, 6)
        self.finished_unix = round(time.time(), 6)
        self.seconds = round(seconds, 6)

    def to_json(self) -> dict[str, Any]:
        """The entry as the log writes it (timing keys only once set, error only when set)."""
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "phase": self.phase, "vm": self.vm,
            "group": self.group, "args": self.args, "done": self.done,
        }  # fmt: skip
        out.update({k: getattr(self, k) for k in _STEP_TIMING if getattr(self, k) is not None})
        if self.error is not None:
            out["error"] = self.error
        return out


def _steps(items: list[dict[str, Any]], where: str) -> list[StepEntry]:
    return [StepEntry.from_json(s, f"{where}[{i}]") for i, s in enumerate(items)]


@dataclass
class Undo:
    """A stop-test or rollback of the operation, once started."""

    operation: str
    started_unix: float
    steps: list[StepEntry]
    seconds: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Undo:
        """The ``undo`` object of a log."""
        return cls(
            operation=_key(data, "operation", "undo"),
            started_unix=_key(data, "started_unix", "undo"),
            steps=_steps(_key(data, "steps", "undo"), "undo.steps"),
            seconds=data.get("seconds"),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``undo`` object as the log writes it."""
        out: dict[str, Any] = {
            "operation": self.operation,
            "started_unix": self.started_unix,
            "steps": [s.to_json() for s in self.steps],
        }
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out


@dataclass(frozen=True)
class LogEvent:
    """A timestamped line of the operation's history."""

    unix: float
    what: str


_REQUIRED = (
    "plan", "plan_file", "datacenter", "operation", "planned", "origin", "at", "status",
    "started_unix", "checks_s", "bytes_to_prepare", "rto_estimate_s",
)  # fmt: skip
_OPTIONAL = (
    "recovered_unix", "rto_s", "commit_deadline_unix", "commit_default", "committed_unix",
    "production",
)  # fmt: skip


@dataclass
class Operation:
    """One failover operation's log (test or live), as ``operation.json`` holds it."""

    plan: str
    plan_file: str
    datacenter: str
    operation: str
    """``test`` or ``live`` (:data:`cdp.failover.steps.MODE_TEST`/``MODE_LIVE``)."""
    planned: bool
    origin: str
    """The command that started it (``verify``), empty for the operator's commands."""
    at: str
    status: str
    """One of the :mod:`cdp.failover.steplog` statuses."""
    started_unix: float
    checks_s: float
    bytes_to_prepare: int
    rto_estimate_s: float
    points: dict[str, PointFacts | None]
    """The restore point per group; None until a planned failover's drain fixes it."""
    vms: list[RecoveredVm]
    steps: list[StepEntry]
    undo: Undo | None = None
    events: list[LogEvent] = field(default_factory=list)
    recovered_unix: float | None = None
    rto_s: float | None = None
    commit_deadline_unix: float | None = None
    commit_default: str | None = None
    committed_unix: float | None = None
    production: str | None = None
    """``stopped`` when a failed planned failover could not restart the source VMs."""
    version: int = LOG_VERSION

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Operation:
        """A log read from disk; OperationStateError names a missing key."""
        head = {k: _key(data, k, "") for k in _REQUIRED}
        points = {g: PointFacts(**p) if p else None for g, p in _key(data, "points", "").items()}
        undo = data.get("undo")
        return cls(
            **head,
            points=points,
            vms=[RecoveredVm.from_json(v) for v in _key(data, "vms", "")],
            steps=_steps(_key(data, "steps", ""), "steps"),
            undo=Undo.from_json(undo) if undo else None,
            events=[LogEvent(e["unix"], e["what"]) for e in data.get("events", [])],
            version=_key(data, "version", ""),
            **{k: data[k] for k in _OPTIONAL if k in data},
        )

    def step(self, step_id: str) -> StepEntry | None:
        """The forward step with this id, if the operation has it."""
        return next((s for s in self.steps if s.id == step_id), None)

    def done_steps(self) -> int:
        """How many forward steps are recorded as done."""
        return sum(1 for s in self.steps if s.done)

    def vm(self, name: str) -> RecoveredVm:
        """The recovered VM of protected VM ``name``."""
        return next(v for v in self.vms if v.vm == name)

    def event(self, what: str) -> None:
        """Append a timestamped line to the operation's history (saved by the caller)."""
        self.events.append(LogEvent(round(time.time(), 3), what))

    def what(self) -> str:
        """``test failover``, ``planned failover`` or ``live failover``."""
        if self.operation == MODE_TEST:
            return "test failover"
        return "planned failover" if self.planned else "live failover"

    def to_json(self) -> dict[str, Any]:
        """The log as it is written (optional keys only once set)."""
        out: dict[str, Any] = {"version": self.version}
        out.update({k: getattr(self, k) for k in _REQUIRED})
        out.update(
            points={g: p and _point_json(p) for g, p in self.points.items()},
            vms=[v.to_json() for v in self.vms],
            steps=[s.to_json() for s in self.steps],
            undo=self.undo.to_json() if self.undo else None,
            events=[{"unix": e.unix, "what": e.what} for e in self.events],
        )
        out.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        return out


def _point_json(p: PointFacts) -> dict[str, Any]:
    """A point as the log stores it (``time_ns``, unlike the CLI's JSON form)."""
    return {"seq": p.seq, "time_ns": p.time_ns, "kind": p.kind, "label": p.label}
