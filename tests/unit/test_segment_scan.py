"""cdp.journal.segment on real files: scan stops at the first bad byte with a reason, and
Segment.read/append/truncate verify what they touch."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest
from conftest import make_record

from cdp.errors import JournalCorruptError
from cdp.journal.seal import SEGMENT_HEADER_SIZE, ZERO_HEAD
from cdp.journal.segment import Segment, scan
from cdp.record import CHAINED_HEADER_SIZE, HEADER_SIZE, MAGIC, MAX_WRITE_BYTES, Record, encode

# header field offsets (cdp/record.py docstring)
SEQ_AT, FRAME_LEN_AT, LENGTH_AT = 8, 20, 32


def records(first: int, n: int, size: int = 512) -> list[Record]:
    rng = random.Random(first * 1000 + n)
    return [
        make_record(first + i, disk=i % 3, offset=i * 4096, data=rng.randbytes(size))
        for i in range(n)
    ]


def write_segment(path: Path, recs: list[Record]) -> list[int]:
    """Write ``recs`` as a segment; return each record's start offset."""
    starts, pos = [], 0
    with open(path, "wb") as f:
        for r in recs:
            starts.append(pos)
            f.write(encode(r) + r.frame)
            pos += r.encoded_size()
    return starts


def patch(path: Path, at: int, new: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(new)


def flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)[0]
        f.seek(at)
        f.write(bytes([b ^ 0x40]))


@pytest.fixture
def seg(tmp_path: Path) -> tuple[Path, list[Record], list[int]]:
    path = tmp_path / "0000000000000005.seg"
    recs = records(5, 6)
    return path, recs, write_segment(path, recs)


def test_clean_segment_scans_whole(seg: tuple[Path, list[Record], list[int]]) -> None:
    path, recs, starts = seg
    found = scan(str(path), 5)
    assert [loc.header.seq for loc in found.records] == [5, 6, 7, 8, 9, 10]
    assert [loc.offset for loc in found.records] == starts
    assert found.valid_end == found.file_size == path.stat().st_size
    assert found.torn_bytes == 0 and found.stop_reason == ""
    for loc, r in zip(found.records, recs, strict=True):
        h = loc.header
        assert (h.disk, h.offset, h.length, h.source_ns, h.data_xxh3, h.frame_len) == (
            r.disk, r.offset, r.length, r.source_ns, r.data_xxh3, len(r.frame),
        )  # fmt: skip


def test_empty_segment(tmp_path: Path) -> None:
    path = tmp_path / "0000000000000001.seg"
    path.write_bytes(b"")
    found = scan(str(path), 1)
    assert found.records == [] and found.valid_end == 0 and found.torn_bytes == 0
    assert found.stop_reason == ""


@pytest.mark.parametrize("garbage_len", [1, 63, 64, 65, 4096])
def test_appended_garbage_stops_at_old_end(
    seg: tuple[Path, list[Record], list[int]], garbage_len: int
) -> None:
    path, _, _ = seg
    end = path.stat().st_size
    rng = random.Random(garbage_len)
    garbage = rng.randbytes(garbage_len)
    assert not garbage.startswith(MAGIC)
    with open(path, "ab") as f:
        f.write(garbage)
    found = scan(str(path), 5)
    assert len(found.records) == 6
    assert found.valid_end == end
    assert found.torn_bytes == garbage_len
    reason = "torn header" if garbage_len < HEADER_SIZE else "bad magic or version"
    assert found.stop_reason == f"offset {end}: {reason}"


def test_appended_zeros_stop_at_old_end(seg: tuple[Path, list[Record], list[int]]) -> None:
    """A preallocated / zero-filled tail (what a crash on some filesystems leaves)."""
    path, _, _ = seg
    end = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(8192))
    found = scan(str(path), 5)
    assert len(found.records) == 6 and found.valid_end == end and found.torn_bytes == 8192
    assert "bad magic" in found.stop_reason


@pytest.mark.parametrize("keep", [1, 10, HEADER_SIZE - 1])
def test_torn_header_of_last_record(seg: tuple[Path, list[Record], list[int]], keep: int) -> None:
    path, _, starts = seg
    os.truncate(path, starts[-1] + keep)
    found = scan(str(path), 5)
    assert [loc.header.seq for loc in found.records] == [5, 6, 7, 8, 9]
    assert found.valid_end == starts[-1]
    assert found.torn_bytes == keep
    assert found.stop_reason == f"offset {starts[-1]}: torn header"


