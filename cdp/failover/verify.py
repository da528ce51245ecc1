"""Restore-point verification: a test failover, checks on every recovered VM, cleanup, record.

:class:`Verifier` drives the plan's :class:`~cdp.failover.orchestrator.Orchestrator`; it
adds no step of its own. One run:

1. cleans up a test failover an earlier ``verify`` left behind (killed mid-run: its log
   says ``origin: verify``), then runs the readiness checks and a test failover at the
   point through :meth:`Orchestrator.failover` (``origin="verify"``);
2. checks each recovered VM: vCenter reports it ``poweredOn`` (within the plan's
   ``recovery.power_on_timeout_s``, which the power-on step enforces), each disk's test
   image is a valid VMDK of the protected disk's size (:func:`probes.check_disk`), and the
   plan's hook for it exits 0 (:func:`probes.run_hook`);
3. always runs ``stop-test`` (:meth:`Orchestrator.stop_test`), also after a failed check
   or failover, and after :meth:`Verifier.interrupt`;
4. writes one JSON record, ``<state_dir>/<plan>/verifications/<UTC start>.json``.

``<state_dir>/<plan>/verify.lock`` is held for the whole run, so a second ``verify``
never cleans up the test of one still running. A negative result is data, not an
exception: the record says ``passed``/``failed``/``interrupted``; an error that stopped
the run (vCenter unreachable, bad ``--at``) is kept beside it for the exit code. This
module never reads the environment or flags: the CLI passes ``qemu-img`` and the hook's
base environment.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from cdp.errors import CdpError
from cdp.failover import steps as st
from cdp.failover.orchestrator import Event, Orchestrator
from cdp.failover.plan import VerifyHook
from cdp.failover.probes import check_disk, run_hook
from cdp.failover.records import Operation
from cdp.failover.summary import point_json
from cdp.failover.vcenter import POWERED_ON
from cdp.fsutil import write_atomic

ORIGIN = "verify"
"""The ``origin`` a verification's test failover carries in the step log."""
LOCK_FILE = "verify.lock"
RECORDS_DIR = "verifications"
RECORD_VERSION = 1
PASSED, FAILED, INTERRUPTED = "passed", "failed", "interrupted"
SKIPPED = "skipped"
"""A live failover of the plan is active: there is nothing to verify against (not a failure)."""
ENV_PREFIX = "CDP_VERIFY_"
CLEANUP_HINT = "run `cdp failover stop-test --plan FILE` (or verify again) to finish the cleanup"


@dataclass(frozen=True)
class Outcome:
    """A finished run: its record (as written) and the error that cut it short, if any."""

    record: dict[str, Any]
    path: str
    error: CdpError | None

    @property
    def result(self) -> str:
        """``passed``, ``failed`` or ``interrupted``."""
        return str(self.record["result"])


