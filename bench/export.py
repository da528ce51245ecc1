"""Point-in-time image export cost: flat in the disk's size, linear in the changed data.

Two series against a real in-process target (RocksDB, segments, a real gRPC server on
loopback, the real client), with a one-hour history so every record stays in the journal:

- size: a fixed amount of changed data (64 MiB of 64 KiB random writes) on disks of
  1, 4, 16 and 64 GiB (sparse); export "latest" -> the time should stay flat;
- changed: 16, 64, 256 MiB of changes on a 4 GiB disk -> the time should grow linearly.

Each export streams the image with ReadImage and writes a sparse VMDK extent, as
``cdp image export`` does. Prints a Markdown table and writes results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import environment, markdown
from cdp.failover.export import export_image
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.store.rocksdb import RocksIndex
from cdp.rpc.server import start_server
from cdp.target.config import TargetConfig
from cdp.target.target import Target
from sim.workload import Workload, WorkloadSpec

GiB, MiB = 2**30, 2**20
SIZE_SERIES_GIB = (1, 4, 16, 64)
CHANGED_SERIES_MIB = (16, 64, 256)
FIXED_CHANGE_MIB = 64
FIXED_DISK_GIB = 4
BLOCK = 64 * 1024
REPO = Path(__file__).resolve().parent.parent


async def one_case(work: str, disk_bytes: int, changed_bytes: int, seed: int) -> dict[str, Any]:
    """Write ``changed_bytes`` to one disk of ``disk_bytes``, export latest, time it."""
    from cdp.rpc.client import ReplicationClient
    from cdp.source.buffer import SourceBuffer
    from cdp.source.shipper import Shipper, ShipperConfig

    data_dir = os.path.join(work, "target")
    target = Target(
        TargetConfig(data_dir, history_window_s=3600, journal_limit_bytes=0), RocksIndex
    )
    async with target:
        server, port = await start_server(target, "127.0.0.1:0")
        client = ReplicationClient(f"127.0.0.1:{port}")
        spec = GroupSpec("bench", (VmSpec("vm", (DiskSpec("0", disk_bytes),)),))
        buffer = SourceBuffer()
        shipper = Shipper(spec, buffer, client, ShipperConfig("bench-src"))
        ship = asyncio.ensure_future(shipper.run())
        workload = Workload(
            WorkloadSpec("random", BLOCK, compressibility=0.5, seed=seed), [disk_bytes]
        )
        rng = random.Random(seed)
        written = 0
        while written < changed_bytes:
            _, _, data = workload.next_write()
            offset = rng.randrange(disk_bytes // BLOCK) * BLOCK
            buffer.append(0, offset, data, time.time_ns())
            written += len(data)
            if len(buffer) > 512:
                await asyncio.sleep(0)
        await asyncio.wait_for(shipper.drain(), 120)
        ship.cancel()
        out = os.path.join(work, "image.vmdk")
        t0 = time.perf_counter()
        result = await export_image(client, "bench", "vm", 0, "latest", out)
        export_s = time.perf_counter() - t0
        await client.close()
        await server.stop(grace=1)
    return {
        "disk_gib": disk_bytes / GiB, "changed_mib": changed_bytes / MiB,
        "records": result.image.records, "bytes_streamed": result.bytes_written,
        "export_s": round(export_s, 3),
        "changed_mb_per_s": round(changed_bytes / export_s / 1e6, 1),
    }  # fmt: skip


async def run(seed: int, quick: bool, work_dir: str | None) -> dict[str, Any]:
    """Both series."""
    sizes = SIZE_SERIES_GIB[:3] if quick else SIZE_SERIES_GIB
    changes = CHANGED_SERIES_MIB[:2] if quick else CHANGED_SERIES_MIB
    cases = [("size", g * GiB, FIXED_CHANGE_MIB * MiB) for g in sizes]
    cases += [("changed", FIXED_DISK_GIB * GiB, c * MiB) for c in changes]
    results = []
    for series, disk, changed in cases:
        work = tempfile.mkdtemp(prefix="cdp-bench-export-", dir=work_dir)
        try:
            r = await one_case(work, disk, changed, seed)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append({"series": series, **r})
        print(f"  {series:8} disk {r['disk_gib']:>4g} GiB  changed {r['changed_mib']:>4g} MiB  "
              f"export {r['export_s']:.3f} s", flush=True)  # fmt: skip
    return {"benchmark": "export", "environment": environment(REPO, work_dir), "results": results}


def render(doc: dict[str, Any]) -> str:
    """The series as a Markdown table."""
    header = ("series", "disk GiB", "changed MiB", "records", "streamed MiB", "export s",
              "changed MB/s")  # fmt: skip
    rows = [
        (r["series"], f"{r['disk_gib']:g}", f"{r['changed_mib']:g}", f"{r['records']:,}",
         f"{r['bytes_streamed'] / MiB:,.1f}", f"{r['export_s']:.3f}",
         f"{r['changed_mb_per_s']:,.1f}")
        for r in doc["results"]
    ]  # fmt: skip
    return markdown(header, rows)


def add_parser(sub: Any) -> None:
    """Register ``export``."""
    p = sub.add_parser("export", help="point-in-time image export time vs disk size and changes")
    p.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="results folder (default bench/results/export-<UTC timestamp>/)")
    p.add_argument("--work-dir", help="where the targets' data dirs go (default: system temp)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run, print the table, write results.json."""
    doc = asyncio.run(run(args.seed, args.quick, args.work_dir))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or REPO / "bench" / "results" / f"export-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = render(doc)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(f"\nresults: {out / 'results.json'}")
    return 0
