"""The target-side half of a safe failover: lifecycle marks, fencing and the split-brain guard.

:func:`mark` records each group's lifecycle at the target (``SetLifecycle`` through the
:class:`~cdp.failover.replication.Replication` seam); a live failover fences (raises the
group's epoch, so the old source can never write the failed-over group again) and a
rollback unfences. :func:`guard_split_brain` refuses an unplanned failover while a source
of a group is connected, unless the operator fences the protected VMs first
(``--fence-protected``, through the protected vCenter) or overrides
(``--force-split-brain``). Never imports grpc or pyVmomi.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cdp import lifecycle as lc
from cdp.errors import PreconditionError, RemoteError
from cdp.failover.errors import OperationStateError
from cdp.failover.plan import Plan
from cdp.failover.replication import Replication
from cdp.failover.vcenter import VCenter

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
    """Refuse a new live failover of a group that is failed over and committed.

    Its copy at this target stops at that failover, and production runs elsewhere (the
    recovered VMs, or the original site after a failback, where nothing else stops a
    second, older copy: the old source is fenced, so no source is connected).
    """
    for group in plan.groups:
        facts = await replication.group(group.name)
        if facts.lifecycle != lc.FAILED_OVER_COMMITTED:
            continue
        raise OperationStateError(
            f"group {group.name} was failed over and committed (epoch {facts.epoch}): its "
            "copy at this target stops at that failover and production runs elsewhere; a "
            "new failover would start a second, older copy of the VMs",
            hint=f"after a commit the way back is `cdp failover failback --plan "
            f"{plan.source_path}`; after a failback, protecting toward this site again is "
            "not automated (docs/FAILOVER.md, Failback)",
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
