"""The tamper-evident journal on real files: `cdp journal verify` names segment and seq of
every kind of edit, and the journal refuses to open or apply what was edited."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_record, start_target, stop_target
from test_journal_target_corruption import SPEC, last_segment, send
from test_journal_target_corruption import recs as live_recs

from cdp import naming
from cdp.cli.journal import verify
from cdp.errors import JournalCorruptError, RemoteError
from cdp.journal.journal import Journal
from cdp.journal.seal import Keyring, parse_keyring
from cdp.journal.segment import scan
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import CHAINED_HEADER_SIZE, FIELDS_SIZE, Record, encode, record_crc

GROUP = "g1"
KEY_LINE = "k1:" + "11" * 32


def recs(first: int, n: int) -> list[Record]:
    rng = random.Random(first)
    return [make_record(s, s % 2, s * 4096, rng.randbytes(512)) for s in range(first, first + n)]


@dataclass
class Built:
    """A stopped target's data dir with a chained journal of 40 acked records."""

    data_dir: str
    keys: Keyring | None
    key_file: str | None
    every: list[Record]

    def segments(self) -> list[str]:
        folder = os.path.join(self.data_dir, "journal", GROUP)
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder))]

    def journal(self) -> tuple[Journal, RocksIndex]:
        index = RocksIndex(os.path.join(self.data_dir, "index"))
        root = os.path.join(self.data_dir, "journal")
        return Journal(root, GROUP, index, segment_bytes=6000, keys=self.keys), index


def build(tmp_path: Path, keyed: bool) -> Built:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data_dir = str(tmp_path / "target")
    key_file = None
    keys = None
    if keyed:
        key_file = str(tmp_path / "journal.key")
        Path(key_file).write_text(KEY_LINE + "\n")
        os.chmod(key_file, 0o600)
        keys = parse_keyring(KEY_LINE, "test")
    built = Built(data_dir, keys, key_file, recs(1, 40))
    j, index = built.journal()
    j.open()
    for i in range(0, 40, 4):
        if i % 8 == 0:
            j.request_checkpoint()
        j.append(built.every[i : i + 4])
        j.sync()
    j.close()
    index.close()
    assert len(built.segments()) >= 5
    return built


def spans(path: str, keys: Keyring | None) -> list[tuple[int, int, int]]:
    """(seq, offset, bytes) of every record of a segment."""
    first = naming.parse_segment(os.path.basename(path))
    assert first is not None
    found = scan(path, first, keys)
    return [(loc.header.seq, loc.offset, loc.header.size + loc.header.frame_len)
            for loc in found.records]  # fmt: skip


def edit(path: str, fn: Callable[[bytearray], bytes]) -> None:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    with open(path, "wb") as f:
        f.write(fn(data))


def fix_crc(data: bytearray, at: int) -> None:
    """Recompute the record checksum of the v2 record at ``at`` (a checksum-aware edit)."""
    flen = int.from_bytes(data[at + 20 : at + 24], "little")
    head = bytes(data[at : at + CHAINED_HEADER_SIZE - 8])
    frame = bytes(data[at + CHAINED_HEADER_SIZE : at + CHAINED_HEADER_SIZE + flen])
    data[at + CHAINED_HEADER_SIZE - 8 : at + CHAINED_HEADER_SIZE] = record_crc(
        head, frame
    ).to_bytes(8, "little")


# -- the tampering, each returning (segment path, seq) the finding must name -----------


def edit_byte(b: Built) -> tuple[str, int]:
    path = b.segments()[1]
    seq, at, _ = spans(path, b.keys)[2]

    def fn(d: bytearray) -> bytes:
        d[at + CHAINED_HEADER_SIZE + 5] ^= 0x01
        return bytes(d)

    edit(path, fn)
    return path, seq


def edit_byte_fixing_crc(b: Built) -> tuple[str, int]:
    path = b.segments()[1]
    seq, at, _ = spans(path, b.keys)[1]

    def fn(d: bytearray) -> bytes:
        d[at + CHAINED_HEADER_SIZE + 5] ^= 0x01
        fix_crc(d, at)
        return bytes(d)

    edit(path, fn)
    return path, seq


def unkeyed_tag(prev: bytes, fields: bytes, frame: bytes) -> bytes:
    """A chain tag as anyone without the key can compute it (docs: SHA-256, truncated)."""
    return hashlib.sha256(b"cdp-record-chain\0" + prev + fields + frame).digest()[:16]


