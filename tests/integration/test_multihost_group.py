"""A consistency group spanning two hosts: member streams + coordinated markers."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from conftest import Running

from cdp.errors import RemoteError
from cdp.group import GroupSpec
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.v1 import replication_pb2 as pb
from sim.agent import QuiesceGate
from sim.coordinator import ConsistencyCoordinator
from sim.filter import ReplicationFilter, ShadowLog
from sim.vm import SimHost, SimVM

DISK = 64 * 1024


class Host:
    def __init__(self, folder: str, name: str, vm: str, running_history: Running) -> None:
        self.vm = SimVM(folder, vm, [DISK, DISK])
        self.host = SimHost(name, [self.vm])
        self.buffer = SourceBuffer()
        self.shadow = ShadowLog([DISK, DISK])
        self.gate = QuiesceGate()
        self.vm.attach(self.gate)
        self.vm.attach(ReplicationFilter(self.buffer, self.host.disk_numbers(), self.shadow))
        spec = GroupSpec("cg", (self.vm.spec(),))
        self.shipper = Shipper(
            spec,
            self.buffer,
            running_history.client,
            ShipperConfig(name, member_id=name, linger_s=0),
        )


async def read_disk(r: Running, vm: str, disk: int, at: str) -> tuple[pb.ImagePlan, bytes]:
    buf, plan = bytearray(DISK), None
    async for msg in r.client.read_image("cg", vm, disk, at):
        if msg.HasField("plan"):
            plan = msg.plan
            continue
        buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    assert plan is not None
    return plan, bytes(buf)


def violations(causes: list[tuple[int, int, int, int]], marker_seqs: list[int]) -> list[tuple]:
    """Dependent writes inside the cut whose cause is outside it (write-order fidelity)."""
    return [c for c in causes if c[3] < marker_seqs[c[2]] and not c[1] < marker_seqs[c[0]]]


async def test_checker_catches_a_non_atomic_marker(tmp_path: str) -> None:
    """Negative control: markers placed one host at a time let a dependency straddle the cut."""
    bufs = [SourceBuffer(), SourceBuffer()]
    from cdp.record import KIND_CONSISTENCY

    m0 = bufs[0].append_marker(KIND_CONSISTENCY, "cg-1", 1).seq  # host 0 marked first ...
    cause = bufs[0].append(0, 0, b"c" * 512, 2).seq  # ... a write on host 0 after its marker
    effect = bufs[1].append(0, 0, b"e" * 512, 3).seq  # ... the dependent write on host 1
    m1 = bufs[1].append_marker(KIND_CONSISTENCY, "cg-1", 4).seq  # ... host 1 marked late
    assert violations([(0, cause, 1, effect)], [m0, m1]) == [(0, cause, 1, effect)]


@pytest.fixture
async def hosts(running_history: Running, tmp_path: str):  # type: ignore[no-untyped-def]
    hs = [
        Host(os.path.join(tmp_path, "src"), f"esx{i}", f"app{i}", running_history) for i in range(2)
    ]
    tasks = [asyncio.ensure_future(h.shipper.run()) for h in hs]
    yield hs
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for h in hs:
        h.host.close()


async def test_markers_give_consistent_cross_host_points(
    running_history: Running, hosts: list[Host]
) -> None:
    coord = ConsistencyCoordinator([(h.buffer, [h.gate]) for h in hosts])
    rng = random.Random(7)
    causes: list[tuple[int, int, int, int]] = []  # (host a seq, host b seq) pairs: b depends on a
    for step in range(300):
        a, b = rng.sample(hosts, 2)
        off = rng.randrange(DISK // 512) * 512
        await a.vm.write(step % 2, off, step.to_bytes(4, "little") * 128)
        cause_seq = a.buffer.next_seq - 1
        # a dependent write on the other host, issued after the first completed
        await b.vm.write(step % 2, (off + 4096) % DISK, (step + 10_000).to_bytes(4, "little") * 128)
        causes.append((hosts.index(a), cause_seq, hosts.index(b), b.buffer.next_seq - 1))
        if step % 37 == 0:
            coord.mark()
    coord.mark()
    for h in hosts:
        await asyncio.wait_for(h.shipper.drain(), 20)

    points = await running_history.client.list_points("cg")
    assert [p.seq for p in points] == list(range(1, coord.n + 1))
    assert all(p.kind == pb.POINT_KIND_CONSISTENCY and p.label == f"cg-{p.seq}" for p in points)
    for n in (1, 3, coord.n // 2, coord.n):
        member_seqs = coord.seqs[n]
        for i, h in enumerate(hosts):
            for disk in (0, 1):
                plan, got = await read_disk(running_history, h.vm.vm_id, disk, str(n))
                assert plan.point.seq == n
                assert got == h.shadow.image(disk, member_seqs[i]), (n, h.vm.vm_id, disk)
        assert violations(causes, member_seqs) == [], f"marker {n}: effect kept, cause lost"

    timeline = await running_history.client.timeline("cg")
    assert [s.restorable for s in timeline.spans] == [True]
    assert timeline.spans[0].points == coord.n
    bm = await running_history.client.create_bookmark("cg", "after-run")
    assert bm.seq == coord.n and bm.label == "after-run"
    _, latest = await read_disk(running_history, "app0", 0, "after-run")
    assert latest == hosts[0].shadow.image(0, coord.seqs[coord.n][0])
    status = await running_history.client.status("cg")
    assert sorted(g.member_id for g in status.groups) == ["esx0", "esx1"]


async def test_member_and_single_source_do_not_mix(
    running_history: Running, hosts: list[Host]
) -> None:
    hosts[0].buffer.append(0, 0, b"\1" * 512, 1)
    await asyncio.wait_for(hosts[0].shipper.drain(), 10)
    other = SimVM(os.path.join(running_history.data_dir, "x"), "solo", [DISK])
    with pytest.raises(RemoteError) as err:
        await running_history.client.open_session("solo", GroupSpec("cg", (other.spec(),)), 0, 1)
    assert err.value.code == "FAILED_PRECONDITION" and "member_id" in str(err.value)
    other.close()


async def test_no_point_until_every_member_has_the_marker(
    running_history: Running, hosts: list[Host]
) -> None:
    hosts[0].buffer.append(0, 0, b"\1" * 512, 1)
    hosts[1].buffer.append(0, 0, b"\2" * 512, 1)
    for h in hosts:
        await asyncio.wait_for(h.shipper.drain(), 10)
    from cdp.record import KIND_CONSISTENCY

    hosts[0].buffer.append_marker(KIND_CONSISTENCY, "cg-1", 5)  # only one member has it
    await asyncio.wait_for(hosts[0].shipper.drain(), 10)
    assert await running_history.client.list_points("cg") == []
    with pytest.raises(RemoteError) as err:
        async for _ in running_history.client.read_image("cg", "app0", 0, "latest"):
            pass
    assert err.value.code == "NOT_FOUND" and "every member" in str(err.value)
