"""Step handlers for re-IP and boot readiness (mixed into ``actions.Actions``).

``customize``: ``CustomizeVM_Task`` with the step's recorded customization, before
power-on (a customization already pending from a run before a crash is not queued
twice). ``wait-tools``: after a boot group's power-on, wait until the VM's VMware Tools
run (``guest.toolsRunningStatus``), at most the group's ``tools_timeout_s``; the step's
result records what vCenter reported and how long it took. ``post-power-on``: the VM's
``post_power_on`` command (the verify hook's mechanism, :func:`probes.run_hook`), with
the same ``CDP_*`` environment facts; a non-zero exit fails the step.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from cdp.errors import PreconditionError
from cdp.failover import steps as st
from cdp.failover.plan import Plan
from cdp.failover.probes import run_hook
from cdp.failover.records import StepEntry
from cdp.failover.vcenter import Customization, NicIp, VCenter

ENV_PREFIX = "CDP_"


def customization_from(args: dict[str, Any]) -> Customization:
    """The Customization a ``customize`` step recorded (inverse of ``asdict``)."""
    c = dict(args["customization"])
    nics = tuple(
        NicIp(n["ip"], n["prefix"], n["gateway"], tuple(n["dns"])) if n else None
        for n in c.pop("nics")
    )
    return Customization(
        c["hostname"], c["domain"], tuple(c["dns_servers"]), tuple(c["dns_suffixes"]), nics
    )


class BootActions:
    """Handlers of the re-IP and boot-readiness steps; ``Actions`` provides the state."""

    plan: Plan
    vms: dict[str, st.RecoveredVm]
    _vcenter: Callable[[], VCenter]

    async def _ref(self, vm: st.RecoveredVm) -> str:
        raise NotImplementedError  # Actions._ref

    async def _customize(self, step: StepEntry) -> dict[str, Any]:
        ref = await self._ref(self.vms[step.vm])
        vc = await asyncio.to_thread(self._vcenter)
        how = await asyncio.to_thread(vc.customize_vm, ref, customization_from(step.args))
        return {"ref": ref, "customization": how}

    async def _wait_tools(self, step: StepEntry) -> dict[str, Any]:
        ref = await self._ref(self.vms[step.vm])
        vc = await asyncio.to_thread(self._vcenter)
        seen = await asyncio.to_thread(vc.wait_tools, ref, float(step.args["timeout_s"]))
        return {"ref": ref, **seen}

    async def _post_power_on(self, step: StepEntry) -> dict[str, Any]:
        vm = self.vms[step.vm]
        hook = next((v.post_power_on for _, v in self.plan.vms() if v.name == vm.vm), None)
        if hook is None:
            return {"ran": False}
        ref = await self._ref(vm)
        facts = {"PLAN": self.plan.name, "VM": vm.vm, "NAME": vm.name, "GROUP": vm.group,
                 "HOST": vm.host, "REF": ref, "VMX": vm.vmx_path, "FOLDER": vm.folder,
                 "NETWORKS": ",".join(n.network for n in vm.hardware.nics)}  # fmt: skip
        env = {**os.environ, **{ENV_PREFIX + k: v for k, v in facts.items()}}
        cwd = os.path.dirname(self.plan.source_path)
        result = await run_hook(hook, env, cwd, asyncio.Event())
        if not result.passed:
            raise PreconditionError(
                f"post-power-on command of {vm.name} failed: {result.detail}",
                hint=f"stderr: {result.stderr_tail[-200:]}" if result.stderr_tail else "",
            )
        return {"ran": True, "exit_code": result.exit_code, "seconds": result.seconds}
