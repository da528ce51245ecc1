"""Journal segments: append-only files of records, scanned and verified on open.

A segment holds consecutive records of one group. It is only ever appended to; a
torn or corrupt tail (a crash mid-write, garbage bytes) is found by :func:`scan` and
cut by :meth:`Segment.truncate`. This module never decides what to keep: the journal
does, because only it knows which seqs were acknowledged.

A chained segment starts with a segment header (cdp/journal/seal.py) and holds version-2
records, each with a chain tag over the previous one's; a segment of the previous release
has no header (records start at offset 0 with "CDPR"): it is read, never appended to, and
reported as unchained.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cdp import fsutil
from cdp.errors import JournalCorruptError, JournalKeyError, StorageFullError
from cdp.journal.seal import (
    SEGMENT_HEADER_SIZE,
    ZERO_HEAD,
    JournalKey,
    Keyring,
    Seal,
    decode_segment_header,
    header_tag,
    is_chained,
    new_header,
)
from cdp.record import (
    FIELDS_SIZE,
    HEADER_SIZE,
    MAX_WRITE_BYTES,
    VERSION,
    VERSION_CHAINED,
    Header,
    Record,
    decode_header,
    encode_fields,
    header_size,
    record_crc,
    seal_header,
)

_READ_CHUNK = 8 * 2**20
IOV_BATCH = 1000
"""Buffers per pwritev call; Linux takes at most IOV_MAX (1024)."""
CHAIN_MISMATCH = "chain tag mismatch: the record was rewritten, moved or another removed"
"""Why a record whose checksum holds fails its chain: tampering, never a crash."""


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
    seal: Seal | None = None
    """The segment's chain and cipher; None for an unchained (previous release) segment."""
    head: bytes = ZERO_HEAD
    """Chain tag of the last valid record (the header's prev_head when none)."""

    @property
    def torn_bytes(self) -> int:
        """Bytes after the last valid record."""
        return self.file_size - self.valid_end


def open_header(path: str, buf: bytes, first_seq: int, keys: Keyring | None) -> Seal:
    """Check a chained segment's header; its seal.

    Raises :class:`JournalKeyError` when its key is missing or wrong and
    :class:`JournalCorruptError` when the header is torn or edited.
    """
    parsed = decode_segment_header(buf)
    if parsed is None:
        raise JournalCorruptError(path, 0, "torn or unreadable segment header", first_seq)
    header, tag = parsed
    key: JournalKey | None = None
    if header.key_id:
        key = keys.get(header.key_id) if keys else None
        if key is None:
            raise JournalKeyError(path, header.key_id, "not in the keyring: the segment was "
                                  "written with this key and cannot be read or verified "
                                  "without it")  # fmt: skip
        if key.check() != header.key_check:
            raise JournalKeyError(path, header.key_id, "wrong key: the keyring's key of this "
                                  "id is not the one the segment was written with")  # fmt: skip
    seal = Seal(header, key)
    if header_tag(seal.chain_key, buf[: SEGMENT_HEADER_SIZE - len(tag)]) != tag:
        raise JournalCorruptError(path, 0, "segment header fails its tag (edited)", first_seq)
    if header.first_seq != first_seq:
        raise JournalCorruptError(
            path, 0, f"segment header says first seq {header.first_seq} (renamed)", first_seq
        )
    return seal


def scan(path: str, first_seq: int, keys: Keyring | None = None) -> ScanResult:
    """Read every record of a segment, verifying each (and its chain), until the first bad one.

    Raises :class:`JournalKeyError` when the segment's key is not in ``keys``.
    """
    result = ScanResult()
    with open(path, "rb") as f:
        # re-read from the device, not the page cache: after a failed fsync (EIO) the
        # kernel may hold pages that never reached the disk, or may have dropped them
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        data = memoryview(f.read())
    result.file_size = len(data)
    pos = 0
    if is_chained(bytes(data[:4])):
        try:
            result.seal = open_header(path, bytes(data[:SEGMENT_HEADER_SIZE]), first_seq, keys)
        except JournalCorruptError as exc:
            result.stop_reason = f"offset 0: {exc.reason}"
            return result
        pos, result.head = SEGMENT_HEADER_SIZE, result.seal.header.prev_head
    expect = first_seq
    while pos < len(data):
        reason, head = _check_at(data, pos, expect, result.seal, result.head)
        if head is None:
            result.stop_reason = f"offset {pos}: {reason}"
            break
        result.records.append(Located(head, pos))
        result.head = head.tag or result.head
        pos += head.size + head.frame_len
        expect += 1
    result.valid_end = pos
    return result


