"""``cdp demo``: a target and a simulated VM on loopback, live RPO, then proof.

Zero configuration. The target runs as its own process (``cdp target serve``), the
simulated host in this one, over mutual TLS with a throwaway CA made in the demo's folder
(``--insecure``: plain text, and the logs say so). After the writes stop the journal
drains, the target applies everything, and each replica VMDK is compared with its source
with ``qemu-img compare`` (or byte for byte where qemu-img is not installed).

The target keeps a one-hour history, so the base replica stays blank during the demo: the
proof goes through the point-in-time path. The drained state is bookmarked, each disk is
exported at that bookmark as a VMDK, and each export is compared with its source.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from cdp import tls
from cdp.cli import common, sim
from cdp.cli.certs import CertsPlan, init_certs
from cdp.errors import CdpError, InvalidInputError
from cdp.failover.export import export_image
from cdp.rpc.client import ReplicationClient

DEMO_GROUP = "demo-group"
DEMO_VM = "demo-vm"
DEMO_SOURCE = "sim-host-1"
"""The simulated host's certificate name (the simulator's source_id too)."""
DEMO_OPERATOR = "demo"
BOOKMARK = "demo-drained"
READY_TIMEOUT_S = 60.0


def add_parser(sub: Any) -> None:
    """Register ``demo``."""
    p = sub.add_parser("demo", help="replicate a simulated VM on loopback and prove the replica")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the VM writes")
    p.add_argument("--rate-mb", type=float, default=40.0, help="MB/s the VM writes")
    p.add_argument("--keep", metavar="DIR", help="keep source and replica files in DIR")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.add_argument(
        "--insecure", action="store_true",
        help="plain text instead of mutual TLS with a throwaway CA (logged as a warning)",
    )  # fmt: skip
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Run the demo and print the verdict."""
    if args.seconds <= 0:
        raise InvalidInputError("--seconds", "must be positive")
    root = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="cdp-demo-")
    os.makedirs(root, exist_ok=True)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    try:
        result = await _demo(args, root, say)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        common.emit_json(result)
    return common.EXIT_OK if result["verified"] else common.EXIT_FAILED


async def _demo(args: argparse.Namespace, root: str, say: Any) -> dict[str, Any]:
    target_dir = os.path.join(root, "target")
    say(f"cdp demo: target data in {target_dir}, source disks in {os.path.join(root, 'source')}")
    certs = _make_certs(os.path.join(root, "tls"), args.insecure, say)
    serve_tls = ["--insecure"] if certs is None else ["--tls-dir", certs["target"]["folder"]]
    proc, address = await _start_target(target_dir, os.path.join(root, "target.ready"), serve_tls)
    try:
        say(f"cdp demo: target serving on {address}; VM {DEMO_VM} (2 disks) writes "
            f"{args.rate_mb} MB/s of mixed 512 B-1 MiB writes for {args.seconds} s")  # fmt: skip
        cli_args = sim.build_parser_defaults(
            target=address, group=DEMO_GROUP, vm=[DEMO_VM], seconds=args.seconds,
            rate_mb=args.rate_mb, pattern="mixed",
        )  # fmt: skip
        config = sim.sim_config(cli_args, os.path.join(root, "source"), DEMO_VM)
        config = dataclasses.replace(config, tls=_party(certs, "sources"))
        from sim import runner

        result = await runner.run(config, sim.live_line)
        print(file=sys.stderr)
        say(sim.summary(result))
        async with ReplicationClient(address, _party(certs, "operators")) as client:
            checks, exported = await _export_and_verify(client, result, root, say)
    finally:
        _stop_target(proc)
    for c in checks:
        verdict = "IDENTICAL" if c["equal"] else "DIFFERENT"
        say(f"  {c['source']}\n    == {c['replica']}: {verdict} ({c['method']})")
    verified = all(c["equal"] for c in checks) and result["acked_seq"] == result["writes"]
    verdict = (
        "VERIFIED, every disk at the drained point equals its source" if verified else "FAILED"
    )
    say(
        f"cdp demo: verdict: {verdict}; RPO p50 {result['rpo_p50_s']} s, "
        f"p99 {result['rpo_p99_s']} s, max {result['rpo_max_s']} s, {result['mb_per_s']} MB/s"
    )
    keys = ("writes", "bytes", "acked_seq", "mb_per_s", "writes_per_s", "rpo_p50_s", "rpo_p95_s",
            "rpo_p99_s", "rpo_max_s", "drain_s", "seconds")  # fmt: skip
    return {**{k: result[k] for k in keys}, "verified": verified, **exported,
            "checks": checks, "kept_in": root if args.keep else None,
            "transport": "insecure" if certs is None else "mtls"}  # fmt: skip


