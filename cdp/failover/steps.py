"""The pure plan of a failover operation: names, placement, steps, bytes, RTO estimate.

Nothing here does I/O: it turns a :class:`~cdp.failover.plan.Plan` and gathered facts
into an :class:`OperationPlan`, which ``--dry-run`` prints and the orchestrator executes
step by step. Steps are grouped in phases: the steps of one phase are independent of
each other and may run at once; phases run in order.

Recovered VMs live in folders of their own on the recovery datastore, next to the base
replica folder ``<vm>/`` that replication owns and failover never touches:
``<vm>-test/`` for a test failover, ``<vm>-dr/`` for a live one. Every file in such a
folder is named after the VM's registration name (``<vm>-test`` or ``<vm>``), which is
also what vcsim needs (it opens ``<registration name>.nvram``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from cdp.failover import fidelity, reip
from cdp.failover.hardware import VmProfile
from cdp.failover.plan import DISKS_CHAIN, DISKS_COPY, Plan, VmSettings
from cdp.failover.replication import GroupFacts, PointFacts
from cdp.failover.vcenter import DiskAttach, Hardware, HostFacts, NicAttach

MODE_TEST = "test"
MODE_LIVE = "live"
FOLDER_SUFFIX = {MODE_TEST: "-test", MODE_LIVE: "-dr"}
"""Suffix of the recovered VM's folder per mode; the base replica folder has none."""
UNDO_STOP_TEST = "stop-test"
UNDO_ROLLBACK = "rollback"

# step kinds
STOP_SOURCE, DRAIN, BOOKMARK, SEAL = "stop-source", "drain", "bookmark", "seal"
PREPARE, EXPORT, REGISTER, RECONFIGURE = "prepare", "export", "register", "reconfigure"
DELAY, POWER_ON = "delay", "power-on"
CUSTOMIZE, WAIT_TOOLS, POST_POWER_ON = "customize", "wait-tools", "post-power-on"
POWER_OFF, UNREGISTER, DELETE, RESTART_SOURCE = (
    "power-off",
    "unregister",
    "delete",
    "restart-source",
)


# ---------------------------------------------------------------- names


def registration_name(vm: str, mode: str) -> str:
    """The name a recovered VM is registered under: ``<vm>-test`` for tests, else ``<vm>``."""
    return f"{vm}-test" if mode == MODE_TEST else vm


def folder_name(vm: str, mode: str) -> str:
    """The recovered VM's folder on the datastore (never the replica folder ``<vm>``)."""
    return vm + FOLDER_SUFFIX[mode]


def disk_file(vm: str, mode: str, n: int) -> str:
    """File name of the n-th disk's descriptor inside the recovered VM's folder."""
    return f"{registration_name(vm, mode)}_{n}.vmdk"


