"""The seam to a vCenter: what failover asks of it, in plain values.

``vsphere.VSphereSession`` implements :class:`VCenter` with pyVmomi; nothing else in cdp
imports pyVmomi. Every method blocks (SOAP round trips): async callers wrap them in
``asyncio.to_thread``. VMs are named by their managed object id (``vm-42``), which stays
valid while the VM is registered; step logs store it, and re-find VMs by ``.vmx`` path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cdp.failover.hardware import VmProfile

POWERED_ON = "poweredOn"
POWERED_OFF = "poweredOff"


@dataclass(frozen=True)
class HostFacts:
    """A standby host as vCenter sees it."""

    name: str
    connected: bool
    maintenance: bool
    cpu_threads: int
    memory_bytes: int
    memory_used_bytes: int
    vcpus_running: int
    """vCPUs of the VMs powered on on this host now."""
    datastores: frozenset[str]
    networks: frozenset[str]

    @property
    def usable(self) -> bool:
        """Connected and not in maintenance mode: may receive VMs."""
        return self.connected and not self.maintenance

    @property
    def problem(self) -> str:
        """Why the host cannot take VMs; empty when it can."""
        if not self.connected:
            return "is disconnected"
        return "is in maintenance mode" if self.maintenance else ""


@dataclass(frozen=True)
class DatastoreFacts:
    """The recovery datastore as vCenter sees it."""

    name: str
    accessible: bool
    capacity_bytes: int
    """0 when vCenter does not know (vcsim reports 0 for a CreateLocalDatastore mount)."""
    free_bytes: int


@dataclass(frozen=True)
class VmFacts:
    """A registered VM."""

    ref: str
    name: str
    path: str
    """Datastore path of the .vmx, ``[ds] folder/name.vmx``."""
    power_state: str
    host: str


@dataclass(frozen=True)
class SiteFacts:
    """What failover needs to know about one datacenter."""

    datacenter: str
    about: str
    hosts: tuple[HostFacts, ...]
    """The standby hosts the plan names (its cluster's hosts or its host list)."""
    missing_hosts: tuple[str, ...]
    """Hosts the plan names that vCenter does not know."""
    datastore: DatastoreFacts | None
    networks: frozenset[str]
    """Every network of the datacenter a NIC can use (standard and DV port groups)."""
    vms: tuple[VmFacts, ...]


@dataclass(frozen=True)
class DiskAttach:
    """A disk to attach: an existing VMDK by datastore path."""

    path: str
    capacity_bytes: int


@dataclass(frozen=True)
class NicAttach:
    """A NIC to have, on a named network."""

    network: str
    adapter: str
    mac: str = ""
    """A MAC address to keep (set manually); "" lets vCenter generate one."""


@dataclass(frozen=True)
class Hardware:
    """What a recovered VM must end up with."""

    cpus: int
    memory_mb: int
    disks: tuple[DiskAttach, ...]
    nics: tuple[NicAttach, ...]
    profile: VmProfile | None = None
    """The protected VM's captured hardware (guest OS, firmware, UUIDs, controllers, disk
    slots), when captured; None: the defaults (one LSI Logic controller)."""


@dataclass(frozen=True)
class NicIp:
    """A fixed IPv4 setting for one NIC (guest customization)."""

    ip: str
    prefix: int
    gateway: str
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Customization:
    """Guest customization (``CustomizeVM_Task``, Linux): host name, domain, NIC settings."""

    hostname: str
    domain: str
    dns_servers: tuple[str, ...]
    dns_suffixes: tuple[str, ...]
    nics: tuple[NicIp | None, ...]
    """One per NIC of the VM in device order; None: DHCP."""


@dataclass(frozen=True)
class Placement:
    """Where to register a VM."""

    datacenter: str
    host: str
    resource_pool: str = ""
    """Pool name; empty: the host's cluster (or standalone host) root pool."""
    folder: str = ""
    """VM folder name; empty: the datacenter's VM folder."""


class VCenter(Protocol):
    """The calls failover makes on one vCenter (blocking)."""

    def site(
        self, datacenter: str, cluster: str, hosts: tuple[str, ...], datastore: str
    ) -> SiteFacts:
        """Facts about the datacenter, the standby hosts and the datastore."""

    def find_vm(self, datacenter: str, path: str) -> VmFacts | None:
        """The VM registered at a .vmx datastore path, or None."""

    def find_vm_by_name(self, datacenter: str, name: str) -> VmFacts | None:
        """A VM with this name anywhere in the datacenter, or None."""

    def register_vm(self, path: str, name: str, placement: Placement) -> VmFacts:
        """Register the .vmx at ``path`` as ``name`` on the placement's host."""

    def reconfigure_vm(self, ref: str, hardware: Hardware) -> list[str]:
        """Make the VM have ``hardware`` (add what is missing); return what changed."""

    def power_on(self, ref: str, timeout_s: float) -> None:
        """Power on (if not on) and wait until vCenter reports poweredOn."""

    def power_off(self, ref: str) -> None:
        """Power off at once (if not off)."""

    def shutdown(self, ref: str, timeout_s: float) -> str:
        """Guest shutdown, then power off after ``timeout_s``; return how it stopped."""

    def unregister(self, ref: str) -> None:
        """Remove the VM from the inventory (files stay)."""

    def customize_vm(self, ref: str, customization: Customization) -> str:
        """Apply guest customization (VM powered off); ``pending`` if already queued."""

    def attach_datastore(self, datacenter: str, host: str, name: str, source: str) -> str:
        """Mount ``source`` (``nfs://server/export`` or a local path) on ``host`` as ``name``."""

    def datastore_files(
        self, datacenter: str, host: str, datastore: str, pattern: str
    ) -> list[str]:
        """Names of the files matching ``pattern`` at the datastore's root, seen by ``host``."""

    def relocate_vm(self, ref: str, datacenter: str, datastore: str) -> str:
        """Storage vMotion the VM onto ``datastore`` (``RelocateVM_Task``)."""

    def wait_tools(self, ref: str, timeout_s: float) -> dict[str, Any]:
        """Wait until VMware Tools run in the guest; what vCenter reported and the wait."""

    def guest_ip(self, ref: str) -> dict[str, Any]:
        """The guest's reported addresses: ``ip`` and per-NIC ``nics`` lists."""

    def capture_vm(self, datacenter: str, name: str) -> VmProfile | None:
        """The hardware of the VM named ``name`` (protected site), or None if none."""

    def close(self) -> None:
        """Log out and drop connections."""
