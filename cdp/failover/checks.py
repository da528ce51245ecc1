"""The readiness check table, pure over facts the orchestrator gathered.

``cdp failover check`` prints it; every operation evaluates it first and refuses to
start on a ``fail`` row (:func:`gate`). Rows are ``pass``, ``warn`` (reported, never
blocks), ``fail`` or ``skip`` (could not be evaluated because an earlier row failed).

Decisions where the issue is silent:

* A standby host that is disconnected or in maintenance mode is a ``warn`` row and is
  left out of placement; it is a ``fail`` only when no usable host is left.
* RPO over the plan's SLA fails ``check`` (the readiness question) but only warns for
  an operation: a recovery runs from the chosen point whatever the RPO, and in a real
  disaster the source is gone, so the RPO grows until someone fails over.
* RPO as the target can see it: a connected source whose durable seq did not move
  during a short probe is idle (RPO 0); otherwise now minus the source time of the
  newest durable write (an upper bound while writes flow, the loss so far when the
  source is disconnected).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cdp.failover.errors import ReadinessError
from cdp.failover.plan import Plan, VmSettings
from cdp.failover.replication import (
    STATE_ERROR,
    STATE_REPLICATING,
    GroupFacts,
)
from cdp.failover.steps import MODE_LIVE, MODE_TEST, registration_name, vmx_path
from cdp.failover.vcenter import SiteFacts
from cdp.restore.spec import format_ns

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
MODE_CHECK = "check"
"""``cdp failover check``: both networks and both sets of paths, RPO is a fail row."""


@dataclass(frozen=True)
class CheckRow:
    """One line of the readiness table."""

    name: str
    status: str
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at, gathered beforehand."""

    site: SiteFacts | None
    site_error: str = ""
    login: str = ""
    """Who logged in, from where (e.g. ``cdp via env CDP_VCENTER_USER/...``)."""
    groups: dict[str, GroupFacts] = field(default_factory=dict)
    group_errors: dict[str, str] = field(default_factory=dict)
    rpo_s: dict[str, float | None] = field(default_factory=dict)
    replica_folders: dict[str, bool] = field(default_factory=dict)
    """VM -> its base replica folder ``<datastore path>/<vm>/`` exists."""
    local_free_bytes: int | None = None
    """Free bytes under the datastore's local path (statvfs), None if unreadable."""
    bytes_needed: int = 0
    unplaced: tuple[str, ...] = ()
    planned: bool = False
    protected_vms: dict[str, str] | None = None
    """Planned failover: source VM -> power state at the protected site (None: not read)."""
    protected_error: str = ""
    own_paths: frozenset[str] = frozenset()
    """.vmx paths registered by the operation being resumed (not a conflict)."""
    vms: tuple[VmSettings, ...] = ()
    """The plan's VMs with their captured hardware applied (empty: the plan's as written)."""


def evaluate(plan: Plan, facts: Facts, mode: str) -> list[CheckRow]:
    """The readiness table for ``mode`` (``check``, ``test`` or ``live``)."""
    rows = _vcenter_rows(plan, facts)
    if facts.site is not None:
        rows += _host_rows(plan, facts.site)
        rows += _capacity_rows(plan, facts)
        rows += _datastore_rows(plan, facts)
        rows += _network_rows(plan, facts.site, mode)
        rows += _registration_rows(plan, facts, mode)
    else:
        rows += [
            CheckRow(n, SKIP, "vCenter not reachable")
            for n in (
                "standby hosts",
                "CPU and memory",
                "datastore",
                "port groups",
                ".vmx paths free",
            )
        ]
    rows += _replica_rows(plan, facts)
    rows += _rpo_rows(plan, facts, mode)
    if facts.planned:
        rows += _planned_rows(plan, facts)
    return rows


def gate(rows: list[CheckRow]) -> None:
    """Raise ReadinessError listing every failed row; return when none failed."""
    failed = [r for r in rows if r.status == FAIL]
    if failed:
        lines = "; ".join(
            f"{r.name}: {r.detail}" + (f" ({r.hint})" if r.hint else "") for r in failed
        )
        raise ReadinessError(
            f"{len(failed)} readiness check(s) failed: {lines}",
            hint="run `cdp failover check --plan FILE` for the whole table",
        )


