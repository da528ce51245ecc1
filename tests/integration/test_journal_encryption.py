"""Journal encryption at rest on real files: no plaintext on disk, no reading without the
key, a clear error for a wrong one, rotation without rewriting old segments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import make_record, start_target, stop_target
from test_journal_target_corruption import recs as live_recs
from test_journal_target_corruption import send

from cdp import codec
from cdp.cli.journal import verify
from cdp.cli.journal_keys import load_keyring
from cdp.cli.scrub import scrub
from cdp.errors import ConfigError, JournalKeyError
from cdp.journal.journal import Journal
from cdp.journal.seal import SEGMENT_HEADER_SIZE, ZERO_HEAD, Keyring, parse_keyring
from cdp.journal.segment import Segment, scan
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import KIND_BOOKMARK, Record

GROUP = "g1"
K1 = "k1:" + "11" * 32
K1_WRONG = "k1:" + "12" * 32
K2 = "k2:" + "22" * 32
SECRET = b"SECRET-PLAINTEXT-" * 64


def recs(first: int, n: int, data: bytes = SECRET) -> list[Record]:
    return [
        make_record(s, 0, s * 4096, data + s.to_bytes(4, "little")) for s in range(first, first + n)
    ]


class Dir:
    """A data dir with a real RocksDB index; journals opened under any keyring."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.index = RocksIndex(os.path.join(self.root, "index"))

    def journal(self, keys: Keyring | None) -> Journal:
        return Journal(os.path.join(self.root, "journal"), GROUP, self.index, 8000, keys=keys)

    def segment_bytes(self) -> bytes:
        folder = os.path.join(self.root, "journal", GROUP)
        return b"".join(Path(folder, n).read_bytes() for n in sorted(os.listdir(folder)))

    def close(self) -> None:
        self.index.close()


@pytest.fixture
def d(tmp_path: Path) -> Dir:
    return Dir(tmp_path / "target")


def write(j: Journal, *batches: list[Record]) -> None:
    for b in batches:
        j.append(b)
        j.sync()


def test_no_plaintext_on_disk_and_records_read_back(d: Dir) -> None:
    keys = parse_keyring(K1, "test")
    j = d.journal(keys)
    j.open()
    every = recs(1, 30)
    write(j, every[:10], every[10:20], every[20:])
    assert list(j.read_range(1, 30)) == every
    j.close()
    raw = d.segment_bytes()
    assert b"SECRET-PLAINTEXT" not in raw
    assert every[0].frame[:64] not in raw  # not even the lz4 frame
    j = d.journal(keys)
    j.open()
    assert list(j.read_range(1, 30)) == every
    j.close()
    d.close()


def test_plain_journal_holds_the_frames_as_sent(tmp_path: Path) -> None:
    """The control: the same records without a key are on disk as compressed plaintext."""
    plain = Dir(tmp_path / "plain")
    j = plain.journal(None)
    j.open()
    write(j, recs(1, 5))
    j.close()
    assert b"SECRET-PLAINTEXT" in plain.segment_bytes()
    plain.close()


def test_encrypted_segments_refuse_to_open_without_the_key(d: Dir) -> None:
    j = d.journal(parse_keyring(K1, "test"))
    j.open()
    write(j, recs(1, 5))
    j.close()
    for keys in (None, parse_keyring(K2, "test")):
        with pytest.raises(JournalKeyError) as info:
            d.journal(keys).open()
        assert info.value.key_id == "k1" and "not in the keyring" in str(info.value)
        assert "--journal-key-file" in str(info.value)
    d.close()


def test_a_wrong_key_is_named_as_such(d: Dir) -> None:
    j = d.journal(parse_keyring(K1, "test"))
    j.open()
    write(j, recs(1, 5))
    j.close()
    with pytest.raises(JournalKeyError, match="wrong key") as info:
        d.journal(parse_keyring(K1_WRONG, "test")).open()
    assert info.value.key_id == "k1"
    d.close()
    (v,) = verify(d.root, None, None)
    assert not v.intact and "key id 'k1'" in v.problems[0].problem


def test_rotation_keeps_old_segments_readable(d: Dir, tmp_path: Path) -> None:
    j = d.journal(parse_keyring(K1, "test"))
    j.open()
    old = recs(1, 20)
    write(j, old[:10], old[10:])
    j.close()
    both = parse_keyring(f"{K1}\n{K2}", "test")
    j = d.journal(both)
    j.open()
    new = recs(21, 10, b"other data " * 50)
    write(j, new)
    assert list(j.read_range(1, 30)) == old + new
    j.close()
    folder = os.path.join(d.root, "journal", GROUP)
    ids = []
    for n in sorted(os.listdir(folder)):
        found = scan(os.path.join(folder, n), int(n[:16], 16), both)
        assert found.seal is not None and found.stop_reason == ""
        ids.append(found.seal.header.key_id)
    assert ids[0] == "k1" and ids[-1] == "k2" and set(ids) == {"k1", "k2"}
    with pytest.raises(JournalKeyError) as info:
        d.journal(parse_keyring(K2, "test")).open()
    assert info.value.key_id == "k1"
    d.close()
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated\n{K1}\n{K2}\n")
    key_file.chmod(0o600)
    (v,) = verify(d.root, None, str(key_file))
    assert v.intact, v.problems


