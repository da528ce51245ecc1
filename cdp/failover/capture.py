"""Capture the protected VMs' hardware (``failover check``) and load it (failover).

``cdp failover check`` with a ``protected_site`` reads each plan VM's hardware through
the protected site's vCenter, compares it with the stored capture (a difference is a
WARN row naming what changed: the recovered VM will follow the new capture) and stores
the new one. A test or live failover only loads what is stored: the protected site may
be gone by then. See :mod:`cdp.failover.hardware` for where and why it is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cdp.errors import CdpError
from cdp.failover import reip
from cdp.failover.checks import FAIL, PASS, WARN, CheckRow
from cdp.failover.hardware import StoredProfile, VmProfile, drift, load_profile, save_profile
from cdp.failover.plan import Plan
from cdp.failover.vcenter import VCenter

ROW = "hardware"


def load_profiles(plan: Plan) -> dict[str, VmProfile]:
    """The stored profile of every plan VM that has one."""
    out = {}
    for _, vm in plan.vms():
        stored = load_profile(plan.state_dir, plan.name, vm.name)
        if stored is not None:
            out[vm.name] = stored.profile
    return out


async def refresh_profiles(plan: Plan, connect: Callable[[], VCenter]) -> list[CheckRow]:
    """Capture every plan VM's hardware at the protected site; store it; rows per VM."""
    site = plan.protected_site
    assert site is not None
    try:
        vc = await asyncio.to_thread(connect)
    except CdpError as exc:
        return [CheckRow(ROW, WARN, f"protected site not readable: {exc}", _hint(plan))]
    rows = []
    for _, vm in plan.vms():
        try:
            rows.append(await asyncio.to_thread(_refresh_one, plan, vc, vm.name))
        except CdpError as exc:
            rows.append(CheckRow(f"{ROW} {vm.name}", FAIL, str(exc), getattr(exc, "hint", "")))
    return rows


def _refresh_one(plan: Plan, vc: VCenter, vm: str) -> CheckRow:
    site = plan.protected_site
    assert site is not None
    name = f"{ROW} {vm}"
    old = load_profile(plan.state_dir, plan.name, vm)
    new = vc.capture_vm(site.datacenter, vm)
    if new is None:
        kept = "; the stored capture is kept" if old else ""
        return CheckRow(name, WARN, f"no VM {vm!r} at the protected site{kept}", _hint(plan))
    save_profile(plan.state_dir, plan.name, StoredProfile(new, time.time(), site.vcenter.host))
    changes = drift(old.profile, new) if old is not None else []
    if changes:
        return CheckRow(
            name, WARN, "changed since the last capture: " + "; ".join(changes),
            "the recovered VM follows the new capture; check the plan's overrides",
        )  # fmt: skip
    what = f"{new.guest_id}, {new.firmware}, {new.cpus} vCPU, {new.memory_mb} MB, "
    what += f"{len(new.controllers)} controller(s), {len(new.disks)} disk(s), "
    what += f"{len(new.nics)} NIC(s)"
    return CheckRow(name, PASS, ("captured: " if old is None else "unchanged: ") + what)


def _hint(plan: Plan) -> str:
    return "check protected_site in the plan" if plan.protected_site else ""


def reip_rows(plan: Plan, profiles: dict[str, VmProfile], modes: tuple[str, ...]) -> list[CheckRow]:
    """Readiness of the re-IP rules per mode, against each VM's NICs and mapped networks."""
    if plan.reip is None:
        return []
    rows = []
    for mode in modes:
        rs = plan.reip.sets.get(mode)
        if rs is None:
            continue
        problems, warnings = _reip_problems(plan, profiles, mode)
        name = f"re-IP ({mode})"
        if problems:
            rows.append(CheckRow(name, FAIL, "; ".join(problems), "fix reip in the plan"))
        elif warnings:
            rows.append(CheckRow(name, WARN, "; ".join(warnings), "add a rule or a vms entry"))
        else:
            rows.append(CheckRow(name, PASS, f"{len(rs.rules)} rule(s) cover every NIC"))
    return rows


def _reip_problems(
    plan: Plan, profiles: dict[str, VmProfile], mode: str
) -> tuple[list[str], list[str]]:
    assert plan.reip is not None
    rs = plan.reip.sets[mode]
    problems, warnings = [], []
    for _, vm in plan.vms():
        profile = profiles.get(vm.name)
        mapped = [n for n in (profile.nics if profile else ()) if _is_mapped(plan, n.network)]
        count = len(vm.nics) or len(mapped)
        for s in rs.static.get(vm.name, ()):
            if s.nic >= count:
                problems.append(f"{vm.name} has {count} NIC(s), reip.{mode} sets nic {s.nic}")
        if (
            profile is not None
            and profile.guest_id.startswith("win")
            and (
                rs.static.get(vm.name)
                or reip.customization(plan.reip, mode, vm.name, profile, count)
            )
        ):
            problems.append(f"{vm.name} is Windows; cdp customizes Linux guests only")
        for nic in reip.unmatched(plan.reip, mode, vm.name, profile):
            warnings.append(f"{vm.name} {nic} keeps its address (no rule)")
    for i, r in enumerate(rs.rules):
        if r.network and not _is_mapped(plan, r.network):
            problems.append(f"reip.{mode}.rules[{i}].network {r.network!r} is not mapped")
    return problems, warnings


def _is_mapped(plan: Plan, network: str) -> bool:
    return any(m.source == network for m in plan.networks)
