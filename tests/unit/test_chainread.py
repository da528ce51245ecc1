"""Reading a disk through its VMDK chain equals what qemu-img reads (a real second reader).

A base flat extent with data, a tail delta written by cdp's own writer, a top delta that
qemu-io (a real vmfsSparse writer) writes into: every range read through
:func:`cdp.failover.chainread.open_image` equals ``qemu-img convert -O raw`` of the chain.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cdp.errors import InvalidInputError
from cdp.failover.chain import _layer
from cdp.failover.chainread import is_chain, open_image
from cdp.vmdk import format_descriptor

CAP = 12 * 2**20  # spans several 2 MiB grain tables


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def _pieces(items: list[tuple[int, bytes]]) -> AsyncIterator[tuple[int, bytes]]:
    for item in items:
        yield item


async def make_chain(folder: Path, rng: random.Random) -> Path:
    """base (flat, data in places) <- tail delta (cdp) <- top delta; returns the top."""
    base = folder / "vm"
    base.mkdir()
    extent = base / "vm_0-flat.vmdk"
    with open(extent, "wb") as f:
        for _ in range(20):
            f.seek(rng.randrange(CAP // 4096 - 64) * 4096)
            f.write(rng.randbytes(rng.randrange(1, 64) * 4096))
        f.truncate(CAP - 3 * 2**20)  # shorter than the disk: the end reads as zeros
    text = format_descriptor(CAP, extent.name)
    (base / "vm_0.vmdk").write_text(text)
    cid = text.split("CID=")[1][:8]
    rec = folder / "vm-dr"
    rec.mkdir()
    tail = sorted({rng.randrange(CAP // 512 - 16) * 512 for _ in range(40)})
    pieces = [(o, rng.randbytes(512 * rng.randrange(1, 16))) for o in tail]
    pieces = [p for i, p in enumerate(pieces) if i == 0 or p[0] >= tail[i - 1] + 16 * 512]
    stem = str(rec / "vm_0")
    await _layer(stem + "-tail", "-delta", CAP, _pieces(pieces), "../vm/vm_0.vmdk", cid, "0a")
    await _layer(stem, "-flat", CAP, _pieces([]), "vm_0-tail.vmdk", "0a", "0b")
    return rec / "vm_0.vmdk"


async def test_reads_through_the_chain_equal_qemu_img(tmp_path: Path) -> None:
    rng = random.Random(5)
    top = await make_chain(tmp_path, rng)
    for n in range(12):  # the guest writes, unaligned and across table bounds
        at = rng.randrange(CAP - 70000)
        _run("qemu-io", "-c", f"write -P 0x{n + 1:02x} {at} {rng.randrange(1, 70000)}", str(top))
    _run("qemu-io", "-c", f"write -P 0x77 {2 * 2**20 - 1024} 4096", str(top))
    _run("qemu-img", "convert", "-O", "raw", str(top), str(tmp_path / "want.raw"))
    want = (tmp_path / "want.raw").read_bytes()
    assert is_chain(str(top)) and not is_chain(str(tmp_path / "vm" / "vm_0.vmdk"))

    image = open_image(str(top))
    try:
        assert image.capacity_bytes == CAP
        assert image.read(0, CAP) == want
        ranges = image.data_ranges()  # outside them the disk reads zeros
        assert ranges == sorted(ranges) and sum(n for _, n in ranges) < CAP
        outside, pos = bytearray(), 0
        for at, n in ranges:
            assert at >= pos
            outside += want[pos:at]
            pos = at + n
        outside += want[pos:]
        assert len(outside) > 0 and outside.count(0) == len(outside)
        for _ in range(200):
            at = rng.randrange(CAP)
            n = rng.randrange(1, min(CAP - at, 3 * 2**20) + 1)
            assert image.read(at, n) == want[at : at + n], (at, n)
    finally:
        image.close()


def test_a_raw_flat_file_reads_as_itself(tmp_path: Path) -> None:
    path = tmp_path / "raw-flat.vmdk"
    path.write_bytes(b"x" * 4096)
    image = open_image(str(path))
    assert image.read(1000, 10) == b"x" * 10
    image.close()


def test_bad_chains_are_refused_naming_the_file(tmp_path: Path) -> None:
    desc = tmp_path / "d.vmdk"
    desc.write_text(
        '# Disk DescriptorFile\ncreateType="vmfsSparse"\nRW 8 VMFSSPARSE "d-delta.vmdk"\n'
    )
    with pytest.raises(InvalidInputError, match="parentFileNameHint"):
        open_image(str(desc))
    loop = tmp_path / "loop.vmdk"
    loop.write_text(
        '# Disk DescriptorFile\nparentFileNameHint="loop.vmdk"\nRW 8 VMFSSPARSE "x.vmdk"\n'
    )
    with pytest.raises(InvalidInputError, match="loop"):
        open_image(str(loop))
    two = tmp_path / "two.vmdk"
    two.write_text('# Disk DescriptorFile\nRW 8 VMFS "a.vmdk"\nRW 8 VMFS "b.vmdk"\n')
    with pytest.raises(InvalidInputError, match="two.vmdk"):
        open_image(str(two))