def _check_at(
    data: memoryview, pos: int, expect_seq: int, seal: Seal | None, prev: bytes
) -> tuple[str, Header | None]:
    """Why the record at ``pos`` is not valid, or its header if it is."""
    version = VERSION_CHAINED if seal else VERSION
    size = header_size(version)
    if len(data) - pos < size:
        return "torn header", None
    head = decode_header(data[pos : pos + size])
    if head is None or head.version != version:
        return "bad magic or version", None
    if head.frame_len > MAX_WRITE_BYTES + 4096 or head.length > MAX_WRITE_BYTES:
        return "length out of range", None
    end = pos + size + head.frame_len
    if end > len(data):
        return f"torn record seq {head.seq}", None
    frame = data[pos + size : end]
    if record_crc(data[pos : pos + size - 8], frame) != head.crc:
        return f"record checksum mismatch at seq {head.seq}", None
    if head.seq != expect_seq:
        return f"seq {head.seq} where {expect_seq} was expected", None
    if seal and seal.tag(prev, data[pos : pos + FIELDS_SIZE], frame) != head.tag:
        return f"{CHAIN_MISMATCH} at seq {head.seq}", None
    return "", head


class Segment:
    """One open segment file; appends go to its end (chained segments only)."""

    def __init__(
        self, path: str, first_seq: int, size: int, last_seq: int,
        fsync: Callable[[int], None] = os.fdatasync, seal: Seal | None = None,
        head: bytes = ZERO_HEAD,
    ) -> None:  # fmt: skip
        self.path = path
        self._fsync = fsync
        """Makes the file's data durable; injectable so tests can fail it (EIO)."""
        self.first_seq = first_seq
        self.size = size
        self.last_seq = last_seq
        """Seq of the last record appended; first_seq - 1 when empty."""
        self.seal = seal
        """Chain and cipher; None for an unchained segment of the previous release."""
        self.head = head
        """Chain tag of the last record (the header's prev_head while empty)."""
        self.epoch = 0
        """Nonce epoch of encrypted appends: bumped on every cut back (nonces never repeat)."""
        self.appendable = seal is not None
        """Whether appends may go here: only to a chained segment this process created, or
        a plain one the journal reopened under the same (no) key."""
        self._fd = fsutil.create_file(path, os.O_RDWR)

    @classmethod
    def create(
        cls, path: str, first_seq: int, prev_head: bytes, key: JournalKey | None,
        fsync: Callable[[int], None] = os.fdatasync,
    ) -> Segment:  # fmt: skip
        """A new chained segment (encrypted under ``key`` when given); its header written."""
        header = new_header(first_seq, prev_head, key)
        seal = Seal(header, key)
        data = header.encode(seal.chain_key)
        seg = cls(path, first_seq, 0, first_seq - 1, fsync, seal, prev_head)
        os.ftruncate(seg._fd, 0)
        os.pwrite(seg._fd, data, 0)
        seg.size = len(data)
        return seg

    @classmethod
    def load(
        cls, path: str, first_seq: int, last_seq: int, keys: Keyring | None,
        fsync: Callable[[int], None] = os.fdatasync,
    ) -> Segment:  # fmt: skip
        """A sealed segment as found on disk: its header (if any) checked, not its records."""
        with open(path, "rb") as f:
            head = f.read(SEGMENT_HEADER_SIZE)
        seal = open_header(path, head, first_seq, keys) if is_chained(head) else None
        size = os.path.getsize(path)
        seg = cls(path, first_seq, size, last_seq, fsync, seal)
        seg.appendable = False
        return seg

    @property
    def data_start(self) -> int:
        """Offset of the first record."""
        return SEGMENT_HEADER_SIZE if self.seal else 0

    @property
    def prev_head(self) -> bytes:
        """Chain head before this segment's first record (zeros when unchained)."""
        return self.seal.header.prev_head if self.seal else ZERO_HEAD

    def append(self, records: list[Record]) -> list[int]:
        """Append records (sealed: chained, encrypted if so); return each one's offset.

        On failure the file is cut back to its size before the call.
        """
        assert self.seal is not None and self.appendable, self.path
        start, head = self.size, self.head
        parts: list[bytes] = []
        offsets: list[int] = []
        pos = start
        for rec in records:
            hdr, frame, head = self._sealed(rec, head)
            parts += (hdr, frame)
            offsets.append(pos)
            pos += len(hdr) + len(frame)
        try:
            self._write(parts, start)
        except OSError as exc:
            self.truncate(start, self.head)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise StorageFullError(
                    self.path, f"cannot append {pos - start} bytes: {exc}"
                ) from exc
            raise
        self.size, self.head = pos, head
        self.last_seq = records[-1].seq if records else self.last_seq
        return offsets

    def _sealed(self, rec: Record, prev: bytes) -> tuple[bytes, bytes, bytes]:
        """(header, frame on disk, chain tag) of ``rec`` after ``prev``."""
        assert self.seal is not None
        if self.seal.encrypted:
            fields = encode_fields(rec, len(rec.frame) + 16, self.epoch)
            frame = self.seal.encrypt(rec.seq, self.epoch, fields, rec.frame)
        else:
            fields, frame = encode_fields(rec, len(rec.frame)), rec.frame
        tag = self.seal.tag(prev, fields, frame)
        return seal_header(fields, tag, frame), frame, tag

    def _write(self, parts: list[bytes], start: int) -> None:
        written = 0
        for i in range(0, len(parts), IOV_BATCH):  # one call takes at most IOV_MAX buffers
            chunk = parts[i : i + IOV_BATCH]
            n = os.pwritev(self._fd, chunk, start + written)
            written += n
            if n != sum(len(p) for p in chunk):
                raise OSError(errno.ENOSPC, "short write")

    def sync(self) -> None:
        """Make every appended byte durable (raises OSError, e.g. EIO, if it could not)."""
        self._fsync(self._fd)

    def truncate(self, size: int, head: bytes | None = None) -> None:
        """Cut the file to ``size`` bytes (dropping a torn tail) and make it durable.

        ``head`` is the chain tag of the record ending at ``size`` (found by walking the
        headers when not given). Encrypted appends after a cut use a new nonce epoch.
        """
        if head is None:
            head = self._tag_before(size)
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size, self.head = size, head
        self.epoch += 1

    def _tag_before(self, size: int) -> bytes:
        """Chain tag of the record that ends at ``size`` (walks the record headers)."""
        pos, head = self.data_start, self.prev_head
        while pos < size and self.seal is not None:
            hdr = decode_header(os.pread(self._fd, header_size(VERSION_CHAINED), pos))
            if hdr is None:
                break
            pos, head = pos + hdr.size + hdr.frame_len, hdr.tag
        return head

    def tag_at(self, offset: int) -> bytes:
        """The stored chain tag of the record at ``offset`` (checked when that one is read)."""
        hdr = decode_header(os.pread(self._fd, header_size(VERSION_CHAINED), offset))
        if hdr is None or not hdr.tag:
            raise JournalCorruptError(self.path, offset, "bad record header")
        return hdr.tag

    def read(self, offset: int, expect_seq: int, prev: bytes | None = None) -> Record:
        """Read and verify the record at ``offset``; it must have ``expect_seq``.

        With ``prev`` (the previous record's chain tag) its chain tag is checked too.
        """
        return self._read(offset, expect_seq, prev)[0]

    def _read(self, offset: int, expect_seq: int, prev: bytes | None) -> tuple[Record, bytes, int]:
        """(record, its chain tag, offset after it)."""
        size = HEADER_SIZE if self.seal is None else header_size(VERSION_CHAINED)
        head_bytes = os.pread(self._fd, size, offset)
        head = decode_header(head_bytes) if len(head_bytes) == size else None
        if head is None or head.size != size:
            raise JournalCorruptError(self.path, offset, "bad record header", expect_seq)
        frame = os.pread(self._fd, head.frame_len, offset + size)
        if len(frame) != head.frame_len or record_crc(head_bytes[:-8], frame) != head.crc:
            raise JournalCorruptError(self.path, offset, "record checksum mismatch", expect_seq)
        if head.seq != expect_seq:
            raise JournalCorruptError(self.path, offset, f"holds seq {head.seq}", expect_seq)
        if self.seal is not None:
            fields = head_bytes[:FIELDS_SIZE]
            if prev is not None and self.seal.tag(prev, fields, frame) != head.tag:
                raise JournalCorruptError(self.path, offset, CHAIN_MISMATCH, expect_seq)
            if self.seal.encrypted:
                plain = self.seal.decrypt(head.seq, head.epoch, fields, frame)
                if plain is None:
                    raise JournalCorruptError(
                        self.path, offset, "frame fails AES-GCM authentication", expect_seq
                    )
                frame = plain
        rec = Record(
            head.seq, head.disk, head.offset, head.length, head.source_ns, head.data_xxh3,
            frame, head.kind,
        )  # fmt: skip
        return rec, head.tag, offset + size + head.frame_len

    def iter_from(
        self, offset: int, first_seq: int, last_seq: int, prev: bytes | None = None
    ) -> Iterator[Record]:
        """Yield verified records ``first_seq..last_seq`` starting at byte ``offset``.

        With ``prev`` (the chain tag before ``first_seq``) every record extends the chain
        and must match it.
        """
        seq = first_seq
        while seq <= last_seq:
            rec, tag, offset = self._read(offset, seq, prev)
            prev = tag if prev is not None else None
            yield rec
            seq += 1

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)
