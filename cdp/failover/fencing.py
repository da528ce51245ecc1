"""The target-side half of a safe failover: lifecycle marks, fencing and the split-brain guard.

:func:`mark` records each group's lifecycle at the target (``SetLifecycle`` through the
:class:`~cdp.failover.replication.Replication` seam); a live failover fences (raises the
group's epoch, so the old source can never write the failed-over group again) and a
rollback unfences. :func:`guard_committed` refuses a new live failover of a group failed
over (or failing back), :func:`guard_failed_back` one to a point older than a failback;
:func:`guard_split_brain` refuses an unplanned failover while a source
of a group is connected, unless the operator fences the protected VMs first
(``--fence-protected``, through the protected vCenter) or overrides
(``--force-split-brain``). Never imports grpc or pyVmomi.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from cdp import lifecycle as lc
from cdp.errors import PreconditionError, RemoteError
from cdp.failover.errors import OperationStateError
from cdp.failover.plan import Plan
from cdp.failover.replication import PointFacts, Replication
from cdp.failover.vcenter import VCenter
from cdp.restore.spec import format_ns

SPLIT_BRAIN_FLAG = "--force-split-brain"
"""Run an unplanned failover although a source is connected (two copies may run)."""
FENCE_FLAG = "--fence-protected"
"""Power off the protected VMs through the protected vCenter before an unplanned failover."""


async def mark(
    replication: Replication, plan: Plan, state: str, *, fence: bool = False,
    unfence: bool = False, note: str = "",
) -> None:  # fmt: skip
    """Record ``state`` for every group of the plan; an unfence with no open fence is a mark."""
    for group in plan.groups:
        try:
            await replication.set_lifecycle(
                group.name, state, fence=fence, unfence=unfence, note=note
            )
        except PreconditionError:  # no fence open (a planned run stopped before its fence)
            if not unfence:
                raise
        except RemoteError as exc:  # a failback's reverse source may not unfence: keep it
            if not unfence or exc.code != "PERMISSION_DENIED":
                raise
        else:
            continue
        await replication.set_lifecycle(group.name, state, note=note)


TEST_MARKS = (lc.PROTECTING, lc.TEST_RUNNING)
"""The lifecycle states a test failover (and its stop-test) may replace."""


async def mark_test(replication: Replication, plan: Plan, state: str, note: str) -> None:
    """Record a test's ``state`` for the groups that are protecting or test running.

    A test of a failed-over group (e.g. ``verify`` after a commit) leaves its state alone.
    """
    for group in plan.groups:
        if (await replication.group(group.name)).lifecycle in TEST_MARKS:
            await replication.set_lifecycle(group.name, state, note=note)


async def guard_committed(replication: Replication, plan: Plan) -> None:
    """Refuse a new live failover of a group failed over and committed, or failing back.

    Its copy at this target stops at that failover, and production runs elsewhere (the
    recovered VMs). A failback ends with the group protecting again (see
    :func:`guard_failed_back` for what a run may do then).
    """
    for group in plan.groups:
        facts = await replication.group(group.name)
        if facts.lifecycle in (lc.REVERSE_PROTECTING, lc.FAILING_BACK):
            raise OperationStateError(
                f"group {group.name} is {facts.lifecycle.replace('_', ' ')} (a failback is "
                "under way): production is on its way to the original site",
                hint=f"finish it: `cdp failover failback --plan {plan.source_path}` (it "
                "resumes); `cdp failover status` shows where it stopped",
            )
        if facts.lifecycle != lc.FAILED_OVER_COMMITTED:
            continue
        raise OperationStateError(
            f"group {group.name} was failed over and committed (epoch {facts.epoch}): its "
            "copy at this target stops at that failover and production runs elsewhere; a "
            "new failover would start a second, older copy of the VMs",
            hint=f"after a commit the way back is `cdp failover failback --plan "
            f"{plan.source_path}`, which ends with the group protecting again",
        )


async def guard_failed_back(
    replication: Replication, plan: Plan, points: Mapping[str, PointFacts | None],
    force: bool, *, warn: Callable[[str], None],
) -> None:  # fmt: skip
    """Refuse a live failover to a point older than the group's failback.

    After a failback production runs at the original site, from disks that changed at the
    recovery site; this target's history stops at the failover until the original site's
    source protects the group again (with the group's epoch, and a full resync). Until
    then its newest point predates production, and no source is connected, so the
    split-brain guard cannot see that production runs: a failover would start a second,
    older copy of the VMs. ``--force-split-brain`` (``force``) goes ahead, e.g. when the
    original site is lost before its source came back.
    """
    for group in plan.groups:
        facts = await replication.group(group.name)
        point = points.get(group.name)
        if not facts.failed_back_ns or point is None or point.time_ns >= facts.failed_back_ns:
            continue
        text = (
            f"group {group.name} failed back at {format_ns(facts.failed_back_ns)} and has "
            f"not been protected from the original site since: its newest point here (seq "
            f"{point.seq}, {format_ns(point.time_ns)}) predates production's disks, and a "
            "failover now would start a second, older copy of the VMs"
        )
        if force:
            warn(f"{SPLIT_BRAIN_FLAG}: {text}")
            continue
        raise OperationStateError(
            text,
            hint=f"protect it again: start the original site's source with epoch "
            f"{facts.epoch} (`cdp sim run --epoch {facts.epoch}`; it resyncs in full), then "
            "fail over; if the original site is lost, the data up to the failback is in the "
            f"<vm>-dr folders at the recovery datastore; {SPLIT_BRAIN_FLAG} fails over to "
            "this older point anyway",
        )


async def connected_sources(replication: Replication, plan: Plan) -> dict[str, tuple[str, ...]]:
    """Group -> the source ids connected to it now (groups without one left out)."""
    found = {}
    for group in plan.groups:
        facts = await replication.group(group.name)
        if facts.connected_sources:
            found[group.name] = facts.connected_sources
    return found


async def guard_split_brain(
    replication: Replication, plan: Plan, protected: Callable[[], VCenter] | None,
    force: bool, fence_protected: bool, *, warn: Callable[[str], None],
) -> None:  # fmt: skip
    """Refuse an unplanned failover while a source replicates, unless fenced or forced."""
    live = await connected_sources(replication, plan)
    if not live:
        return
    what = "; ".join(f"group {g}: source {', '.join(s)}" for g, s in sorted(live.items()))
    if fence_protected:
        await power_off_protected(plan, protected, warn)
        return
    if force:
        warn(
            f"{SPLIT_BRAIN_FLAG}: failing over although a source is connected ({what}); "
            "the protected VMs may still run: two copies with the same identity"
        )
        return
    offer = (
        f"fence first: `cdp failover run --plan {plan.source_path} {FENCE_FLAG}` powers off "
        "the protected VMs through the protected vCenter, "
        if plan.protected_site is not None
        else "add protected_site to the plan to fence through the protected vCenter, "
    )
    raise OperationStateError(
        f"a source is connected and replicating ({what}); an unplanned failover now would "
        "run two copies of the VMs (split brain)",
        hint=f"for a switch-over use `--planned`; {offer}or, if the protected site is "
        f"really gone and the connection is stale, pass {SPLIT_BRAIN_FLAG}",
    )


async def power_off_protected(
    plan: Plan, protected: Callable[[], VCenter] | None, warn: Callable[[str], None]
) -> None:
    """Power off every VM of the plan at the protected site (fencing by power)."""
    site = plan.protected_site
    if site is None or protected is None:
        raise PreconditionError(
            f"{FENCE_FLAG} needs the protected site's vCenter",
            hint="add protected_site to the plan, or pass --force-split-brain",
        )
    vc = await asyncio.to_thread(protected)
    for _, vm in plan.vms():
        found = await asyncio.to_thread(vc.find_vm_by_name, site.datacenter, vm.name)
        if found is None:
            warn(f"{FENCE_FLAG}: {vm.name} not found at the protected site")
        elif found.power_state == "poweredOn":
            await asyncio.to_thread(vc.power_off, found.ref)
            warn(f"{FENCE_FLAG}: powered off {vm.name} at the protected site")
