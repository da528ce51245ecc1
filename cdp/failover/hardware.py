"""The protected VM's hardware, captured from the protected site and kept for recovery.

:class:`VmProfile` is what ``cdp failover check`` reads of each protected VM through the
protected site's vCenter (guest OS id, firmware, secure boot, CPUs, cores per socket,
memory, UUIDs, controllers, disks on their controller slots, NICs with their MACs). It is
stored as a versioned JSON file, ``<state_dir>/<plan>/hardware/<vm>.json``, beside the
step log: the failover CLI is the only party that talks to the protected vCenter, the
replica folder belongs to the target (scrub, resync and failback own it), and a failover
run at the recovery site while the protected site is gone needs the last capture on hand.

Building a recovered VM: the captured profile is the base; plan keys given explicitly
(``cpus``, ``memory_mb``, a NIC's ``adapter``) override it. MAC addresses are kept or
left for vCenter to generate per ``recovery.mac_addresses`` (live keeps, test generates by
default); a test failover never reuses the instance UUID. Pure: file I/O only here, no
vCenter.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

from cdp.errors import ConfigError
from cdp.fsutil import write_atomic

PROFILE_VERSION = 1
"""Version of the stored JSON; a file of another version is refused (re-run check)."""
CONTROLLER_KINDS = ("lsilogic", "lsisas", "pvscsi", "buslogic", "sata", "nvme", "ide")
"""Disk controller kinds cdp captures and reproduces (IDE controllers exist on every VM)."""
MAC_KEEP, MAC_GENERATE = "keep", "generate"


@dataclass(frozen=True)
class ControllerProfile:
    """A disk controller: its kind, bus number and PCI slot (None when vCenter has none)."""

    kind: str
    bus: int
    pci_slot: int | None = None


@dataclass(frozen=True)
class DiskProfile:
    """Where disk n sits: controller kind and bus, unit number; its capacity."""

    controller: str
    bus: int
    unit: int
    capacity_bytes: int


@dataclass(frozen=True)
class NicProfile:
    """A NIC: adapter type, MAC address ("" to let vCenter generate one), network name."""

    adapter: str
    mac: str
    network: str
    ip: str = ""
    """The NIC's IPv4 address as the protected VM's tools report it ("" unknown); re-IP
    rules map it to the recovery subnet."""


@dataclass(frozen=True)
class VmProfile:
    """A protected VM's hardware as its vCenter reports it (disks in device-key order)."""

    name: str
    guest_id: str
    firmware: str
    """``bios`` or ``efi``."""
    secure_boot: bool
    cpus: int
    cores_per_socket: int
    memory_mb: int
    bios_uuid: str
    """``config.uuid`` (SMBIOS UUID the guest sees); "" to let vCenter keep its own."""
    instance_uuid: str
    """``config.instanceUuid`` (vCenter's id of the VM); "" to let vCenter choose."""
    hw_version: str
    """``vmx-NN``."""
    controllers: tuple[ControllerProfile, ...]
    disks: tuple[DiskProfile, ...]
    nics: tuple[NicProfile, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (the stored file's ``profile`` and the step log)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VmProfile:
        """Inverse of :meth:`to_json`."""
        return cls(
            **{
                **d,
                "controllers": tuple(ControllerProfile(**c) for c in d["controllers"]),
                "disks": tuple(DiskProfile(**x) for x in d["disks"]),
                "nics": tuple(NicProfile(**n) for n in d["nics"]),
            }
        )


@dataclass(frozen=True)
class StoredProfile:
    """A profile as stored: the version, when it was captured, and from which vCenter."""

    profile: VmProfile
    captured_unix: float
    vcenter: str


# ---------------------------------------------------------------- storage


def profile_path(state_dir: str, plan_name: str, vm: str) -> str:
    """``<state_dir>/<plan>/hardware/<vm>.json``."""
    return os.path.join(state_dir, plan_name, "hardware", f"{vm}.json")


def load_profile(state_dir: str, plan_name: str, vm: str) -> StoredProfile | None:
    """The stored profile of ``vm``, or None; a damaged or foreign file is a ConfigError."""
    path = profile_path(state_dir, plan_name, vm)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(path, f"cannot read the hardware profile: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
        raise ConfigError(
            path,
            f"hardware profile version {data.get('version') if isinstance(data, dict) else '?'}"
            f" is not {PROFILE_VERSION}",
            hint="run `cdp failover check --plan FILE` to capture it again",
        )
    try:
        profile = VmProfile.from_json(data["profile"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(path, f"damaged hardware profile: {exc}") from exc
    return StoredProfile(profile, float(data.get("captured_unix", 0.0)), str(data.get("vcenter")))


def save_profile(state_dir: str, plan_name: str, stored: StoredProfile) -> str:
    """Write the profile atomically; return its path."""
    path = profile_path(state_dir, plan_name, stored.profile.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = {
        "version": PROFILE_VERSION,
        "captured_unix": stored.captured_unix,
        "vcenter": stored.vcenter,
        "profile": stored.profile.to_json(),
    }
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return path


def drift(old: VmProfile, new: VmProfile) -> list[str]:
    """What changed between two captures, one ``field: old -> new`` text per field."""
    a, b = old.to_json(), new.to_json()
    return [f"{k}: {a[k]} -> {b[k]}" for k in a if a[k] != b[k]]


# ---------------------------------------------------------------- building


def for_mode(profile: VmProfile, mode_is_test: bool, mac_policy: str) -> VmProfile:
    """The profile a recovered VM is built from in a mode (MACs, instance UUID)."""
    out = profile
    if mac_policy == MAC_GENERATE:
        out = replace(out, nics=tuple(replace(n, mac="") for n in out.nics))
    if mode_is_test:  # a test copy must not claim the protected VM's vCenter identity
        out = replace(out, instance_uuid="")
    return out


def vmx_guest_os(guest_id: str) -> str:
    """The .vmx ``guestOS`` for a vSphere guest id (``otherLinux64Guest`` -> ``otherlinux-64``).

    Approximate for some Windows ids; ReconfigVM sets ``guestId`` itself afterwards, which
    is authoritative.
    """
    name = guest_id.removesuffix("Guest").lower()
    return name[:-2] + "-64" if name.endswith("64") else name or "otherlinux-64"
