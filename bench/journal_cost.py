"""``python -m bench.journal_cost``: CPU per MiB of the journal's write and read paths.

In-process (no network, no fsync: ``fsync`` is a no-op so the figure is CPU, not the
disk), RocksDB index, data compressing 2:1. Run it with and without ``--key`` (and on
an older checkout for a baseline) to see what chaining and encryption cost.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time

from cdp import codec
from cdp.journal.journal import Journal
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import Record

CASES = ((4096, 20000, 64), (65536, 2000, 16), (2**20, 200, 4))
"""(record bytes, records, records per batch)."""


def run(size: int, n: int, batch: int, keyed: bool) -> tuple[float, float]:
    """(write, read) CPU milliseconds per MiB of guest data."""
    rng = random.Random(1)
    datas = [rng.randbytes(size // 2) * 2 for _ in range(16)]
    recs = [
        Record(s, 0, (s % 1000) * size, size, s, codec.checksum(datas[s % 16]),
               codec.compress(datas[s % 16]))
        for s in range(1, n + 1)
    ]  # fmt: skip
    root = tempfile.mkdtemp(prefix="cdp-journal-cost-")
    index = RocksIndex(os.path.join(root, "index"))
    extra = {}
    if keyed:
        from cdp.journal.seal import parse_keyring  # noqa: PLC0415 - absent before this change

        extra["keys"] = parse_keyring("k1:" + "ab" * 32, "bench")
    # without --key no keys argument: the same file measures a checkout from before
    j = Journal(os.path.join(root, "journal"), "g", index, fsync=lambda fd: None, **extra)
    try:
        j.open()
        c0 = time.process_time()
        for i in range(0, n, batch):
            j.append(recs[i : i + batch])
            j.sync()
        c1 = time.process_time()
        assert sum(1 for _ in j.read_range(1, n)) == n
        c2 = time.process_time()
    finally:
        j.close()
        index.close()
        shutil.rmtree(root)
    mib = n * size / 2**20
    return (c1 - c0) / mib * 1000, (c2 - c1) / mib * 1000


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.journal_cost", description=__doc__)
    p.add_argument("--key", action="store_true", help="with a journal key (AES-GCM, HMAC)")
    args = p.parse_args()
    for size, n, batch in CASES:
        w, r = run(size, n, batch, args.key)
        print(f"{size // 1024:>5} KiB x {n}: write {w:6.2f} ms CPU/MiB, read {r:6.2f} ms CPU/MiB")


if __name__ == "__main__":
    main()
