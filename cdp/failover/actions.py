"""What each step kind does. Every action is safe to run again after a crash.

Each action looks before it acts: ``register`` adopts a VM already registered at its
``.vmx`` path (a crash between RegisterVM and the step log's write), ``reconfigure`` adds
only the devices that are missing, ``power-on`` and ``power-off`` skip a VM already in
that state, ``unregister`` and ``delete`` skip what is already gone, ``export`` rewrites
the image. So running the steps not yet recorded as done, again, converges.

Actions touch only the recovered VMs' own folders (``<vm>-test/``, ``<vm>-dr/``) and VMs
registered at paths inside them; the base replica ``<vm>/`` is only read (its nvram).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from cdp import fsutil
from cdp.errors import BookmarkExistsError, NotFoundError, PreconditionError
from cdp.failover import steps as st
from cdp.failover.boot import BootActions
from cdp.failover.fidelity import vmx_layout
from cdp.failover.plan import DISKS_CHAIN, DISKS_COPY, Plan, ProtectedSite
from cdp.failover.records import Operation, StepEntry
from cdp.failover.replication import STATE_REPLICATING, PointFacts, Replication
from cdp.failover.vcenter import Placement, VCenter, VmFacts
from cdp.fsutil import fsync_dir, write_atomic
from cdp.vmx import format_vmx

DRAIN_POLL_S = 0.1


class Actions(BootActions):
    """The step handlers of one operation, sharing its log data (``op``)."""

    def __init__(
        self,
        plan: Plan,
        op: Operation,
        vcenter: Callable[[], VCenter],
        replication: Replication,
        protected: Callable[[], VCenter] | None,
        warn: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.op = op
        self._vcenter = vcenter
        self.replication = replication
        self._protected = protected
        self.warn = warn
        self.vms = {v.vm: v for v in op.vms}
        self.mode: str = op.operation
        self.datacenter: str = op.datacenter

    async def run(self, step: StepEntry) -> dict[str, Any]:
        """Do one step; return what the log records as its result."""
        handler = getattr(self, "_" + step.kind.replace("-", "_"))
        result: dict[str, Any] = await handler(step)
        return result

    async def _find(self, vm: st.RecoveredVm) -> VmFacts | None:
        vc = await asyncio.to_thread(self._vcenter)
        return await asyncio.to_thread(vc.find_vm, self.datacenter, vm.vmx_path)

    # ---------------------------------------------------------------- forward

    async def _prepare(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        await asyncio.to_thread(_write_vm_folder, vm, self.mode)
        return {"folder": vm.folder}

    async def _export(self, step: StepEntry) -> dict[str, Any]:
        vm, n = self.vms[step.vm], step.args["disk"]
        point = self.op.points[vm.group]
        assert point is not None, f"no restore point for group {vm.group}"
        at = str(point.seq)
        if self.plan.recovery.disks == DISKS_CHAIN:  # copy-free: hold the base, write the tail
            await self.replication.hold_base(vm.group, self._holder(vm), at)
            written = await self.replication.build_chain(vm.group, vm.vm, n, at, vm.folder, vm.name)
            return {"bytes": written, "seq": point.seq, "disks": DISKS_CHAIN}
        out = os.path.join(vm.folder, st.disk_file(vm.vm, self.mode, n))
        written = await self.replication.export(vm.group, vm.vm, n, at, out)
        return {"bytes": written, "seq": point.seq, "disks": DISKS_COPY}

    def _holder(self, vm: st.RecoveredVm) -> str:
        """The name this VM's base hold goes by at the target."""
        return f"failover/{self.mode}/{vm.vm}"

    async def _register(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        vc = await asyncio.to_thread(self._vcenter)
        found = await asyncio.to_thread(vc.find_vm, self.datacenter, vm.vmx_path)
        if found is not None:  # registered by us before a crash: adopt it, never twice
            return {"ref": found.ref, "host": found.host, "adopted": True}
        # A VM of the same name elsewhere was refused by the readiness check; one that
        # appeared since makes vCenter answer DuplicateName (VmAlreadyRegisteredError).
        r = self.plan.recovery
        placement = Placement(self.datacenter, vm.host, r.resource_pool, r.folder)
        made = await asyncio.to_thread(vc.register_vm, vm.vmx_path, vm.name, placement)
        return {"ref": made.ref, "host": made.host, "adopted": False}

    async def _reconfigure(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        ref = await self._ref(vm)
        vc = await asyncio.to_thread(self._vcenter)
        changed = await asyncio.to_thread(vc.reconfigure_vm, ref, vm.hardware)
        return {"changed": changed}

    async def _delay(self, step: StepEntry) -> dict[str, Any]:
        done = [s.finished_unix for s in self.op.steps if s.done and s.finished_unix]
        since = max(done) if done else time.time()
        remaining = since + step.args["delay_s"] - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        return {"waited_s": round(max(remaining, 0.0), 3)}

    async def _power_on(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        ref = await self._ref(vm)
        vc = await asyncio.to_thread(self._vcenter)
        await asyncio.to_thread(vc.power_on, ref, self.plan.recovery.power_on_timeout_s)
        return {"ref": ref}

    async def _ref(self, vm: st.RecoveredVm) -> str:
        found = await self._find(vm)
        if found is None:
            raise NotFoundError(
                f"{vm.name} is no longer registered at {vm.vmx_path}",
                hint="someone unregistered it; roll back (or stop-test) and start again",
            )
        return found.ref

    # ---------------------------------------------------------------- planned failover

    def _site(self) -> tuple[ProtectedSite, Callable[[], VCenter]]:
        site = self.plan.protected_site
        if site is None or self._protected is None:
            raise PreconditionError(
                "a planned failover needs the protected site's vCenter",
                hint="add protected_site to the plan",
            )
        return site, self._protected

    async def _stop_source(self, step: StepEntry) -> dict[str, Any]:
        site, connect = self._site()
        vc = await asyncio.to_thread(connect)
        vm = await asyncio.to_thread(vc.find_vm_by_name, site.datacenter, step.vm)
        if vm is None:
            self.warn(f"source VM {step.vm} not found at the protected site; assuming stopped")
            return {"was": "missing"}
        if site.shutdown == "guest":
            how = await asyncio.to_thread(vc.shutdown, vm.ref, site.shutdown_timeout_s)
        else:
            await asyncio.to_thread(vc.power_off, vm.ref)
            how = "powered off"
        return {"was": vm.power_state, "how": how}

    async def _seal(self, step: StepEntry) -> dict[str, Any]:
        """Ask the group's sources to seal; done once every last write is durable (#6)."""
        site, _ = self._site()
        sealed = await self.replication.seal(step.group, site.seal_timeout_s)
        return {"sealed": sealed}

    async def _drain(self, step: StepEntry) -> dict[str, Any]:
        """A quiet durable seq (operations logged before the seal; timing, not proof)."""
        site, _ = self._site()
        group = step.group
        last, since = -1, time.monotonic()
        deadline = since + site.drain_timeout_s
        while True:
            g = await self.replication.group(group)
            if g.state != STATE_REPLICATING:
                raise PreconditionError(
                    f"group {group!r} is {g.state}: its source is not connected, so cdp cannot "
                    "prove every write reached the target",
                    hint="reconnect the source, or fail over without --planned (newest point)",
                )
            if g.durable_seq != last:
                last, since = g.durable_seq, time.monotonic()
            elif time.monotonic() - since >= site.drain_quiet_s:
                return {"durable_seq": last}
            if time.monotonic() > deadline:
                raise PreconditionError(
                    f"group {group!r} still receiving writes after {site.drain_timeout_s:g} s",
                    hint="make sure the source VMs are stopped; raise drain_timeout_s",
                )
            await asyncio.sleep(DRAIN_POLL_S)

    async def _bookmark(self, step: StepEntry) -> dict[str, Any]:
        """One bookmark across the plan's groups, at one instant of the target (#12).

        A log written before plan-wide bookmarks has one such step per group (``group``).
        """
        groups: list[str] = list(step.args.get("groups") or [step.group])
        name = f"cdp-planned-{self.plan.name}-{int(self.op.started_unix)}"
        try:
            points, taken_ns = await self.replication.plan_bookmark(groups, name)
        except BookmarkExistsError:  # placed before a crash: find it again
            points, taken_ns = {g: await self._bookmarked(g, name) for g in groups}, 0
        for group in groups:
            self._check_final(group, name, points[group])
        self.op.points.update(points)
        result = {g: dataclasses.asdict(p) for g, p in points.items()}
        if step.group:  # the older per-group step records its one point
            return {"bookmark": name, "point": result[step.group]}
        return {"bookmark": name, "taken_unix_ns": taken_ns, "points": result}

    def _check_final(self, group: str, name: str, point: PointFacts) -> None:
        """The bookmark must be the sealed seq: no write before it missing, none after it."""
        sealed = self.op.step(f"{st.SEAL}:{group}")
        if sealed is None:  # an operation logged before the seal: its drain step
            drained = self.op.step(f"{st.DRAIN}:{group}")
            assert drained is not None and drained.result is not None
            if point.seq < drained.result["durable_seq"]:
                raise PreconditionError(
                    f"bookmark {name} at seq {point.seq} of group {group!r} is older than the drain"
                )
            return
        assert sealed.result is not None
        seqs = sealed.result["sealed"]
        if "" in seqs and point.seq != seqs[""]:  # one source (members: markers, not seqs)
            raise PreconditionError(
                f"bookmark {name} at seq {point.seq} of group {group!r} is not the seal's seq "
                f"{seqs['']}: the source wrote after it sealed (e.g. the target restarted "
                "and lifted the seal)",
                hint="roll back (the source VMs are powered on again) and run the planned "
                "failover again",
            )

    async def _bookmarked(self, group: str, name: str) -> PointFacts:
        first = next(v for v in self.vms.values() if v.group == group)
        return (await self.replication.image_plan(group, first.vm, 0, name)).point

    # ---------------------------------------------------------------- undo

    async def _power_off(self, step: StepEntry) -> dict[str, Any]:
        found = await self._find(self.vms[step.vm])
        if found is None:
            return {"found": False}
        vc = await asyncio.to_thread(self._vcenter)
        await asyncio.to_thread(vc.power_off, found.ref)
        return {"found": True, "was": found.power_state}

    async def _unregister(self, step: StepEntry) -> dict[str, Any]:
        found = await self._find(self.vms[step.vm])
        if found is None:
            return {"found": False}
        vc = await asyncio.to_thread(self._vcenter)
        await asyncio.to_thread(vc.unregister, found.ref)
        return {"found": True, "ref": found.ref}

    async def _delete(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        if step.args.get("keep"):  # it holds data written since the failover: leave it
            return {"deleted": False, "kept": vm.folder}  # its chain still needs the hold
        deleted = await asyncio.to_thread(_delete_folder, vm, self.mode)
        released = await self.replication.release_base(vm.group, self._holder(vm))
        return {"deleted": deleted, "released": released}

    async def _restart_source(self, step: StepEntry) -> dict[str, Any]:
        site, connect = self._site()
        vc = await asyncio.to_thread(connect)
        vm = await asyncio.to_thread(vc.find_vm_by_name, site.datacenter, step.vm)
        if vm is None:
            self.warn(f"source VM {step.vm} not found at the protected site; not restarted")
            return {"found": False}
        await asyncio.to_thread(vc.power_on, vm.ref, self.plan.recovery.power_on_timeout_s)
        return {"found": True}


def _write_vm_folder(vm: st.RecoveredVm, mode: str) -> None:
    """The .vmx, .nvram (the replica's, if any) and vmware.log of a recovered VM."""
    fsutil.make_dirs(vm.folder)
    disks = [st.disk_file(vm.vm, mode, n) for n in range(len(vm.hardware.disks))]
    hw = vm.hardware
    vmx = format_vmx(vm.name, disks, hw.memory_mb, hw.cpus, vmx_layout(hw, disks))
    write_atomic(os.path.join(vm.folder, f"{vm.name}.vmx"), vmx.encode())
    base_nvram = os.path.join(os.path.dirname(vm.folder), vm.vm, f"{vm.vm}.nvram")
    try:
        with open(base_nvram, "rb") as f:
            nvram = f.read()
    except FileNotFoundError:
        nvram = b""
    write_atomic(os.path.join(vm.folder, f"{vm.name}.nvram"), nvram)
    log = os.path.join(vm.folder, "vmware.log")
    if not os.path.exists(log):
        write_atomic(log, b"")


def _delete_folder(vm: st.RecoveredVm, mode: str) -> bool:
    """Remove a recovered VM's folder; refuse anything but ``<vm>-test``/``<vm>-dr``."""
    if os.path.basename(vm.folder) != st.folder_name(vm.vm, mode):
        raise PreconditionError(f"refusing to delete {vm.folder}: not a recovered VM's folder")
    if not os.path.isdir(vm.folder):
        return False
    shutil.rmtree(vm.folder)
    fsync_dir(os.path.dirname(vm.folder))
    return True
