"""Failback: protect the recovered VMs back toward the original site, then fail over there.

After a live failover the recovered VMs run at the recovery site from ``<vm>-dr/`` on the
recovery datastore. :class:`Failback` brings them home in one resumable sequence:

1. ``commit-failover`` (only when the failover still awaits its decision): keeping the
   recovered VMs' writes is what a commit means;
2. ``seed``: the original VMs' disks (``failback.seed_path``) are copied into the
   original-site target's replica folder before the reverse group exists there, so the
   target's base already holds the pre-failover state;
3. ``pre-sync``: a reverse source (:mod:`cdp.failover.reverse`, in this process; a real
   product runs it on the DR host) streams the ``<vm>-dr`` disks (after a copy-free
   failover read through their chains: what the guests see, never the delta files) to
   the original-site target as group ``<group><suffix>`` with the ordinary journal
   protocol, starting with ``ProtectionConfig(initial_sync=True)``: every region is
   compared by hash with the target's state and only differing regions travel. The
   recovered VMs still run;
4. ``power-off-dr``: the recovered VMs are powered off at the recovery vCenter;
5. ``final-sync``: the same hash-compared pass again over the now quiet disks — it sends
   what the guests wrote during the first pass, and proves the target holds every byte;
6. ``bookmark``: ``cdp-failback-<plan>-<start>`` at the newest durable point;
7. ``retire-original``: the stale original VMs (same names) are unregistered at the
   original site (never a running one: that would be two live copies);
8. ``failover-back``: the existing live-failover orchestrator, run against the original
   site (its vCenter, its target, the plan's ``failback.site``), at the bookmark, then
   committed — the VMs come up at the original site from the synced disks;
9. ``unregister-dr``: the recovered VMs are unregistered at the recovery site (their
   ``<vm>-dr/`` folders are kept as the last copy; delete them once satisfied);
10. ``protect-again``: each group is marked protecting again at the recovery-site
    target. The target records when it failed back and asks the returning source for a
    full hash-compared resync (production's disks changed outside its journal); that
    source is the original site's, started with the group's epoch (the summary says
    which). Until it has resynced, a live failover to the older points is refused
    (:func:`cdp.failover.fencing.guard_failed_back`).

The recovery-site group's lifecycle follows the failback: reverse protecting from the
first reverse sync, failing back from the first recovered VM's power-off, protecting
again at the end.

The log is ``<state_dir>/<plan>/failback/operation.json`` (the step log format of
:mod:`cdp.failover.steplog`, read and written as the typed
:class:`cdp.failover.failback_record.FailbackOperation`), saved after every step;
running the command again after a crash continues with the first step not done. Each
step is safe to run again: the syncs compare everything by hash again, the bookmark is
found again by name, the failover back has its own step log
(``<state_dir>/<plan>-failback/``) and resumes, registrations are adopted, unregistering
what is gone is skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cdp import lifecycle as lc
from cdp import naming
from cdp.errors import BookmarkExistsError, NotFoundError, PreconditionError
from cdp.failover import steplog as sl
from cdp.failover import steps as st
from cdp.failover.errors import OperationStateError
from cdp.failover.failback_record import FailbackLog, FailbackOperation, read_record
from cdp.failover.orchestrator import Event, Orchestrator, Reporter
from cdp.failover.plan import (
    DISKS_COPY,
    CommitPolicy,
    FailbackSettings,
    GroupSettings,
    NetworkMapping,
    Plan,
    ProtectedSite,
)
from cdp.failover.records import Operation, StepEntry
from cdp.failover.replication import Replication
from cdp.failover.reverse import ReverseTransport, copy_sparse, reverse_sync
from cdp.failover.survey import DEFAULT_RPO_PROBE_S
from cdp.failover.vcenter import VCenter, VmFacts
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.restore.spec import format_ns

LOG_NAME = "failback"
"""The failback log's folder under ``<state_dir>/<plan>/``."""
OPERATION = "failback"
FAILED_BACK = "failed-back"

