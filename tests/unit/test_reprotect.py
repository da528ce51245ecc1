"""Protecting again after a failback (issue 13: "... failing back -> protecting again").

After a committed failover the VMs ran at the recovery site and a failback brought their
disks home; those disks changed outside this target's journal. When the group returns to
protecting, the target must not continue the old journal whatever seqs the returning
source claims: a continued journal would leave the replica without everything written at
the recovery site (a silently wrong disk). So the change to protecting after a failover
records when the group failed back and requires a full hash-compared resync of every
member, durably (a target restart keeps it).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import LONE_SPEC as SPEC
from conftest import make_record, start_target, stop_target

from cdp import lifecycle
from cdp.cli.status import fetch, render
from cdp.record import Record
from cdp.rpc.client import ReplicationClient
from cdp.target.member import Member
from cdp.v1 import replication_pb2 as pb


def write(seq: int) -> Record:
    return make_record(seq, 0, seq * 4096, b"w" * 4096)


def committed() -> lifecycle.Lifecycle:
    over = lifecycle.Lifecycle().change(lifecycle.FAILING_OVER, True, False, "run", 10)
    return over.change(lifecycle.FAILED_OVER_COMMITTED, False, False, "commit", 20)


def test_protecting_after_a_failover_records_the_failback() -> None:
    back = committed().change(lifecycle.REVERSE_PROTECTING, False, False, "failback", 30)
    back = back.change(lifecycle.FAILING_BACK, False, False, "failback", 40)
    again = back.change(lifecycle.PROTECTING, False, False, "failback done", 50)
    assert (again.state, again.epoch, again.failed_back_ns) == (lifecycle.PROTECTING, 1, 50)
    assert lifecycle.decode(lifecycle.encode(again)) == again  # stored and read back
    # A rollback (the copy it protected is deleted) is no failback: nothing changed at home.
    over = lifecycle.Lifecycle().change(lifecycle.FAILING_OVER, True, False, "run", 10)
    rolled = over.change(lifecycle.PROTECTING, False, True, "rollback", 20)
    assert rolled.failed_back_ns == 0
    # A later failover keeps the record of the earlier failback; a test does not touch it.
    tested = again.change(lifecycle.TEST_RUNNING, False, False, "test", 60)
    assert tested.failed_back_ns == 50


async def test_a_failed_back_group_resyncs_whatever_seqs_the_source_claims(
    member: Member,
) -> None:
    await member.open_session("home", 0, 1, epoch=0)
    await asyncio.wait_for(member.accept([write(1), write(2)]), 10)
    member.set_lifecycle(committed())
    member.set_lifecycle(member.lifecycle.change(lifecycle.PROTECTING, False, False, "back", 30))
    # The returning source (new epoch) says it holds everything after seq 2: the journal
    # could continue, but the disks changed at the recovery site meanwhile.
    info = await member.open_session("home", 3, 3, epoch=1)
    assert info.resync_required, info
    assert "failed back" in info.resync_reason


async def test_a_rollback_needs_no_resync(member: Member) -> None:
    await member.open_session("home", 0, 1, epoch=0)
    await asyncio.wait_for(member.accept([write(1)]), 10)
    over = member.lifecycle.change(lifecycle.FAILING_OVER, True, False, "run", 10)
    member.set_lifecycle(over)
    member.set_lifecycle(over.change(lifecycle.PROTECTING, False, True, "rollback", 20))
    info = await member.open_session("home", 2, 2, epoch=0)
    assert not info.resync_required, info


async def test_the_failback_resync_and_its_time_survive_a_target_restart(tmp_path: Path) -> None:
    data = os.path.join(str(tmp_path), "target")
    r = await start_target(data, history_window_s=3600.0)
    try:
        await r.client.open_session("home", SPEC, 0, 1)
        await r.client.set_lifecycle("g", pb.LIFECYCLE_STATE_FAILING_OVER, fence=True)
        await r.client.set_lifecycle("g", pb.LIFECYCLE_STATE_FAILED_OVER_COMMITTED)
        await r.client.set_lifecycle("g", pb.LIFECYCLE_STATE_PROTECTING, note="failed back")
        status = (await r.client.status("g")).groups[0]
        assert status.lifecycle == pb.LIFECYCLE_STATE_PROTECTING and status.epoch == 1
        assert status.lifecycle_failed_back_unix_ns > 0
    finally:
        await stop_target(r)
    r = await start_target(data, history_window_s=3600.0)
    try:
        shown = render(await fetch(ReplicationClient(r.address)))  # what `cdp status` prints
        assert "failed back g: at " in shown and "epoch 1 (`cdp sim run --epoch 1`)" in shown
        s = await r.client.open_session("home", SPEC, 1, 1, epoch=1)
        assert s.resync_required and "failed back" in s.resync_reason, s
        status = (await r.client.status("g")).groups[0]
        assert status.lifecycle_failed_back_unix_ns > 0
    finally:
        await stop_target(r)


# -- the failover guard after a failback (cdp.failover.fencing.guard_failed_back) ----------


class Facts:
    """The one thing the guard asks the target: each group's facts."""

    def __init__(self, failed_back_ns: int) -> None:
        from cdp.failover.replication import GroupFacts

        self.facts = GroupFacts(
            "g", "disconnected", 9, 0, (), lifecycle="protecting", epoch=1,
            failed_back_ns=failed_back_ns,
        )  # fmt: skip

    async def group(self, name: str) -> object:
        return self.facts