def vmx_path(datastore: str, vm: str, mode: str) -> str:
    """Datastore path of the recovered VM's .vmx, ``[ds] <vm>-dr/<vm>.vmx``."""
    return f"[{datastore}] {folder_name(vm, mode)}/{registration_name(vm, mode)}.vmx"


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Step:
    """One recorded unit of work; ``id`` is unique within an operation."""

    id: str
    kind: str
    phase: int
    vm: str = ""
    group: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the operator."""
        what = {
            PREPARE: f"write {self.args.get('name')}.vmx/.nvram/vmware.log",
            EXPORT: f"export disk {self.args.get('disk')} of {self.vm}",
            RECONFIGURE: f"reconfigure {self.args.get('name')} (CPU, memory, disks, NICs)",
            REGISTER: f"register {self.args.get('name')} on {self.args.get('host')}",
            DELAY: f"wait {self.args.get('delay_s', 0):g} s before boot group "
            f"{self.args.get('boot_group')!r}",
            POWER_ON: f"power on {self.args.get('name')} (boot group "
            f"{self.args.get('boot_group')!r})",
            DRAIN: f"wait until group {self.group} is drained",
            SEAL: f"seal group {self.group}: its source stops writing, its last write durable",
            POWER_OFF: f"power off {self.args.get('name')}",
            DELETE: f"keep folder {_base(self.args.get('folder'))}/ (data written since the "
            "failover)"
            if self.args.get("keep")
            else f"delete folder {_base(self.args.get('folder'))}/",
            STOP_SOURCE: f"stop source VM {self.vm} at the protected site",
            RESTART_SOURCE: f"power on source VM {self.vm} at the protected site",
            BOOKMARK: f"bookmark the final point of group {self.group}"
            if self.group
            else f"bookmark the final point of groups {', '.join(self.args.get('groups', []))} "
            "at one instant",
            CUSTOMIZE: f"customize the guest network of {self.args.get('name')} (re-IP)",
            WAIT_TOOLS: f"wait up to {self.args.get('timeout_s', 0):g} s for VMware Tools "
            f"in {self.args.get('name')}",
            POST_POWER_ON: f"run the post-power-on command for {self.args.get('name')}",
        }.get(self.kind)
        return what or f"{self.kind} {self.args.get('name') or self.vm or self.group}"


def _base(path: Any) -> str:
    return str(path or "").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RecoveredVm:
    """What one protected VM becomes at the recovery site."""

    vm: str
    group: str
    name: str
    vmx_path: str
    folder: str
    """Local path of the VM's folder (under the datastore's path)."""
    host: str
    boot_group: str
    hardware: Hardware

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the step log.

        Keys at their defaults (a NIC's ``mac``, the ``profile``) are left out, so logs of
        plans without them keep their old form.
        """
        out = asdict(self)
        hw = self.hardware
        out["hardware"] = {
            "cpus": hw.cpus, "memory_mb": hw.memory_mb,
            "disks": [asdict(d) for d in hw.disks],
            "nics": [{k: v for k, v in asdict(n).items() if k != "mac" or v} for n in hw.nics],
        }  # fmt: skip
        if hw.profile is not None:
            out["hardware"]["profile"] = hw.profile.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecoveredVm:
        """Inverse of :meth:`to_json`."""
        hw = d["hardware"]
        hardware = Hardware(
            hw["cpus"],
            hw["memory_mb"],
            tuple(DiskAttach(**x) for x in hw["disks"]),
            tuple(NicAttach(**x) for x in hw["nics"]),
            VmProfile.from_json(hw["profile"]) if hw.get("profile") else None,
        )
        return cls(**{**d, "hardware": hardware})