# step kinds, in the order they run (the phase is the index)
COMMIT_FAILOVER, SEED, PRE_SYNC, POWER_OFF_DR = (
    "commit-failover",
    "seed",
    "pre-sync",
    "power-off-dr",
)
FINAL_SYNC, BOOKMARK, RETIRE, FAILOVER_BACK, UNREGISTER_DR, PROTECT_AGAIN = (
    "final-sync",
    "bookmark",
    "retire-original",
    "failover-back",
    "unregister-dr",
    "protect-again",
)
KINDS = (
    COMMIT_FAILOVER,
    SEED,
    PRE_SYNC,
    POWER_OFF_DR,
    FINAL_SYNC,
    BOOKMARK,
    RETIRE,
    FAILOVER_BACK,
    UNREGISTER_DR,
    PROTECT_AGAIN,
)
PER_VM = (SEED, POWER_OFF_DR, RETIRE, UNREGISTER_DR)
PER_GROUP = (PRE_SYNC, FINAL_SYNC, BOOKMARK, PROTECT_AGAIN)


def back_plan(plan: Plan) -> Plan:
    """The plan of the failover back: the original site as the recovery site.

    Its name is ``<plan>-failback`` (its own step log), its target the original-site
    target, its vCenter the protected site's, its groups the reverse groups, and every
    NIC goes back onto the network it had at the original site.
    """
    fb, ps = _settings(plan)
    return dataclasses.replace(
        plan,
        name=f"{plan.name}-failback",
        target_address=fb.target_address,
        target_tls_dir=fb.target_tls_dir,
        vcenter=ps.vcenter,
        # production comes home onto full disks, never onto a chain over the original-site
        # target's replica (that base would stay held for as long as production runs)
        recovery=dataclasses.replace(fb.site, disks=DISKS_COPY),
        networks=tuple(NetworkMapping(m.source, m.source, m.source) for m in plan.networks),
        groups=tuple(GroupSettings(g.name + fb.group_suffix, g.vms) for g in plan.groups),
        commit=CommitPolicy(timeout_s=plan.commit.timeout_s, default_action="commit"),
        protected_site=None,
        failback=None,
    )


def _settings(plan: Plan) -> tuple[FailbackSettings, ProtectedSite]:
    if plan.failback is None or plan.protected_site is None:
        raise PreconditionError(
            f"plan {plan.name!r} has no failback section",
            hint="add failback (target, site, seed_path) and protected_site to the plan",
        )
    return plan.failback, plan.protected_site