def _vcenter_rows(plan: Plan, facts: Facts) -> list[CheckRow]:
    tls = plan.vcenter.tls
    if not tls.verify:
        tls_row = CheckRow(
            "TLS verification",
            WARN,
            "off (vcenter.tls.verify: false)",
            "trust a CA (ca_file) or pin the thumbprint outside labs",
        )
    else:
        how = "pinned SHA-256 thumbprint" if tls.thumbprint else (tls.ca_file or "system CA store")
        tls_row = CheckRow("TLS verification", PASS, f"on ({how})")
    if facts.site is None:
        return [CheckRow("vCenter reachable", FAIL, facts.site_error), tls_row]
    return [CheckRow("vCenter reachable", PASS, f"{facts.site.about}; {facts.login}"), tls_row]


def _host_rows(plan: Plan, site: SiteFacts) -> list[CheckRow]:
    rows = [
        CheckRow(f"host {name}", FAIL, "not found in vCenter", "fix recovery.hosts")
        for name in site.missing_hosts
    ]
    for h in site.hosts:
        if h.usable:
            rows.append(
                CheckRow(
                    f"host {h.name}",
                    PASS,
                    f"connected, {h.cpu_threads} CPUs, "
                    f"{_gb(h.memory_bytes - h.memory_used_bytes)} memory free",
                )
            )
        else:
            rows.append(
                CheckRow(
                    f"host {h.name}",
                    WARN,
                    f"{h.problem}; not used",
                    "reconnect it / exit maintenance mode to use it",
                )
            )
    if not any(h.usable for h in site.hosts):
        problems = ", ".join(f"{h.name} {h.problem}" for h in site.hosts) or "no hosts"
        rows.append(
            CheckRow(
                "standby hosts",
                FAIL,
                f"no usable standby host ({problems})",
                "reconnect a host or take it out of maintenance mode",
            )
        )
    return rows


def _capacity_rows(plan: Plan, facts: Facts) -> list[CheckRow]:
    assert facts.site is not None
    vms = list(facts.vms) or [vm for _, vm in plan.vms()]
    usable = [h for h in facts.site.hosts if h.usable]
    ratio = plan.recovery.max_vcpus_per_cpu
    need = f"needs {sum(v.cpus for v in vms)} vCPUs, {_gb(sum(v.memory_mb for v in vms) * 2**20)}"
    have = (
        f"{sum(h.cpu_threads * ratio - h.vcpus_running for h in usable):g} vCPUs, "
        f"{_gb(sum(h.memory_bytes - h.memory_used_bytes for h in usable))} free on "
        f"{len(usable)} usable host(s)"
    )
    if facts.unplaced:
        return [
            CheckRow(
                "CPU and memory",
                FAIL,
                f"{need}; {have}; no room for {', '.join(facts.unplaced)}",
                "add standby hosts, lower cpus/memory_mb or raise max_vcpus_per_cpu",
            )
        ]
    return [CheckRow("CPU and memory", PASS, f"{need}; {have}")]


def _datastore_rows(plan: Plan, facts: Facts) -> list[CheckRow]:
    assert facts.site is not None
    ds = facts.site.datastore
    name = plan.recovery.datastore.name
    if ds is None or not ds.accessible:
        why = "not in the datacenter" if ds is None else "not accessible"
        return [
            CheckRow(
                f"datastore {name}",
                FAIL,
                why,
                "mount the target's replica folder as this datastore on the standby "
                "hosts (NFS, or CreateLocalDatastore in a lab)",
            )
        ]
    unmounted = [h.name for h in facts.site.hosts if h.usable and name not in h.datastores]
    rows = [
        CheckRow(
            f"datastore {name}",
            FAIL,
            f"not mounted on {', '.join(unmounted)}",
            "mount it on every standby host",
        )
        if unmounted
        else CheckRow(
            f"datastore {name}", PASS, "present, accessible, mounted on every usable host"
        )
    ]
    return rows + [_room_row(plan, facts, ds.free_bytes if ds.capacity_bytes else None)]