class Verifier:
    """Verifications of one plan's restore points."""

    def __init__(self, orch: Orchestrator, qemu_img: str | None, base_env: dict[str, str]) -> None:
        self.orch = orch
        self.plan = orch.plan
        self.qemu_img = qemu_img
        self.base_env = base_env
        self.stop = asyncio.Event()
        self.folder = records_dir(orch.log.folder)

    def interrupt(self) -> None:
        """Stop checking as soon as possible (hooks are killed); cleanup still runs."""
        self.stop.set()

    def describe(self, op: st.OperationPlan) -> list[dict[str, Any]]:
        """What would be checked per VM (for --dry-run)."""
        return [
            {
                "vm": v.vm,
                "name": v.name,
                "disks": [
                    {"disk": n, "capacity_bytes": d.capacity_bytes, "path": d.path}
                    for n, d in enumerate(v.hardware.disks)
                ],
                "qemu_img": self.qemu_img or "not installed",
                "hook": _hook_json(self.hook_for(v.vm)),
            }
            for v in op.vms
        ]

    def hook_for(self, vm: str) -> VerifyHook | None:
        """The VM's own hook, else the plan-wide one, else none."""
        own = next((s.verify for _, s in self.plan.vms() if s.name == vm), None)
        return own or self.plan.verify

    # ---------------------------------------------------------------- the run

    async def run(self, at: str = "latest") -> Outcome:
        """Verify the restore point ``at``; always clean up; record the outcome."""
        with self.orch.log.locked(LOCK_FILE):
            return await self._run(at)

    async def _run(self, at: str) -> Outcome:
        t0 = time.monotonic()
        rec: dict[str, Any] = {"version": RECORD_VERSION, "plan": self.plan.name, "at": at}
        rec["started_unix"] = round(time.time(), 3)
        active = self.orch.log.load_op()
        if active is not None and active.operation == st.MODE_LIVE:
            rec.update(
                result=SKIPPED,
                detail=f"skipped: failover active ({active.what()}, {active.status})",
                vms=[],
                seconds=round(time.monotonic() - t0, 3),
            )
            self.orch.report(Event("warn", rec["detail"]))
            return Outcome(rec, await asyncio.to_thread(self._write, rec), None)
        error: Exception | None = None
        try:
            await self._forward(rec, at, t0)
        except asyncio.CancelledError:  # a second interrupt: stop at once, record that
            rec.setdefault("vms", self._unverified(None))
            rec["cleanup"] = {"status": "not run", "hint": CLEANUP_HINT}
            rec.update(result=INTERRUPTED, seconds=round(time.monotonic() - t0, 3))
            self._write(rec)
            raise
        except Exception as exc:  # recorded; cleanup runs; a non-cdp error is raised after
            error = exc
            rec["error"] = str(exc)
            self.orch.report(Event("warn", f"verification stopped: {exc}"))
        rec.setdefault("vms", self._unverified(error))
        rec["points"] = _points(self.orch.log.load_op())
        rec["cleanup"], cleanup_error = await self._cleanup()
        error = error or cleanup_error
        rec["result"] = self._result(rec, error)
        rec["seconds"] = round(time.monotonic() - t0, 3)
        path = await asyncio.to_thread(self._write, rec)
        if error is not None and not isinstance(error, CdpError):
            raise error
        return Outcome(rec, path, error)

    async def _forward(self, rec: dict[str, Any], at: str, t0: float) -> None:
        """Leftover cleanup, test failover, then the checks (filling ``rec``)."""
        rec["leftover"] = await self._clean_leftover()
        summary = await self.orch.failover(st.MODE_TEST, at, origin=ORIGIN)
        rec["rto_s"], rec["time_by_step"] = summary["rto_s"], summary["time_by_step"]
        rec["failover_s"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        rec["vms"] = await self._verify_all()
        rec["verify_s"] = round(time.monotonic() - t1, 3)

    async def _clean_leftover(self) -> dict[str, Any] | None:
        """Finish the cleanup of a test failover an interrupted ``verify`` left behind."""
        op = self.orch.log.load_op()
        if op is None or op.origin != ORIGIN:
            return None  # nothing, or an operator's operation: failover() refuses that
        self.orch.report(
            Event("warn", f"cleaning up the test failover of an interrupted verify ({op.status})")
        )
        done = await self.orch.stop_test()
        return {"status": op.status, "archived": done["archived"]}

    async def _verify_all(self) -> list[dict[str, Any]]:
        data = self.orch.log.op
        assert data is not None
        vms = data.vms
        limit = asyncio.Semaphore(self.plan.recovery.parallel)

        async def one(vm: st.RecoveredVm) -> dict[str, Any]:
            async with limit:
                return await self._verify_vm(vm, data)

        return list(await asyncio.gather(*(one(v) for v in vms)))

    async def _verify_vm(self, vm: st.RecoveredVm, data: Operation) -> dict[str, Any]:
        out = _vm_head(vm)
        if self.stop.is_set():
            return {**out, "passed": False, "detail": "not verified: interrupted"}
        self.orch.report(Event("info", f"verifying {vm.name}"))
        power = await self._power(vm, data)
        disks = [
            asdict(
                await asyncio.to_thread(
                    check_disk,
                    os.path.join(vm.folder, st.disk_file(vm.vm, st.MODE_TEST, n)),
                    n,
                    d.capacity_bytes,
                    self.qemu_img,
                )
            )
            for n, d in enumerate(vm.hardware.disks)
        ]
        hook = self.hook_for(vm.vm)
        ran = None
        if hook is not None:
            result = await run_hook(hook, self._env(vm, data, power), self._cwd(), self.stop)
            ran = {**asdict(result), "command": list(result.command)}
        passed = power["passed"] and all(d["passed"] for d in disks)
        passed = passed and (ran is None or ran["passed"])
        return {**out, "passed": passed, "power": power, "disks": disks, "hook": ran}

    async def _power(self, vm: st.RecoveredVm, data: Operation) -> dict[str, Any]:
        """Passed: the power-on step finished within the timeout and vCenter says poweredOn."""
        step = data.step(f"{st.POWER_ON}:{vm.vm}")
        seconds = step.seconds if step and step.done else None
        vc = await asyncio.to_thread(self.orch.vcenter)
        found = await asyncio.to_thread(vc.find_vm, data.datacenter, vm.vmx_path)
        state = found.power_state if found else "not registered"
        timeout = self.plan.recovery.power_on_timeout_s
        in_time = seconds is not None and seconds <= timeout
        return {
            "passed": in_time and state == POWERED_ON,
            "state": state,
            "ref": found.ref if found else "",
            "seconds": seconds,
            "timeout_s": timeout,
        }

    def _env(self, vm: st.RecoveredVm, data: Operation, power: dict[str, Any]) -> dict[str, str]:
        point = data.points[vm.group]
        assert point is not None
        facts = {
            "PLAN": self.plan.name,
            "VM": vm.vm,
            "NAME": vm.name,
            "GROUP": vm.group,
            "HOST": vm.host,
            "REF": power["ref"],
            "VMX": vm.vmx_path,
            "VMX_FILE": os.path.join(vm.folder, f"{vm.name}.vmx"),
            "FOLDER": vm.folder,
            "NETWORKS": ",".join(n.network for n in vm.hardware.nics),
            "SEQ": str(point.seq),
            "TIME": _iso(point.time_ns),
            "TIME_NS": str(point.time_ns),
            "POINT_KIND": point.kind,
            "POINT_LABEL": point.label,
        }
        return {**self.base_env, **{ENV_PREFIX + k: v for k, v in facts.items()}}

    def _cwd(self) -> str:
        return os.path.dirname(self.plan.source_path)

    def _unverified(self, error: Exception | None) -> list[dict[str, Any]]:
        """Per-VM rows when the test failover did not finish: how far each VM got."""
        data = self.orch.log.op
        why = f"not verified: {error}" if error else "not verified: interrupted"
        if data is None or data.origin != ORIGIN:
            return [
                {"vm": vm.name, "group": g, "passed": False, "detail": why}
                for g, vm in self.plan.vms()
            ]
        rows = []
        for v in data.vms:
            step = data.step(f"{st.POWER_ON}:{v.vm}")
            power = "poweredOn" if step and step.done else (step and step.error) or "not reached"
            rows.append(
                {
                    **_vm_head(v),
                    "passed": False,
                    "detail": why,
                    "power_on": power,
                }
            )
        return rows

    async def _cleanup(self) -> tuple[dict[str, Any], CdpError | None]:
        """stop-test when this run's test failover is active; its record and error."""
        t0 = time.monotonic()
        try:
            op = self.orch.log.load_op()
            if op is None or op.origin != ORIGIN:
                return {"status": "nothing to clean up"}, None
            done = await self.orch.stop_test()
        except CdpError as exc:
            self.orch.report(Event("warn", f"cleanup failed: {exc}"))
            return {"status": "failed", "error": str(exc), "hint": CLEANUP_HINT}, exc
        seconds = round(time.monotonic() - t0, 3)
        return {"status": "done", "archived": done["archived"], "seconds": seconds}, None

    def _result(self, rec: dict[str, Any], error: Exception | None) -> str:
        if self.stop.is_set():
            return INTERRUPTED
        ok = error is None and rec["vms"] and all(v["passed"] for v in rec["vms"])
        return PASSED if ok and rec["cleanup"]["status"] == "done" else FAILED

    def _write(self, rec: dict[str, Any]) -> str:
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, record_name(rec["started_unix"]))
        write_atomic(path, json.dumps(rec, indent=1, sort_keys=True).encode())
        return path


