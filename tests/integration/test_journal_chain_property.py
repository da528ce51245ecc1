"""Property: any edit of a journal's bytes — one byte anywhere, checksum fixed or not —
is caught by `cdp journal verify`, plain or keyed."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_journal_tamper import Built, build, fix_crc, spans

from cdp.cli.journal import verify

BUILT: dict[bool, Built] = {}


def pristine(keyed: bool) -> Built:
    if keyed not in BUILT:
        root = tempfile.mkdtemp(prefix="cdp-chain-prop-")
        atexit.register(shutil.rmtree, root, True)
        BUILT[keyed] = build(Path(root), keyed)
    return BUILT[keyed]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keyed=st.booleans(),
    which=st.integers(0, 4),
    where=st.floats(0, 1, exclude_max=True),
    xor=st.integers(1, 255),
    fix=st.booleans(),
)
def test_any_edit_is_caught(keyed: bool, which: int, where: float, xor: int, fix: bool) -> None:
    src = pristine(keyed)
    work = tempfile.mkdtemp(prefix="cdp-chain-edit-")
    try:
        data_dir = os.path.join(work, "target")
        shutil.copytree(src.data_dir, data_dir)
        copy = Built(data_dir, src.keys, src.key_file, src.every)
        path = copy.segments()[which]
        data = bytearray(Path(path).read_bytes())
        at = int(where * len(data))
        data[at] ^= xor
        if fix:  # a checksum-aware editor re-computes the CRC of the record it touched
            for _, off, size in spans(path, src.keys):
                if off <= at < off + size:
                    fix_crc(data, off)
        assume(bytes(data) != Path(path).read_bytes())
        Path(path).write_bytes(bytes(data))
        (v,) = verify(data_dir, None, src.key_file)
        assert not v.intact, f"edit at {path}:{at} (xor {xor}, fix {fix}) went unnoticed"
        assert all(f.path.startswith(data_dir) for f in v.problems)
    finally:
        shutil.rmtree(work)