def test_markers_are_encrypted_and_rebuilt_into_a_lost_index(tmp_path: Path) -> None:
    keys = parse_keyring(K1, "test")
    d = Dir(tmp_path / "t")
    j = d.journal(keys)
    j.open()
    mark = Record(3, 0, 0, 0, 1003, codec.checksum(b""), b"before-upgrade", KIND_BOOKMARK)
    write(j, recs(1, 2) + [mark] + recs(4, 2))
    j.close()
    d.close()
    assert b"before-upgrade" not in Dir(tmp_path / "t").segment_bytes()
    shutil.rmtree(tmp_path / "t" / "index")
    d = Dir(tmp_path / "t")
    j = d.journal(keys)
    assert j.open().reindexed == 5
    entry = j.lookup(3)
    assert entry is not None and j.read_entry(entry) == mark
    j.close()
    d.close()


def test_nonces_never_repeat_after_a_cut_or_a_reopen(tmp_path: Path) -> None:
    """A cut back bumps the segment's nonce epoch; a reopened journal starts a new segment
    (a new salt, so a new AES key) rather than append under the old one."""
    keys = parse_keyring(K1, "test")
    path = str(tmp_path / "0000000000000001.seg")
    seg = Segment.create(path, 1, ZERO_HEAD, keys.newest)
    seg.append(recs(1, 3))
    seg.truncate(SEGMENT_HEADER_SIZE)
    seg.append(recs(1, 3, b"different " * 40))
    seg.close()
    found = scan(path, 1, keys)
    assert [loc.header.epoch for loc in found.records] == [1, 1, 1]
    d = Dir(tmp_path / "t")
    j = d.journal(keys)
    j.open()
    write(j, recs(1, 2))
    j.close()
    j = d.journal(keys)
    j.open()
    write(j, recs(3, 2))
    j.close()
    folder = os.path.join(d.root, "journal", GROUP)
    names = sorted(os.listdir(folder))
    assert names == ["0000000000000001.seg", "0000000000000003.seg"]
    salts = {scan(os.path.join(folder, n), int(n[:16], 16), keys).seal.header.salt for n in names}  # type: ignore[union-attr]
    assert len(salts) == 2
    d.close()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "CDP_JOURNAL_KEY"),
        ("nokey", "CDP_JOURNAL_KEY[1]"),
        ("bad id!:" + "11" * 32, "CDP_JOURNAL_KEY[1]"),
        ("k1:" + "11" * 31, "CDP_JOURNAL_KEY[1]"),
        ("k1:not-hex-or-base64!", "CDP_JOURNAL_KEY[1]"),
        (f"{K1},{K1}", "CDP_JOURNAL_KEY[2]"),
    ],
)
def test_bad_keyrings_name_the_entry(text: str, field: str) -> None:
    if not text:
        assert load_keyring(None, env={"CDP_JOURNAL_KEY": text}) is None
        return
    with pytest.raises(ConfigError) as info:
        load_keyring(None, env={"CDP_JOURNAL_KEY": text})
    assert info.value.field == field
    assert "11" * 8 not in str(info.value)  # never the key itself


def test_key_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text(K1)
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(str(f))
    f.chmod(0o600)
    keys = load_keyring(str(f))
    assert keys is not None and keys.newest.key_id == "k1"
    env_keys = load_keyring(None, env={"CDP_JOURNAL_KEY": f"{K1},{K2}"})
    assert env_keys is not None and env_keys.newest.key_id == "k2"


async def test_target_scrub_checks_an_encrypted_journal_with_its_key(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "target")
    keys = parse_keyring(K1, "test")
    r = await start_target(data_dir, history_window_s=3600, journal_keys=keys)
    try:
        assert await send(r, [live_recs(1, 6), live_recs(7, 6)], next_seq=1) == 12
    finally:
        await stop_target(r)
    key_file = tmp_path / "keys"
    key_file.write_text(K1)
    key_file.chmod(0o600)
    report = scrub(data_dir, 0, str(key_file))
    assert report.damage == [] and report.records_checked == 12
    with pytest.raises(JournalKeyError, match="key id 'k1'"):
        scrub(data_dir, 0, None)
