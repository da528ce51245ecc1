"""Idle is not lag (DESIGN trust invariant 7): an idle, fully acked source has no RPO.

A real target (gRPC server on port 0, RocksDB, /metrics over aiohttp) and a real
in-process source (buffer, shipper, gRPC client) through the bench's link proxy. The
source writes, then goes idle: the target's status RPO and ``cdp_group_rpo_seconds`` stay
near 0 for 5 s (the shipper's heartbeats say "nothing unacked"). Then the link is cut:
the heartbeats stop and the RPO grows past 3 s within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import urllib.request
from pathlib import Path

from conftest import small_group, start_target, stop_target

from bench.linkproxy import LinkProxy
from cdp.rpc.client import ReplicationClient
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.web import start_web

GROUP = "idle"


def scraped_rpo(port: int) -> float:
    """cdp_group_rpo_seconds of GROUP from the target's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r'^cdp_group_rpo_seconds\{group="idle"[^}]*\} (\S+)$', text, re.M)
    assert found, "cdp_group_rpo_seconds of the group is missing from /metrics"
    return float(found.group(1))


async def test_idle_source_has_no_rpo_and_a_cut_link_does(tmp_path: Path) -> None:
    r = await start_target(os.path.join(tmp_path, "t"), history_window_s=3600.0)
    web_runner, http_port = await start_web(r.target, "127.0.0.1", 0)
    proxy = await LinkProxy(r.address).start()
    client = ReplicationClient(proxy.address)
    buffer = SourceBuffer()
    shipper = Shipper(small_group(GROUP), buffer, client, ShipperConfig("idle-src"))
    ship = asyncio.ensure_future(shipper.run())
    try:
        for i in range(20):  # writes, then nothing more
            buffer.append(0, i * 4096, bytes([i + 1]) * 4096, time.time_ns())
            await asyncio.sleep(0.01)
        await asyncio.wait_for(shipper.drain(), 30)
        idle_until = time.monotonic() + 5.0
        while time.monotonic() < idle_until:
            status = r.target.status(GROUP)[0]
            assert status.rpo_s < 2.0, f"idle but fully acked, yet RPO {status.rpo_s:.1f} s"
            assert await asyncio.to_thread(scraped_rpo, http_port) < 2.0
            await asyncio.sleep(0.25)
        proxy.outage()
        cut = time.monotonic()
        while (rpo := r.target.status(GROUP)[0].rpo_s) <= 3.0:
            assert time.monotonic() - cut < 8.0, f"link cut 8 s ago, RPO still {rpo:.1f} s"
            await asyncio.sleep(0.25)
        assert await asyncio.to_thread(scraped_rpo, http_port) > 3.0
    finally:
        ship.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ship
        await client.close()
        await proxy.close()
        await web_runner.cleanup()
        await stop_target(r)