def _room_row(plan: Plan, facts: Facts, vcenter_free: int | None) -> CheckRow:
    known = [f for f in (vcenter_free, facts.local_free_bytes) if f is not None]
    reserve = plan.recovery.datastore.reserve_bytes
    need = facts.bytes_needed + reserve
    if not known:
        return CheckRow("datastore room", WARN, f"free space unknown; needs {_gb(need)}")
    free = min(known)
    detail = f"needs {_gb(facts.bytes_needed)}" + (f" + {_gb(reserve)} reserve" if reserve else "")
    if free < need:
        return CheckRow(
            "datastore room",
            FAIL,
            f"datastore full: {_gb(free)} free, {detail}",
            "free space on the recovery datastore or pick an older point",
        )
    return CheckRow("datastore room", PASS, f"{_gb(free)} free, {detail}")


def _network_rows(plan: Plan, site: SiteFacts, mode: str) -> list[CheckRow]:
    rows = []
    for label, attr in (("live", MODE_LIVE), ("test", MODE_TEST)):
        if mode not in (MODE_CHECK, attr):
            continue
        used = {n.network for vm in plan.vms() for n in vm[1].nics}
        names = sorted({getattr(plan.mapping(s), label) for s in used})
        missing = [n for n in names if n not in site.networks]
        off_host = [
            f"{n} on {h.name}"
            for n in names
            if n not in missing
            for h in site.hosts
            if h.usable and n not in h.networks
        ]
        if missing:
            rows.append(
                CheckRow(
                    f"port groups ({label})",
                    FAIL,
                    f"port group missing: {', '.join(missing)}",
                    "create it or fix network_mappings",
                )
            )
        elif off_host:
            rows.append(
                CheckRow(
                    f"port groups ({label})",
                    FAIL,
                    f"not available: {', '.join(off_host)}",
                    "add the hosts to the switch",
                )
            )
        else:
            rows.append(CheckRow(f"port groups ({label})", PASS, ", ".join(names) or "no NICs"))
    return rows


def _registration_rows(plan: Plan, facts: Facts, mode: str) -> list[CheckRow]:
    assert facts.site is not None
    modes = [MODE_TEST, MODE_LIVE] if mode == MODE_CHECK else [mode]
    by_path = {v.path: v for v in facts.site.vms}
    by_name = {v.name: v for v in facts.site.vms}
    clashes = []
    for m in modes:
        for _, vm in plan.vms():
            path = vmx_path(plan.recovery.datastore.name, vm.name, m)
            name = registration_name(vm.name, m)
            if path in facts.own_paths:
                continue
            if path in by_path:
                clashes.append(f"VM already registered: {path} as {by_path[path].name!r}")
            elif name in by_name:
                clashes.append(
                    f"VM already registered: name {name!r} is taken ({by_name[name].path})"
                )
    if clashes:
        return [
            CheckRow(
                ".vmx paths free",
                FAIL,
                "; ".join(clashes),
                "`cdp failover status --plan FILE` shows which operation registered it: "
                "stop-test a test; a live failover's VMs may hold production data — commit, "
                "fail back or roll back (rollback names what would be lost)",
            )
        ]
    return [CheckRow(".vmx paths free", PASS, "no recovered VM is registered yet")]


