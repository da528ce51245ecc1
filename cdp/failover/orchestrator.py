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
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdp import lifecycle as lc
from cdp.errors import CdpError, PreconditionError
from cdp.failover import fencing
from cdp.failover import steplog as sl
from cdp.failover import steps as st
from cdp.failover.actions import Actions
from cdp.failover.checks import MODE_CHECK, WARN, gate
from cdp.failover.errors import OperationStateError
from cdp.failover.plan import Plan
from cdp.failover.replication import PointFacts, Replication
from cdp.failover.survey import DEFAULT_RPO_PROBE_S, Survey, SurveyResult
from cdp.failover.vcenter import VCenter

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
    ) -> None:
        self.plan = plan
        self.replication = replication
        self.vcenter = _Memo(connect)
        self.protected = _Memo(connect_protected)
        self.report: Reporter = report or (lambda e: None)
        self.log = sl.StepLog(plan.state_dir, plan.name)
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
        data = self.log.load()
        if data is None:
            return {"plan": self.plan.name, "active": False, "last": self._last_finished()}
        return {"plan": self.plan.name, "active": True, **summary(data)}

    # ---------------------------------------------------------------- test / run

    async def failover(
        self,
        mode: str,
        at: str = "latest",
        planned: bool = False,
        origin: str = "",
        *,
        force_split_brain: bool = False,
        fence_protected: bool = False,
    ) -> dict[str, Any]:
        """Start (or resume) a test or live failover; return its summary with the RTO.

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
            active = self.log.load()
            if active is None:
                self._split_brain = (force_split_brain, fence_protected)
                return await self._start(mode, at, planned, origin)
            self._check_resumable(active, mode, planned, at, origin)
            if active["status"] in (sl.TESTING, sl.AWAITING_COMMIT):
                self.report(Event("info", f"{_what(active)} already finished: {active['status']}"))
                return summary(active)
            return await self._resume(active)

    async def _start(self, mode: str, at: str, planned: bool, origin: str) -> dict[str, Any]:
        survey = await self.survey.run(mode, at, planned)
        self._report_survey(survey)
        if survey.site_exception is not None:
            raise survey.site_exception  # the vCenter error itself says most
        gate(survey.rows)
        assert survey.operation is not None
        op = survey.operation
        if mode == st.MODE_LIVE and not planned:
            await fencing.guard_split_brain(
                self.replication,
                self.plan,
                self.protected if self.plan.protected_site else None,
                *self._split_brain,
                warn=lambda text: self.report(Event("warn", text)),
            )
        await fencing.mark(
            self.replication,
            self.plan,
            fencing.starting(mode),
            fence=mode == st.MODE_LIVE and not planned,
            note=f"{mode} failover of plan {self.plan.name}",
        )
        now = self._run_started_unix  # RTO counts the checks too
        await asyncio.to_thread(
            self.log.start,
            {
                "plan": self.plan.name,
                "plan_file": self.plan.source_path,
                "datacenter": self.plan.recovery.datacenter,
                "operation": mode,
                "planned": planned,
                "origin": origin,
                "at": at,
                "status": sl.RUNNING,
                "started_unix": now,
                "checks_s": round(survey.seconds, 3),
                "bytes_to_prepare": op.bytes_to_prepare,
                "rto_estimate_s": round(op.rto_estimate_s, 3),
                "points": op.to_json()["points"],
                "vms": [v.to_json() for v in op.vms],
                "steps": [sl.step_entry(s) for s in op.to_json()["steps"]],
                "undo": None,
            },
        )
        self.report(
            Event(
                "info",
                f"{_what(self.log.data or {})}: {len(op.steps)} steps, "
                f"{len(op.vms)} VMs, RTO estimate {op.rto_estimate_s:.1f} s",
            )
        )
        return await self._forward()

    async def _resume(self, active: dict[str, Any]) -> dict[str, Any]:
        done = sum(1 for s in active["steps"] if s["done"])
        self.report(
            Event(
                "info",
                f"resuming {_what(active)}: {done} of {len(active['steps'])} steps were done",
            )
        )
        survey = await self._survey_active(active)
        self._report_survey(survey)
        if survey.site_exception is not None:
            raise survey.site_exception
        gate(survey.rows)
        assert self.log.data is not None
        self.log.event(f"resumed ({done} steps done)")
        await asyncio.to_thread(self.log.save)
        return await self._forward()

    async def _survey_active(self, active: dict[str, Any]) -> SurveyResult:
        own = frozenset(v["vmx_path"] for v in active["vms"])
        pending = {s["id"] for s in active["steps"] if not s["done"] and s["kind"] == st.EXPORT}
        points = {g: PointFacts(**p) for g, p in active["points"].items() if p}
        # The planned-failover checks (sources reachable, source connected) matter only
        # while the drain is still to be done.
        draining = any(s["kind"] == st.DRAIN and not s["done"] for s in active["steps"])
        return await self.survey.run(
            active["operation"],
            active["at"],
            active["planned"] and draining,
            own,
            pending,
            points,
        )

    def _check_resumable(
        self, active: dict[str, Any], mode: str, planned: bool, at: str, origin: str
    ) -> None:
        if active["status"] == sl.UNDOING:
            verb = "stop-test" if active["operation"] == st.MODE_TEST else "rollback"
            raise OperationStateError(
                f"a {verb} of plan {self.plan.name!r} is half done",
                hint=f"run `cdp failover {verb}` again to finish it",
            )
        started_by = active.get("origin", "")
        if started_by != origin:  # never resume (and then stop) another command's operation
            by = started_by or ("test" if active["operation"] == st.MODE_TEST else "run")
            raise OperationStateError(
                f"{_what(active)} of plan {self.plan.name!r} is active "
                f"({active['status']}, started by `cdp failover {by}`)",
                hint="finish it first: stop-test for a test (`verify` also cleans up its own), "
                "commit or rollback for a failover",
            )
        if active["operation"] != mode or bool(active["planned"]) != planned:
            raise OperationStateError(
                f"{_what(active)} of plan {self.plan.name!r} is active ({active['status']})",
                hint="finish it first: stop-test for a test, commit or rollback for a failover",
            )
        if at != active["at"]:
            self.report(
                Event(
                    "warn",
                    f"resuming at the point the first run fixed "
                    f"({active['at']!r} then); --at {at!r} is ignored",
                )
            )

    async def _forward(self) -> dict[str, Any]:
        data = self.log.data
        assert data is not None
        await self._execute(data["steps"])
        data["recovered_unix"] = _last_power_on(data)
        data["rto_s"] = round(data["recovered_unix"] - data["started_unix"], 3)
        if data["operation"] == st.MODE_TEST:
            data["status"] = sl.TESTING
        else:
            data["status"] = sl.AWAITING_COMMIT
            data["commit_deadline_unix"] = time.time() + self.plan.commit.timeout_s
            data["commit_default"] = self.plan.commit.default_action
            await fencing.mark(
                self.replication,
                self.plan,
                lc.FAILED_OVER_AWAITING_COMMIT,
                fence=True,
                note=f"failover of plan {self.plan.name}: VMs up",
            )
        self.log.event(f"every VM powered on; RTO {data['rto_s']} s")
        await asyncio.to_thread(self.log.save)
        out = summary(data)
        out["run_s"] = round(time.monotonic() - self._run_started, 3)
        return out

    # ---------------------------------------------------------------- commit / undo

    async def await_decision(self, poll_s: float = DECISION_POLL_S) -> dict[str, Any]:
        """Wait for commit/rollback by another command; at the deadline apply the default."""
        while True:
            data = self.log.load()
            if data is None:
                return self._decided_elsewhere()
            if data["status"] != sl.AWAITING_COMMIT:
                return summary(data)
            remaining = data["commit_deadline_unix"] - time.time()
            if remaining <= 0:
                try:
                    with self.log.locked():
                        return await self._apply_default()
                except OperationStateError:
                    pass  # another command is deciding right now; look again
            await asyncio.sleep(min(poll_s, max(remaining, 0.01)))

    async def _apply_default(self) -> dict[str, Any]:
        data = self.log.load()
        if data is None:
            return self._decided_elsewhere()
        if data["status"] != sl.AWAITING_COMMIT:
            return summary(data)
        action = data.get("commit_default", self.plan.commit.default_action)
        self.report(Event("warn", f"commit timeout reached: applying the default action, {action}"))
        self.log.event(f"commit timeout: default action {action}")
        return await (self._commit() if action == "commit" else self._undo(st.UNDO_ROLLBACK))

    async def commit(self) -> dict[str, Any]:
        """Make the recovered VMs production: record it and close the operation."""
        with self.log.locked():
            return await self._commit()

    async def _commit(self) -> dict[str, Any]:
        data = self._active(st.MODE_LIVE, "commit")
        if data["status"] != sl.AWAITING_COMMIT:
            raise OperationStateError(
                f"the failover of plan {self.plan.name!r} is {data['status']}, not awaiting commit",
                hint="run `cdp failover run` again to finish it, or roll it back",
            )
        data["committed_unix"] = time.time()
        await fencing.mark(
            self.replication,
            self.plan,
            lc.FAILED_OVER_COMMITTED,
            note=f"failover of plan {self.plan.name} committed",
        )
        return await sl.close_operation(
            self.log, sl.COMMITTED, "committed: the recovered VMs are production", summary
        )

    async def stop_test(self) -> dict[str, Any]:
        """Remove every trace of the active test failover."""
        with self.log.locked():
            return await self._undo(st.UNDO_STOP_TEST)

    async def rollback(self) -> dict[str, Any]:
        """Undo the active live failover; replication goes on as before."""
        with self.log.locked():
            return await self._undo(st.UNDO_ROLLBACK)

    def undo_plan(self, kind: str) -> dict[str, Any]:
        """The undo steps ``stop-test``/``rollback`` would run (for --dry-run)."""
        data = self._active(st.MODE_TEST if kind == st.UNDO_STOP_TEST else st.MODE_LIVE, kind)
        steps = (
            data["undo"]["steps"]
            if data.get("undo")
            else [dataclasses.asdict(s) for s in self._undo_steps(data)]
        )
        return {"plan": self.plan.name, "operation": kind, "steps": steps}

    async def _undo(self, kind: str) -> dict[str, Any]:
        data = self._active(st.MODE_TEST if kind == st.UNDO_STOP_TEST else st.MODE_LIVE, kind)
        if not data.get("undo"):
            steps = [sl.step_entry(dataclasses.asdict(s)) for s in self._undo_steps(data)]
            data["undo"] = {"operation": kind, "started_unix": time.time(), "steps": steps}
            data["status"] = sl.UNDOING
            self.log.event(f"{kind} started")
            await asyncio.to_thread(self.log.save)
        t0 = time.monotonic()
        await self._execute(data["undo"]["steps"])
        data["undo"]["seconds"] = round(time.monotonic() - t0, 3)
        await fencing.mark(
            self.replication,
            self.plan,
            lc.PROTECTING,
            unfence=kind == st.UNDO_ROLLBACK,
            note=f"{kind} of plan {self.plan.name}",
        )
        status = sl.TEST_STOPPED if kind == st.UNDO_STOP_TEST else sl.ROLLED_BACK
        return await sl.close_operation(self.log, status, f"{kind} finished", summary)

    def _undo_steps(self, data: dict[str, Any]) -> tuple[st.Step, ...]:
        vms = tuple(st.RecoveredVm.from_json(v) for v in data["vms"])
        restart = [
            s["vm"]
            for s in data["steps"]
            if s["kind"] == st.STOP_SOURCE and s["done"] and s["result"].get("was") == "poweredOn"
        ]
        return st.undo_steps(vms, restart)

    def _active(self, mode: str, verb: str) -> dict[str, Any]:
        data = self.log.load()
        if data is None or data["operation"] != mode:
            what = "test failover" if mode == st.MODE_TEST else "live failover"
            raise OperationStateError(
                f"no {what} of plan {self.plan.name!r} is active, nothing to {verb}",
                hint="`cdp failover status --plan FILE` shows what is active",
            )
        return data

    # ---------------------------------------------------------------- the engine

    async def _execute(self, entries: list[dict[str, Any]]) -> None:
        """Run every step not done, phase by phase; steps of a phase run at once."""
        data = self.log.data
        assert data is not None
        actions = Actions(
            self.plan,
            data,
            self.vcenter,
            self.replication,
            self.protected if self.plan.protected_site else None,
            lambda text: self.report(Event("warn", text)),
        )
        todo = sl.pending(entries)
        counter = [len(entries) - len(todo), len(entries)]
        for phase in sorted({e["phase"] for e in todo}):
            batch = [e for e in todo if e["phase"] == phase]
            kinds = ", ".join(dict.fromkeys(e["kind"] for e in batch))
            self.report(Event("phase", f"phase {phase}: {kinds} ({len(batch)} step(s))"))
            limit = asyncio.Semaphore(self.plan.recovery.parallel)
            results = await asyncio.gather(
                *(self._step(actions, e, limit, counter) for e in batch), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    async def _step(
        self, actions: Actions, entry: dict[str, Any], limit: asyncio.Semaphore, counter: list[int]
    ) -> None:
        async with limit:
            text = st.Step(
                **{k: entry[k] for k in ("id", "kind", "phase", "vm", "group", "args")}
            ).describe()
            started, t0 = time.time(), time.monotonic()
            try:
                result = await actions.run(entry)
            except CdpError as exc:
                self.report(Event("step-failed", f"{text}: {exc}", counter[0] + 1, counter[1]))
                async with self._save_lock:
                    entry["error"] = str(exc)  # shown by `status`; cleared when the step is done
                    await asyncio.to_thread(self.log.save)
                raise
            seconds = time.monotonic() - t0
            async with self._save_lock:
                sl.record_done(entry, result, started, seconds)
                await asyncio.to_thread(self.log.save)
                counter[0] += 1
                self.report(Event("step", text, counter[0], counter[1], seconds))

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

    def _last_finished(self) -> str:
        history = os.path.join(self.log.folder, "history")
        names = sorted(os.listdir(history)) if os.path.isdir(history) else []
        return names[-1] if names else ""


# ---------------------------------------------------------------- summaries


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The operator's view of an operation's log."""
    steps = data["steps"]
    out = {
        "plan": data["plan"],
        "operation": data["operation"],
        "planned": data["planned"],
        "status": data["status"],
        "points": data["points"],
        "rto_s": data.get("rto_s"),
        "rto_estimate_s": data.get("rto_estimate_s"),
        "bytes_to_prepare": data.get("bytes_to_prepare"),
        "steps_done": sum(1 for s in steps if s["done"]),
        "steps": len(steps),
        "time_by_step": time_by_kind(steps, data.get("checks_s", 0.0)),
        "vms": [_vm_summary(v, steps) for v in data["vms"]],
    }
    if data["status"] == sl.AWAITING_COMMIT:
        out["commit_deadline_unix"] = data.get("commit_deadline_unix")
        out["commit_default"] = data.get("commit_default")
    if data.get("undo"):
        u = data["undo"]["steps"]
        out["undo"] = {
            "operation": data["undo"]["operation"],
            "steps": len(u),
            "steps_done": sum(1 for s in u if s["done"]),
        }
    return out