class Failback:
    """The failback of one plan's live failover (see the module docstring)."""

    def __init__(
        self,
        orch: Orchestrator,
        transport: ReverseTransport,
        reverse: Replication,
        *,
        report: Reporter | None = None,
        rpo_probe_s: float = DEFAULT_RPO_PROBE_S,
        crash_after: str = "",
    ) -> None:
        self.orch = orch
        self.plan = orch.plan
        self.settings, self.site = _settings(self.plan)
        self.transport = transport
        self.reverse = reverse
        self.report: Reporter = report or (lambda e: None)
        self.log = FailbackLog(self.plan.state_dir, self.plan.name, LOG_NAME)
        self.back = Orchestrator(
            back_plan(self.plan), orch.protected, reverse,
            report=_scoped(self.report, "failover"), rpo_probe_s=rpo_probe_s,
        )  # fmt: skip
        self.crash_after = crash_after
        """Tests: raise SystemExit right after the step with this id was recorded."""

    # ---------------------------------------------------------------- read-only

    def dry_run(self) -> dict[str, Any]:
        """What failback would do; nothing changes (no log, no lock, no folder)."""
        active = self.log.load_rec()
        if active is not None:
            out = summary(active)
            out["dry_run"] = True
            out["resuming"] = True
            return out
        source, failover, archived = self._failover_record()
        vms = failover.vms
        steps = failback_steps(vms, source == "active")
        disks: list[dict[str, Any]] = []
        for v in vms:
            for n, d in enumerate(v.hardware.disks):
                seed = self._seed_path(v.vm, n)
                disks.append(
                    {
                        "vm": v.vm,
                        "disk": n,
                        "capacity_bytes": d.capacity_bytes,
                        "source": self._dr_disk(v, n),
                        "seed": seed,
                        "seed_present": bool(seed) and os.path.isfile(seed),
                    }
                )
        return {
            "plan": self.plan.name,
            "operation": OPERATION,
            "dry_run": True,
            "failover": archived or "active",
            "groups": {g.name: g.name + self.settings.group_suffix for g in self.plan.groups},
            "target": self.settings.target_address,
            "bytes_to_compare": 2 * sum(d["capacity_bytes"] for d in disks),
            "disks": disks,
            "steps": [{**s.to_json(), "text": describe(s)} for s in steps],
        }

    # ---------------------------------------------------------------- run

    async def run(self) -> dict[str, Any]:
        """Start (or resume) the failback; return its summary."""
        with self.log.locked():
            rec = self.log.load_rec()
            if rec is not None and rec.status == FAILED_BACK:
                out = summary(rec)  # finished, then crashed before archiving
                out["archived"] = await asyncio.to_thread(self.log.archive)
                return out
            if rec is None:
                rec = await self._start()
            else:
                done = rec.done_steps()
                self.report(
                    Event("info", f"resuming failback: {done} of {len(rec.steps)} steps done")
                )
                self.log.event(f"resumed ({done} steps done)")
                await self._save()
            await self._execute(rec)
            rec.finished_unix = time.time()
            rec.status = FAILED_BACK
            self.log.event("failed back: the VMs run at the original site")
            await self._save()
            out = summary(rec)
            out["archived"] = await asyncio.to_thread(self.log.archive)
            return out

    async def _start(self) -> FailbackOperation:
        source, failover, archived = self._failover_record()
        now = time.time()
        rec = FailbackOperation(
            plan=self.plan.name,
            operation=OPERATION,
            status=sl.RUNNING,
            started_unix=now,
            failover_log=archived,
            datacenter=failover.datacenter,
            bookmark=f"cdp-failback-{self.plan.name}-{int(now)}",
            groups={g.name: g.name + self.settings.group_suffix for g in self.plan.groups},
            vms=list(failover.vms),
            steps=failback_steps(failover.vms, source == "active"),
        )
        await asyncio.to_thread(self.log.start_rec, rec)
        self.orch.progress.publish(rec)
        self.report(Event("info", f"failback of plan {self.plan.name!r}: {len(rec.vms)} VMs"))
        return rec

    def _failover_record(self) -> tuple[str, Operation, str]:
        """The live failover to fail back: its state, its log and the archived log's path.

        ("active", log, "") while it awaits commit; ("committed", log, path) once archived.
        """
        active = self.orch.log.load_op()
        if active is not None:
            if active.operation == st.MODE_LIVE and active.status == sl.AWAITING_COMMIT:
                return "active", active, ""
            raise OperationStateError(
                f"a {active.operation} operation of plan {self.plan.name!r} is "
                f"{active.status}; failback needs a live failover that is committed "
                "or awaiting commit",
                hint="finish it first (`cdp failover status --plan FILE`)",
            )
        # the newest live failover: a test since (a nightly `verify`) changes nothing
        newest = _newest(os.path.join(self.orch.log.folder, "history"), f"-{st.MODE_LIVE}-")
        if newest is None or not newest.endswith(f"-{st.MODE_LIVE}-{sl.COMMITTED}.json"):
            raise OperationStateError(
                f"plan {self.plan.name!r} has no committed live failover to fail back "
                f"(last finished: {os.path.basename(newest) if newest else 'none'})",
                hint="failback follows `cdp failover run` and `commit`",
            )
        done = _newest(os.path.join(self.log.folder, "history"))
        if done is not None and read_record(done).failover_log == newest:
            raise OperationStateError(
                f"the failover {os.path.basename(newest)} was already failed back",
                hint=f"see {done}",
            )
        return "committed", Operation.from_json(_read(newest)), newest

    # ---------------------------------------------------------------- the engine

    async def _execute(self, rec: FailbackOperation) -> None:
        total = len(rec.steps)
        for entry in rec.pending():
            text = describe(entry)
            started, t0 = time.time(), time.monotonic()
            self.orch.progress.step_started(rec, entry.id)
            try:
                handler: Callable[[StepEntry], Awaitable[dict[str, Any]]] = getattr(
                    self, "_" + entry.kind.replace("-", "_")
                )
                result = await handler(entry)
            except Exception as exc:
                self.orch.progress.step_ended(entry.id)
                index = total - len(rec.pending()) + 1
                self.report(Event("step-failed", f"{text}: {exc}", index, total))
                entry.error = str(exc)
                await self._save()
                raise
            seconds = time.monotonic() - t0
            self.orch.progress.step_ended(entry.id)
            entry.record_done(result, started, seconds)
            await self._save()
            index = total - len(rec.pending())
            self.report(Event("step", text, index, total, seconds))
            if entry.id == self.crash_after:
                raise SystemExit(f"crash injected after {entry.id}")

    async def _save(self) -> None:
        """Durably record the failback's log, then tell the target (in the background)."""
        await asyncio.to_thread(self.log.save)
        self.orch.progress.publish(self.log.rec)

    @property
    def rec(self) -> FailbackOperation:
        """The active failback's record (while it runs)."""
        assert self.log.rec is not None
        return self.log.rec

    def _vm(self, name: str) -> st.RecoveredVm:
        return self.rec.vm(name)

    def _dr_disk(self, vm: st.RecoveredVm, n: int) -> str:
        """The recovered disk's descriptor: flat, or a copy-free chain read through."""
        return os.path.join(vm.folder, st.disk_file(vm.vm, st.MODE_LIVE, n))

    def _seed_path(self, vm: str, n: int) -> str:
        if not self.settings.seed_path:
            return ""
        return os.path.join(self.settings.seed_path, vm, naming.format_disk_extent(vm, n))

    # ---------------------------------------------------------------- steps

    async def _commit_failover(self, step: StepEntry) -> dict[str, Any]:
        active = self.orch.log.load_op()
        if active is not None and active.status == sl.AWAITING_COMMIT:
            out = await self.orch.commit()
            archived = str(out["archived"])
        else:  # committed before a crash: find its archived log
            history = os.path.join(self.orch.log.folder, "history")
            archived = _newest(history, f"-{st.MODE_LIVE}-") or ""
            if not archived.endswith(f"-{sl.COMMITTED}.json"):
                raise OperationStateError("the failover is no longer awaiting commit")
        self.rec.failover_log = archived
        return {"archived": archived}

    async def _seed(self, step: StepEntry) -> dict[str, Any]:
        vm = self._vm(step.vm)
        back_group = step.group + self.settings.group_suffix
        try:
            await self.reverse.group(back_group)
        except NotFoundError:
            pass
        else:  # the target has the group: its base is in use, never overwrite it
            return {"skipped": f"group {back_group} exists at the original-site target"}
        disks = []
        replicas = self.settings.site.datastore.path
        for n in range(len(vm.hardware.disks)):
            src = self._seed_path(vm.vm, n)
            dst = os.path.join(replicas, vm.vm, naming.format_disk_extent(vm.vm, n))
            if os.path.exists(dst):
                disks.append({"disk": n, "seeded": False, "why": "already there"})
            elif not src or not os.path.isfile(src):
                self.report(Event("warn", f"no seed for disk {n} of {vm.vm}: every region travels"))
                disks.append({"disk": n, "seeded": False, "why": f"no file {src or '(no path)'}"})
            else:
                copied = await asyncio.to_thread(copy_sparse, src, dst)
                disks.append({"disk": n, "seeded": True, "bytes": copied})
        return {"disks": disks}

    async def _pre_sync(self, step: StepEntry) -> dict[str, Any]:
        await self._mark(step.group, lc.REVERSE_PROTECTING, "reverse sync to the original site")
        return await self._sync(step.group)

    async def _mark(self, group: str, state: str, what: str) -> None:
        """Record the recovery-site group's lifecycle (the failback's phase)."""
        note = f"failback of plan {self.plan.name}: {what}"
        await self.orch.replication.set_lifecycle(group, state, note=note)

    async def _final_sync(self, step: StepEntry) -> dict[str, Any]:
        return await self._sync(step.group)

    async def _sync(self, group: str) -> dict[str, Any]:
        """One hash-compared pass of every region of the group's recovered disks."""
        vms = [v for v in self.rec.vms if v.group == group]
        spec = GroupSpec(
            group + self.settings.group_suffix,
            tuple(
                VmSpec(
                    v.vm,
                    tuple(
                        DiskSpec(str(n), d.capacity_bytes) for n, d in enumerate(v.hardware.disks)
                    ),
                )
                for v in vms
            ),
        )
        paths = [self._dr_disk(v, n) for v in vms for n in range(len(v.hardware.disks))]
        capacities = [d.capacity_bytes for v in vms for d in v.hardware.disks]
        return await reverse_sync(
            self.transport, spec, paths, capacities, f"failback-{self.plan.name}"
        )

    async def _find_dr(self, step: StepEntry) -> tuple[VCenter, st.RecoveredVm, VmFacts | None]:
        """The step's recovered VM at the recovery vCenter (None: not registered there)."""
        vm = self._vm(step.vm)
        vc = await asyncio.to_thread(self.orch.vcenter)
        found = await asyncio.to_thread(vc.find_vm, self.rec.datacenter, vm.vmx_path)
        return vc, vm, found

    async def _power_off_dr(self, step: StepEntry) -> dict[str, Any]:
        await self._mark(step.group, lc.FAILING_BACK, "the recovered VMs are powered off")
        vc, _, found = await self._find_dr(step)
        if found is None:
            return {"found": False}
        await asyncio.to_thread(vc.power_off, found.ref)
        return {"found": True, "was": found.power_state}

    async def _bookmark(self, step: StepEntry) -> dict[str, Any]:
        back_group = step.group + self.settings.group_suffix
        name = self.rec.bookmark
        try:
            point = await self.reverse.bookmark(back_group, name)
        except BookmarkExistsError:  # placed before a crash: find it again
            first = next(v.vm for v in self.rec.vms if v.group == step.group)
            point = (await self.reverse.image_plan(back_group, first, 0, name)).point
        synced = self.rec.step(f"{FINAL_SYNC}:{step.group}")
        assert synced is not None and synced.result is not None  # the phase before
        if point.seq < synced.result["durable_seq"]:
            raise PreconditionError(f"bookmark {name} at seq {point.seq} is older than the sync")
        return {"bookmark": name, "seq": point.seq, "group": back_group}

    async def _retire_original(self, step: StepEntry) -> dict[str, Any]:
        vc = await asyncio.to_thread(self.orch.protected)
        found = await asyncio.to_thread(vc.find_vm_by_name, self.site.datacenter, step.vm)
        if found is None:
            return {"found": False}
        if found.power_state == "poweredOn":
            raise PreconditionError(
                f"the original VM {step.vm} is running at the original site "
                f"({found.path}): two live copies",
                hint="power it off at the original site (its writes since the failover "
                "are not kept), then run failback again",
            )
        await asyncio.to_thread(vc.unregister, found.ref)
        return {"found": True, "vmx_path": found.path, "was": found.power_state}

    async def _failover_back(self, step: StepEntry) -> dict[str, Any]:
        if self.back.log.load() is None:
            done = _newest(os.path.join(self.back.log.folder, "history"))
            if done is not None and done.endswith(f"-{sl.COMMITTED}.json"):
                record = Operation.from_json(_read(done))
                if record.started_unix >= self.rec.started_unix:
                    return {"archived": done, "rto_s": record.rto_s, "resumed": True}
        result = await self.back.failover(st.MODE_LIVE, self.rec.bookmark)
        committed = await self.back.commit()
        return {
            "archived": committed["archived"],
            "rto_s": result["rto_s"],
            "points": result["points"],
            "vms": [{k: v[k] for k in ("vm", "host", "vmx_path", "ref")} for v in result["vms"]],
        }

    async def _unregister_dr(self, step: StepEntry) -> dict[str, Any]:
        vc, vm, found = await self._find_dr(step)
        if found is None:
            return {"found": False}
        await asyncio.to_thread(vc.power_off, found.ref)
        await asyncio.to_thread(vc.unregister, found.ref)
        return {"found": True, "ref": found.ref, "kept": vm.folder}

    async def _protect_again(self, step: StepEntry) -> dict[str, Any]:
        await self._mark(step.group, lc.PROTECTING, "production runs at the original site")
        facts = await self.orch.replication.group(step.group)
        return {"epoch": facts.epoch, "failed_back": format_ns(facts.failed_back_ns)}


