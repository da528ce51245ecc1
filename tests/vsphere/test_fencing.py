"""Issue 13, the target-side half: fencing and the lifecycle as status shows them after
each operation, driven through the ``cdp failover`` CLI against vcsim and a real target.

The defect tests of the split-brain guard, fencing after commit and failback under mutual
TLS live in test_lifecycle_defects.py (they failed on ece6b4a); this module reuses its
helpers and adds the lifecycle and ``--fence-protected`` behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pyVmomi import vim

from cdp.errors import CdpError
from cdp.rpc.convert import LIFECYCLE_NAMES

from .drsite import GROUP, DrSite, find_one, register_protected_vms, wait
from .harness import Vcsim
from .test_lifecycle_defects import failover, planned_plan, power, protected

__all__ = ["protected"]  # a fixture, used by name


async def lifecycle_of(site: DrSite) -> tuple[str, int]:
    """The group's lifecycle name and epoch, as the target's status says."""
    (g,) = (await site.target.client.status(GROUP)).groups
    return LIFECYCLE_NAMES[g.lifecycle], g.epoch


async def test_lifecycle_through_run_and_rollback_unfences_the_source(site: DrSite) -> None:
    """run marks failing over then awaiting commit (epoch 1, the source fenced); a rollback
    returns the group to protecting at epoch 0, so the original source writes again."""
    plan = str(site.write_plan())
    source = site.source
    assert source is not None and source.task is not None
    assert await lifecycle_of(site) == ("protecting", 0)
    source.task.cancel()  # the link drops
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await source.task
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    assert await lifecycle_of(site) == ("failed_over_awaiting_commit", 1)
    spec = source.host.group_spec(GROUP)
    with pytest.raises(CdpError, match="FAILED_PRECONDITION.*fenced by that failover"):
        await source.client.open_session("src-host", spec, 0, 1)

    code, out, err = await failover("rollback", "--plan", plan, "--discard-recovered-data")

    assert code == 0, out + err
    assert await lifecycle_of(site) == ("protecting", 0)
    assert (await source.client.open_session("src-host", spec, 0, 1)).session_id


async def test_fence_protected_powers_off_production_then_fails_over(
    site: DrSite, protected: Vcsim
) -> None:
    """`run --fence-protected` while the source replicates: the protected VMs are powered
    off through the protected vCenter first, then the failover goes on (exit 0)."""
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    for name in ("db01", "app01"):
        vm = find_one(prod_si, vim.VirtualMachine, name)
        if vm.runtime.powerState != "poweredOn":
            wait(vm.PowerOnVM_Task())
    plan = planned_plan(site, protected)
    assert site.source is not None
    await site.source.write(5)  # connected and replicating

    code, out, err = await failover("run", "--plan", plan, "--no-wait", "--fence-protected")

    assert code == 0, out + err
    assert "powered off db01 at the protected site" in out + err
    assert power(prod_si) == {"db01": "poweredOff", "app01": "poweredOff"}
    assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}
    assert await lifecycle_of(site) == ("failed_over_awaiting_commit", 1)