def rechain(path: str, keys: Keyring | None) -> int:
    """Edit the first record of a segment, then recompute every CRC and (unkeyed) chain tag
    to its end, as an attacker without the key can; return the edited seq."""
    rows = spans(path, keys)
    seq, at, _ = rows[0]
    found = scan(path, seq, keys)
    assert found.seal is not None
    prev = found.seal.header.prev_head

    def fn(d: bytearray) -> bytes:
        nonlocal prev
        d[at + CHAINED_HEADER_SIZE + 7] ^= 0x01
        for _, off, size in rows:
            fields = bytes(d[off : off + FIELDS_SIZE])
            prev = unkeyed_tag(prev, fields, bytes(d[off + CHAINED_HEADER_SIZE : off + size]))
            d[off + FIELDS_SIZE : off + FIELDS_SIZE + 16] = prev
            fix_crc(d, off)
        return bytes(d)

    edit(path, fn)
    return seq


def rechain_segment_without_key(b: Built) -> tuple[str, int]:
    """Only the next segment's header (or, keyed, the key) gives a recomputed chain away."""
    segs = b.segments()
    seq = rechain(segs[1], b.keys)
    if b.keys is None:  # the chain inside holds; the next header does not continue it
        return segs[2], naming.parse_segment(os.path.basename(segs[2])) or 0
    return segs[1], seq


def remove_record(b: Built) -> tuple[str, int]:
    path = b.segments()[2]
    seq, at, size = spans(path, b.keys)[1]
    edit(path, lambda d: bytes(d[:at] + d[at + size :]))
    return path, seq


def swap_pair(b: Built) -> tuple[str, int]:
    path = b.segments()[2]
    rows = spans(path, b.keys)
    (s1, a1, n1), (_, a2, n2) = rows[0], rows[1]
    edit(path, lambda d: bytes(d[:a1] + d[a2 : a2 + n2] + d[a1 : a1 + n1] + d[a2 + n2 :]))
    return path, s1


def truncate_sealed(b: Built) -> tuple[str, int]:
    path = b.segments()[1]
    rows = spans(path, b.keys)
    seq, at, _ = rows[-2]
    edit(path, lambda d: bytes(d[:at]))
    return path, seq


def truncate_mid_record(b: Built) -> tuple[str, int]:
    path = b.segments()[1]
    seq, at, _ = spans(path, b.keys)[-1]
    edit(path, lambda d: bytes(d[: at + 30]))
    return path, seq