# ---------------------------------------------------------------- steps and summary


def failback_steps(vms: list[st.RecoveredVm], commit_first: bool) -> list[StepEntry]:
    """Every step of a failback, in order (``phase`` is the kind's place in KINDS)."""
    groups = list(dict.fromkeys(v.group for v in vms))
    out: list[StepEntry] = []
    for phase, kind in enumerate(KINDS):
        if kind == COMMIT_FAILOVER and not commit_first:
            continue
        if kind in PER_VM:
            out += [_step(f"{kind}:{v.vm}", kind, phase, v.vm, v.group) for v in vms]
        elif kind in PER_GROUP:
            out += [_step(f"{kind}:{g}", kind, phase, "", g) for g in groups]
        else:
            out.append(_step(kind, kind, phase, "", ""))
    return out


def _step(id_: str, kind: str, phase: int, vm: str, group: str) -> StepEntry:
    return StepEntry(id_, kind, phase, vm, group, {})


def describe(step: StepEntry) -> str:
    """One line for the operator."""
    vm, group = step.vm, step.group
    text: str = {
        COMMIT_FAILOVER: "commit the live failover (the recovered VMs' writes are kept)",
        SEED: f"seed the original-site replica of {vm} with its original disks",
        PRE_SYNC: f"reverse sync of group {group} (hash compare; recovered VMs running)",
        POWER_OFF_DR: f"power off recovered VM {vm} at the recovery site",
        FINAL_SYNC: f"final reverse sync of group {group} (recovered VMs off)",
        BOOKMARK: f"bookmark the final point of group {group} at the original-site target",
        RETIRE: f"unregister the stale original VM {vm} at the original site",
        FAILOVER_BACK: "fail over to the original site at the bookmark, and commit",
        UNREGISTER_DR: f"unregister recovered VM {vm} at the recovery site (files kept)",
        PROTECT_AGAIN: f"mark group {group} protecting again at the recovery-site target "
        "(its original-site source rejoins with the group's epoch and a full resync)",
    }.get(step.kind, step.id)
    return text


