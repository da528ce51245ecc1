"""Failback never streams a copy-free delta chain as if it were the disk's data."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import PreconditionError
from cdp.failover.failback import _refuse_delta_chains


def test_a_chain_disk_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    flat, chain = tmp_path / "a_0-flat.vmdk", tmp_path / "b_0-flat.vmdk"
    flat.write_bytes(b"\0" * 4096)
    chain.write_bytes(b"COWD\x01\0\0\0" + b"\0" * 4088)  # a vmfsSparse header
    with pytest.raises(PreconditionError, match="recovery.disks: .*delta chains"):
        _refuse_delta_chains([str(flat), str(chain)])


def test_flat_disks_pass(tmp_path: Path) -> None:
    flat = tmp_path / "a_0-flat.vmdk"
    flat.write_bytes(b"COW" + b"\0" * 4093)  # data that merely starts like the magic
    _refuse_delta_chains([str(flat), str(tmp_path / "missing-flat.vmdk")])
