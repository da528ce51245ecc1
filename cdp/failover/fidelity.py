"""The hardware a recovered VM gets: the captured profile, with the plan's explicit values.

Pure. :func:`recovered_hardware` merges a plan VM's settings with its captured
:class:`~cdp.failover.hardware.VmProfile` (if any): ``cpus`` and ``memory_mb`` given in
the plan win, otherwise the profile's; NICs follow the plan's list when it has one (the
profile supplies adapter types the plan does not name, and MACs), else the profile's NICs
on their mapped networks. :func:`vmx_layout` turns the result into the ``.vmx`` layout.
"""

from __future__ import annotations

from dataclasses import replace

from cdp.failover.hardware import VmProfile, for_mode, vmx_guest_os
from cdp.failover.plan import Plan, VmSettings
from cdp.failover.vcenter import DiskAttach, Hardware, NicAttach
from cdp.vmx import VmxDisk, VmxLayout, VmxNic


def effective(vm: VmSettings, profile: VmProfile | None) -> VmSettings:
    """``vm`` with the profile's CPUs and memory where the plan does not give them."""
    if profile is None:
        return vm
    return replace(
        vm,
        cpus=vm.cpus if "cpus" in vm.given else profile.cpus,
        memory_mb=vm.memory_mb if "memory_mb" in vm.given else profile.memory_mb,
    )


def recovered_hardware(
    plan: Plan,
    vm: VmSettings,
    profile: VmProfile | None,
    test: bool,
    disks: tuple[DiskAttach, ...],
) -> Hardware:
    """What the recovered VM must end up with in a test (``test``) or live failover."""
    mode = "test" if test else "live"
    if profile is not None:
        policy = plan.recovery.mac_test if test else plan.recovery.mac_live
        profile = for_mode(profile, test, policy)
    vm = effective(vm, profile)
    return Hardware(vm.cpus, vm.memory_mb, disks, _nics(plan, vm, profile, mode), profile)


def _mapped(plan: Plan, source: str, mode: str) -> str | None:
    m = next((m for m in plan.networks if m.source == source), None)
    if m is None:
        return None
    return m.test if mode == "test" else m.live


def _nics(
    plan: Plan, vm: VmSettings, profile: VmProfile | None, mode: str
) -> tuple[NicAttach, ...]:
    captured = profile.nics if profile is not None else ()
    if vm.nics or not captured:
        out = []
        for i, n in enumerate(vm.nics):
            have = captured[i] if i < len(captured) else None
            adapter = n.adapter if n.adapter_given or have is None else have.adapter
            out.append(
                NicAttach(_mapped(plan, n.network, mode) or "", adapter, have.mac if have else "")
            )
        return tuple(out)
    return tuple(
        NicAttach(net, n.adapter, n.mac)
        for n in captured
        if (net := _mapped(plan, n.network, mode)) is not None
    )


def vmx_layout(hardware: Hardware, disk_files: list[str]) -> VmxLayout | None:
    """The .vmx layout of a recovered VM with captured hardware (None without a profile)."""
    p = hardware.profile
    if p is None:
        return None
    slots = p.disks
    disks = tuple(
        VmxDisk(f, slots[n].controller, slots[n].bus, slots[n].unit)
        for n, f in enumerate(disk_files)
        if n < len(slots)
    )
    version = p.hw_version.removeprefix("vmx-")
    return VmxLayout(
        guest_os=vmx_guest_os(p.guest_id),
        firmware=p.firmware,
        secure_boot=p.secure_boot,
        cores_per_socket=p.cores_per_socket,
        hw_version=int(version) if version.isdigit() else 14,
        bios_uuid=p.bios_uuid,
        controllers=tuple((c.kind, c.bus, c.pci_slot) for c in p.controllers),
        disks=disks,
        nics=tuple(VmxNic(n.adapter, n.network, n.mac) for n in hardware.nics),
    )
