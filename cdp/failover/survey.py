"""Read-only survey before an operation: gather facts, resolve the point, build the plan.

Nothing here changes vCenter, the target or the datastore. The orchestrator runs a
survey first for every operation (it is what ``check`` and ``--dry-run`` print), gates
on its check rows, and only then executes the :class:`~cdp.failover.steps.OperationPlan`
the survey built.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cdp import naming
from cdp.errors import CdpError
from cdp.failover import capture, datastore, fidelity
from cdp.failover import steps as st
from cdp.failover.chain import chain_bytes
from cdp.failover.checks import MODE_CHECK, CheckRow, Facts, evaluate
from cdp.failover.plan import DISKS_CHAIN, Plan
from cdp.failover.replication import STATE_REPLICATING, GroupFacts, PointFacts, Replication
from cdp.failover.vcenter import SiteFacts, VCenter

DEFAULT_RPO_PROBE_S = 0.5
"""How long a connected group's durable seq is watched to tell idle from behind, seconds."""


@dataclass(frozen=True)
class SurveyResult:
    """What a survey found: the check table and, when it could be built, the plan."""

    rows: list[CheckRow]
    facts: Facts
    operation: st.OperationPlan | None
    seconds: float
    site_exception: CdpError | None = None
    """Why vCenter could not be read (login, TLS, unreachable), if it could not."""


