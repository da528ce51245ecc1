"""vCenter through pyVmomi: the only module of cdp that imports it.

:class:`VSphereSession` implements :class:`cdp.failover.vcenter.VCenter`. Every method
blocks on SOAP round trips; async callers use ``asyncio.to_thread``. Every call runs
inside :func:`cdp.failover.faults.translated`, so pyVmomi faults and socket/TLS errors
leave this module only as cdp errors with a hint for the operator.

TLS: verification is on unless the plan opts out. A pinned SHA-256 thumbprint trusts a
certificate no CA vouches for (pyVmomi checks the pin on every connection). The API
version is fixed (``API_VERSION``) rather than negotiated, because pyVmomi's
negotiation request does not honour a pinned thumbprint; every call used here exists
since vSphere 6.0.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import ssl
import time
from typing import Any

import pyVmomi
from pyVmomi.SoapAdapter import SoapStubAdapter as _SoapStubAdapter

from cdp.failover.errors import InventoryNotFoundError, PortGroupMissingError, VSphereError
from cdp.failover.faults import translated
from cdp.failover.hardware import ControllerProfile, DiskProfile, NicProfile, VmProfile
from cdp.failover.plan import Credentials, TlsSettings, VCenterSettings
from cdp.failover.vcenter import (
    POWERED_OFF,
    POWERED_ON,
    Customization,
    DatastoreFacts,
    Hardware,
    HostFacts,
    NicAttach,
    Placement,
    SiteFacts,
    VmFacts,
)

log = logging.getLogger(__name__)

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
TOOLS_RUNNING = "guestToolsRunning"
SCSI_UNITS = [u for u in range(16) if u != 7]
"""Unit numbers a SCSI disk may take (7 is the controller itself)."""
_ADAPTERS: dict[str, Any] = {
    "vmxnet3": vim.vm.device.VirtualVmxnet3,
    "e1000e": vim.vm.device.VirtualE1000e,
    "e1000": vim.vm.device.VirtualE1000,
}
_CONTROLLERS: dict[str, Any] = {
    "lsilogic": vim.vm.device.VirtualLsiLogicController,
    "lsisas": vim.vm.device.VirtualLsiLogicSASController,
    "pvscsi": vim.vm.device.ParaVirtualSCSIController,
    "buslogic": vim.vm.device.VirtualBusLogicController,
    "sata": vim.vm.device.VirtualAHCIController,
    "nvme": vim.vm.device.VirtualNVMEController,
    "ide": vim.vm.device.VirtualIDEController,
}
_CAPTURE_PATHS = [
    "config.guestId",
    "config.firmware",
    "config.bootOptions",
    "config.hardware",
    "config.uuid",
    "config.instanceUuid",
    "config.version",
    "guest.net",
]


# ---------------------------------------------------------------- connecting


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The client TLS context the plan asks for (never a warning-raising default)."""
    context = ssl.create_default_context(cafile=tls.ca_file or None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(settings: VCenterSettings, credentials: Credentials, pool: int = 8) -> VSphereSession:
    """Log in to vCenter; the session logs out on :meth:`VSphereSession.close`."""
    stub = SoapStubAdapter(
        host=settings.host,
        port=settings.port,
        path=settings.path,
        version=API_VERSION,
        sslContext=ssl_context(settings.tls),
        thumbprint=settings.tls.thumbprint or None,
        httpConnectionTimeout=settings.timeout_s,
        poolSize=pool,
    )
    si = vim.ServiceInstance("ServiceInstance", stub)
    try:
        with translated(settings, "login"):
            content = si.RetrieveContent()
            content.sessionManager.Login(userName=credentials.user, password=credentials.password)
    except BaseException as exc:
        stub.DropConnections()
        _close_stray_connections(exc)
        raise
    return VSphereSession(settings, si, content)


def _close_stray_connections(exc: BaseException) -> None:
    """Close HTTP connections pyVmomi left open in the frames of a failed login.

    When a pinned thumbprint does not match, pyVmomi raises with the connection it
    opened still open and outside its pool; left to the garbage collector it would be
    an unclosed-socket ResourceWarning.
    """
    seen: BaseException | None = exc
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, http.client.HTTPConnection):
                    value.close()
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__


