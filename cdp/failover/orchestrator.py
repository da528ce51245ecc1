"""Runs failover operations: survey, gate, then execute steps, recording each one.

The same command, run again after a crash, continues from the last recorded step:
:meth:`Orchestrator.failover` finds the plan's active operation in the step log and runs
only the steps not yet done, with the restore point the first run fixed. A live
failover ends waiting for ``commit`` or ``rollback`` (the plan's commit policy decides
at its timeout); a test failover ends when ``stop-test`` removed every trace.

Statuses (``steplog``): running -> testing -> undoing -> test-stopped; running ->
awaiting-commit -> committed | undoing -> rolled-back. A final status moves the log to
history.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdp import lifecycle as lc
from cdp.errors import CdpError, PreconditionError
from cdp.failover import fencing, guards
from cdp.failover import steplog as sl
from cdp.failover import steps as st
from cdp.failover.actions import Actions
from cdp.failover.checks import MODE_CHECK, WARN, gate
from cdp.failover.errors import OperationStateError
from cdp.failover.failback_record import read_record
from cdp.failover.plan import Plan
from cdp.failover.progress import ProgressReporter
from cdp.failover.records import Operation, StepEntry, Undo
from cdp.failover.replication import Replication
from cdp.failover.summary import last_power_on, next_command, summary
from cdp.failover.survey import DEFAULT_RPO_PROBE_S, Survey, SurveyResult
from cdp.failover.vcenter import VCenter
from cdp.restore.spec import format_ns

DECISION_POLL_S = 0.2
"""How often a live failover waiting for commit/rollback reads the step log, seconds."""


@dataclass(frozen=True)
class Event:
    """Progress for the operator: a finished or failed step, or a line of information."""

    kind: str
    """``info``, ``warn``, ``phase`` (a phase starts), ``step`` or ``step-failed``."""
    text: str
    index: int = 0
    total: int = 0
    seconds: float = 0.0
    scope: str = ""
    """Set for an operation run inside another (failback's failover): its own counter."""


Reporter = Callable[[Event], None]


class _Memo:
    """A connector called at most once, from any thread (vCenter logins are blocking)."""

    def __init__(self, connect: Callable[[], VCenter] | None) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self.session: VCenter | None = None

    def __call__(self) -> VCenter:
        with self._lock:
            if self.session is None:
                if self._connect is None:
                    raise PreconditionError("no vCenter configured for this call")
                self.session = self._connect()
            return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class Orchestrator:
    """Failover operations of one plan."""

    def __init__(
        self,
        plan: Plan,
        connect: Callable[[], VCenter],
        replication: Replication,
        *,
        connect_protected: Callable[[], VCenter] | None = None,
        login: str = "",
        report: Reporter | None = None,
        rpo_probe_s: float = DEFAULT_RPO_PROBE_S,
        operator: str = "",
    ) -> None:
        self.plan = plan
        self.progress = ProgressReporter(replication, operator)
        """Tells the target how the operation goes (shown on its web page), best effort."""
        self.replication = replication
        self.vcenter = _Memo(connect)
        self.protected = _Memo(connect_protected)
        self.report: Reporter = report or (lambda e: None)
        self.log = sl.OperationLog(plan.state_dir, plan.name)
        self.survey = Survey(
            plan,
            self.vcenter,
            replication,
            login,
            rpo_probe_s,
            self.protected if connect_protected else None,
        )
        self._save_lock = asyncio.Lock()
        self._split_brain = (False, False)
        """(--force-split-brain, --fence-protected) of the run being started."""
        self._run_started = time.monotonic()
        self._run_started_unix = time.time()

    def close(self) -> None:
        """Log out of the vCenters this orchestrator used."""
        self.vcenter.close()
        self.protected.close()

    # ---------------------------------------------------------------- read-only

    async def check(self) -> SurveyResult:
        """The readiness table for both kinds of failover (nothing changes)."""
        return await self.survey.run(MODE_CHECK)

    async def dry_run(self, mode: str, at: str = "latest", planned: bool = False) -> SurveyResult:
        """What the operation would do, and its checks; nothing changes (no log either)."""
        return await self.survey.run(mode, at, planned)

    def status(self) -> dict[str, Any]:
        """The active operation's log, or the newest finished one's summary."""
        op = self.log.load_op()
        path = self.plan.source_path
        if op is None:
            last = self._last_finished()
            out: dict[str, Any] = {"plan": self.plan.name, "active": False, "last": last}
            live = self._last_finished(f"-{st.MODE_LIVE}-")  # a test (verify) since changes nothing
            if live.endswith(f"-{st.MODE_LIVE}-{sl.COMMITTED}.json"):
                back = self._failed_back(live)
                if back is None:
                    out["state"] = "failed over, committed"
                    out["next"] = f"cdp failover failback --plan {path}"
                else:
                    out.update(_failed_back_state(back))
            return out
        pid, alive = self.log.holder()
        out = {"plan": self.plan.name, "active": True, **summary(op)}
        out["holder"] = {"pid": pid, "alive": alive}
        owner, owning = self.log.holder(sl.OWNER_LOCK)  # `run --detach`'s background process
        out["deadline_owner"] = {"pid": owner, "alive": owning}
        out["next"] = next_command(op, path, alive)
        return out

    def _failed_back(self, last: str) -> str | None:
        """The log of a failback finished after the committed failover ``last`` (or None)."""
        history = os.path.join(self.log.folder, "failback", "history")
        names = sorted(os.listdir(history)) if os.path.isdir(history) else []
        done = [n for n in names if n.endswith("-failed-back.json") and n[:16] >= last[:16]]
        return os.path.join(history, done[-1]) if done else None

    # ---------------------------------------------------------------- test / run

    async def failover(
        self,
        mode: str,
        at: str | None = None,
        planned: bool = False,
        origin: str = "",
        *,
        overwrite_recovered: bool = False,
        force_split_brain: bool = False,
        fence_protected: bool = False,
    ) -> dict[str, Any]:
        """Start (or resume) a test or live failover; return its summary with the RTO.

        A new live failover refuses to overwrite ``<vm>-dr/`` folders holding recovered
        data (:mod:`cdp.failover.guards`) unless ``overwrite_recovered``.
        ``at`` None means ``latest`` for a new operation and the fixed point on a resume;
        another point than the active operation's is refused (roll back first).

        ``origin`` names the command that started it (``verify``), recorded in the log so
        that command can tell its own leftovers from an operator's operation.
        """
        if planned and self.plan.protected_site is None:
            raise PreconditionError(
                "--planned needs the protected site's vCenter to stop the source VMs",
                hint="add protected_site to the plan, or fail over unplanned",
            )
        self._run_started = time.monotonic()
        self._run_started_unix = time.time()
        with self.log.locked():
            active = self.log.load_op()
            try:
                if active is None:
                    self._split_brain = (force_split_brain, fence_protected)
                    return await self._start(
                        mode, at or "latest", planned, origin, overwrite_recovered
                    )
                self._check_resumable(active, mode, planned, at, origin)
                if active.status in (sl.TESTING, sl.AWAITING_COMMIT):
                    self.report(Event("info", f"{active.what()} already finished: {active.status}"))
                    return summary(active)
                return await self._resume(active)
            except CdpError:
                await self._restore_production()
                raise

    async def _restore_production(self) -> None:
        """After a failed planned failover: power the stopped source VMs back on.

        Only while no recovered VM was powered on (else two copies could run). On success
        the stop-source steps are marked not done (a re-run stops them again); when the
        protected vCenter fails too, the log says production is stopped (``status``' first
        line).
        """
        op = self.log.op
        if op is None or not op.planned or any(s.kind == st.POWER_ON and s.done for s in op.steps):
            return
        await self._lift_seals(op)
        stopped = [
            s for s in op.steps
            if s.kind == st.STOP_SOURCE and s.done and (s.result or {}).get("was") == "poweredOn"
        ]  # fmt: skip
        if not stopped:
            return
        actions = self._actions(op)
        try:
            for s in stopped:
                await actions.run(StepEntry.planned(st.Step(s.id, st.RESTART_SOURCE, 0, s.vm)))
                s.done, s.result = False, None
            op.production = None
            what = "the failover failed: the source VMs were powered on again"
            self.report(Event("warn", what))
        except CdpError as exc:
            op.production = "stopped"
            what = f"the failover failed and the source VMs could not be restarted: {exc}"
            self.report(
                Event("warn", what + f" — run: cdp failover rollback --plan {op.plan_file}")
            )
        self.log.event(what)
        await self._save()

    async def _lift_seals(self, op: Operation) -> None:
        """Let the sources of a planned failover that will not go on take writes again."""
        for s in op.steps:
            if s.kind != st.SEAL:
                continue
            try:
                await self.replication.release_seal(s.group)
            except CdpError as exc:  # the target is gone too: its restart lifts the seal
                self.report(Event("warn", f"could not lift the seal of group {s.group}: {exc}"))

    async def _start(
        self, mode: str, at: str, planned: bool, origin: str, overwrite: bool
    ) -> dict[str, Any]:
        survey = await self.survey.run(mode, at, planned)
        self._report_survey(survey)
        if survey.site_exception is not None:
            raise survey.site_exception  # the vCenter error itself says most
        gate(survey.rows)
        assert survey.operation is not None
        plan = survey.operation
        if mode == st.MODE_LIVE and not overwrite:
            history = os.path.join(self.log.folder, "failback", "history")
            flags = f"--plan {self.plan.source_path} --overwrite-recovered"
            guards.refuse(
                guards.held_before_start(plan.vms, history),
                "a new failover (its export)",
                f"cdp failover run {flags}" + (" --planned" if planned else ""),
                "fail back first: cdp failover failback --plan " + self.plan.source_path,
            )
        if mode == st.MODE_LIVE:
            await fencing.guard_committed(self.replication, self.plan)
            await fencing.guard_failed_back(
                self.replication, self.plan, plan.points, self._split_brain[0],
                warn=lambda text: self.report(Event("warn", text)),
            )  # fmt: skip
        if mode == st.MODE_LIVE and not planned:
            await fencing.guard_split_brain(
                self.replication,
                self.plan,
                self.protected if self.plan.protected_site else None,
                *self._split_brain,
                warn=lambda text: self.report(Event("warn", text)),
            )
        note = f"{mode} failover of plan {self.plan.name}"
        if mode == st.MODE_TEST:
            await fencing.mark_test(self.replication, self.plan, lc.TEST_RUNNING, note)
        else:
            await fencing.mark(
                self.replication, self.plan, lc.FAILING_OVER, fence=not planned, note=note
            )
        op = Operation(
            plan=self.plan.name,
            plan_file=self.plan.source_path,
            datacenter=self.plan.recovery.datacenter,
            operation=mode,
            planned=planned,
            origin=origin,
            at=at,
            status=sl.RUNNING,
            started_unix=self._run_started_unix,  # RTO counts the checks too
            checks_s=round(survey.seconds, 3),
            bytes_to_prepare=plan.bytes_to_prepare,
            rto_estimate_s=round(plan.rto_estimate_s, 3),
            points=dict(plan.points),
            vms=list(plan.vms),
            steps=[StepEntry.planned(s) for s in plan.steps],
        )
        await asyncio.to_thread(self.log.start_op, op)
        self.progress.publish(op)
        self.report(
            Event(
                "info",
                f"{op.what()}: {len(op.steps)} steps, "
                f"{len(op.vms)} VMs, RTO estimate {op.rto_estimate_s:.1f} s",
            )
        )
        return await self._forward()

    async def _resume(self, active: Operation) -> dict[str, Any]:
        done = active.done_steps()
        self.report(
            Event(
                "info", f"resuming {active.what()}: {done} of {len(active.steps)} steps were done"
            )
        )
        survey = await self._survey_active(active)
        self._report_survey(survey)
        if survey.site_exception is not None:
            raise survey.site_exception
        gate(survey.rows)
        self.log.event(f"resumed ({done} steps done)")
        await self._save()
        return await self._forward()

    async def _survey_active(self, active: Operation) -> SurveyResult:
        own = frozenset(v.vmx_path for v in active.vms)
        pending = {s.id for s in active.steps if not s.done and s.kind == st.EXPORT}
        points = {g: p for g, p in active.points.items() if p}
        # The planned-failover checks (sources reachable, source connected) matter only
        # while the seal (or an older log's drain) is still to be done.
        draining = any(s.kind in (st.SEAL, st.DRAIN) and not s.done for s in active.steps)
        return await self.survey.run(
            active.operation, active.at, active.planned and draining, own, pending, points
        )

    def _check_resumable(
        self, active: Operation, mode: str, planned: bool, at: str | None, origin: str
    ) -> None:
        if active.status == sl.UNDOING:
            verb = "stop-test" if active.operation == st.MODE_TEST else "rollback"
            raise OperationStateError(
                f"a {verb} of plan {self.plan.name!r} is half done",
                hint=f"run `cdp failover {verb}` again to finish it",
            )
        if active.origin != origin:  # never resume (and then stop) another command's operation
            by = active.origin or ("test" if active.operation == st.MODE_TEST else "run")
            raise OperationStateError(
                f"{active.what()} of plan {self.plan.name!r} is active "
                f"({active.status}, started by `cdp failover {by}`)",
                hint="finish it first: stop-test for a test (`verify` also cleans up its own), "
                "commit or rollback for a failover",
            )
        if active.operation != mode or active.planned != planned:
            raise OperationStateError(
                f"{active.what()} of plan {self.plan.name!r} is active ({active.status})",
                hint="finish it first: stop-test for a test, commit or rollback for a failover",
            )
        if at is not None and at != active.at:
            undo = "stop-test" if active.operation == st.MODE_TEST else "rollback"
            points = ", ".join(
                f"{g} seq {p.seq} ({format_ns(p.time_ns)})" for g, p in active.points.items() if p
            )
            raise OperationStateError(
                f"{active.what()} of plan {self.plan.name!r} is active ({active.status}) at "
                f"--at {active.at!r} ({points or 'point not fixed yet'}); --at {at!r} is "
                "another point",
                hint=f"roll back first: cdp failover {undo} --plan {self.plan.source_path}, "
                f"then run again with --at {at}",
            )

    async def _forward(self) -> dict[str, Any]:
        op = self.log.op
        assert op is not None
        await self._execute(op.steps)
        op.recovered_unix = last_power_on(op)
        op.rto_s = round(op.recovered_unix - op.started_unix, 3)
        if op.operation == st.MODE_TEST:
            op.status = sl.TESTING
        else:
            op.status = sl.AWAITING_COMMIT
            op.commit_deadline_unix = time.time() + self.plan.commit.timeout_s
            op.commit_default = self.plan.commit.default_action
            await fencing.mark(
                self.replication,
                self.plan,
                lc.FAILED_OVER_AWAITING_COMMIT,
                fence=True,
                note=f"failover of plan {self.plan.name}: VMs up",
            )
        self.log.event(f"every VM powered on; RTO {op.rto_s} s")
        await self._save()
        out = summary(op)
        out["run_s"] = round(time.monotonic() - self._run_started, 3)
        return out

    # ---------------------------------------------------------------- commit / undo

    async def await_decision(self, poll_s: float = DECISION_POLL_S) -> dict[str, Any]:
        """Wait for commit/rollback by another command; at the deadline apply the default."""
        while True:
            op = self.log.load_op()
            if op is None:
                return self._decided_elsewhere()
            if op.status != sl.AWAITING_COMMIT or op.commit_deadline_unix is None:
                return summary(op)
            remaining = op.commit_deadline_unix - time.time()
            if remaining <= 0:
                try:
                    with self.log.locked():
                        return await self._apply_default()
                except OperationStateError:
                    pass  # another command is deciding right now; look again
            await asyncio.sleep(min(poll_s, max(remaining, 0.01)))

    async def _apply_default(self) -> dict[str, Any]:
        op = self.log.load_op()
        if op is None:
            return self._decided_elsewhere()
        if op.status != sl.AWAITING_COMMIT:
            return summary(op)
        action = op.commit_default or self.plan.commit.default_action
        said = f"commit timeout reached: applying the plan's default_action: {action}"
        if action != "commit":
            said += (
                " (the recovered VMs are powered off and unregistered; their <vm>-dr/ folders, "
                "holding what they wrote since the failover, are kept as they are)"
            )
        self.report(Event("warn", said))
        self.log.event(said)
        if action == "commit":
            return await self._commit()
        return await self._undo(st.UNDO_ROLLBACK, guards.KEEP)

    async def commit(self) -> dict[str, Any]:
        """Make the recovered VMs production: record it and close the operation."""
        with self.log.locked():
            return await self._commit()

    async def _commit(self) -> dict[str, Any]:
        op = self._active(st.MODE_LIVE, "commit")
        if op.status != sl.AWAITING_COMMIT:
            raise OperationStateError(
                f"the failover of plan {self.plan.name!r} is {op.status}, not awaiting commit",
                hint="run `cdp failover run` again to finish it, or roll it back",
            )
        op.committed_unix = time.time()
        await fencing.mark(
            self.replication,
            self.plan,
            lc.FAILED_OVER_COMMITTED,
            note=f"failover of plan {self.plan.name} committed",
        )
        out = await sl.close_op(
            self.log, sl.COMMITTED, "committed: the recovered VMs are production", summary
        )
        self.progress.publish(op)
        return out

    async def stop_test(self) -> dict[str, Any]:
        """Remove every trace of the active test failover."""
        with self.log.locked():
            return await self._undo(st.UNDO_STOP_TEST)

    async def rollback(self, recovered: str = guards.REFUSE) -> dict[str, Any]:
        """Undo the active live failover; replication goes on as before.

        ``recovered`` says what happens to ``<vm>-dr/`` folders holding data written since
        the failover: :data:`~cdp.failover.guards.REFUSE` (stop, naming them), ``KEEP``
        (renamed, kept) or ``DISCARD`` (deleted).
        """
        with self.log.locked():
            return await self._undo(st.UNDO_ROLLBACK, recovered)

    def undo_plan(self, kind: str) -> dict[str, Any]:
        """The undo steps ``stop-test``/``rollback`` would run (for --dry-run)."""
        op = self._active(st.MODE_TEST if kind == st.UNDO_STOP_TEST else st.MODE_LIVE, kind)
        steps = op.undo.steps if op.undo else [StepEntry.planned(s) for s in self._undo_steps(op)]
        return {"plan": self.plan.name, "operation": kind, "steps": [s.to_json() for s in steps]}

    async def _undo(self, kind: str, recovered: str = guards.DISCARD) -> dict[str, Any]:
        op = self._active(st.MODE_TEST if kind == st.UNDO_STOP_TEST else st.MODE_LIVE, kind)
        if op.undo is None:
            steps = [StepEntry.planned(s) for s in self._undo_steps(op)]
            self._guard_undo(op, steps, recovered)
            op.undo = Undo(kind, time.time(), steps)
            op.status = sl.UNDOING
            self.log.event(f"{kind} started")
            await self._save()
        t0 = time.monotonic()
        await self._execute(op.undo.steps)
        op.undo.seconds = round(time.monotonic() - t0, 3)
        if op.planned:  # the restarted sources take writes again
            await self._lift_seals(op)
        note = f"{kind} of plan {self.plan.name}"
        if kind == st.UNDO_STOP_TEST:
            await fencing.mark_test(self.replication, self.plan, lc.PROTECTING, note)
        else:
            await fencing.mark(self.replication, self.plan, lc.PROTECTING, unfence=True, note=note)
        status = sl.TEST_STOPPED if kind == st.UNDO_STOP_TEST else sl.ROLLED_BACK
        out = await sl.close_op(self.log, status, f"{kind} finished", summary)
        self.progress.publish(op)
        return out

    def _guard_undo(self, op: Operation, steps: list[StepEntry], recovered: str) -> None:
        """Refuse (REFUSE) or mark the delete steps of folders holding recovered data."""
        held = {h.folder: h for h in guards.held_by_operation(op)}
        if not held or recovered == guards.DISCARD:
            return
        plan = f"--plan {self.plan.source_path}"
        if recovered == guards.REFUSE:
            guards.refuse(
                list(held.values()),
                "rollback",
                f"cdp failover rollback {plan} --discard-recovered-data",
                f"keep the folders: cdp failover rollback {plan} --keep-recovered-data",
            )
        for s in steps:
            if s.kind == st.DELETE and s.args.get("folder") in held:
                s.args["keep"] = True
                self.report(Event("info", f"keeping {s.args['folder']}/ (recovered data)"))

    def _undo_steps(self, op: Operation) -> tuple[st.Step, ...]:
        restart = [
            s.vm
            for s in op.steps
            if s.kind == st.STOP_SOURCE and s.done and (s.result or {}).get("was") == "poweredOn"
        ]
        return st.undo_steps(tuple(op.vms), restart)

    def _active(self, mode: str, verb: str) -> Operation:
        op = self.log.load_op()
        if op is None or op.operation != mode:
            what = "test failover" if mode == st.MODE_TEST else "live failover"
            raise OperationStateError(
                f"no {what} of plan {self.plan.name!r} is active, nothing to {verb}",
                hint="`cdp failover status --plan FILE` shows what is active",
            )
        return op

    # ---------------------------------------------------------------- the engine

    async def _execute(self, entries: list[StepEntry]) -> None:
        """Run every step not done, phase by phase; steps of a phase run at once."""
        op = self.log.op
        assert op is not None
        actions = self._actions(op)
        todo = [e for e in entries if not e.done]
        counter = [len(entries) - len(todo), len(entries)]
        for phase in sorted({e.phase for e in todo}):
            batch = [e for e in todo if e.phase == phase]
            kinds = ", ".join(dict.fromkeys(e.kind for e in batch))
            self.report(Event("phase", f"phase {phase}: {kinds} ({len(batch)} step(s))"))
            limit = asyncio.Semaphore(self.plan.recovery.parallel)
            results = await asyncio.gather(
                *(self._step(actions, e, limit, counter) for e in batch), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    def _actions(self, op: Operation) -> Actions:
        return Actions(
            self.plan,
            op,
            self.vcenter,
            self.replication,
            self.protected if self.plan.protected_site else None,
            lambda text: self.report(Event("warn", text)),
        )

    async def _step(
        self, actions: Actions, entry: StepEntry, limit: asyncio.Semaphore, counter: list[int]
    ) -> None:
        async with limit:
            text = entry.describe()
            started, t0 = time.time(), time.monotonic()
            self.progress.step_started(actions.op, entry.id)
            try:
                result = await actions.run(entry)
            except CdpError as exc:
                self.progress.step_ended(entry.id)
                self.report(Event("step-failed", f"{text}: {exc}", counter[0] + 1, counter[1]))
                async with self._save_lock:
                    entry.error = str(exc)  # shown by `status`; cleared when the step is done
                    await self._save()
                raise
            except BaseException:  # cancelled, or a bug: not running any more either way
                self.progress.step_ended(entry.id)
                raise
            seconds = time.monotonic() - t0
            self.progress.step_ended(entry.id)
            async with self._save_lock:
                entry.record_done(result, started, seconds)
                await self._save()
                counter[0] += 1
                self.report(Event("step", entry.describe(), counter[0], counter[1], seconds))

    async def _save(self) -> None:
        """Durably record the step log, then tell the target (in the background)."""
        await asyncio.to_thread(self.log.save)
        self.progress.publish(self.log.op)

    def _report_survey(self, survey: SurveyResult) -> None:
        for row in survey.rows:
            if row.status == WARN:
                self.report(Event("warn", f"{row.name}: {row.detail}"))

    def _decided_elsewhere(self) -> dict[str, Any]:
        """Another command committed or rolled back: what its archived log says."""
        last = self._last_finished()
        status = next((f for f in sl.FINAL if last.removesuffix(".json").endswith(f)), "?")
        return {
            "plan": self.plan.name,
            "status": status,
            "decided_by": "another command",
            "archived": os.path.join(self.log.folder, "history", last),
        }

    def _last_finished(self, infix: str = "") -> str:
        """The newest archived operation (whose name holds ``infix``); "" if none."""
        history = os.path.join(self.log.folder, "history")
        names = sorted(os.listdir(history)) if os.path.isdir(history) else []
        names = [n for n in names if infix in n]
        return names[-1] if names else ""


def _failed_back_state(path: str) -> dict[str, Any]:
    """What ``status`` says once a failback finished (from its archived log ``path``)."""
    rec = read_record(path)
    epochs = {s.group: (s.result or {}).get("epoch") for s in rec.steps
              if s.kind == "protect-again" and s.done}  # fmt: skip
    how = "; ".join(f"group {g}: --epoch {e}" for g, e in sorted(epochs.items()))
    return {
        "state": "failed back: production runs at the original site",
        "failed_back_log": path,
        "next": "protect the groups again from the original site: start its source with "
        f"the group's epoch ({how or 'see `cdp status`'}); the target asks it for a full "
        "resync",
    }