def truncate_last(b: Built) -> tuple[str, int]:
    path = b.segments()[-1]
    rows = spans(path, b.keys)
    seq, at, _ = rows[len(rows) // 2]
    edit(path, lambda d: bytes(d[:at]))
    return path, seq


def remove_middle_segment(b: Built) -> tuple[str, int]:
    segs = b.segments()
    first = naming.parse_segment(os.path.basename(segs[2]))
    assert first is not None
    os.unlink(segs[2])
    return segs[1], first


TAMPERS = [
    edit_byte, edit_byte_fixing_crc, rechain_segment_without_key, remove_record, swap_pair,
    truncate_sealed, truncate_mid_record, truncate_last, remove_middle_segment,
]  # fmt: skip


def test_an_untouched_journal_verifies(tmp_path: Path) -> None:
    for keyed in (False, True):
        b = build(tmp_path / str(keyed), keyed)
        (v,) = verify(b.data_dir, None, b.key_file)
        assert v.intact, v.problems
        assert v.records == 40 and v.acked_seq == 40 and v.checkpoint_seq == 36
        assert all(s.chained for s in v.segments)
        assert {s.key_id for s in v.segments} == {"k1" if keyed else ""}


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_verify_names_segment_and_seq_of_each_tampering(
    tmp_path: Path, tamper: Callable[[Built], tuple[str, int]], keyed: bool
) -> None:
    b = build(tmp_path, keyed)
    path, seq = tamper(b)
    (v,) = verify(b.data_dir, None, b.key_file)
    assert not v.intact
    assert (path, seq) in [(f.path, f.seq) for f in v.problems], v.problems


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    b = build(tmp_path, keyed=True)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "cdp", "journal", "verify", "--data-dir", b.data_dir]
    ok = subprocess.run([*cmd, "--key-file", str(b.key_file)], capture_output=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert b"INTACT" in ok.stdout
    path, seq = swap_pair(b)
    bad = subprocess.run([*cmd, "--key-file", str(b.key_file)], capture_output=True, env=env)
    assert bad.returncode == 1
    assert f"DATA_LOSS {path} seq {seq}".encode() in bad.stdout, bad.stdout
    nokey = subprocess.run(cmd, capture_output=True, env=env)
    assert nokey.returncode == 1 and b"key id 'k1'" in nokey.stdout, nokey.stdout


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
def test_open_refuses_a_tampered_last_segment(tmp_path: Path, keyed: bool) -> None:
    """A checksum-aware edit of an acked record is tampering, not a torn tail: never cut."""
    b = build(tmp_path, keyed)
    path = b.segments()[-1]
    seq, at, _ = spans(path, b.keys)[1]

    def fn(d: bytearray) -> bytes:
        d[at + CHAINED_HEADER_SIZE + 2] ^= 0x10
        fix_crc(d, at)
        return bytes(d)

    edit(path, fn)
    before = Path(path).read_bytes()
    j, index = b.journal()
    try:
        with pytest.raises(JournalCorruptError) as info:
            j.open()
        assert info.value.path == path and info.value.seq == seq
        assert "chain tag mismatch" in str(info.value)
    finally:
        j.close()
        index.close()
    assert Path(path).read_bytes() == before, "acked records were cut"


def test_open_refuses_a_removed_middle_segment(tmp_path: Path) -> None:
    b = build(tmp_path, keyed=False)
    segs = b.segments()
    os.unlink(segs[2])
    j, index = b.journal()
    try:
        with pytest.raises(JournalCorruptError) as info:
            j.open()
        assert info.value.path == segs[1], str(info.value)
        assert "the index places it in segment" in str(info.value)
    finally:
        j.close()
        index.close()


def test_apply_reads_refuse_an_edited_sealed_record(tmp_path: Path) -> None:
    """Open checks only headers and links of sealed segments; reading for apply extends
    the chain record by record and stops at the edited one, naming segment and seq."""
    b = build(tmp_path, keyed=False)
    path, seq = edit_byte_fixing_crc(b)
    j, index = b.journal()
    try:
        j.open()
        got: list[Record] = []
        with pytest.raises(JournalCorruptError) as info:
            got.extend(j.read_range(1, 40))
        assert info.value.path == path and info.value.seq == seq
        assert [r.seq for r in got] == list(range(1, seq))
        assert got == b.every[: seq - 1]
        entry = j.lookup(seq)
        assert entry is not None
        with pytest.raises(JournalCorruptError, match="chain tag mismatch"):
            j.read_entry(entry)  # random access checks the chain too
    finally:
        j.close()
        index.close()


def test_checkpoint_head_pins_a_fully_recomputed_history(tmp_path: Path) -> None:
    """Without a key, an attacker can recompute every tag; the head a checkpoint stored in
    the index still gives it away (unless the index is rewritten too: docs/SECURITY.md)."""
    b = build(tmp_path, keyed=False)
    last = b.segments()[-1]
    seq = rechain(last, None)
    assert scan(last, seq, None).stop_reason == ""  # every record checks out on its own
    j, index = b.journal()
    try:
        with pytest.raises(JournalCorruptError, match="checkpoint recorded") as info:
            j.open()
        assert info.value.seq == 36 and info.value.path == last
    finally:
        j.close()
        index.close()
    (v,) = verify(b.data_dir, None, None)
    assert (last, 36) in [(f.path, f.seq) for f in v.problems]


async def test_a_target_refuses_an_edited_acked_record_with_data_loss(tmp_path: Path) -> None:
    """Through a real target (gRPC, RocksDB, encrypted and keyed journal): a record edited
    after it was acked puts the group in ERROR; the handshake answers DATA_LOSS naming
    segment and seq."""
    keys = parse_keyring(KEY_LINE, "test")
    data_dir = str(tmp_path / "target")
    config = {"history_window_s": 3600, "journal_keys": keys}
    r = await start_target(data_dir, **config)
    try:
        assert await send(r, [live_recs(1, 6), live_recs(7, 6)], next_seq=1) == 12
    finally:
        await stop_target(r)
    path = last_segment(data_dir)
    seq, at, _ = spans(path, keys)[4]

    def fn(d: bytearray) -> bytes:
        d[at + CHAINED_HEADER_SIZE + 9] ^= 0x20
        fix_crc(d, at)
        return bytes(d)

    edit(path, fn)
    r = await start_target(data_dir, **config)
    try:
        with pytest.raises(RemoteError) as info:
            await r.client.open_session("host-a", SPEC, 0, 13)
        assert info.value.code == "DATA_LOSS"
        assert path in str(info.value) and f"seq {seq}" in str(info.value), str(info.value)
    finally:
        await stop_target(r)


def test_a_previous_release_journal_opens_and_verifies_as_unchained(tmp_path: Path) -> None:
    """Segments without a header (records at offset 0, version 1) still open and read;
    new records go to a new chained segment; verify notes them as unchained, intact."""
    data_dir = tmp_path / "target"
    folder = data_dir / "journal" / GROUP
    folder.mkdir(parents=True)
    old = recs(1, 12)
    for first in (1, 7):
        with open(folder / naming.format_segment(first), "wb") as f:
            for r in old[first - 1 : first + 5]:
                f.write(encode(r) + r.frame)
    b = Built(str(data_dir), None, None, old)
    j, index = b.journal()
    try:
        assert j.open().reindexed == 12
        assert list(j.read_range(1, 12)) == old
        new = recs(13, 4)
        j.append(new)
        j.sync()
        assert list(j.read_range(1, 16)) == old + new
    finally:
        j.close()
        index.close()
    names = sorted(os.listdir(folder))
    assert names[-1] == naming.format_segment(13)
    (v,) = verify(b.data_dir, None, None)
    assert v.intact, v.problems
    assert [s.chained for s in v.segments] == [False, False, True]
    assert sum("unchained" in n for n in v.notes) == 2
    j, index = b.journal()  # and it opens again (links after an unchained segment)
    try:
        j.open()
        assert list(j.read_range(1, 16)) == old + new
    finally:
        j.close()
        index.close()


def test_an_unacked_torn_tail_is_noted_not_failed_and_cut_on_open(tmp_path: Path) -> None:
    """A crash mid-append leaves a partial record past every acked seq: not tampering."""
    b = build(tmp_path, keyed=True)
    last = b.segments()[-1]
    size = os.path.getsize(last)
    rows = spans(last, b.keys)
    _, at, n = rows[-1]
    with open(last, "ab") as f:  # a copy of a record header, torn, as a crash leaves it
        f.write(Path(last).read_bytes()[at : at + n // 2])
    (v,) = verify(b.data_dir, None, b.key_file)
    assert v.intact, v.problems
    assert any("unacknowledged torn tail" in n for n in v.notes), v.notes
    j, index = b.journal()
    try:
        assert j.open().torn_bytes_cut == n // 2
        assert os.path.getsize(last) == size
    finally:
        j.close()
        index.close()


async def test_a_target_stops_applying_at_an_edited_sealed_record(tmp_path: Path) -> None:
    """Open checks only the headers and links of sealed segments; the apply loop reads
    every record through the chain and stops the group at the edited one (ERROR, the
    cause naming segment and seq); the applied seq never reaches it."""
    keys = parse_keyring(KEY_LINE, "test")
    data_dir = str(tmp_path / "target")
    config: dict[str, object] = {"journal_keys": keys, "journal_limit_bytes": 256 * 1024}
    r = await start_target(data_dir, history_window_s=3600, **config)
    try:
        batches = [live_recs(s, 10) for s in range(1, 81, 10)]
        assert await send(r, batches, next_seq=1) == 80
    finally:
        await stop_target(r)
    folder = os.path.join(data_dir, "journal", "g1")
    first = os.path.join(folder, sorted(os.listdir(folder))[0])
    assert len(os.listdir(folder)) >= 2
    seq, at, _ = spans(first, keys)[5]

    def fn(d: bytearray) -> bytes:
        d[at + CHAINED_HEADER_SIZE + 4] ^= 0x08
        fix_crc(d, at)
        return bytes(d)

    edit(first, fn)
    r = await start_target(data_dir, history_window_s=0, **config)
    try:
        member = r.target.groups["g1"]
        for _ in range(500):
            if member.error is not None:
                break
            await asyncio.sleep(0.02)
        err = member.error
        assert isinstance(err, JournalCorruptError), err
        assert err.path == first and err.seq == seq and "chain tag mismatch" in str(err)
        assert member.applier.applied_seq < seq
    finally:
        await stop_target(r)


def test_removing_the_oldest_segment_is_only_noted(tmp_path: Path) -> None:
    """Deleting the oldest segments looks like retention (docs/SECURITY.md): the index
    that still knows their seqs makes a note, not a failure (a power loss can leave it)."""
    b = build(tmp_path, keyed=False)
    os.unlink(b.segments()[0])
    (v,) = verify(b.data_dir, None, None)
    assert v.intact and any("below the oldest segment" in n for n in v.notes), v.notes
