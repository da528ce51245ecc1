"""The failback log as a typed record: what ``<state_dir>/<plan>/failback/operation.json`` holds.

:class:`Failback` (in :mod:`cdp.failover.failback`) reads and writes it through
:class:`FailbackLog`. The file format (keys, values, ``version``) is exactly what the
failback always wrote, so logs on disk load unchanged; ``from_json`` names a missing key
(OperationStateError) and the version is checked by :class:`cdp.failover.steplog.StepLog`
before anything reads it. Step ``result`` objects stay JSON: their shape is each step
kind's.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from cdp.failover.records import LOG_VERSION, LogEvent, StepEntry, _key
from cdp.failover.steplog import StepLog
from cdp.failover.steps import RecoveredVm

_OPTIONAL = ("finished_unix",)


@dataclass
class FailbackOperation:
    """One failback's log (see the module docstring of :mod:`cdp.failover.failback`)."""

    plan: str
    operation: str
    """Always ``failback``."""
    status: str
    """``running``, then ``failed-back``."""
    started_unix: float
    failover_log: str
    """The archived log of the live failover this failback undoes (set once committed)."""
    datacenter: str
    """The recovery-site datacenter the recovered VMs run in."""
    bookmark: str
    """The bookmark name placed at the original-site target's final point."""
    groups: dict[str, str]
    """Protected group -> its reverse group at the original-site target."""
    vms: list[RecoveredVm]
    steps: list[StepEntry]
    events: list[LogEvent] = field(default_factory=list)
    finished_unix: float | None = None
    version: int = LOG_VERSION

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FailbackOperation:
        """A failback log read from disk; OperationStateError names a missing key."""
        head = {
            k: _key(data, k, "")
            for k in ("plan", "operation", "status", "started_unix", "datacenter", "bookmark")
        }
        steps = _key(data, "steps", "")
        return cls(
            **head,
            failover_log=data.get("failover_log", ""),
            groups=dict(_key(data, "groups", "")),
            vms=[RecoveredVm.from_json(v) for v in _key(data, "vms", "")],
            steps=[StepEntry.from_json(s, f"steps[{i}]") for i, s in enumerate(steps)],
            events=[LogEvent(e["unix"], e["what"]) for e in data.get("events", [])],
            version=_key(data, "version", ""),
            **{k: data[k] for k in _OPTIONAL if k in data},
        )

    def to_json(self) -> dict[str, Any]:
        """The log as it is written (``finished_unix`` only once set)."""
        out: dict[str, Any] = {
            "version": self.version, "plan": self.plan, "operation": self.operation,
            "status": self.status, "started_unix": self.started_unix,
            "failover_log": self.failover_log, "datacenter": self.datacenter,
            "bookmark": self.bookmark, "groups": dict(self.groups),
            "vms": [v.to_json() for v in self.vms],
            "steps": [s.to_json() for s in self.steps],
            "events": [{"unix": e.unix, "what": e.what} for e in self.events],
        }  # fmt: skip
        if self.finished_unix is not None:
            out["finished_unix"] = self.finished_unix
        return out

    def vm(self, name: str) -> RecoveredVm:
        """The recovered VM of protected VM ``name``."""
        return next(v for v in self.vms if v.vm == name)

    def step(self, step_id: str) -> StepEntry | None:
        """The step with this id, if the failback has it."""
        return next((s for s in self.steps if s.id == step_id), None)

    def pending(self) -> list[StepEntry]:
        """Steps not recorded as done, in order."""
        return [s for s in self.steps if not s.done]

    def done_steps(self) -> int:
        """How many steps are recorded as done."""
        return sum(1 for s in self.steps if s.done)

    def event(self, what: str) -> None:
        """Append a timestamped line to the failback's history (saved by the caller)."""
        self.events.append(LogEvent(round(time.time(), 3), what))


class FailbackLog(StepLog):
    """The failback's step log, read and written as a :class:`FailbackOperation` (``rec``)."""

    def __init__(self, state_dir: str, plan_name: str, name: str) -> None:
        super().__init__(os.path.join(state_dir, plan_name), name)
        self.rec: FailbackOperation | None = None

    def load_rec(self) -> FailbackOperation | None:
        """The active failback, or None (see :meth:`StepLog.load`)."""
        data = self.load()
        self.rec = FailbackOperation.from_json(data) if data is not None else None
        return self.rec

    def start_rec(self, rec: FailbackOperation) -> None:
        """Write a new failback's log."""
        self.rec = rec
        os.makedirs(self.folder, exist_ok=True)
        self.save()

    def save(self) -> None:
        """Durably replace the file with the typed record."""
        assert self.rec is not None
        self.data = self.rec.to_json()
        super().save()

    def event(self, what: str) -> None:
        """Append a timestamped line to the failback's history (saved by the caller)."""
        assert self.rec is not None
        self.rec.event(what)

    def archive(self) -> str:
        """Move the finished failback into history/; return its new path."""
        if self.rec is not None:
            self.data = self.rec.to_json()
        self.rec = None
        return super().archive()


def read_record(path: str) -> FailbackOperation:
    """A finished failback's log from history/."""
    with open(path, encoding="utf-8") as f:
        return FailbackOperation.from_json(json.load(f))
