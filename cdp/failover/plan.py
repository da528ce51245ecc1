"""The recovery plan file: typed, frozen, validated at the edge.

A plan is YAML (see docs/FAILOVER.md for every key). :func:`load_plan` returns a
:class:`Plan` or raises :class:`cdp.errors.ConfigError` naming the bad key by its path
(``groups[0].vms[1].nics[0].network``). Credentials never live in the plan: it names
environment variables or a credentials file, and :func:`resolve_credentials` reads them
when a command needs them. The ``vcenter`` sections, their types and the credentials are
:mod:`cdp.failover.vcenter_settings` (re-exported here: they are part of the plan's
public face). This module owns the plan's defaults (``DEFAULT_*``); it never talks to
vCenter or to the target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import yaml

from cdp.errors import ConfigError
from cdp.failover import reip as reip_rules
from cdp.failover.reip import ReipSettings
from cdp.failover.vcenter_settings import Credentials as Credentials
from cdp.failover.vcenter_settings import CredentialSource as CredentialSource
from cdp.failover.vcenter_settings import TlsSettings as TlsSettings
from cdp.failover.vcenter_settings import VCenterSettings as VCenterSettings
from cdp.failover.vcenter_settings import parse_vcenter, plan_path
from cdp.failover.vcenter_settings import resolve_credentials as resolve_credentials
from cdp.failover.yamlkeys import Section, UniqueKeyLoader

PLAN_VERSION = 1
DEFAULT_RPO_SLA_S = 60.0
DEFAULT_STATE_DIR = ".cdp-failover"
"""Relative to the plan file's folder."""
DEFAULT_MAX_VCPUS_PER_CPU = 4.0
DEFAULT_PARALLEL = 8
DEFAULT_POWER_ON_TIMEOUT_S = 300.0
DEFAULT_ESTIMATE_TASK_S = 1.0
"""Seconds one vCenter task takes, for the RTO estimate (a real vCenter: ~0.5-2 s)."""
DEFAULT_ESTIMATE_EXPORT_BYTES_PER_S = 200e6
DEFAULT_COMMIT_TIMEOUT_S = 3600.0
DEFAULT_COMMIT_ACTION = "commit"
DEFAULT_SHUTDOWN = "guest"
DEFAULT_SHUTDOWN_TIMEOUT_S = 300.0
DEFAULT_DRAIN_QUIET_S = 3.0
DEFAULT_DRAIN_TIMEOUT_S = 600.0
DEFAULT_SEAL_TIMEOUT_S = 30.0
"""How long a planned failover waits for every source's seal before it refuses, seconds."""
DEFAULT_FAILBACK_SUFFIX = "-failback"
DEFAULT_VERIFY_TIMEOUT_S = 300.0
"""How long a verification hook may run before it is killed (and the VM fails), seconds."""
ADAPTERS = ("vmxnet3", "e1000e", "e1000")
MAC_POLICIES = ("keep", "generate")
DEFAULT_MAC_LIVE = "keep"
DEFAULT_MAC_TEST = "generate"
COMMIT_ACTIONS = ("commit", "rollback")
SHUTDOWNS = ("guest", "power_off")
_ADDRESS = re.compile(r"[^\s:]+:\d{1,5}")
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,32}")


# ---------------------------------------------------------------- the plan's types


@dataclass(frozen=True)
class ProtectedSite:
    """The protected site's vCenter, used by a planned failover to stop the source VMs."""

    vcenter: VCenterSettings
    datacenter: str
    shutdown: str = DEFAULT_SHUTDOWN
    """``guest`` (clean guest shutdown, then power off after the timeout) or ``power_off``."""
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    drain_quiet_s: float = DEFAULT_DRAIN_QUIET_S
    """Only for operations logged before the seal (their ``drain`` step): the target's
    durable seq had to stay put this long, seconds."""
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    seal_timeout_s: float = DEFAULT_SEAL_TIMEOUT_S
    """How long the seal (the sources' proof that they stopped writing) may take, seconds;
    a source that does not answer in time (frozen, hung) stops the failover."""