class VSphereSession:
    """A logged-in vCenter session (implements ``cdp.failover.vcenter.VCenter``).

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

    def close(self) -> None:
        """Log out and drop pooled connections (errors while logging out are ignored)."""
        with contextlib.suppress(Exception):
            self._content.sessionManager.Logout()
        self._stub.DropConnections()

    # ---------------------------------------------------------- reading

    def site(
        self, datacenter: str, cluster: str, hosts: tuple[str, ...], datastore: str
    ) -> SiteFacts:
        """Facts about the datacenter, the standby hosts and the datastore."""
        with translated(self.settings, f"reading datacenter {datacenter!r}"):
            dc = self._datacenter(datacenter)
            chosen, missing = self._standby_hosts(dc, cluster, hosts)
            networks = self._names(dc.networkFolder, vim.Network)
            return SiteFacts(
                datacenter=datacenter,
                about=self._content.about.fullName,
                hosts=tuple(self._host_facts(dc, chosen, networks)),
                missing_hosts=tuple(missing),
                datastore=self._datastore_facts(dc, datastore),
                networks=frozenset(networks.values()),
                vms=tuple(self._vm_facts(dc)),
            )

    def find_vm(self, datacenter: str, path: str) -> VmFacts | None:
        """The VM registered at a .vmx datastore path, or None."""
        with translated(self.settings, f"looking up {path}"):
            dc = self._datacenter(datacenter)
            vm = self._content.searchIndex.FindByDatastorePath(datacenter=dc, path=path)
            return self._one_vm(vm) if vm is not None else None

    def find_vm_by_name(self, datacenter: str, name: str) -> VmFacts | None:
        """A VM with this name in the datacenter, or None."""
        with translated(self.settings, f"looking up VM {name!r}"):
            dc = self._datacenter(datacenter)
            return next((v for v in self._vm_facts(dc) if v.name == name), None)

    # ---------------------------------------------------------- changing

    def register_vm(self, path: str, name: str, placement: Placement) -> VmFacts:
        """Register the .vmx at ``path`` as ``name`` on the placement's host and pool."""
        with translated(self.settings, f"registering {name} ({path})"):
            dc = self._datacenter(placement.datacenter)
            host = self._host(dc, placement.host)
            pool = self._pool(host, placement.resource_pool)
            folder = dc.vmFolder
            if placement.folder:
                folder = self._find(dc.vmFolder, vim.Folder, placement.folder, "VM folder")
            task = folder.RegisterVM_Task(
                path=path, name=name, asTemplate=False, pool=pool, host=host
            )
            return self._one_vm(self._wait(task))

    def reconfigure_vm(self, ref: str, hardware: Hardware) -> list[str]:
        """Give the VM its CPUs, memory, disks and NICs; only what is missing changes."""
        with translated(self.settings, f"reconfiguring {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            p = self._props(vm, ["config.hardware", "runtime.host"])
            hw, host = p["config.hardware"], p["runtime.host"]
            spec, changed = vim.vm.ConfigSpec(), []
            if hw.numCPU != hardware.cpus:
                spec.numCPUs = hardware.cpus
                changed.append(f"cpus={hardware.cpus}")
            if hw.memoryMB != hardware.memory_mb:
                spec.memoryMB = hardware.memory_mb
                changed.append(f"memory={hardware.memory_mb}MB")
            devices = list(hw.device)
            if hardware.profile is not None:
                spec.deviceChange = self._profile_changes(vm, spec, devices, hardware, changed)
            else:
                spec.deviceChange = _disk_changes(devices, hardware, changed)
            spec.deviceChange += self._nic_changes(host, devices, hardware.nics, changed)
            if changed:
                self._wait(vm.ReconfigVM_Task(spec=spec))
            return changed

    def power_on(self, ref: str, timeout_s: float) -> None:
        """Power on (unless on) and wait for vCenter to report poweredOn."""
        with translated(self.settings, f"powering on {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            if self._power(vm) != POWERED_ON:
                self._wait(vm.PowerOnVM_Task(), timeout_s)
            self._wait_power(vm, POWERED_ON, timeout_s)

    def power_off(self, ref: str) -> None:
        """Power off at once (unless off)."""
        with translated(self.settings, f"powering off {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            if self._power(vm) != POWERED_OFF:
                self._wait(vm.PowerOffVM_Task())

    def shutdown(self, ref: str, timeout_s: float) -> str:
        """Guest shutdown; power off if the guest has not stopped after ``timeout_s``."""
        with translated(self.settings, f"shutting down {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            if self._power(vm) == POWERED_OFF:
                return "already off"
            try:
                vm.ShutdownGuest()
                self._wait_power(vm, POWERED_OFF, timeout_s)
                return "guest shutdown"
            except (vim.fault.ToolsUnavailable, vim.fault.InvalidState, TimeoutError):
                log.warning("guest shutdown of %s did not finish; powering off", ref)
            self._wait(vm.PowerOffVM_Task())
            return "powered off"

    def unregister(self, ref: str) -> None:
        """Remove the VM from the inventory; its files stay."""
        with translated(self.settings, f"unregistering {ref}"):
            vim.VirtualMachine(ref, self._stub).UnregisterVM()

    # ---------------------------------------------------------- guest: re-IP and Tools

    def customize_vm(self, ref: str, customization: Customization) -> str:
        """``CustomizeVM_Task`` (Linux prep, fixed or DHCP per NIC); ``pending`` if queued."""
        with translated(self.settings, f"customizing {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            pending = self._props(vm, ["config.tools"])["config.tools"]
            if getattr(pending, "pendingCustomization", None):
                return "pending"  # applied before a crash: it runs at the next power-on
            self._wait(vm.CustomizeVM_Task(spec=_customization_spec(customization)))
            return "applied"

    def wait_tools(self, ref: str, timeout_s: float) -> dict[str, Any]:
        """Wait until the guest's VMware Tools run (``guest.toolsRunningStatus``)."""
        with translated(self.settings, f"waiting for VMware Tools in {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            t0 = time.monotonic()
            pause = 0.01
            paths = ["guest.toolsRunningStatus", "guestHeartbeatStatus"]
            while True:
                p = self._props(vm, paths)
                status = str(p.get("guest.toolsRunningStatus") or "")
                if status == TOOLS_RUNNING:
                    waited = round(time.monotonic() - t0, 3)
                    heartbeat = str(p.get("guestHeartbeatStatus") or "")
                    return {"tools": status, "heartbeat": heartbeat, "waited_s": waited}
                if time.monotonic() - t0 > timeout_s:
                    raise VSphereError(
                        "TOOLS_TIMEOUT",
                        f"VMware Tools not running in {ref} after {timeout_s:g} s ({status})",
                        hint="check the guest's console; raise boot_order[].tools_timeout_s",
                    )
                time.sleep(pause)
                pause = min(pause * 2, TASK_POLL_MAX_S)

    def guest_ip(self, ref: str) -> dict[str, Any]:
        """What the guest reports of its network: ``guest.ipAddress`` and per-NIC addresses."""
        with translated(self.settings, f"reading the guest network of {ref}"):
            vm = vim.VirtualMachine(ref, self._stub)
            p = self._props(vm, ["guest.ipAddress", "guest.net"])
            nets = [list(n.ipAddress or []) for n in p.get("guest.net") or []]
            return {"ip": str(p.get("guest.ipAddress") or ""), "nics": nets}

    # ---------------------------------------------------------- the recovery datastore

    def attach_datastore(self, datacenter: str, host: str, name: str, source: str) -> str:
        """Mount ``source`` on ``host`` as datastore ``name`` unless the host has it."""
        with translated(self.settings, f"attaching datastore {name!r} to {host}"):
            obj = self._host(self._datacenter(datacenter), host)
            have = self._props(obj, ["datastore"])["datastore"]
            if any(self._props(d, ["name"])["name"] == name for d in have):
                return "present"
            system = self._props(obj, ["configManager.datastoreSystem"])
            dss = system["configManager.datastoreSystem"]
            if source.startswith("nfs://"):
                server, _, export = source.removeprefix("nfs://").partition("/")
                spec = vim.host.NasVolume.Specification(
                    remoteHost=server, remotePath="/" + export, localPath=name,
                    accessMode="readWrite", type="NFS",
                )  # fmt: skip
                dss.CreateNasDatastore(spec=spec)
                return "nfs"
            dss.CreateLocalDatastore(name=name, path=source)
            return "local"

    def datastore_files(
        self, datacenter: str, host: str, datastore: str, pattern: str
    ) -> list[str]:
        """Files matching ``pattern`` at ``[datastore]``'s root, through ``host``'s browser."""
        with translated(self.settings, f"browsing [{datastore}] on {host}"):
            obj = self._host(self._datacenter(datacenter), host)
            # The datastore object this host mounts under the name (vCenter would name a
            # different folder "name (1)"), browsed through that datastore's own browser:
            # vcsim 0.24 leaves HostSystem.datastoreBrowser dangling.
            mounted = self._props(obj, ["datastore"])["datastore"]
            ds = next((d for d in mounted if self._props(d, ["name"])["name"] == datastore), None)
            if ds is None:
                raise InventoryNotFoundError(
                    f"host {host} does not mount datastore {datastore!r}",
                    hint="run `cdp failover datastore attach --plan FILE`",
                )
            browser = self._props(ds, ["browser"])["browser"]
            spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=[pattern])
            result = self._wait(
                browser.SearchDatastore_Task(datastorePath=f"[{datastore}]", searchSpec=spec)
            )
            return sorted(f.path for f in (result.file or []))

    def relocate_vm(self, ref: str, datacenter: str, datastore: str) -> str:
        """``RelocateVM_Task`` onto ``datastore`` unless the VM is only on it already."""
        with translated(self.settings, f"relocating {ref} to [{datastore}]"):
            dc = self._datacenter(datacenter)
            target = self._find(dc.datastoreFolder, vim.Datastore, datastore, "datastore")
            vm = vim.VirtualMachine(ref, self._stub)
            on = self._props(vm, ["datastore"])["datastore"]
            if [d._moId for d in on] == [target._moId]:
                return "already there"
            self._wait(vm.RelocateVM_Task(spec=vim.vm.RelocateSpec(datastore=target)))
            return "relocated"

    # ---------------------------------------------------------- hardware fidelity

    def capture_vm(self, datacenter: str, name: str) -> VmProfile | None:
        """The hardware of the VM named ``name``, read from its vCenter, or None."""
        with translated(self.settings, f"reading the hardware of VM {name!r}"):
            dc = self._datacenter(datacenter)
            found = next((o for o, n in self._names(dc, vim.VirtualMachine, objs=True)
                          if n == name), None)  # fmt: skip
            if found is None:
                return None
            p = self._props(found, _CAPTURE_PATHS)
            networks = self._names(dc.networkFolder, vim.Network)
            return _profile(name, p, networks)

    def _profile_changes(
        self, vm: Any, spec: Any, devices: list[Any], hardware: Hardware, changed: list[str]
    ) -> list[Any]:
        """Config and device specs that give the VM the captured profile's hardware."""
        profile = hardware.profile
        assert profile is not None
        p = self._props(vm, ["config.guestId", "config.firmware", "config.bootOptions",
                             "config.uuid", "config.instanceUuid",
                             "config.hardware.numCoresPerSocket"])  # fmt: skip
        _config_changes(p, profile, spec, changed)
        if profile.cores_per_socket and p.get("config.hardware.numCoresPerSocket") != (
            profile.cores_per_socket
        ):
            spec.numCoresPerSocket = profile.cores_per_socket
            changed.append(f"cores_per_socket={profile.cores_per_socket}")
        out, keys = _controller_changes(devices, profile.controllers, changed)
        out += _slotted_disks(devices, hardware, keys, changed)
        return out

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

    # ---------------------------------------------------------- property collector

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


def _device_spec(op: str, device: Any) -> Any:
    return vim.vm.device.VirtualDeviceSpec(
        operation=getattr(vim.vm.device.VirtualDeviceSpec.Operation, op), device=device
    )


def _disk_changes(devices: list[Any], hardware: Hardware, changed: list[str]) -> list[Any]:
    """Specs adding the disks the VM lacks (and a SCSI controller if it has none)."""
    have = {d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)}
    missing = [d for d in hardware.disks if d.path not in have]
    if not missing:
        return []
    out = []
    controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
    if controllers:
        controller_key = controllers[0].key
        used = {
            d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller_key
        }
    else:
        controller_key, used = -100, set()
        controller = vim.vm.device.VirtualLsiLogicController(
            key=-100, busNumber=0, sharedBus="noSharing"
        )
        out.append(_device_spec("add", controller))
    units = [u for u in SCSI_UNITS if u not in used]
    for n, disk in enumerate(missing):
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=disk.path, diskMode="persistent"
        )
        device = vim.vm.device.VirtualDisk(
            key=-101 - n,
            controllerKey=controller_key,
            unitNumber=units[n],
            capacityInKB=disk.capacity_bytes // 1024,
            capacityInBytes=disk.capacity_bytes,
            backing=backing,
        )
        out.append(_device_spec("add", device))
        changed.append(f"disk:{disk.path}")
    return out


def _same_backing(have: Any, want: Any) -> bool:
    if isinstance(want, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        port = getattr(have, "port", None)
        return port is not None and port.portgroupKey == want.port.portgroupKey
    return bool(getattr(have, "deviceName", None) == want.deviceName)


# ---------------------------------------------------------------- hardware fidelity


def _kind_of(device: Any, table: dict[str, Any]) -> str:
    """The table key whose class ``device`` is exactly (most derived first)."""
    for kind, cls in table.items():
        if type(device) is cls:
            return kind
    return ""


def _profile(name: str, p: dict[str, Any], networks: dict[str, str]) -> VmProfile:
    """A VmProfile from a VM's config properties."""
    hw = p["config.hardware"]
    devices = list(hw.device)
    by_key = {d.key: d for d in devices}
    controllers = []
    for d in devices:
        kind = _kind_of(d, _CONTROLLERS)
        if kind and kind != "ide":
            slot = getattr(d.slotInfo, "pciSlotNumber", None) if d.slotInfo else None
            controllers.append(ControllerProfile(kind, int(d.busNumber), slot))
    disks = []
    for d in sorted(
        (d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)), key=lambda d: d.key
    ):
        ctl = by_key.get(d.controllerKey)
        kind = _kind_of(ctl, _CONTROLLERS) if ctl is not None else ""
        bus = int(ctl.busNumber) if ctl is not None else 0
        size = int(d.capacityInBytes or d.capacityInKB * 1024)
        disks.append(DiskProfile(kind, bus, int(d.unitNumber or 0), size))
    ips = {n.deviceConfigId: _ipv4(n.ipAddress) for n in p.get("guest.net") or []}
    nics = []
    for d in devices:
        adapter = _kind_of(d, _ADAPTERS)
        if adapter:
            net = getattr(d.backing, "deviceName", "") or ""
            port = getattr(d.backing, "port", None)
            if port is not None:
                net = networks.get(port.portgroupKey, port.portgroupKey)
            nics.append(NicProfile(adapter, str(d.macAddress or ""), net, ips.get(d.key, "")))
    boot = p.get("config.bootOptions")
    return VmProfile(
        name=name,
        guest_id=str(p.get("config.guestId") or ""),
        firmware=str(p.get("config.firmware") or "bios"),
        secure_boot=bool(getattr(boot, "efiSecureBootEnabled", False)),
        cpus=int(hw.numCPU),
        cores_per_socket=int(hw.numCoresPerSocket or 1),
        memory_mb=int(hw.memoryMB),
        bios_uuid=str(p.get("config.uuid") or ""),
        instance_uuid=str(p.get("config.instanceUuid") or ""),
        hw_version=str(p.get("config.version") or ""),
        controllers=tuple(controllers),
        disks=tuple(disks),
        nics=tuple(nics),
    )


def _ipv4(addresses: Any) -> str:
    """The first IPv4 address of a guest NIC's list ("" if none)."""
    return next((a for a in addresses or [] if a.count(".") == 3), "")


def _config_changes(p: dict[str, Any], profile: VmProfile, spec: Any, changed: list[str]) -> None:
    """Guest OS, firmware, secure boot and UUIDs that differ from the profile."""
    if profile.guest_id and p.get("config.guestId") != profile.guest_id:
        spec.guestId = profile.guest_id
        changed.append(f"guest_id={profile.guest_id}")
    if profile.firmware and p.get("config.firmware") != profile.firmware:
        spec.firmware = profile.firmware
        changed.append(f"firmware={profile.firmware}")
    boot = p.get("config.bootOptions")
    if bool(getattr(boot, "efiSecureBootEnabled", False)) != profile.secure_boot:
        spec.bootOptions = vim.vm.BootOptions(efiSecureBootEnabled=profile.secure_boot)
        changed.append(f"secure_boot={profile.secure_boot}")
    if profile.bios_uuid and p.get("config.uuid") != profile.bios_uuid:
        spec.uuid = profile.bios_uuid
        changed.append(f"bios_uuid={profile.bios_uuid}")
    if profile.instance_uuid and p.get("config.instanceUuid") != profile.instance_uuid:
        spec.instanceUuid = profile.instance_uuid
        changed.append(f"instance_uuid={profile.instance_uuid}")


def _controller_changes(
    devices: list[Any], wanted: tuple[ControllerProfile, ...], changed: list[str]
) -> tuple[list[Any], dict[tuple[str, int], int]]:
    """Specs adding the profile's controllers the VM lacks; (kind, bus) -> device key."""
    keys = {
        (_kind_of(d, _CONTROLLERS), int(d.busNumber)): d.key
        for d in devices
        if _kind_of(d, _CONTROLLERS)
    }
    out = []
    for i, c in enumerate(wanted):
        if (c.kind, c.bus) in keys:
            continue
        device = _CONTROLLERS[c.kind](key=-300 - i, busNumber=c.bus)
        if isinstance(device, vim.vm.device.VirtualSCSIController):
            device.sharedBus = "noSharing"
        if c.pci_slot is not None:
            device.slotInfo = vim.vm.device.VirtualDevice.PciBusSlotInfo(pciSlotNumber=c.pci_slot)
        keys[(c.kind, c.bus)] = device.key
        out.append(_device_spec("add", device))
        changed.append(f"controller:{c.kind}{c.bus}")
    return out, keys


def _slotted_disks(
    devices: list[Any], hardware: Hardware, keys: dict[tuple[str, int], int], changed: list[str]
) -> list[Any]:
    """Specs adding the missing disks, each on the controller slot the profile names."""
    assert hardware.profile is not None
    slots = hardware.profile.disks
    have = {d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)}
    out = []
    for n, disk in enumerate(hardware.disks):
        if disk.path in have:
            continue
        if n >= len(slots) or (slots[n].controller, slots[n].bus) not in keys:
            raise VSphereError(
                "HARDWARE",
                f"disk {n} ({disk.path}) has no slot in the captured hardware",
                hint="the protected VM's disks changed: run `cdp failover check` again",
            )
        slot = slots[n]
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=disk.path, diskMode="persistent"
        )
        out.append(
            _device_spec(
                "add",
                vim.vm.device.VirtualDisk(
                    key=-101 - n,
                    controllerKey=keys[(slot.controller, slot.bus)],
                    unitNumber=slot.unit,
                    capacityInKB=disk.capacity_bytes // 1024,
                    capacityInBytes=disk.capacity_bytes,
                    backing=backing,
                ),
            )
        )
        changed.append(f"disk:{disk.path}@{slot.controller}{slot.bus}:{slot.unit}")
    return out


def _customization_spec(c: Customization) -> Any:
    """A CustomizationSpec: LinuxPrep with a fixed host name, one adapter mapping per NIC."""
    adapters = []
    for nic in c.nics:
        if nic is None:
            ip = vim.vm.customization.IPSettings(ip=vim.vm.customization.DhcpIpGenerator())
        else:
            mask = _netmask(nic.prefix)
            ip = vim.vm.customization.IPSettings(
                ip=vim.vm.customization.FixedIp(ipAddress=nic.ip),
                subnetMask=mask,
                gateway=[nic.gateway],
                dnsServerList=list(nic.dns),
            )
        adapters.append(vim.vm.customization.AdapterMapping(adapter=ip))
    identity = vim.vm.customization.LinuxPrep(
        hostName=vim.vm.customization.FixedName(name=c.hostname), domain=c.domain
    )
    return vim.vm.customization.Specification(
        identity=identity,
        globalIPSettings=vim.vm.customization.GlobalIPSettings(
            dnsServerList=list(c.dns_servers), dnsSuffixList=list(c.dns_suffixes)
        ),
        nicSettingMap=adapters,
    )


def _netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))