def time_by_kind(steps: list[dict[str, Any]], checks_s: float) -> dict[str, float]:
    """Wall-clock seconds spent in each step kind (overlapping steps counted once)."""
    out: dict[str, float] = {"checks": round(checks_s, 3)}
    for kind in dict.fromkeys(s["kind"] for s in steps):
        spans = sorted(
            (s["started_unix"], s["finished_unix"])
            for s in steps
            if s["kind"] == kind and s["done"]
        )
        if spans:
            out[kind] = round(_union_s(spans), 3)
    return out


def _union_s(spans: list[tuple[float, float]]) -> float:
    """Length of the union of sorted intervals."""
    total, (start, end) = 0.0, spans[0]
    for s, e in spans[1:]:
        if s > end:
            total, start = total + end - start, s
        end = max(end, e)
    return total + end - start


def _vm_summary(v: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    reg = next((s for s in steps if s["id"] == f"{st.REGISTER}:{v['vm']}" and s["done"]), None)
    return {
        "vm": v["vm"],
        "name": v["name"],
        "host": v["host"],
        "vmx_path": v["vmx_path"],
        "boot_group": v["boot_group"],
        "ref": reg["result"]["ref"] if reg else "",
    }


def _last_power_on(data: dict[str, Any]) -> float:
    ends = [s["finished_unix"] for s in data["steps"] if s["kind"] == st.POWER_ON and s["done"]]
    return max(ends) if ends else time.time()


def _what(data: dict[str, Any]) -> str:
    if data.get("operation") == st.MODE_TEST:
        return "test failover"
    return "planned failover" if data.get("planned") else "live failover"
