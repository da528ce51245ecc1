"""Property: any writes, any batching, any reconnect points -> replica equals source."""

from __future__ import annotations

import asyncio
import os
import tempfile

from conftest import small_group, start_target, stop_target
from helpers import CuttingTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig

DISKS = 3
DISK_BYTES = 64 * 512
SECTORS = DISK_BYTES // 512

writes_st = st.lists(
    st.tuples(
        st.integers(0, DISKS - 1),
        st.integers(0, SECTORS - 1),
        st.integers(1, 8),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=writes_st,
    batch_bytes=st.sampled_from([1, 700, 4096, 2**20]),
    cuts=st.lists(st.integers(0, 6), max_size=4),
    chunk=st.integers(1, 40),
)
def test_any_writes_batching_and_reconnects(
    writes: list[tuple[int, int, int, int]], batch_bytes: int, cuts: list[int], chunk: int
) -> None:
    asyncio.run(_scenario(writes, batch_bytes, cuts, chunk))


async def _scenario(
    writes: list[tuple[int, int, int, int]], batch_bytes: int, cuts: list[int], chunk: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        running = await start_target(os.path.join(tmp, "t"))
        spec = small_group("prop", vms=1, disks=DISKS, size=DISK_BYTES)
        shadow = [bytearray(DISK_BYTES) for _ in range(DISKS)]
        buffer = SourceBuffer()
        transport = CuttingTransport(running.client, cuts)
        shipper = Shipper(
            spec,
            buffer,
            transport,
            ShipperConfig("prop-src", batch_bytes=batch_bytes, linger_s=0, reconnect_min_s=0.001),
        )
        ship = asyncio.ensure_future(shipper.run())
        try:
            for i, (disk, sector, count, fill) in enumerate(writes):
                count = min(count, SECTORS - sector)
                data = bytes([fill]) * (count * 512 - 4) + i.to_bytes(4, "little")
                offset = sector * 512
                shadow[disk][offset : offset + len(data)] = data
                buffer.append(disk, offset, data, 1_000_000 + i)
                if i % chunk == 0:
                    await asyncio.sleep(0)  # let the shipper send a partial batch
            await asyncio.wait_for(shipper.drain(), 20)
            assert buffer.acked_seq == len(writes)
            group = running.target.groups["prop"]

            async def applied() -> None:
                while group.applier.applied_seq < len(writes):
                    await asyncio.sleep(0.005)

            await asyncio.wait_for(applied(), 20)
        finally:
            ship.cancel()
            await asyncio.gather(ship, return_exceptions=True)
            await stop_target(running)
        for n in range(DISKS):
            path = os.path.join(tmp, "t", "replicas", "prop-vm0", f"prop-vm0_{n}-flat.vmdk")
            with open(path, "rb") as f:
                assert f.read() == bytes(shadow[n]), f"disk {n} differs"


def test_cuts_really_reconnect() -> None:
    """The fault injection above is real: each cut costs a new session."""
    writes = [(i % DISKS, (i * 7) % SECTORS, 1, i % 256) for i in range(300)]

    async def go() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            running = await start_target(os.path.join(tmp, "t"))
            spec = small_group("cut", vms=1, disks=DISKS, size=DISK_BYTES)
            buffer = SourceBuffer()
            transport = CuttingTransport(running.client, [0, 1, 0, 2])
            shipper = Shipper(
                spec,
                buffer,
                transport,
                ShipperConfig("s", batch_bytes=1, linger_s=0, reconnect_min_s=0.001),
            )
            ship = asyncio.ensure_future(shipper.run())
            for i, (disk, sector, _, fill) in enumerate(writes):
                buffer.append(disk, sector * 512, bytes([fill]) * 512, i + 1)
            await asyncio.wait_for(shipper.drain(), 20)
            ship.cancel()
            await asyncio.gather(ship, return_exceptions=True)
            await stop_target(running)
            assert buffer.acked_seq == len(writes)
            return transport.sessions

    assert asyncio.run(go()) == 5