@dataclass(frozen=True)
class OperationPlan:
    """Everything an operation will do, before it does any of it."""

    operation: str
    """``test``, ``live``, ``stop-test`` or ``rollback``."""
    planned: bool
    points: dict[str, PointFacts | None]
    """Restore point per group; None for a planned failover (bookmarked after the drain)."""
    vms: tuple[RecoveredVm, ...]
    steps: tuple[Step, ...]
    bytes_to_prepare: int
    rto_estimate_s: float

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (dry-run output and the step log)."""
        return {
            "operation": self.operation,
            "planned": self.planned,
            "points": {g: asdict(p) if p else None for g, p in self.points.items()},
            "vms": [v.to_json() for v in self.vms],
            "steps": [asdict(s) for s in self.steps],
            "bytes_to_prepare": self.bytes_to_prepare,
            "rto_estimate_s": round(self.rto_estimate_s, 3),
        }


# ---------------------------------------------------------------- placement


@dataclass
class _Room:
    host: HostFacts
    memory_bytes: int
    vcpus: float


def place(
    vms: list[VmSettings], hosts: tuple[HostFacts, ...], vcpus_per_cpu: float
) -> tuple[dict[str, str], list[str]]:
    """Spread VMs over usable hosts (most free memory first); return placement, unplaced."""
    rooms = [
        _Room(
            h, h.memory_bytes - h.memory_used_bytes, h.cpu_threads * vcpus_per_cpu - h.vcpus_running
        )
        for h in hosts
        if h.usable
    ]
    placement: dict[str, str] = {}
    unplaced: list[str] = []
    for vm in sorted(vms, key=lambda v: (-v.memory_mb, v.name)):
        need = vm.memory_mb * 2**20
        fits = [
            r
            for r in rooms
            if r.memory_bytes >= need and r.vcpus >= vm.cpus and vm.cpus <= r.host.cpu_threads
        ]
        if not fits:
            unplaced.append(vm.name)
            continue
        best = max(fits, key=lambda r: (r.memory_bytes, r.vcpus, r.host.name))
        best.memory_bytes -= need
        best.vcpus -= vm.cpus
        placement[vm.name] = best.host.name
    return placement, unplaced


# ---------------------------------------------------------------- building


def recovered_vms(
    plan: Plan,
    mode: str,
    groups: dict[str, GroupFacts],
    placement: dict[str, str],
    profiles: dict[str, VmProfile] | None = None,
) -> tuple[RecoveredVm, ...]:
    """What each plan VM becomes: disks from the target's group, hardware from ``profiles``.

    The captured profile is the base; the plan's explicit values override it.
    """
    ds = plan.recovery.datastore
    boot = {vm: bg.name for bg in plan.boot_order for vm in bg.vms}
    out = []
    for group, vm in plan.vms():
        replica = groups[group].vm(vm.name)
        disks = replica.disks if replica else ()
        folder = folder_name(vm.name, mode)
        attach = tuple(
            DiskAttach(
                f"[{ds.name}] {folder}/{disk_file(vm.name, mode, d.index)}", d.capacity_bytes
            )
            for d in disks
        )
        profile = (profiles or {}).get(vm.name)
        hardware = fidelity.recovered_hardware(plan, vm, profile, mode == MODE_TEST, attach)
        out.append(
            RecoveredVm(
                vm.name,
                group,
                registration_name(vm.name, mode),
                vmx_path(ds.name, vm.name, mode),
                f"{ds.path}/{folder}",
                placement.get(vm.name, ""),
                boot[vm.name],
                hardware,
            )
        )
    return tuple(out)


def failover_steps(
    plan: Plan, vms: tuple[RecoveredVm, ...], planned: bool, mode: str = MODE_LIVE
) -> tuple[Step, ...]:
    """The forward steps of a test or live failover, phase by phase."""
    steps: list[Step] = []
    phase = 0
    if planned:  # seal first: a source that cannot seal stops it before vCenter is touched
        groups = sorted({v.group for v in vms})
        steps += [Step(f"{SEAL}:{g}", SEAL, 0, group=g) for g in groups]
        steps += [Step(f"{STOP_SOURCE}:{v.vm}", STOP_SOURCE, 1, v.vm, v.group) for v in vms]
        steps.append(Step(BOOKMARK, BOOKMARK, 2, args={"groups": groups}))  # one instant, all
        phase = 3
    steps += [
        Step(f"{PREPARE}:{v.vm}", PREPARE, phase, v.vm, v.group, {"name": v.name}) for v in vms
    ]
    steps += [
        Step(f"{EXPORT}:{v.vm}:{n}", EXPORT, phase + 1, v.vm, v.group, {"disk": n})
        for v in vms
        for n in range(len(v.hardware.disks))
    ]
    steps += [
        Step(
            f"{REGISTER}:{v.vm}",
            REGISTER,
            phase + 2,
            v.vm,
            v.group,
            {"name": v.name, "host": v.host},
        )
        for v in vms
    ]
    steps += [
        Step(f"{RECONFIGURE}:{v.vm}", RECONFIGURE, phase + 3, v.vm, v.group, {"name": v.name})
        for v in vms
    ]
    phase += 4
    custom = _customize_steps(plan, vms, phase, mode)
    steps += custom
    phase += 1 if custom else 0
    for bg in plan.boot_order:
        if bg.delay_s > 0:
            steps.append(
                Step(
                    f"{DELAY}:{bg.name}",
                    DELAY,
                    phase,
                    args={"delay_s": bg.delay_s, "boot_group": bg.name},
                )
            )
            phase += 1
        members = [v for v in vms if v.boot_group == bg.name]
        steps += [
            Step(
                f"{POWER_ON}:{v.vm}",
                POWER_ON,
                phase,
                v.vm,
                v.group,
                {"name": v.name, "boot_group": bg.name},
            )
            for v in members
        ]
        phase += 1
        after = _after_boot_steps(bg.tools_timeout_s, bg.name, members, phase)
        steps += after
        phase = max([phase - 1] + [s.phase for s in after]) + 1
    return tuple(steps)


def _customize_steps(plan: Plan, vms: tuple[RecoveredVm, ...], phase: int, mode: str) -> list[Step]:
    """A re-IP step per VM the plan's rules (for this mode) give an address."""
    out = []
    for v in vms:
        c = reip.customization(plan.reip, mode, v.vm, v.hardware.profile, len(v.hardware.nics))
        if c is not None:
            args = {"name": v.name, "customization": asdict(c)}
            out.append(Step(f"{CUSTOMIZE}:{v.vm}", CUSTOMIZE, phase, v.vm, v.group, args))
    return out