def _plan() -> object:
    from cdp.failover.plan import parse_plan

    return parse_plan(
        {
            "version": 1, "name": "p", "target": {"address": "127.0.0.1:1", "insecure": True},
            "state_dir": "/tmp/state",
            "vcenter": {
                "url": "https://127.0.0.1:1/sdk", "credentials": {"file": "/tmp/cred"},
                "tls": {"thumbprint": ":".join(["AB"] * 32)},
            },
            "recovery": {
                "datacenter": "DC0", "cluster": "C0",
                "datastore": {"name": "cdp-replica", "path": "/tmp/replicas"},
            },
            "network_mappings": [],
            "groups": [{"name": "g", "vms": [{"name": "vm", "cpus": 1, "memory_mb": 256}]}],
            "boot_order": [{"name": "all", "vms": ["vm"]}],
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("failed_back_ns", "point_ns", "force", "refused", "warned"),
    [
        (0, 100, False, False, False),  # never failed back
        (500, 100, False, True, False),  # the point predates the failback
        (500, 100, True, False, True),  # ... --force-split-brain goes ahead, loudly
        (500, 900, False, False, False),  # the source rejoined and resynced since
    ],
)
async def test_a_live_failover_to_a_point_before_the_failback_is_refused(
    failed_back_ns: int, point_ns: int, force: bool, refused: bool, warned: bool
) -> None:
    from cdp.failover import fencing
    from cdp.failover.errors import OperationStateError
    from cdp.failover.replication import PointFacts

    warnings: list[str] = []
    points = {"g": PointFacts(7, point_ns, "crash")}
    run = fencing.guard_failed_back(
        Facts(failed_back_ns),
        _plan(),
        points,
        force,
        warn=warnings.append,  # type: ignore[arg-type]
    )
    if refused:
        with pytest.raises(OperationStateError, match=r"group g failed back at .* \(seq 7,") as e:
            await run
        assert "--epoch 1" in (e.value.hint or "")
    else:
        await run
    assert bool(warnings) == warned


def test_sim_run_takes_the_epoch_to_rejoin_with() -> None:
    from cdp.cli.sim import build_parser_defaults, sim_config
    from cdp.errors import InvalidInputError

    assert sim_config(build_parser_defaults(target="x", epoch=3), "/t", "v").epoch == 3
    assert sim_config(build_parser_defaults(target="x"), "/t", "v").epoch == 0
    with pytest.raises(InvalidInputError) as err:
        sim_config(build_parser_defaults(target="x", epoch=-1), "/t", "v")
    assert err.value.field == "--epoch"