# ---------------------------------------------------------------- records


def records_dir(plan_folder: str) -> str:
    """Where a plan's verification records live: ``<state_dir>/<plan>/verifications``."""
    return os.path.join(plan_folder, RECORDS_DIR)


def record_name(started_unix: float) -> str:
    """``20260101T120000.123Z.json``: sorting by name sorts by start time."""
    ms = int(round(started_unix * 1000)) % 1000
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_unix)) + f".{ms:03d}Z.json"


def history(plan_folder: str) -> list[dict[str, Any]]:
    """One summary per recorded run, oldest first; an unreadable file says so."""
    folder = records_dir(plan_folder)
    names = (
        sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        if os.path.isdir(folder)
        else []
    )
    return [_history_row(os.path.join(folder, n)) for n in names]


def record_names(plan_folder: str) -> list[str]:
    """Paths of the plan's verification records, oldest first."""
    folder = records_dir(plan_folder)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".json")]


def last_started(plan_folder: str) -> float | None:
    """Unix time the newest recorded verification started (None: never)."""
    names = record_names(plan_folder)
    if not names:
        return None
    stamp = os.path.basename(names[-1]).removesuffix("Z.json")  # 20260101T120000.123
    whole, _, ms = stamp.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y%m%dT%H%M%S")) + int(ms or 0) / 1000


def prune_records(plan_folder: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` records; return the paths deleted."""
    gone = record_names(plan_folder)[:-keep] if keep > 0 else []
    for path in gone:
        os.unlink(path)
    return gone


def _history_row(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as exc:
        return {"file": path, "result": "unreadable", "error": str(exc)}
    vms = rec.get("vms", [])
    return {
        "file": path,
        "started": _iso(int(rec["started_unix"] * 1e9)),
        "result": rec["result"],
        "points": {g: p["seq"] for g, p in rec.get("points", {}).items() if p},
        "vms_passed": sum(1 for v in vms if v["passed"]),
        "vms": len(vms),
        "seconds": rec.get("seconds"),
        "error": rec.get("error", ""),
    }


def _points(data: Operation | None) -> dict[str, Any]:
    if data is None or data.origin != ORIGIN:
        return {}
    return {g: {**point_json(p), "time": _iso(p.time_ns)} for g, p in data.points.items() if p}


def _vm_head(vm: st.RecoveredVm) -> dict[str, Any]:
    return {
        "vm": vm.vm,
        "group": vm.group,
        "name": vm.name,
        "host": vm.host,
        "vmx_path": vm.vmx_path,
    }


def _hook_json(hook: VerifyHook | None) -> dict[str, Any] | None:
    return {"command": list(hook.command), "timeout_s": hook.timeout_s} if hook else None


def _iso(time_ns: int) -> str:
    t = time_ns / 1e9
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