def _after_boot_steps(
    timeout_s: float, group: str, members: list[RecoveredVm], phase: int
) -> list[Step]:
    """Wait for VMware Tools in each VM of a boot group, then its post-power-on command."""
    if timeout_s <= 0:
        return []
    out = [
        Step(f"{WAIT_TOOLS}:{v.vm}", WAIT_TOOLS, phase, v.vm, v.group,
             {"name": v.name, "boot_group": group, "timeout_s": timeout_s})
        for v in members
    ]  # fmt: skip
    out += [
        Step(f"{POST_POWER_ON}:{v.vm}", POST_POWER_ON, phase + 1, v.vm, v.group,
             {"name": v.name, "boot_group": group})
        for v in members
    ]  # fmt: skip
    return out


def undo_steps(vms: tuple[RecoveredVm, ...], restart_sources: list[str]) -> tuple[Step, ...]:
    """Steps that remove every trace of recovered VMs (and restart stopped sources)."""
    steps = [
        Step(f"{POWER_OFF}:{v.vm}", POWER_OFF, 0, v.vm, v.group, {"name": v.name}) for v in vms
    ]
    steps += [
        Step(f"{UNREGISTER}:{v.vm}", UNREGISTER, 1, v.vm, v.group, {"name": v.name}) for v in vms
    ]
    steps += [Step(f"{DELETE}:{v.vm}", DELETE, 2, v.vm, v.group, {"folder": v.folder}) for v in vms]
    steps += [Step(f"{RESTART_SOURCE}:{vm}", RESTART_SOURCE, 3, vm) for vm in restart_sources]
    return tuple(steps)


DISK_FIXED_S = {DISKS_CHAIN: 0.25, DISKS_COPY: 0.15}
"""Seconds each recovered disk's export step costs whatever it writes, per
``recovery.disks`` mode; they add up (not divided by ``recovery.parallel``).

Derived from the measured RTO runs in docs/FAILOVER.md ("Copy-free recovery", figures;
vcsim, in-process target, this 2-core machine at load 3.5-5): the export step took 0.39 s
for 1 chain disk, 3.24 s for 10 and 10.87 s for 50, i.e. (step time - bytes written at
``estimate_export_bytes_per_s``) / disks = 0.21-0.38 s per disk, growing linearly with the
disk count although 8 run at a time: the hold, the ``ReadImage`` of the tail and the two
delta files with their fsyncs queue on the target and the disk. A copy costs less per disk
(one ``ReadImage``, one file): 50 toy copies took 7.3 s for 49.7 MiB, 0.14 s per disk.
Without this term the estimate was 10 s optimistic at 50 VMs.
"""


def estimate_rto(
    plan: Plan, bytes_to_prepare: int, vm_count: int, planned: bool, *, disks: int = 0
) -> float:
    """Seconds from start to the last VM powered on, from the plan's estimate figures.

    ``bytes_to_prepare`` is what the export steps write: for a copy the data each disk
    holds, for a copy-free chain only the journal tail and grain metadata (see
    ``Survey._bytes``), so a chain's estimate does not grow with the data held. Each of
    the ``disks`` exported adds its fixed cost (:data:`DISK_FIXED_S`).
    """
    r = plan.recovery
    rounds = math.ceil(vm_count / r.parallel) if vm_count else 0
    seconds = bytes_to_prepare / r.estimate_export_bytes_per_s
    seconds += disks * DISK_FIXED_S.get(r.disks, max(DISK_FIXED_S.values()))
    seconds += 2 * rounds * r.estimate_task_s  # register, reconfigure
    for bg in plan.boot_order:
        seconds += bg.delay_s + math.ceil(len(bg.vms) / r.parallel) * r.estimate_task_s
    if planned and plan.protected_site is not None:
        seconds += r.estimate_task_s  # the seal takes a round trip to the source
    return seconds