@dataclass(frozen=True)
class DatastoreSettings:
    """The recovery datastore: its vCenter name and where cdp writes its files."""

    name: str
    path: str
    """Local path of the datastore's root: the target's ``<data_dir>/replicas`` folder."""
    reserve_bytes: int = 0
    """Bytes that must stay free after the images are written."""
    nfs_server: str = ""
    """NFS server exporting ``path`` to the standby hosts (``datastore attach``); "" mounts
    ``path`` with CreateLocalDatastore (vcsim, or a host that has the folder itself)."""
    nfs_export: str = ""
    """The export's path on the NFS server (default: ``path``)."""


DISKS_CHAIN = "chain"
"""recovery.disks: a delta of the journal tail over the base replica (copy-free)."""
DISKS_COPY = "copy"
"""recovery.disks: a full export of each disk at the point (the pre-chain path)."""


@dataclass(frozen=True)
class RecoverySite:
    """Where recovered VMs run."""

    datacenter: str
    cluster: str
    hosts: tuple[str, ...]
    datastore: DatastoreSettings
    resource_pool: str = ""
    folder: str = ""
    max_vcpus_per_cpu: float = DEFAULT_MAX_VCPUS_PER_CPU
    """vCPUs allowed per logical CPU of the standby hosts (overcommit ratio)."""
    parallel: int = DEFAULT_PARALLEL
    """Steps of one phase run at once (exports, registrations, power-ons)."""
    power_on_timeout_s: float = DEFAULT_POWER_ON_TIMEOUT_S
    estimate_task_s: float = DEFAULT_ESTIMATE_TASK_S
    estimate_export_bytes_per_s: float = DEFAULT_ESTIMATE_EXPORT_BYTES_PER_S
    mac_live: str = DEFAULT_MAC_LIVE
    """``keep`` the protected VM's MAC addresses in a live failover, or ``generate``."""
    mac_test: str = DEFAULT_MAC_TEST
    disks: str = DISKS_CHAIN
    """How recovered disks are made: "chain" (a delta of the journal tail over the base
    replica, copy-free; the datastore must be the target's replica folder) or "copy" (a
    full export of each disk at the point into the VM's folder)."""


@dataclass(frozen=True)
class NetworkMapping:
    """A protected-site network and the port groups its NICs get at recovery."""

    source: str
    live: str
    test: str


@dataclass(frozen=True)
class NicSettings:
    """One NIC of a recovered VM."""

    network: str
    """A ``network_mappings[].source`` name."""
    adapter: str = "vmxnet3"
    adapter_given: bool = False
    """The plan names the adapter: it overrides the captured hardware's."""


@dataclass(frozen=True)
class VerifyHook:
    """A program ``cdp failover verify`` runs per recovered VM; exit status 0 means pass."""

    command: tuple[str, ...]
    """Program and arguments (no shell); a relative program path is relative to the plan."""
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S


@dataclass(frozen=True)
class VmSettings:
    """One VM to recover and the hardware it gets."""

    name: str
    cpus: int = 1
    memory_mb: int = 1024
    nics: tuple[NicSettings, ...] = ()
    verify: VerifyHook | None = None
    """This VM's verification hook; replaces the plan-wide one."""
    post_power_on: VerifyHook | None = None
    """A command run once VMware Tools runs in this VM (boot groups with
    ``tools_timeout_s``), like a verify hook; non-zero exit fails the failover step."""
    given: frozenset[str] = frozenset()
    """Hardware keys the plan gives explicitly (``cpus``, ``memory_mb``): these override
    the captured hardware; the others yield to it."""


@dataclass(frozen=True)
class GroupSettings:
    """A consistency group at the target and the VMs of it this plan recovers."""

    name: str
    vms: tuple[VmSettings, ...]


@dataclass(frozen=True)
class BootGroup:
    """VMs powered on together, ``delay_s`` after the previous group is running."""

    name: str
    vms: tuple[str, ...]
    delay_s: float = 0.0
    tools_timeout_s: float = 0.0
    """After power-on, wait up to this long for VMware Tools running in every VM of the
    group (then run the VMs' ``post_power_on`` commands) before the next group, seconds;
    0: do not wait."""


