"""The cdp shipper's side of the seal (issue 13 #6), against a real target over gRPC.

A simulated host (filter, buffer, shipper) writes through a seal gate; ``SealGroup`` makes
the shipper hold the guests' writes, ship what it took and seal; the sealed seq is every
write that completed. A reconnect while sealed seals again on the new session; lifting
the seal lets the held writes through.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from conftest import Running

from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from sim.agent import QuiesceGate
from sim.filter import ReplicationFilter
from sim.vm import SimHost, SimVM

DISK = 1 * 2**20


class Host:
    """One VM behind a seal gate and the replication filter, shipped to ``running``."""

    def __init__(self, running: Running, folder: Path) -> None:
        self.host = SimHost("seal-host", [SimVM(str(folder), "sv", [DISK])])
        self.buffer = SourceBuffer(8 * 2**20)
        self.gate = QuiesceGate()
        vm = self.host.vms[0]
        vm.attach(self.gate)
        vm.attach(ReplicationFilter(self.buffer, self.host.disk_numbers()))
        spec = self.host.group_spec("sg")
        self.shipper = Shipper(spec, self.buffer, running.client, ShipperConfig("seal-host"))
        self.shipper.hold_writes, self.shipper.release_writes = self.gate.hold, self.gate.release
        self.task: asyncio.Future[None] = asyncio.ensure_future(self.shipper.run())
        self.completed = 0

    async def write(self, n: int, pause_s: float = 0.0) -> None:
        for i in range(n):
            await self.host.vms[0].write(0, (i % 256) * 4096, bytes([i % 251]) * 4096)
            self.completed += 1
            await asyncio.sleep(pause_s)

    async def shipped(self, running: Running) -> None:
        """Wait until every completed write is durable (the session is open)."""
        await asyncio.wait_for(self.shipper.drain(), 10)
        while not (await running.client.status("sg")).groups[0].source_connected:
            await asyncio.sleep(0.02)

    async def drop_link(self) -> None:
        """The shipper's stream ends; the host, its gate and buffer live on."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def close(self) -> None:
        await self.drop_link()
        self.host.close()


@pytest.fixture
async def host(running: Running, tmp_path: Path) -> object:
    h = Host(running, tmp_path / "src")
    try:
        yield h
    finally:
        await h.close()


async def test_seal_holds_guest_writes_and_returns_every_completed_write(
    running: Running, host: Host
) -> None:
    await host.write(50)
    await host.shipped(running)
    writer = asyncio.ensure_future(host.write(100_000, 0.001))  # a busy guest
    try:
        await asyncio.sleep(0.1)
        await sealed_then_lifted(running, host)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def sealed_then_lifted(running: Running, host: Host) -> None:
    resp = await running.client.seal_group("sg", 10.0)

    (sealed,) = resp.members
    assert sealed.sealed_seq == host.completed  # every write the guest saw complete
    assert host.shipper.sealed and host.gate.held > 0  # the guest waits at the gate
    await asyncio.sleep(0.3)
    (g,) = (await running.client.status("sg")).groups
    assert g.durable_seq == sealed.sealed_seq == host.completed  # not one more write

    assert (await running.client.seal_group("sg", release=True)).released
    deadline = asyncio.get_running_loop().time() + 10
    while (await running.client.status("sg")).groups[0].durable_seq <= sealed.sealed_seq:
        assert asyncio.get_running_loop().time() < deadline, "writes did not resume"
        await asyncio.sleep(0.05)


async def test_a_reconnect_while_sealed_seals_again(running: Running, host: Host) -> None:
    """The target keeps asking on the new session; the new shipper answers it there."""
    await host.write(20)
    await host.shipped(running)
    first = (await running.client.seal_group("sg", 10.0)).members[0]
    await host.drop_link()  # the source's stream ends (the host's gate stays held)
    spec = host.host.group_spec("sg")
    shipper = Shipper(spec, host.buffer, running.client, ShipperConfig("seal-host"))
    shipper.hold_writes, shipper.release_writes = host.gate.hold, host.gate.release
    shipper.seal_asked = host.shipper.seal_asked  # the same host: its guests are held
    task = asyncio.ensure_future(shipper.run())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while shipper.sealed != host.shipper.seal_asked:  # answered on its new session
            assert asyncio.get_running_loop().time() < deadline, "no seal on the new session"
            await asyncio.sleep(0.05)
        assert shipper.sessions == 1
        (g,) = (await running.client.status("sg")).groups
        assert g.durable_seq == first.sealed_seq == 20
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
