"""The vCenter session: connecting, and every call of ``cdp.failover.vcenter.VCenter``.

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

from cdp.failover.errors import InventoryNotFoundError, VSphereError
from cdp.failover.faults import translated
from cdp.failover.hardware import VmProfile
from cdp.failover.plan import Credentials, TlsSettings, VCenterSettings
from cdp.failover.vcenter import (
    POWERED_OFF,
    POWERED_ON,
    Customization,
    Hardware,
    Placement,
    SiteFacts,
    VmFacts,
)
from cdp.failover.vsphere.api import (
    API_VERSION,
    TASK_POLL_MAX_S,
    SoapStubAdapter,
    vim,
)
from cdp.failover.vsphere.devices import _controller_changes, _disk_changes, _slotted_disks
from cdp.failover.vsphere.guest import _customization_spec
from cdp.failover.vsphere.inventory import Inventory
from cdp.failover.vsphere.profile import _CAPTURE_PATHS, _config_changes, _profile

log = logging.getLogger(__name__)
TOOLS_RUNNING = "guestToolsRunning"


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


class VSphereSession(Inventory):
    """A logged-in vCenter session (implements ``cdp.failover.vcenter.VCenter``).

    Inventory objects that do not change during an operation (datacenters, hosts, their
    names and networks) are cached; calls may come from several threads at once.
    """

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
