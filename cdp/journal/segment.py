"""Journal segments: append-only files of records, scanned and verified on open.

A segment holds consecutive records of one group. It is only ever appended to; a
torn or corrupt tail (a crash mid-write, garbage bytes) is found by :func:`scan` and
cut by :meth:`Segment.truncate`. This module never decides what to keep: the journal
does, because only it knows which seqs were acknowledged.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cdp import fsutil
from cdp.errors import JournalCorruptError, StorageFullError
from cdp.record import HEADER_SIZE, MAX_WRITE_BYTES, Header, Record, decode_header, record_crc

_READ_CHUNK = 8 * 2**20
IOV_BATCH = 1000
"""Buffers per pwritev call; Linux takes at most IOV_MAX (1024)."""


@dataclass(frozen=True, slots=True)
class Located:
    """A record's header and where its bytes start in its segment."""

    header: Header
    offset: int


@dataclass
class ScanResult:
    """What :func:`scan` found: the valid records and why it stopped."""

    records: list[Located] = field(default_factory=list)
    valid_end: int = 0
    file_size: int = 0
    stop_reason: str = ""

    @property
    def torn_bytes(self) -> int:
        """Bytes after the last valid record."""
        return self.file_size - self.valid_end


def scan(path: str, first_seq: int) -> ScanResult:
    """Read every record of a segment, verifying each, until the first bad one."""
    result = ScanResult()
    with open(path, "rb") as f:
        # re-read from the device, not the page cache: after a failed fsync (EIO) the
        # kernel may hold pages that never reached the disk, or may have dropped them
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        data = memoryview(f.read())
    result.file_size = len(data)
    pos, expect = 0, first_seq
    while pos < len(data):
        reason = _check_at(data, pos, expect)
        if reason:
            result.stop_reason = f"offset {pos}: {reason}"
            break
        head = decode_header(data[pos : pos + HEADER_SIZE])
        assert head is not None
        result.records.append(Located(head, pos))
        pos += HEADER_SIZE + head.frame_len
        expect += 1
    result.valid_end = pos
    return result


def _check_at(data: memoryview, pos: int, expect_seq: int) -> str:
    """Why the record at ``pos`` is not valid, or "" if it is."""
    if len(data) - pos < HEADER_SIZE:
        return "torn header"
    head = decode_header(data[pos : pos + HEADER_SIZE])
    if head is None:
        return "bad magic or version"
    if head.frame_len > MAX_WRITE_BYTES + 4096 or head.length > MAX_WRITE_BYTES:
        return "length out of range"
    end = pos + HEADER_SIZE + head.frame_len
    if end > len(data):
        return f"torn record seq {head.seq}"
    if record_crc(data[pos : pos + HEADER_SIZE - 8], data[pos + HEADER_SIZE : end]) != head.crc:
        return f"record checksum mismatch at seq {head.seq}"
    if head.seq != expect_seq:
        return f"seq {head.seq} where {expect_seq} was expected"
    return ""


class Segment:
    """One open segment file; appends go to its end."""

    def __init__(
        self, path: str, first_seq: int, size: int, last_seq: int,
        fsync: Callable[[int], None] = os.fdatasync,
    ) -> None:  # fmt: skip
        self.path = path
        self._fsync = fsync
        """Makes the file's data durable; injectable so tests can fail it (EIO)."""
        self.first_seq = first_seq
        self.size = size
        self.last_seq = last_seq
        """Seq of the last record appended; first_seq - 1 when empty."""
        self._fd = fsutil.create_file(path, os.O_RDWR)

    def append(self, records: list[Record], heads: list[bytes]) -> int:
        """Append records (``heads`` are their encoded headers); return the start offset.

        On failure the file is cut back to its size before the call.
        """
        start = self.size
        parts: list[bytes] = []
        for rec, head in zip(records, heads, strict=True):
            parts.append(head)
            parts.append(rec.frame)
        want = sum(len(p) for p in parts)
        try:
            written = 0
            for i in range(0, len(parts), IOV_BATCH):  # one call takes at most IOV_MAX buffers
                chunk = parts[i : i + IOV_BATCH]
                n = os.pwritev(self._fd, chunk, start + written)
                written += n
                if n != sum(len(p) for p in chunk):
                    raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            self.truncate(start)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise StorageFullError(self.path, f"cannot append {want} bytes: {exc}") from exc
            raise
        self.size = start + want
        self.last_seq = records[-1].seq if records else self.last_seq
        return start

    def sync(self) -> None:
        """Make every appended byte durable (raises OSError, e.g. EIO, if it could not)."""
        self._fsync(self._fd)

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (dropping a torn tail) and make it durable."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = size

    def read(self, offset: int, expect_seq: int) -> Record:
        """Read and verify the record at ``offset``; it must have ``expect_seq``."""
        head_bytes = os.pread(self._fd, HEADER_SIZE, offset)
        head = decode_header(head_bytes) if len(head_bytes) == HEADER_SIZE else None
        if head is None:
            raise JournalCorruptError(self.path, offset, "bad record header", expect_seq)
        frame = os.pread(self._fd, head.frame_len, offset + HEADER_SIZE)
        if len(frame) != head.frame_len or record_crc(head_bytes[:-8], frame) != head.crc:
            raise JournalCorruptError(self.path, offset, "record checksum mismatch", expect_seq)
        if head.seq != expect_seq:
            raise JournalCorruptError(self.path, offset, f"holds seq {head.seq}", expect_seq)
        return Record(
            head.seq,
            head.disk,
            head.offset,
            head.length,
            head.source_ns,
            head.data_xxh3,
            frame,
            head.kind,
        )

    def iter_from(self, offset: int, first_seq: int, last_seq: int) -> Iterator[Record]:
        """Yield verified records ``first_seq..last_seq`` starting at byte ``offset``."""
        seq = first_seq
        while seq <= last_seq:
            rec = self.read(offset, seq)
            yield rec
            offset += rec.encoded_size()
            seq += 1

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)
