"""The pyVmomi handles every vsphere module shares, the property collector and tasks.

``vim``/``vmodl`` as ``Any`` (pyVmomi's stubs leave constructors untyped), the fixed API
version, and :class:`Api`: one-round-trip property reads and task polling, the base of
the session. Nothing here knows about plans or recovered VMs.
"""

from __future__ import annotations

import time
from typing import Any

import pyVmomi
from pyVmomi.SoapAdapter import SoapStubAdapter as _SoapStubAdapter

from cdp.failover.errors import VSphereError
from cdp.failover.plan import VCenterSettings

# pyVmomi's stubs leave constructors untyped and every property Optional; objects from it
# are handled as Any here and never leave this module (callers get vcenter.py values).
vim: Any = getattr(pyVmomi, "vim")  # noqa: B009 - the stubs do not declare it
vmodl: Any = getattr(pyVmomi, "vmodl")  # noqa: B009
SoapStubAdapter: Any = _SoapStubAdapter

API_VERSION = "vim.version.version13"
"""vSphere API 6.7 U1: every vCenter since then accepts it; vcsim 0.24 too."""
TASK_POLL_MAX_S = 0.5
"""Longest pause between two polls of a running task, seconds (starts at 5 ms)."""
DEFAULT_TASK_TIMEOUT_S = 600.0


class Api:
    """The property collector and task polling over one logged-in session's stub."""

    settings: VCenterSettings
    _content: Any
    _stub: Any

    def _names(self, root: Any, vimtype: Any, objs: bool = False) -> Any:
        """Moid -> name of every object of a type under root (or (obj, name) pairs)."""
        rows = self._collect(root, vimtype, ["name"])
        if objs:
            return [(o, p.get("name", "")) for o, p in rows]
        return {o._moId: p.get("name", "") for o, p in rows}

    def _props(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        """Several properties of one object in one round trip (absent ones are missing)."""
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=obj)],
            propSet=[pc.PropertySpec(type=type(obj), pathSet=paths)],
        )
        found = self._content.propertyCollector.RetrieveContents([spec])
        if not found:
            raise vmodl.fault.ManagedObjectNotFound(obj=obj, msg=f"{obj._moId} is gone")
        return {p.name: p.val for p in found[0].propSet}

    def _collect(
        self, root: Any, vimtype: Any, paths: list[str]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """Properties of every object of a type under ``root``, in one round trip."""
        pc = vmodl.query.PropertyCollector
        view = self._content.viewManager.CreateContainerView(root, [vimtype], True)
        try:
            traversal = pc.TraversalSpec(
                name="view", path="view", skip=False, type=vim.view.ContainerView
            )
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
                propSet=[pc.PropertySpec(type=vimtype, pathSet=paths)],
            )
            result = self._content.propertyCollector.RetrieveContents([spec])
            return [(o.obj, {p.name: p.val for p in o.propSet}) for o in result]
        finally:
            view.DestroyView()

    # ---------------------------------------------------------- tasks

    def _power(self, vm: Any) -> str:
        return str(self._props(vm, ["runtime.powerState"])["runtime.powerState"])

    def _wait(self, task: Any, timeout_s: float = DEFAULT_TASK_TIMEOUT_S) -> Any:
        """Poll a task to its end; raise its fault; return its result."""
        deadline, pause = time.monotonic() + timeout_s, 0.002
        while True:
            info = task.info
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise info.error
            if time.monotonic() > deadline:
                raise VSphereError(
                    "TIMEOUT",
                    f"task {info.descriptionId} still {info.state} after {timeout_s:.0f} s",
                )
            time.sleep(pause)
            pause = min(pause * 2, TASK_POLL_MAX_S)

    def _wait_power(self, vm: Any, state: str, timeout_s: float) -> None:
        deadline, pause = time.monotonic() + timeout_s, 0.002
        while self._power(vm) != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{vm._moId} not {state} after {timeout_s:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, TASK_POLL_MAX_S)
