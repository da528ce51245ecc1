"""Telling the target how a failover operation goes, best effort.

:func:`snapshot` turns the step log's :class:`~cdp.failover.records.Operation` (plus the
steps running now, which the log does not record) into an
:class:`~cdp.progress.OperationProgress`. :class:`ProgressReporter` sends the newest
snapshot to the target from one background task: a new snapshot replaces one not yet
sent, so a slow or unreachable target never queues reports up and never slows a step.
A failed report is logged once per outage and forgotten; the operation goes on. At the
end of a command :meth:`ProgressReporter.drain` gives the last report a short while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from cdp.failover import steplog as sl
from cdp.failover import steps as st
from cdp.failover.failback_record import FailbackOperation
from cdp.failover.records import Operation, StepEntry
from cdp.failover.replication import Replication
from cdp.progress import (
    FAILED,
    OK,
    PENDING,
    RUNNING,
    STATUS_FAILED,
    OperationProgress,
    StepProgress,
)

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 5.0
"""Longest one progress report may take before it is given up."""
DRAIN_TIMEOUT_S = 2.0
"""How long the end of a command waits for its last report to reach the target."""


def kind_of(op: Operation) -> str:
    """What the operation is doing now: the undo's kind, verify, test, planned or live."""
    if op.undo is not None:
        return op.undo.operation
    if op.origin == "verify":
        return "verify"
    if op.operation == st.MODE_TEST:
        return "test"
    return "planned" if op.planned else "live"


def snapshot(op: Operation, running: dict[str, float], started_by: str) -> OperationProgress:
    """The operation's progress; ``running``: step id -> monotonic start of steps running."""
    undo = op.undo
    return picture(
        plan=op.plan, groups=sorted(op.points), kind=kind_of(op), status=op.status,
        started_unix=undo.started_unix if undo else op.started_unix,
        entries=undo.steps if undo else op.steps, final=op.status in sl.FINAL,
        running=running, started_by=started_by,
    )  # fmt: skip


def failback_snapshot(
    rec: FailbackOperation, running: dict[str, float], started_by: str
) -> OperationProgress:
    """A failback's progress, shown on its protected groups at the recovery-site target."""
    return picture(
        plan=rec.plan, groups=sorted(rec.groups), kind="failback", status=rec.status,
        started_unix=rec.started_unix, entries=rec.steps, final=rec.finished_unix is not None,
        running=running, started_by=started_by,
    )  # fmt: skip


def picture(
    *, plan: str, groups: list[str], kind: str, status: str, started_unix: float,
    entries: list[StepEntry], final: bool, running: dict[str, float], started_by: str,
) -> OperationProgress:  # fmt: skip
    """The progress of ``entries`` (a command stopped on a failed step is ``failed``)."""
    rank = {p: n for n, p in enumerate(sorted({e.phase for e in entries}), 1)}
    steps = tuple(_step(e, rank[e.phase], running) for e in entries)
    busy = [s.phase for s in steps if s.state in (RUNNING, FAILED)]
    done = [s.phase for s in steps if s.state == OK]
    failed = any(s.state == FAILED for s in steps) and not any(s.state == RUNNING for s in steps)
    return OperationProgress(
        plan=plan, group_ids=tuple(groups), kind=kind,
        status=STATUS_FAILED if failed and not final else status,
        phase=max(busy or done or [0]), phases=len(rank),
        started_ns=int(started_unix * 1e9), started_by=started_by, steps=steps,
        finished=final or failed,
    )  # fmt: skip


def _step(e: StepEntry, phase: int, running: dict[str, float]) -> StepProgress:
    """One step's progress; ``phase``: its phase's rank in the operation (1 = first)."""
    if e.id in running:
        state, seconds = RUNNING, time.monotonic() - running[e.id]
    elif e.done:
        state, seconds = OK, e.seconds or 0.0
    elif e.error:
        state, seconds = FAILED, 0.0
    else:
        state, seconds = PENDING, 0.0
    return StepProgress(
        step_id=e.id, kind=e.kind, phase=phase, description=e.describe()[:1024],
        state=state, seconds=round(seconds, 3), error=(e.error or "")[:1024],
    )  # fmt: skip


class ProgressReporter:
    """Sends the newest snapshot of an operation to the target, never failing the operation."""

    def __init__(self, replication: Replication, started_by: str) -> None:
        self.replication = replication
        self.started_by = started_by
        self.running: dict[str, float] = {}
        """Step id -> monotonic time it started, for the steps running now."""
        self._latest: OperationProgress | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._inflight = False
        self.sent = 0
        """Reports the target accepted (for tests and the log)."""

    def step_started(self, op: Operation | FailbackOperation, step_id: str) -> None:
        """A step starts: report it running."""
        self.running[step_id] = time.monotonic()
        self.publish(op)

    def step_ended(self, step_id: str) -> None:
        """A step ended (its result is reported with the next save)."""
        self.running.pop(step_id, None)

    def publish(self, op: Operation | FailbackOperation | None) -> None:
        """Queue ``op``'s snapshot (replacing one not yet sent); returns at once."""
        if op is None:
            return
        if isinstance(op, FailbackOperation):
            self._latest = failback_snapshot(op, self.running, self.started_by)
        else:
            self._latest = snapshot(op, self.running, self.started_by)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send_loop())

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Give the last snapshot up to ``timeout_s`` to be sent, then stop.

        Waits even after an earlier report failed: a refused intermediate report must not
        cost the final one (the bound keeps an unreachable target from holding the CLI).
        """
        task, self._task = self._task, None
        if task is None:
            return
        if self._latest is not None or self._inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent_all(), timeout_s)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _sent_all(self) -> None:
        while self._latest is not None or self._inflight:
            await asyncio.sleep(0.01)

    async def _send_loop(self) -> None:
        """The background task: send the newest snapshot whenever there is one."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            progress, self._latest = self._latest, None
            if progress is None:
                continue
            self._inflight = True
            try:
                await self.replication.report_progress(progress, REPORT_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - best effort: the failover never fails for it
                if not self._failing:
                    log.warning("failover progress not reported to the target: %s", exc)
                self._failing = True
                continue
            finally:
                self._inflight = False
            self.sent += 1
            self._failing = False
