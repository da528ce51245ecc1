"""Consolidating a copy-free chain into a flat disk, and resuming after a crash anywhere.

Real files: a base flat extent, a cdp tail delta and a top delta written by qemu-io. The
expected disk is what ``qemu-img convert`` reads from the chain. A crash is injected by
failing the n-th rename or write (every point where the files change), then
``consolidate`` runs again: the result is always a flat disk with exactly those bytes.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_chainread import CAP, make_chain

from cdp.failover import promote as pm
from cdp.failover.chainread import is_chain, open_image


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def _disk(tmp_path: Path) -> tuple[Path, bytes]:
    top = await make_chain(tmp_path, random.Random(11))
    _run("qemu-io", "-c", "write -P 0x3c 100000 300000", str(top))
    _run("qemu-img", "convert", "-O", "raw", str(top), str(tmp_path / "want.raw"))
    return top, (tmp_path / "want.raw").read_bytes()


def _check_flat(top: Path, want: bytes) -> None:
    assert not is_chain(str(top))
    assert 'createType="vmfs"' in top.read_text()
    folder = top.parent
    assert sorted(p.name for p in folder.iterdir()) == ["vm_0-flat.vmdk", "vm_0.vmdk"]
    assert (folder / "vm_0-flat.vmdk").read_bytes() == want
    _run("qemu-img", "compare", str(top), str(top.parent.parent / "want.raw"))
    image = open_image(str(top))
    assert image.read(0, CAP) == want
    image.close()


async def test_consolidate_writes_the_chain_as_a_flat_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pm, "CHUNK_BYTES", 65536)
    top, want = await _disk(tmp_path)
    base = (tmp_path / "vm" / "vm_0-flat.vmdk").read_bytes()

    written = pm.consolidate(str(top))

    _check_flat(top, want)
    assert (tmp_path / "vm" / "vm_0-flat.vmdk").read_bytes() == base  # the base untouched
    nonzero = len(want) - want.count(0)
    assert nonzero <= written < CAP // 2  # only the data ranges, zero chunks never...
    assert os.stat(top.parent / "vm_0-flat.vmdk").st_blocks * 512 < CAP  # ...they stay holes
    assert pm.consolidate(str(top)) == 0  # a second run finds a flat disk: nothing to do
    _check_flat(top, want)


class Crash(Exception):
    """The injected crash."""


def _failing(fn: Callable[..., Any], at: int, calls: list[int]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == at:
            raise Crash(f"crash at call {at}")
        return fn(*args, **kw)

    return wrapped


@pytest.mark.parametrize("at", range(1, 5))
async def test_a_crash_at_any_rename_then_again_gives_the_same_flat_disk(
    tmp_path: Path, at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    top, want = await _disk(tmp_path)
    calls = [0]
    monkeypatch.setattr(pm.os, "replace", _failing(os.replace, at, calls))
    with pytest.raises(Crash):
        pm.consolidate(str(top))
    monkeypatch.undo()
    if at <= 2:  # the chain is still what the VM would open, and reads the same
        assert is_chain(str(top))
        image = open_image(str(top))
        assert image.read(0, CAP) == want
        image.close()

    pm.consolidate(str(top))

    _check_flat(top, want)
