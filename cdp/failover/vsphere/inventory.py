"""Inventory lookups of a session: datacenters, hosts, networks, datastores, VMs (cached)."""

from __future__ import annotations

from typing import Any

from cdp.failover.errors import InventoryNotFoundError, PortGroupMissingError
from cdp.failover.plan import VCenterSettings
from cdp.failover.vcenter import POWERED_ON, DatastoreFacts, HostFacts, NicAttach, VmFacts
from cdp.failover.vsphere.api import Api, vim, vmodl
from cdp.failover.vsphere.devices import _ADAPTERS, _device_spec, _same_backing


class Inventory(Api):
    """Cached inventory lookups of a session.

    Inventory objects that do not change during an operation (datacenters, hosts, their
    names and networks) are cached; calls may come from several threads at once.
    """

    def __init__(self, settings: VCenterSettings, si: Any, content: Any) -> None:
        self.settings = settings
        self._content = content
        self._stub = si._stub
        self._dcs: dict[str, Any] = {}
        self._hosts: dict[str, Any] = {}
        """Host name -> HostSystem, and host moid -> name (both directions)."""
        self._networks: dict[str, dict[str, Any]] = {}
        """Host moid -> {network name: NIC backing}."""

    # ---------------------------------------------------------- inventory

    def _datacenter(self, name: str) -> Any:
        if name not in self._dcs:
            for dc, dc_name in self._names(self._content.rootFolder, vim.Datacenter, objs=True):
                self._dcs[dc_name] = dc
        if name not in self._dcs:
            raise InventoryNotFoundError(
                f"vCenter has no datacenter {name!r}", hint="check recovery.datacenter"
            )
        return self._dcs[name]

    def _find(self, root: Any, vimtype: Any, name: str, what: str) -> Any:
        for obj, obj_name in self._names(root, vimtype, objs=True):
            if obj_name == name:
                return obj
        raise InventoryNotFoundError(f"no {what} {name!r} in vCenter", hint="check the plan")

    def _host(self, dc: Any, name: str) -> Any:
        if name not in self._hosts:
            for host, host_name in self._names(dc.hostFolder, vim.HostSystem, objs=True):
                self._hosts[host_name], self._hosts[host._moId] = host, host_name
        if name not in self._hosts:
            raise InventoryNotFoundError(f"no host {name!r} in vCenter", hint="check the plan")
        return self._hosts[name]

    def _standby_hosts(
        self, dc: Any, cluster: str, names: tuple[str, ...]
    ) -> tuple[list[Any], list[str]]:
        """Host objects the plan names (a cluster's hosts, filtered by ``names`` if given)."""
        if cluster:
            found = self._find(dc.hostFolder, vim.ClusterComputeResource, cluster, "cluster")
            pool = list(found.host)
        else:
            pool = [obj for obj, _ in self._names(dc.hostFolder, vim.HostSystem, objs=True)]
        named = {self._host_name(h): h for h in pool}
        if not names:
            return pool, []
        return [named[n] for n in names if n in named], [n for n in names if n not in named]

    def _host_name(self, host: Any) -> str:
        if host._moId not in self._hosts:
            name = self._props(host, ["name"])["name"]
            self._hosts[name], self._hosts[host._moId] = host, name
        return str(self._hosts[host._moId])

    def _host_facts(self, dc: Any, hosts: list[Any], networks: dict[str, str]) -> list[HostFacts]:
        wanted = {h._moId for h in hosts}
        props = [
            "name",
            "runtime.connectionState",
            "runtime.inMaintenanceMode",
            "summary.hardware.numCpuThreads",
            "summary.hardware.memorySize",
            "summary.quickStats.overallMemoryUsage",
            "datastore",
            "network",
            "vm",
        ]
        running = self._running_vcpus(dc)
        datastores = self._names(dc.datastoreFolder, vim.Datastore)
        out: dict[str, HostFacts] = {}
        for obj, p in self._collect(dc.hostFolder, vim.HostSystem, props):
            if obj._moId in wanted:
                out[obj._moId] = _host_row(p, running, datastores, networks)
        return [out[h._moId] for h in hosts if h._moId in out]

    def _running_vcpus(self, dc: Any) -> dict[str, int]:
        paths = ["runtime.powerState", "summary.config.numCpu"]
        return {
            obj._moId: int(p.get("summary.config.numCpu") or 0)
            for obj, p in self._collect(dc, vim.VirtualMachine, paths)
            if p.get("runtime.powerState") == POWERED_ON
        }

    def _datastore_facts(self, dc: Any, name: str) -> DatastoreFacts | None:
        paths = ["name", "summary.accessible", "summary.capacity", "summary.freeSpace"]
        for _, p in self._collect(dc.datastoreFolder, vim.Datastore, paths):
            if p.get("name") == name:
                return DatastoreFacts(
                    name,
                    bool(p.get("summary.accessible")),
                    int(p.get("summary.capacity") or 0),
                    int(p.get("summary.freeSpace") or 0),
                )
        return None

    def _vm_facts(self, root: Any) -> list[VmFacts]:
        props = ["name", "config.files.vmPathName", "runtime.powerState", "runtime.host"]
        rows = self._collect(root, vim.VirtualMachine, props)
        return [self._vm_row(obj, p) for obj, p in rows]

    def _one_vm(self, vm: Any) -> VmFacts:
        p = self._props(
            vm, ["name", "config.files.vmPathName", "runtime.powerState", "runtime.host"]
        )
        return self._vm_row(vm, p)

    def _vm_row(self, obj: Any, p: dict[str, Any]) -> VmFacts:
        host = p.get("runtime.host")
        return VmFacts(
            ref=obj._moId,
            name=p.get("name", ""),
            path=p.get("config.files.vmPathName", ""),
            power_state=str(p.get("runtime.powerState", "")),
            host=self._host_name(host) if host is not None else "",
        )

    def _pool(self, host: Any, name: str) -> Any:
        compute = self._props(host, ["parent"])["parent"]
        root = self._props(compute, ["resourcePool"])["resourcePool"]
        return self._find(root, vim.ResourcePool, name, "resource pool") if name else root

    def _nic_changes(
        self, host: Any, devices: list[Any], nics: tuple[NicAttach, ...], changed: list[str]
    ) -> list[Any]:
        have = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        backings = self._backings(host)
        out = []
        for i, nic in enumerate(nics):
            backing = backings.get(nic.network)
            if backing is None:
                raise PortGroupMissingError(
                    f"port group {nic.network!r} is not available on host {self._host_name(host)}",
                    hint="create it (on a DVS every standby host must be a member) or fix "
                    "network_mappings",
                )
            if i < len(have):
                if not _same_backing(have[i].backing, backing):
                    have[i].backing = backing
                    out.append(_device_spec("edit", have[i]))
                    changed.append(f"nic{i}->{nic.network}")
                continue
            device = _ADAPTERS[nic.adapter](key=-200 - i, backing=backing)
            if nic.mac:  # the protected VM's MAC, kept (guest NIC names follow it)
                device.macAddress, device.addressType = nic.mac, "manual"
            device.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
                startConnected=True, connected=True, allowGuestControl=True
            )
            out.append(_device_spec("add", device))
            changed.append(f"nic{i}:{nic.network}")
        return out

    def _backings(self, host: Any) -> dict[str, Any]:
        """Network name -> NIC backing, for the networks a host can give a VM (cached)."""
        if host._moId not in self._networks:
            objs = self._props(host, ["network"])["network"]
            pc = vmodl.query.PropertyCollector
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=o) for o in objs],
                propSet=[
                    pc.PropertySpec(type=vim.Network, pathSet=["name"]),
                    pc.PropertySpec(
                        type=vim.dvs.DistributedVirtualPortgroup,
                        pathSet=["key", "config.distributedVirtualSwitch"],
                    ),
                ],
            )
            found = self._content.propertyCollector.RetrieveContents([spec]) if objs else []
            props = [(o.obj, {p.name: p.val for p in o.propSet}) for o in found]
            self._networks[host._moId] = {p["name"]: self._backing(o, p) for o, p in props}
        return self._networks[host._moId]

    def _backing(self, network: Any, p: dict[str, Any]) -> Any:
        card = vim.vm.device.VirtualEthernetCard
        if "key" in p:
            switch = self._props(p["config.distributedVirtualSwitch"], ["uuid"])["uuid"]
            port = vim.dvs.PortConnection(portgroupKey=p["key"], switchUuid=switch)
            return card.DistributedVirtualPortBackingInfo(port=port)
        return card.NetworkBackingInfo(deviceName=p["name"], network=network)


def _host_row(
    p: dict[str, Any], running: dict[str, int], datastores: dict[str, str], networks: dict[str, str]
) -> HostFacts:
    return HostFacts(
        name=p["name"],
        connected=p.get("runtime.connectionState") == "connected",
        maintenance=bool(p.get("runtime.inMaintenanceMode")),
        cpu_threads=int(p.get("summary.hardware.numCpuThreads") or 0),
        memory_bytes=int(p.get("summary.hardware.memorySize") or 0),
        memory_used_bytes=int(p.get("summary.quickStats.overallMemoryUsage") or 0) * 2**20,
        vcpus_running=sum(running.get(v._moId, 0) for v in p.get("vm", [])),
        datastores=frozenset(datastores.get(d._moId, "") for d in p.get("datastore", [])),
        networks=frozenset(networks.get(n._moId, "") for n in p.get("network", [])),
    )