class Survey:
    """Gathers facts for one plan from vCenter, the target and the datastore's folder."""

    def __init__(
        self,
        plan: Plan,
        vcenter: Callable[[], VCenter],
        replication: Replication,
        login: str = "",
        rpo_probe_s: float = DEFAULT_RPO_PROBE_S,
        protected: Callable[[], VCenter] | None = None,
    ) -> None:
        self.plan = plan
        self._protected = protected
        self.login = login
        self._vcenter = vcenter
        self.replication = replication
        self.rpo_probe_s = rpo_probe_s

    async def run(
        self,
        mode: str,
        at: str = "latest",
        planned: bool = False,
        own_paths: frozenset[str] = frozenset(),
        pending_exports: set[str] | None = None,
        points: dict[str, PointFacts] | None = None,
    ) -> SurveyResult:
        """Gather, check and plan for ``mode`` (``check``, ``test`` or ``live``).

        ``points`` given (a resumed operation) are used as they are; otherwise ``at`` is
        resolved per group, except for a planned failover (its point comes after the drain).
        """
        t0 = time.monotonic()
        hardware_rows: list[
            CheckRow
        ] = []  # captured first: the plan below is built from the new capture
        if mode == MODE_CHECK and self.plan.protected_site and self._protected is not None:
            hardware_rows = await capture.refresh_profiles(self.plan, self._protected)
        (site, site_exc), (groups, group_errors) = await asyncio.gather(
            self._site(), self._groups()
        )
        rpo = await self._rpo(groups)
        if points is None:
            points = {} if planned else await self._points(groups, group_errors, at, mode)
        sources, sources_error = await self._sources() if planned else (None, "")
        facts = Facts(
            site=site,
            site_error=str(site_exc or ""),
            login=self.login,
            groups=groups,
            group_errors=group_errors,
            rpo_s=rpo,
            replica_folders=self._replica_folders(),
            local_free_bytes=_free_bytes(self.plan.recovery.datastore.path),
            own_paths=own_paths,
            planned=planned,
            protected_vms=sources,
            protected_error=sources_error,
        )
        operation = None
        if site is not None and not group_errors and not self._unknown_vms(groups):
            facts, operation = await self._plan(
                mode, facts, site, groups, points, planned, pending_exports
            )
        profiles = await asyncio.to_thread(capture.load_profiles, self.plan)
        modes = (st.MODE_LIVE, st.MODE_TEST) if mode == MODE_CHECK else (mode,)
        hardware_rows += capture.reip_rows(self.plan, profiles, modes)
        if mode == MODE_CHECK and site is not None:
            hardware_rows += await datastore.prove(self.plan, self._vcenter)
        rows = evaluate(self.plan, facts, mode) + hardware_rows
        return SurveyResult(rows, facts, operation, time.monotonic() - t0, site_exc)

    # ---------------------------------------------------------------- vCenter

    async def _site(self) -> tuple[SiteFacts | None, CdpError | None]:
        r = self.plan.recovery
        try:
            vc = await asyncio.to_thread(self._vcenter)
            site = await asyncio.to_thread(
                vc.site, r.datacenter, r.cluster, r.hosts, r.datastore.name
            )
        except CdpError as exc:
            return None, exc
        return site, None

    async def _sources(self) -> tuple[dict[str, str] | None, str]:
        """Power state of each source VM at the protected site (planned failover)."""
        site = self.plan.protected_site
        if site is None or self._protected is None:
            return None, ""
        try:
            vc = await asyncio.to_thread(self._protected)
            found = {}
            for _, vm in self.plan.vms():
                facts = await asyncio.to_thread(vc.find_vm_by_name, site.datacenter, vm.name)
                if facts is not None:
                    found[vm.name] = facts.power_state
        except CdpError as exc:
            return None, f"protected site: {exc}"
        return found, ""

    # ---------------------------------------------------------------- target

    async def _groups(self) -> tuple[dict[str, GroupFacts], dict[str, str]]:
        found: dict[str, GroupFacts] = {}
        errors: dict[str, str] = {}
        for g in self.plan.groups:
            try:
                found[g.name] = await self.replication.group(g.name)
            except CdpError as exc:
                errors[g.name] = str(exc)
        return found, errors

    def _unknown_vms(self, groups: dict[str, GroupFacts]) -> list[str]:
        return [vm.name for g, vm in self.plan.vms() if groups[g].vm(vm.name) is None]

    async def _rpo(self, groups: dict[str, GroupFacts]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, g in groups.items():
            out[name] = await self._rpo_of(g)
        return out

    async def _rpo_of(self, g: GroupFacts) -> float | None:
        """RPO of a group as the target can tell it (see checks.py)."""
        if not g.durable_ns:
            return None
        lag = max(0.0, (time.time_ns() - g.durable_ns) / 1e9)
        if g.state != STATE_REPLICATING:  # no new point can be offered: the target's RPO
            return max(lag, g.rpo_s) if g.rpo_s is not None else lag
        if lag <= self.plan.rpo_sla_s:
            return lag
        await asyncio.sleep(self.rpo_probe_s)
        again = await self.replication.group(g.name)
        if again.durable_seq == g.durable_seq and again.state == STATE_REPLICATING:
            return 0.0  # connected and idle: nothing is waiting to be sent
        return max(0.0, (time.time_ns() - again.durable_ns) / 1e9)

    async def _points(
        self, groups: dict[str, GroupFacts], errors: dict[str, str], at: str, mode: str
    ) -> dict[str, PointFacts]:
        """Resolve ``at`` once per group (its first VM's first disk); the seq pins it."""
        points: dict[str, PointFacts] = {}
        for group in self.plan.groups:
            g = groups.get(group.name)
            first = g.vm(group.vms[0].name) if g else None
            if g is None or first is None or not first.disks:
                continue
            try:
                image = await self.replication.image_plan(g.name, first.name, 0, at)
            except CdpError as exc:
                if mode != MODE_CHECK:
                    raise
                errors[g.name] = str(exc)
                continue
            points[g.name] = image.point
        return points

    # ---------------------------------------------------------------- local folder

    def _replica_folders(self) -> dict[str, bool]:
        root = self.plan.recovery.datastore.path
        return {vm.name: os.path.isdir(os.path.join(root, vm.name)) for _, vm in self.plan.vms()}

    async def _bytes(
        self, groups: dict[str, GroupFacts], points: dict[str, PointFacts], pending: set[str] | None
    ) -> int:
        """Bytes the exports will write: per disk, what it holds at the point.

        A copy: the base extent's allocated data plus that disk's journal records up to
        the point, at most the disk's capacity: records that overwrite the same blocks add
        nothing to the image (issue 13 defect 9). A copy-free chain: the journal tail plus
        grain metadata (:func:`cdp.failover.chain.chain_bytes`), never the base's data.
        The room check and the RTO estimate use this.
        """
        limit = asyncio.Semaphore(self.plan.recovery.parallel)
        chains = self.plan.recovery.disks == DISKS_CHAIN

        async def one(group: str, vm: str, disk: int) -> int:
            extent = os.path.join(
                self.plan.recovery.datastore.path, vm, naming.format_disk_extent(vm, disk)
            )
            point = points.get(group)
            async with limit:
                image = await self.replication.image_plan(
                    group, vm, disk, str(point.seq) if point else "latest"
                )
            if chains:
                return chain_bytes(image.capacity_bytes, image.records, image.record_bytes)
            return min(_allocated(extent) + image.record_bytes, image.capacity_bytes)

        todo = []
        for group, vm in self.plan.vms():
            replica = groups[group].vm(vm.name)
            for d in replica.disks if replica else ():
                if pending is None or f"{st.EXPORT}:{vm.name}:{d.index}" in pending:
                    todo.append(one(group, vm.name, d.index))
        return sum(await asyncio.gather(*todo))

    # ---------------------------------------------------------------- the plan

    async def _plan(
        self,
        mode: str,
        facts: Facts,
        site: SiteFacts,
        groups: dict[str, GroupFacts],
        points: dict[str, PointFacts],
        planned: bool,
        pending: set[str] | None,
    ) -> tuple[Facts, st.OperationPlan | None]:
        profiles = await asyncio.to_thread(capture.load_profiles, self.plan)
        vms = [fidelity.effective(vm, profiles.get(vm.name)) for _, vm in self.plan.vms()]
        placement, unplaced = st.place(vms, site.hosts, self.plan.recovery.max_vcpus_per_cpu)
        try:
            needed = await self._bytes(groups, points, pending)
        except CdpError:
            if mode != MODE_CHECK:
                raise
            needed = 0  # the group's row already reports why its point cannot be read
        facts = replace(facts, bytes_needed=needed, unplaced=tuple(unplaced), vms=tuple(vms))
        if mode == MODE_CHECK:
            return facts, None
        recovered = st.recovered_vms(self.plan, mode, groups, placement, profiles)
        steps = st.failover_steps(self.plan, recovered, planned, mode)
        all_points: dict[str, PointFacts | None] = {
            g.name: points.get(g.name) for g in self.plan.groups
        }
        disks = sum(s.kind == st.EXPORT and (pending is None or s.id in pending) for s in steps)
        rto = st.estimate_rto(self.plan, needed, len(recovered), planned, disks=disks)
        return facts, st.OperationPlan(mode, planned, all_points, recovered, steps, needed, rto)


def _allocated(path: str) -> int:
    """Bytes a sparse file really holds (0 if it does not exist)."""
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def _free_bytes(path: str) -> int | None:
    try:
        s = os.statvfs(path)
    except OSError:
        return None
    return s.f_bavail * s.f_frsize