@dataclass(frozen=True)
class CommitPolicy:
    """What happens after a live failover if nobody commits or rolls back."""

    timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S
    """How long ``run`` waits for a decision, seconds; 0: apply the default at once."""
    default_action: str = DEFAULT_COMMIT_ACTION


@dataclass(frozen=True)
class FailbackSettings:
    """Where failback sends the recovered VMs back to (the original, protected site)."""

    target_address: str
    """The original-site cdp target that receives the reverse protection."""
    target_tls_dir: str
    """Certificate folder for mTLS to it; "" means plain text (``insecure: true``)."""
    site: RecoverySite
    """Hosts and datastore at the original site; ``datastore.path`` is that target's replica
    folder (``<data_dir>/replicas``), mounted as a datastore at the original site."""
    seed_path: str = ""
    """Local folder holding the original VMs' disks (``<vm>/<vm>_<n>-flat.vmdk``), copied
    into the original-site target's replica folder so only changed regions travel."""
    group_suffix: str = DEFAULT_FAILBACK_SUFFIX
    """Reverse groups are named ``<group><suffix>`` at the original-site target."""


@dataclass(frozen=True)
class Plan:
    """A whole recovery plan."""

    name: str
    source_path: str
    target_address: str
    state_dir: str
    target_tls_dir: str
    """Operator certificate folder (``cdp certs init``) for mTLS to the target; "" when
    ``target.insecure: true`` chose plain text."""
    vcenter: VCenterSettings
    recovery: RecoverySite
    networks: tuple[NetworkMapping, ...]
    groups: tuple[GroupSettings, ...]
    boot_order: tuple[BootGroup, ...]
    commit: CommitPolicy
    rpo_sla_s: float = DEFAULT_RPO_SLA_S
    protected_site: ProtectedSite | None = None
    failback: FailbackSettings | None = None
    verify: VerifyHook | None = None
    """The plan-wide verification hook (``cdp failover verify``), for VMs without their own."""
    reip: ReipSettings | None = None
    """Re-IP rules per failover kind (see cdp.failover.reip)."""

    def vms(self) -> list[tuple[str, VmSettings]]:
        """Every VM of the plan with its group name, in plan order."""
        return [(g.name, vm) for g in self.groups for vm in g.vms]

    def vm_key(self, vm_name: str) -> str:
        """The key path of a VM in the plan file, for error messages."""
        for gi, g in enumerate(self.groups):
            for vi, vm in enumerate(g.vms):
                if vm.name == vm_name:
                    return f"groups[{gi}].vms[{vi}]"
        return "groups"

    def mapping(self, source: str) -> NetworkMapping:
        """The mapping of a source network (validated to exist at load time)."""
        return next(m for m in self.networks if m.source == source)


# ---------------------------------------------------------------- loading


