"""Failback after a copy-free (``recovery.disks: chain``) live failover.

The recovered disks are vmfsSparse chains over the held base replica; the DR guests
write into the top of the chain through a real writer (``qemu-io``). Failback must send
what the guests see (read through the chain), not the delta files' grain tables: the
original site ends up with exactly the bytes ``qemu-img`` reads from the chain.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .drsite import GROUP, VMS, DrSite, inventory
from .harness import Vcsim
from .test_failback import DR_WRITES, REGION, Home, failback, home, orchestrator, protected

__all__ = ["home", "protected"]  # fixtures shared with test_failback


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def chain_image(top: Path, raw: Path) -> bytes:
    """What a reader of the chain (qemu-img) sees: the guest's disk."""
    _run("qemu-img", "convert", "-O", "raw", str(top), str(raw))
    return raw.read_bytes()


async def test_failback_after_a_chain_failover_sends_what_the_guests_see(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    orch = orchestrator(site, protected, home, disks="chain")
    await orch.failover("live", planned=True)
    await orch.commit()
    orch.close()
    assert site.source is not None
    await site.source.stop()
    site.source = None
    for vm, regions in DR_WRITES.items():  # the DR guests write into the top delta
        top = site.replicas / f"{vm}-dr" / f"{vm}_0.vmdk"
        assert (site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk").read_bytes()[:4] == b"COWD"
        for r in regions:
            _run("qemu-io", "-c", f"write -P 0x{r + 16:02x} {r * REGION + 512} 4k", str(top))
    recovered = {
        vm: chain_image(site.replicas / f"{vm}-dr" / f"{vm}_0.vmdk", site.root / f"{vm}.raw")
        for vm in VMS
    }

    back = orchestrator(site, protected, home)
    result = await failback(back, home).run()
    back.close()

    assert result["status"] == "failed-back"
    sync = result["sync"][GROUP]
    changed = sum(len(r) for r in DR_WRITES.values())
    assert sync["pre-sync"]["regions_sent"] == changed  # only what the guests wrote travels
    assert sync["final-sync"]["regions_sent"] == 0
    for vm in VMS:  # the original site runs what the guests saw, byte for byte
        back = home.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"
        assert back.read_bytes() == recovered[vm]
    assert inventory(site.si) == []
