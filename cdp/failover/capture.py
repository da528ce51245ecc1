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