def load_plan(path: str) -> Plan:
    """Read and validate a plan file; raise ConfigError naming the bad key."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError("--plan", f"cannot read {path!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("--plan", f"{path!r} is not valid YAML: {exc}") from exc
    return parse_plan(data, path)


def parse_plan(data: object, path: str = "plan.yaml") -> Plan:
    """Validate decoded YAML into a Plan (``path`` anchors relative paths)."""
    top = Section(data, "")
    top.allow(
        "version",
        "name",
        "target",
        "state_dir",
        "rpo_sla_s",
        "vcenter",
        "protected_site",
        "recovery",
        "network_mappings",
        "groups",
        "boot_order",
        "commit",
        "failback",
        "verify",
        "reip",
    )
    version = top.integer("version", required=True)
    if version != PLAN_VERSION:
        raise ConfigError("version", f"{version} is not supported; this cdp reads version 1")
    base = os.path.dirname(os.path.abspath(path))
    networks = _networks(top.sequence("network_mappings", required=False))
    groups = _groups(top.sequence("groups", required=True), networks, base)
    vms = [vm.name for g in groups for vm in g.vms]
    plan = Plan(
        name=top.name("name"),
        source_path=os.path.abspath(path),
        target_address=_target(top.child("target")),
        target_tls_dir=_target_tls(top.child("target"), base),
        state_dir=plan_path(base, top.string("state_dir", default=DEFAULT_STATE_DIR)),
        vcenter=parse_vcenter(top.child("vcenter"), base),
        recovery=_recovery(top.child("recovery"), base),
        networks=networks,
        groups=groups,
        boot_order=_boot_order(top.sequence("boot_order", required=False), vms),
        commit=_commit(top.child("commit", required=False)),
        rpo_sla_s=top.number("rpo_sla_s", default=DEFAULT_RPO_SLA_S, low=0.0),
        protected_site=_protected(top.child("protected_site", required=False), base),
        failback=_failback(top.child("failback", required=False), base),
        verify=_verify(top.child("verify", required=False), base),
        reip=reip_rules.parse(top.child("reip", required=False), vms, [n.source for n in networks]),
    )
    if plan.failback is not None:
        if plan.protected_site is None:
            raise ConfigError(
                "failback",
                "needs protected_site: its vCenter is where the VMs go back to",
                hint="add protected_site (vcenter, datacenter) for the original site",
            )
        for i, g in enumerate(plan.groups):
            if len(g.name + plan.failback.group_suffix) > 64:
                raise ConfigError(
                    "failback.group_suffix",
                    f"makes group {g.name!r} (groups[{i}].name) longer than 64 characters",
                )
    return plan


# ---------------------------------------------------------------- sections


def _target_tls(m: Section, base: str) -> str:
    """MTLS (``tls_dir``) or an explicit plain-text opt-out (``insecure: true``), never neither."""
    tls_dir = m.string("tls_dir", default="")
    insecure = m.boolean("insecure", default=False)
    if bool(tls_dir) == insecure:
        raise ConfigError(
            m.key("tls_dir"),
            "give exactly one of tls_dir (an operator certificate folder) or insecure: true",
            hint="make certificates with `cdp certs init DIR --operator NAME`",
        )
    return plan_path(base, tls_dir) if tls_dir else ""


def _target(m: Section) -> str:
    m.allow("address", "tls_dir", "insecure")
    address = m.string("address", required=True)
    if not _ADDRESS.fullmatch(address) or not 0 < int(address.rpartition(":")[2]) < 65536:
        raise ConfigError(m.key("address"), f"{address!r} is not HOST:PORT")
    return address


def _protected(m: Section | None, base: str) -> ProtectedSite | None:
    if m is None:
        return None
    m.allow(
        "vcenter",
        "datacenter",
        "shutdown",
        "shutdown_timeout_s",
        "drain_quiet_s",
        "drain_timeout_s",
        "seal_timeout_s",
    )
    return ProtectedSite(
        vcenter=parse_vcenter(m.child("vcenter"), base),
        datacenter=m.string("datacenter", required=True),
        shutdown=m.choice("shutdown", SHUTDOWNS, DEFAULT_SHUTDOWN),
        shutdown_timeout_s=m.number("shutdown_timeout_s", DEFAULT_SHUTDOWN_TIMEOUT_S, low=0.0),
        drain_quiet_s=m.number("drain_quiet_s", DEFAULT_DRAIN_QUIET_S, low=0.1),
        drain_timeout_s=m.number("drain_timeout_s", DEFAULT_DRAIN_TIMEOUT_S, low=1.0),
        seal_timeout_s=m.number("seal_timeout_s", DEFAULT_SEAL_TIMEOUT_S, low=0.1, high=600.0),
    )


def _failback(m: Section | None, base: str) -> FailbackSettings | None:
    if m is None:
        return None
    m.allow("target", "site", "seed_path", "group_suffix")
    target = m.child("target")
    suffix = m.string("group_suffix", default=DEFAULT_FAILBACK_SUFFIX)
    if not _SUFFIX.fullmatch(suffix):
        raise ConfigError(m.key("group_suffix"), f"{suffix!r} is not 1-32 of [A-Za-z0-9._-]")
    seed = m.string("seed_path", default="")
    return FailbackSettings(
        target_address=_target(target),
        target_tls_dir=_target_tls(target, base),
        site=_recovery(m.child("site"), base),
        seed_path=plan_path(base, seed) if seed else "",
        group_suffix=suffix,
    )


def _recovery(m: Section, base: str) -> RecoverySite:
    m.allow(
        "datacenter",
        "cluster",
        "hosts",
        "datastore",
        "resource_pool",
        "folder",
        "max_vcpus_per_cpu",
        "parallel",
        "power_on_timeout_s",
        "estimate_task_s",
        "estimate_export_bytes_per_s",
        "mac_addresses",
        "disks",
    )
    disks = m.choice("disks", (DISKS_CHAIN, DISKS_COPY), DISKS_CHAIN)
    macs = m.child("mac_addresses", required=False)
    if macs is not None:
        macs.allow("live", "test")
    cluster = m.string("cluster", default="")
    hosts = tuple(m.strings("hosts"))
    if not cluster and not hosts:
        raise ConfigError(m.key("cluster"), "name a cluster or a list of hosts (standby hosts)")
    return RecoverySite(
        datacenter=m.string("datacenter", required=True),
        cluster=cluster,
        hosts=hosts,
        datastore=_datastore(m.child("datastore"), base),
        resource_pool=m.string("resource_pool", default=""),
        folder=m.string("folder", default=""),
        max_vcpus_per_cpu=m.number("max_vcpus_per_cpu", DEFAULT_MAX_VCPUS_PER_CPU, low=0.1),
        parallel=m.integer("parallel", default=DEFAULT_PARALLEL, low=1, high=64),
        power_on_timeout_s=m.number("power_on_timeout_s", DEFAULT_POWER_ON_TIMEOUT_S, low=1.0),
        estimate_task_s=m.number("estimate_task_s", DEFAULT_ESTIMATE_TASK_S, low=0.0),
        estimate_export_bytes_per_s=m.number(
            "estimate_export_bytes_per_s", DEFAULT_ESTIMATE_EXPORT_BYTES_PER_S, low=1.0
        ),
        mac_live=macs.choice("live", MAC_POLICIES, DEFAULT_MAC_LIVE) if macs else DEFAULT_MAC_LIVE,
        mac_test=macs.choice("test", MAC_POLICIES, DEFAULT_MAC_TEST) if macs else DEFAULT_MAC_TEST,
        disks=disks,
    )


def _datastore(m: Section, base: str) -> DatastoreSettings:
    m.allow("name", "path", "reserve_bytes", "nfs")
    path = plan_path(base, m.string("path", required=True))
    nfs = m.child("nfs", required=False)
    if nfs is not None:
        nfs.allow("server", "export")
        export = nfs.string("export", default=path)
        if not export.startswith("/"):
            raise ConfigError(nfs.key("export"), f"{export!r} is not an absolute path")
    return DatastoreSettings(
        name=m.string("name", required=True),
        path=path,
        reserve_bytes=m.integer("reserve_bytes", default=0, low=0),
        nfs_server=nfs.string("server", required=True) if nfs is not None else "",
        nfs_export=export if nfs is not None else "",
    )


def _networks(items: list[Section]) -> tuple[NetworkMapping, ...]:
    out: list[NetworkMapping] = []
    for item in items:
        item.allow("source", "live", "test")
        mapping = NetworkMapping(
            item.string("source", required=True),
            item.string("live", required=True),
            item.string("test", required=True),
        )
        if any(o.source == mapping.source for o in out):
            raise ConfigError(item.key("source"), f"network {mapping.source!r} is mapped twice")
        out.append(mapping)
    return tuple(out)


def _groups(
    items: list[Section], networks: tuple[NetworkMapping, ...], base: str
) -> tuple[GroupSettings, ...]:
    if not items:
        raise ConfigError("groups", "list at least one group")
    out: list[GroupSettings] = []
    seen_vms: set[str] = set()
    for item in items:
        item.allow("name", "vms")
        name = item.name("name")
        if any(g.name == name for g in out):
            raise ConfigError(item.key("name"), f"group {name!r} is listed twice")
        vm_items = item.sequence("vms", required=True)
        if not vm_items:
            raise ConfigError(item.key("vms"), "list at least one VM")
        vms = tuple(_vm(v, networks, seen_vms, base) for v in vm_items)
        out.append(GroupSettings(name, vms))
    return tuple(out)


def _vm(m: Section, networks: tuple[NetworkMapping, ...], seen: set[str], base: str) -> VmSettings:
    m.allow("name", "cpus", "memory_mb", "nics", "verify", "post_power_on")
    name = m.name("name")
    if name in seen:
        raise ConfigError(m.key("name"), f"VM {name!r} is listed twice")
    seen.add(name)
    nics = []
    for nic in m.sequence("nics", required=False):
        nic.allow("network", "adapter")
        network = nic.string("network", required=True)
        if not any(n.source == network for n in networks):
            raise ConfigError(
                nic.key("network"),
                f"{network!r} is not a network_mappings[].source",
                hint="map every NIC's network to a live and a test port group",
            )
        adapter = nic.choice("adapter", ADAPTERS, "vmxnet3")
        nics.append(NicSettings(network, adapter, "adapter" in nic.data))
    return VmSettings(
        name=name,
        cpus=m.integer("cpus", default=1, low=1, high=768),
        memory_mb=m.integer("memory_mb", default=1024, low=4, high=24 * 2**20),
        nics=tuple(nics),
        verify=_verify(m.child("verify", required=False), base),
        given=frozenset(k for k in ("cpus", "memory_mb") if k in m.data),
        post_power_on=_verify(m.child("post_power_on", required=False), base),
    )


def _verify(m: Section | None, base: str) -> VerifyHook | None:
    if m is None:
        return None
    m.allow("command", "timeout_s")
    command = m.strings("command")
    if not command:
        raise ConfigError(
            m.key("command"),
            "required: the program and its arguments, as a list",
            hint='e.g. command: ["/usr/local/bin/check-vm", "--quick"]',
        )
    if "/" in command[0]:  # a path, not a name looked up in PATH
        command[0] = plan_path(base, command[0])
    timeout_s = m.number("timeout_s", DEFAULT_VERIFY_TIMEOUT_S, low=0.1, high=86400.0)
    return VerifyHook(tuple(command), timeout_s)


def _boot_order(items: list[Section], vms: list[str]) -> tuple[BootGroup, ...]:
    if not items:
        return (BootGroup("all", tuple(vms)),)
    out: list[BootGroup] = []
    placed: dict[str, str] = {}
    for item in items:
        item.allow("name", "vms", "delay_s", "tools_timeout_s")
        name = item.name("name")
        members = item.strings("vms")
        for i, vm in enumerate(members):
            key = f"{item.key('vms')}[{i}]"
            if vm not in vms:
                raise ConfigError(key, f"{vm!r} is not a VM of any group in this plan")
            if vm in placed:
                raise ConfigError(key, f"{vm!r} is already in boot group {placed[vm]!r}")
            placed[vm] = name
        tools_s = item.number("tools_timeout_s", 0.0, low=0.0, high=86400.0)
        out.append(BootGroup(name, tuple(members), item.number("delay_s", 0.0, low=0.0), tools_s))
    missing = [vm for vm in vms if vm not in placed]
    if missing:
        raise ConfigError("boot_order", f"VMs in no boot group: {', '.join(missing)}")
    return tuple(out)


def _commit(m: Section | None) -> CommitPolicy:
    if m is None:
        return CommitPolicy()
    m.allow("timeout_s", "default_action")
    return CommitPolicy(
        timeout_s=m.number("timeout_s", DEFAULT_COMMIT_TIMEOUT_S, low=0.0),
        default_action=m.choice("default_action", COMMIT_ACTIONS, DEFAULT_COMMIT_ACTION),
    )
