"""Property: any restore point, bookmark or app-consistent point exports exactly the
simulator's shadow image at that seq, for every disk of a 2-VM x 2-disk group."""

from __future__ import annotations

import asyncio
import os
import tempfile

from conftest import start_target, stop_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.rpc.client import ReplicationClient
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.v1 import replication_pb2 as pb
from sim.agent import BufferedApp, GuestAgent, QuiesceGate, bookmark
from sim.filter import ReplicationFilter, ShadowLog
from sim.vm import SimHost, SimVM

DISK_BYTES = 96 * 512
SECTORS = DISK_BYTES // 512

op_st = st.one_of(
    st.tuples(
        st.just("w"),
        st.integers(0, 1),
        st.integers(0, 1),
        st.integers(0, SECTORS - 1),
        st.integers(1, 16),
        st.integers(0, 255),
    ),
    st.tuples(st.just("app_w"), st.integers(0, 1), st.integers(0, 1), st.integers(0, SECTORS - 1)),
    st.tuples(st.just("bookmark")),
    st.tuples(st.just("app_point")),
    st.tuples(st.just("yield")),
)


async def read_disk(client: ReplicationClient, group: str, vm: str, disk: int, at: str) -> bytes:
    buf = bytearray(DISK_BYTES)
    first = True
    async for msg in client.read_image(group, vm, disk, at):
        if first:
            assert msg.HasField("plan")
            first = False
            continue
        buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(buf)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, min_size=1, max_size=80), data=st.data(), small_journal=st.booleans())
def test_every_point_exports_the_shadow_image(
    ops: list[tuple], data: st.DataObject, small_journal: bool
) -> None:
    asyncio.run(_scenario(ops, data, small_journal))


async def _scenario(ops: list[tuple], data: st.DataObject, small_journal: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # a small journal forces size cuts, so images are built on a base that moved
        limits = {"segment_bytes": 4096, "journal_limit_bytes": 16384} if small_journal else {}
        running = await start_target(os.path.join(tmp, "t"), history_window_s=3600, **limits)
        vms = [
            SimVM(os.path.join(tmp, "src"), f"vm{i}", [DISK_BYTES, DISK_BYTES]) for i in range(2)
        ]
        host = SimHost("h1", vms)
        spec = host.group_spec("pit")
        buffer = SourceBuffer()
        shadow = ShadowLog([DISK_BYTES] * 4)
        gates = [QuiesceGate() for _ in vms]
        apps = [BufferedApp(vm) for vm in vms]
        for vm, gate in zip(vms, gates, strict=True):
            vm.attach(gate)
            vm.attach(ReplicationFilter(buffer, host.disk_numbers(), shadow))
        agent = GuestAgent(buffer, gates, apps)
        shipper = Shipper(spec, buffer, running.client, ShipperConfig("h1", linger_s=0))
        ship = asyncio.ensure_future(shipper.run())
        bookmarks: dict[str, int] = {}
        app_points: list[int] = []
        try:
            for i, op in enumerate(ops):
                await _apply_op(i, op, vms, apps, agent, buffer, bookmarks, app_points)
            await asyncio.wait_for(shipper.drain(), 20)
            if buffer.acked_seq == 0:
                return
            points = await running.client.list_points("pit")
            listed = {p.seq: p for p in points}
            assert buffer.acked_seq in listed, "the newest durable point is restorable"
            base = running.target.groups["pit"].applier.applied_seq
            assert all(p.seq >= base for p in points), "no point older than the base is offered"
            for name, seq in bookmarks.items():
                if seq >= base:
                    assert listed[seq].kind == pb.POINT_KIND_BOOKMARK and listed[seq].label == name
            for seq in app_points:
                if seq >= base:
                    assert listed[seq].kind == pb.POINT_KIND_APP_CONSISTENT
            candidates = [str(p.seq) for p in points] + [
                n for n, s in bookmarks.items() if s >= base
            ]
            chosen = data.draw(
                st.lists(st.sampled_from(candidates), min_size=1, max_size=4, unique=True)
            )
            if "latest" not in chosen:
                chosen.append("latest")
            for at in chosen:
                seq = bookmarks.get(at) or (buffer.acked_seq if at == "latest" else int(at))
                for n in range(4):
                    vm, disk = f"vm{n // 2}", n % 2
                    got = await read_disk(running.client, "pit", vm, disk, at)
                    assert got == shadow.image(n, seq), f"{vm} disk {disk} at {at} (seq {seq})"
        finally:
            ship.cancel()
            await asyncio.gather(ship, return_exceptions=True)
            await stop_target(running)
            host.close()


async def _apply_op(
    i: int,
    op: tuple,
    vms: list[SimVM],
    apps: list[BufferedApp],
    agent: GuestAgent,
    buffer: SourceBuffer,
    bookmarks: dict[str, int],
    app_points: list[int],
) -> None:
    if op[0] == "w":
        _, v, d, sector, count, fill = op
        count = min(count, SECTORS - sector)
        await vms[v].write(
            d, sector * 512, bytes([fill]) * (count * 512 - 4) + i.to_bytes(4, "little")
        )
    elif op[0] == "app_w":
        _, v, d, sector = op
        apps[v].write(d, sector * 512, i.to_bytes(4, "little") * 128)
    elif op[0] == "bookmark":
        bookmarks[f"bm-{i}"] = bookmark(buffer, f"bm-{i}").seq
    elif op[0] == "app_point":
        app_points.append((await agent.app_consistent_point(f"app-{i}")).seq)
    else:
        await asyncio.sleep(0)