def failback_status(plan: Plan) -> dict[str, Any]:
    """The plan's failback for ``cdp failover status``, read from its step log alone.

    The active failback's summary, or ``last``: the newest finished one's file in history
    (None when there was none). Neither vCenter nor a target is called.
    """
    log = FailbackLog(plan.state_dir, plan.name, LOG_NAME)
    rec = log.load_rec()
    if rec is not None:
        return {"active": True, **summary(rec)}
    newest = _newest(os.path.join(log.folder, "history"))
    return {"active": False, "last": os.path.basename(newest) if newest else None}


def summary(rec: FailbackOperation) -> dict[str, Any]:
    """The operator's view of a failback log."""
    sync: dict[str, dict[str, Any]] = {}
    for s in rec.steps:
        if s.kind in (PRE_SYNC, FINAL_SYNC) and s.done:
            sync.setdefault(s.group, {})[s.kind] = s.result or {}
    done = next((s for s in rec.steps if s.kind == FAILOVER_BACK and s.done), None)
    back = (done.result or {}) if done else None
    again = {s.group: s.result or {} for s in rec.steps if s.kind == PROTECT_AGAIN and s.done}
    return {
        "plan": rec.plan,
        "operation": OPERATION,
        "status": rec.status,
        "failover_log": rec.failover_log,
        "bookmark": rec.bookmark,
        "groups": dict(rec.groups),
        "steps_done": rec.done_steps(),
        "steps": len(rec.steps),
        "sync": sync,
        "regions_sent": sum(r.get("regions_sent", 0) for g in sync.values() for r in g.values()),
        "bytes_sent": sum(r.get("bytes_sent", 0) for g in sync.values() for r in g.values()),
        "rto_back_s": back.get("rto_s") if back else None,
        "vms": back.get("vms", []) if back else [],
        "protect_again": again,
        "seconds": round((rec.finished_unix or time.time()) - rec.started_unix, 3),
    }


def _scoped(report: Reporter, scope: str) -> Reporter:
    """The inner operation's events, marked so that they do not mix with the outer count."""
    return lambda e: report(dataclasses.replace(e, scope=scope))


def _newest(history: str, infix: str = "") -> str | None:
    """The newest archived log in ``history`` (whose name holds ``infix``); None if none."""
    names = (
        sorted(n for n in os.listdir(history) if n.endswith(".json") and infix in n)
        if os.path.isdir(history)
        else []
    )
    return os.path.join(history, names[-1]) if names else None


def _read(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