def _replica_rows(plan: Plan, facts: Facts) -> list[CheckRow]:
    rows = []
    for gi, group in enumerate(plan.groups):
        if group.name in facts.group_errors:
            rows.append(
                CheckRow(
                    f"group {group.name}",
                    FAIL,
                    f"groups[{gi}].name: {facts.group_errors[group.name]}",
                )
            )
            continue
        g = facts.groups[group.name]
        unknown = [
            f"groups[{gi}].vms[{vi}].name: group {g.name!r} has no VM {vm.name!r}"
            for vi, vm in enumerate(group.vms)
            if g.vm(vm.name) is None
        ]
        if unknown:
            have = ", ".join(v.name for v in g.vms)
            rows.append(CheckRow(f"group {g.name}", FAIL, "; ".join(unknown) + f" (it has {have})"))
            continue
        status = (
            FAIL
            if g.state == STATE_ERROR
            else PASS
            if g.state in (STATE_REPLICATING, "disconnected")
            else WARN
        )
        detail = f"state {g.state}, durable seq {g.durable_seq}" + (
            f": {g.error}" if g.error else ""
        )
        rows.append(
            CheckRow(
                f"group {g.name}",
                status,
                detail,
                "" if status == PASS else "see `cdp status` and the target log",
            )
        )
        rows += _folder_rows(plan, facts, group.vms)
    return rows


def _folder_rows(plan: Plan, facts: Facts, vms: tuple[VmSettings, ...]) -> list[CheckRow]:
    missing = [vm.name for vm in vms if not facts.replica_folders.get(vm.name, False)]
    if missing:
        return [
            CheckRow(
                "replica folders",
                FAIL,
                f"no base replica folder for {', '.join(missing)} "
                f"under {plan.recovery.datastore.path}",
                "recovery.datastore.path must be the target's <data_dir>/replicas",
            )
        ]
    return []


def _rpo_rows(plan: Plan, facts: Facts, mode: str) -> list[CheckRow]:
    rows = []
    for group in plan.groups:
        if group.name not in facts.groups:
            continue
        rpo = facts.rpo_s.get(group.name)
        g = facts.groups[group.name]
        if g.failed_back_ns and rpo is not None and time.time_ns() - rpo * 1e9 < g.failed_back_ns:
            rows.append(
                CheckRow(
                    f"RPO {group.name}",
                    FAIL if mode == MODE_CHECK else WARN,  # `run` refuses it (guard_failed_back)
                    f"failed back at {format_ns(g.failed_back_ns)} and not protected from the "
                    f"original site since: the newest point here ({rpo:.0f} s old) predates "
                    "production, so a live failover is refused",
                    f"start the original site's source with epoch {g.epoch} (`cdp sim run "
                    f"--epoch {g.epoch}`); it resyncs in full",
                )
            )
        elif rpo is None:
            rows.append(CheckRow(f"RPO {group.name}", WARN, "no write has reached the target yet"))
        elif rpo > plan.rpo_sla_s:
            status = FAIL if mode == MODE_CHECK else WARN
            rows.append(
                CheckRow(
                    f"RPO {group.name}",
                    status,
                    f"{rpo:.1f} s exceeds the SLA of {plan.rpo_sla_s:g} s",
                    "check the link and the source (cdp status)",
                )
            )
        else:
            rows.append(
                CheckRow(f"RPO {group.name}", PASS, f"{rpo:.1f} s (SLA {plan.rpo_sla_s:g} s)")
            )
    return rows


def _planned_rows(plan: Plan, facts: Facts) -> list[CheckRow]:
    """A planned failover stops the sources and proves the drain: both must be possible."""
    if facts.protected_vms is None:
        return [
            CheckRow(
                "protected site",
                FAIL,
                facts.protected_error or "not configured",
                "add protected_site to the plan, or fail over unplanned",
            )
        ]
    missing = [vm.name for _, vm in plan.vms() if vm.name not in facts.protected_vms]
    states = ", ".join(f"{n} {s}" for n, s in sorted(facts.protected_vms.items()))
    rows = [
        CheckRow(
            "protected site",
            WARN if missing else PASS,
            f"source VMs: {states or 'none found'}"
            + (f"; not found: {', '.join(missing)}" if missing else ""),
        )
    ]
    for name, g in sorted(facts.groups.items()):
        if g.state != STATE_REPLICATING:
            rows.append(
                CheckRow(
                    f"drain {name}",
                    FAIL,
                    f"the source is {g.state}: cdp cannot prove every write reached the target",
                    "reconnect the source, or fail over unplanned (newest point)",
                )
            )
    return rows


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