@pytest.mark.parametrize("cut", [1, 100, -1])
def test_torn_frame_of_last_record(seg: tuple[Path, list[Record], list[int]], cut: int) -> None:
    """The header is whole but the frame is cut short: a torn record, named by seq."""
    path, recs, starts = seg
    size = path.stat().st_size
    new_size = starts[-1] + HEADER_SIZE + (cut if cut > 0 else 0)
    if cut < 0:
        new_size = size - 1
    os.truncate(path, new_size)
    found = scan(str(path), 5)
    assert len(found.records) == 5
    assert found.valid_end == starts[-1]
    assert found.torn_bytes == new_size - starts[-1]
    assert found.stop_reason == f"offset {starts[-1]}: torn record seq 10"


@pytest.mark.parametrize("which", [0, 2, 5])
def test_flipped_byte_in_a_frame(seg: tuple[Path, list[Record], list[int]], which: int) -> None:
    path, recs, starts = seg
    flip(path, starts[which] + HEADER_SIZE + len(recs[which].frame) // 2)
    found = scan(str(path), 5)
    assert len(found.records) == which
    assert found.valid_end == starts[which]
    assert found.torn_bytes == path.stat().st_size - starts[which]
    assert (
        found.stop_reason == f"offset {starts[which]}: record checksum mismatch at seq {5 + which}"
    )


@pytest.mark.parametrize(
    "field_at", [SEQ_AT + 1, 16, 24, 40, 48, 56], ids=["seq", "disk", "off", "ts", "xxh", "crc"]
)
def test_flipped_byte_in_a_header(seg: tuple[Path, list[Record], list[int]], field_at: int) -> None:
    path, _, starts = seg
    flip(path, starts[3] + field_at)
    found = scan(str(path), 5)
    assert len(found.records) == 3
    assert found.valid_end == starts[3]
    assert found.stop_reason.startswith(f"offset {starts[3]}: record checksum mismatch")


def test_flipped_byte_in_the_last_byte_of_the_file(
    seg: tuple[Path, list[Record], list[int]],
) -> None:
    path, _, starts = seg
    flip(path, path.stat().st_size - 1)
    found = scan(str(path), 5)
    assert len(found.records) == 5 and found.valid_end == starts[5]
    assert "checksum mismatch at seq 10" in found.stop_reason


@pytest.mark.parametrize("which", [0, 4])
def test_wrong_magic(seg: tuple[Path, list[Record], list[int]], which: int) -> None:
    path, _, starts = seg
    patch(path, starts[which], b"CDPX")
    found = scan(str(path), 5)
    assert len(found.records) == which
    assert found.valid_end == starts[which]
    assert found.stop_reason == f"offset {starts[which]}: bad magic or version"


@pytest.mark.parametrize(
    ("at", "value"), [(4, 2), (4, 0), (5, 0), (5, 99)], ids=["v2", "v0", "kind0", "kind99"]
)
def test_unknown_version_or_kind(
    seg: tuple[Path, list[Record], list[int]], at: int, value: int
) -> None:
    path, _, starts = seg
    patch(path, starts[2] + at, bytes([value]))
    found = scan(str(path), 5)
    assert len(found.records) == 2
    assert found.stop_reason == f"offset {starts[2]}: bad magic or version"


@pytest.mark.parametrize(
    ("at", "value"),
    [
        (FRAME_LEN_AT, 2**32 - 1),
        (FRAME_LEN_AT, MAX_WRITE_BYTES + 4097),
        (LENGTH_AT, MAX_WRITE_BYTES + 512),
    ],
    ids=["frame_len-max", "frame_len-just-over", "length-over"],
)
def test_length_out_of_range(
    seg: tuple[Path, list[Record], list[int]], at: int, value: int
) -> None:
    """A huge length field is refused before anything is read past it."""
    path, _, starts = seg
    patch(path, starts[1] + at, struct.pack("<I", value))
    found = scan(str(path), 5)
    assert len(found.records) == 1
    assert found.valid_end == starts[1]
    assert found.stop_reason == f"offset {starts[1]}: length out of range"


def test_frame_len_pointing_past_the_end_is_torn(
    seg: tuple[Path, list[Record], list[int]],
) -> None:
    path, recs, starts = seg
    patch(path, starts[5] + FRAME_LEN_AT, struct.pack("<I", len(recs[5].frame) + 1000))
    found = scan(str(path), 5)
    assert len(found.records) == 5
    assert found.stop_reason == f"offset {starts[5]}: torn record seq 10"


def test_seq_out_of_order_is_found(tmp_path: Path) -> None:
    """Every record is intact, but seq 8 is missing: scan stops at 9 and says why."""
    path = tmp_path / "0000000000000005.seg"
    recs = records(5, 6)
    starts = write_segment(path, recs[:3] + recs[4:])
    found = scan(str(path), 5)
    assert [loc.header.seq for loc in found.records] == [5, 6, 7]
    assert found.valid_end == starts[3]
    assert found.stop_reason == f"offset {starts[3]}: seq 9 where 8 was expected"


def test_first_seq_differs_from_the_name(seg: tuple[Path, list[Record], list[int]]) -> None:
    path, _, _ = seg
    found = scan(str(path), 4)
    assert found.records == [] and found.valid_end == 0
    assert found.stop_reason == "offset 0: seq 5 where 4 was expected"


def test_record_spliced_from_another_segment(tmp_path: Path) -> None:
    """A valid record with the right seq but copied from elsewhere still verifies;
    a record whose bytes are mixed from two records does not."""
    path = tmp_path / "0000000000000001.seg"
    a, b = records(1, 2), records(1, 2, size=1024)
    starts = write_segment(path, a)
    mixed = encode(a[1])[:32] + encode(b[1])[32:] + a[1].frame
    patch(path, starts[1], mixed)
    found = scan(str(path), 1)
    assert len(found.records) == 1
    assert "checksum mismatch at seq 2" in found.stop_reason


# -- Segment: append / read / truncate ---------------------------------------------


def test_segment_append_read_and_truncate(tmp_path: Path) -> None:
    path = str(tmp_path / "0000000000000001.seg")
    seg = Segment.create(path, 1, ZERO_HEAD, None)
    try:
        recs = records(1, 4)
        assert seg.append(recs[:2])[0] == SEGMENT_HEADER_SIZE
        start2 = seg.append(recs[2:])[0]
        assert start2 == SEGMENT_HEADER_SIZE + sum(
            CHAINED_HEADER_SIZE + len(r.frame) for r in recs[:2]
        )
        assert seg.last_seq == 4 and seg.size == os.path.getsize(path)
        seg.sync()
        assert list(seg.iter_from(SEGMENT_HEADER_SIZE, 1, 4, ZERO_HEAD)) == recs
        assert seg.read(start2, 3) == recs[2]
        with pytest.raises(JournalCorruptError) as info:
            seg.read(start2, 4)  # offset of seq 3, asked for seq 4
        assert info.value.path == path and info.value.seq == 4 and "holds seq 3" in str(info.value)
        with pytest.raises(JournalCorruptError) as info:
            seg.read(1, 1)  # not a record boundary
        assert info.value.path == path and info.value.offset == 1
        with pytest.raises(JournalCorruptError, match="chain tag mismatch"):
            seg.read(start2, 3, ZERO_HEAD)  # its chain extends seq 2's tag, not genesis
        seg.truncate(start2)
        assert os.path.getsize(path) == start2 == seg.size
        assert seg.head == seg.tag_at(
            SEGMENT_HEADER_SIZE + CHAINED_HEADER_SIZE + len(recs[0].frame)
        )
        assert [loc.header.seq for loc in scan(path, 1).records] == [1, 2]
        with pytest.raises(JournalCorruptError):
            seg.read(start2, 3)  # past the end now
    finally:
        seg.close()


def test_segment_read_detects_a_flipped_byte(tmp_path: Path) -> None:
    path = tmp_path / "0000000000000001.seg"
    recs = records(1, 3)
    starts = write_segment(path, recs)
    flip(path, starts[1] + HEADER_SIZE + 3)
    seg = Segment(str(path), 1, path.stat().st_size, 3)
    try:
        assert seg.read(starts[0], 1) == recs[0]
        with pytest.raises(JournalCorruptError) as info:
            seg.read(starts[1], 2)
        err = info.value
        assert err.path == str(path) and err.seq == 2 and err.offset == starts[1]
        assert str(path) in str(err) and "seq 2" in str(err)
        with pytest.raises(JournalCorruptError):
            list(seg.iter_from(0, 1, 3))
    finally:
        seg.close()


@pytest.mark.parametrize("n", [500, 501, 513, 2049])
def test_segment_append_of_a_large_batch(tmp_path: Path, n: int) -> None:
    """More buffers than one pwritev takes (IOV_MAX 1024; 2 per record) still land whole."""
    path = str(tmp_path / "0000000000000001.seg")
    seg = Segment.create(path, 1, ZERO_HEAD, None)
    try:
        rng = random.Random(n)
        recs = [make_record(s, data=rng.randbytes(512)) for s in range(1, n + 1)]
        assert seg.append(recs)[0] == SEGMENT_HEADER_SIZE
        assert seg.last_seq == n
        assert seg.size == os.path.getsize(path)
        assert seg.size == SEGMENT_HEADER_SIZE + sum(
            CHAINED_HEADER_SIZE + len(r.frame) for r in recs
        )
        found = scan(path, 1)
        assert [loc.header.seq for loc in found.records] == list(range(1, n + 1))
        assert found.torn_bytes == 0
        assert list(seg.iter_from(SEGMENT_HEADER_SIZE, 1, n, ZERO_HEAD)) == recs
    finally:
        seg.close()