def _make_certs(folder: str, insecure: bool, say: Any) -> dict[str, Any] | None:
    """A throwaway CA and the target's, the simulated host's and an operator's certificates."""
    if insecure:
        logging.getLogger(__name__).warning(
            "--insecure: the demo runs in plain text, without encryption or authentication"
        )
        return None
    plan = CertsPlan(folder, sources={DEMO_SOURCE: [DEMO_GROUP]}, operators=(DEMO_OPERATOR,))
    certs = init_certs(plan)
    say(f"cdp demo: mutual TLS with a throwaway CA in {folder}: source {DEMO_SOURCE!r} may "
        f"write {DEMO_GROUP!r}, operator {DEMO_OPERATOR!r} reads")  # fmt: skip
    return certs


def _party(certs: dict[str, Any] | None, kind: str) -> tls.ClientTLS | None:
    """The client TLS of the demo's first source or operator (None: plain text)."""
    return None if certs is None else tls.load_client_tls(certs[kind][0]["folder"])


async def _start_target(
    data_dir: str, ready: str, tls_args: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``cdp target serve`` on a free loopback port; return it and its address."""
    cmd = [sys.executable, "-m", "cdp", "target", "serve", "--data-dir", data_dir,
           "--listen", "127.0.0.1:0", "--ready-file", ready, *tls_args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CdpError(f"the target exited with code {proc.returncode} before serving")
        if os.path.exists(ready):
            with open(ready) as f:
                return proc, str(json.load(f)["address"])
        await asyncio.sleep(0.05)
    proc.kill()
    raise CdpError(f"the target did not start within {READY_TIMEOUT_S:.0f} s")


def _stop_target(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _export_and_verify(
    client: ReplicationClient, result: dict[str, Any], root: str, say: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Bookmark the drained state, export every disk at it, compare with the source."""
    point = await client.create_bookmark(DEMO_GROUP, BOOKMARK)
    points = await client.list_points(DEMO_GROUP, labelled_only=False)
    say(f"cdp demo: {len(points):,} restore points in the journal; bookmark {BOOKMARK!r} "
        f"is restore point {point.seq}")  # fmt: skip
    export_dir = os.path.join(root, "export")
    os.makedirs(export_dir, exist_ok=True)
    checks, t0 = [], time.monotonic()
    for d in result["disks"]:
        out = os.path.join(export_dir, f"{d['vm']}_{d['disk']}.vmdk")
        await export_image(client, DEMO_GROUP, d["vm"], d["disk"], BOOKMARK, out)
        checks.append(_verify(d["vmdk"], out))
    export_s = time.monotonic() - t0
    say(f"cdp demo: exported every disk at {BOOKMARK!r} as a VMDK in {export_s:.2f} s")
    return checks, {"restore_points": len(points), "export_s": round(export_s, 3)}


def _verify(source: str, replica: str) -> dict[str, Any]:
    """Compare two VMDKs: qemu-img compare if installed, else the flat extents' bytes."""
    qemu = shutil.which("qemu-img")
    if qemu:
        r = subprocess.run([qemu, "compare", "-q", source, replica], capture_output=True)
        return {
            "source": source,
            "replica": replica,
            "equal": r.returncode == 0,
            "method": "qemu-img compare",
        }
    digests = [_digest(p.replace(".vmdk", "-flat.vmdk")) for p in (source, replica)]
    return {
        "source": source,
        "replica": replica,
        "equal": digests[0] == digests[1],
        "method": "sha256 of extents",
    }


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 2**20):
            h.update(chunk)
    return h.hexdigest()
