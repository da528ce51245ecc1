"""Write records: the value type and its on-disk form inside journal segments.

A record on disk is a header followed by the record's frame: the lz4 frame exactly as it
came off the wire, or its AES-GCM ciphertext (+16-byte tag) in an encrypted segment.

Version 1 (the previous release; still read, never written) is a 64-byte header::

    0  magic "CDPR"   4  version u8   5  kind u8   6  reserved u16
    8  seq u64       16  disk u32    20  frame_len u32
   24  offset u64    32  length u32  36  reserved u32
   40  source_ns i64 48  data_xxh3 u64 (of the uncompressed bytes)
   56  record_crc u64 (xxh3 over bytes 0..56 and the frame)

Version 2 (chained) keeps bytes 0..56 (version 2; the u32 at 36 is the nonce epoch of an
encrypted record) and then::

   56  chain_tag 16s (SHA-256/128 over the previous record's tag, bytes 0..56, the frame;
                      keyed when the segment is: cdp/journal/seal.py)
   72  record_crc u64 (xxh3 over bytes 0..72 and the frame)

so a torn or flipped byte is a checksum mismatch, and a record whose checksum holds but
whose tag does not was rewritten on purpose (or moved): tampering.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import xxhash

MAGIC = b"CDPR"
VERSION = 1
KIND_WRITE = 1
"""A guest write."""
KIND_BOOKMARK = 2
"""A named bookmark placed by the source; the frame is the UTF-8 name."""
KIND_APP_CONSISTENT = 3
"""An application-consistent point; the frame is the UTF-8 label."""
KIND_CONSISTENCY = 4
"""A coordinated consistency marker of a group spanning hosts; the frame is "cg-<n>"."""
KIND_RESYNC_START = 5
"""The source starts sending dirty regions; no consistent point until the end marker."""
KIND_RESYNC_END = 6
"""Every dirty region was sent (guest writes held meanwhile); consistent again."""
MARKER_KINDS = (
    KIND_BOOKMARK, KIND_APP_CONSISTENT, KIND_CONSISTENCY, KIND_RESYNC_START, KIND_RESYNC_END,
)  # fmt: skip
EVENT_KINDS = (KIND_RESYNC_START, KIND_RESYNC_END)
"""Markers that open or close a gap in the restore points."""

HEADER = struct.Struct("<4sBBHQIIQIIqQ")
CRC = struct.Struct("<Q")
HEADER_SIZE = HEADER.size + CRC.size
"""Size of a version-1 header."""
assert HEADER_SIZE == 64
VERSION_CHAINED = 2
"""Record version with a chain tag (written since the tamper-evident journal)."""
CHAIN_TAG_SIZE = 16
FIELDS_SIZE = HEADER.size
"""Bytes of a header before its tag (v2) or its CRC (v1)."""
CHAINED_HEADER_SIZE = FIELDS_SIZE + CHAIN_TAG_SIZE + CRC.size
"""Size of a version-2 header."""
MAX_WRITE_BYTES = 16 * 2**20
"""Largest single guest write a record may carry (uncompressed)."""


@dataclass(slots=True)
class Record:
    """One intercepted guest write; ``frame`` is its lz4-compressed data."""

    seq: int
    disk: int
    offset: int
    length: int
    source_ns: int
    data_xxh3: int
    frame: bytes
    """lz4 frame of the data; for a marker, its raw UTF-8 label."""
    kind: int = KIND_WRITE

    @property
    def is_marker(self) -> bool:
        """Whether this record is a marker (no data, a label)."""
        return self.kind != KIND_WRITE

    def encoded_size(self) -> int:
        """Bytes this record takes in a segment."""
        return HEADER_SIZE + len(self.frame)


def encode(rec: Record) -> bytes:
    """Header bytes (with CRC) of ``rec``; the frame follows them on disk."""
    head = HEADER.pack(
        MAGIC, VERSION, rec.kind, 0, rec.seq, rec.disk, len(rec.frame),
        rec.offset, rec.length, 0, rec.source_ns, rec.data_xxh3,
    )  # fmt: skip
    return head + CRC.pack(record_crc(head, rec.frame))


def encode_fields(rec: Record, frame_len: int, epoch: int = 0) -> bytes:
    """The first 56 bytes of ``rec``'s version-2 header (its frame is ``frame_len`` long)."""
    return HEADER.pack(
        MAGIC, VERSION_CHAINED, rec.kind, 0, rec.seq, rec.disk, frame_len,
        rec.offset, rec.length, epoch, rec.source_ns, rec.data_xxh3,
    )  # fmt: skip


def seal_header(fields: bytes, tag: bytes, frame: bytes) -> bytes:
    """A whole version-2 header: ``fields``, the chain ``tag``, the CRC over both and frame."""
    head = fields + tag
    return head + CRC.pack(record_crc(head, frame))


def header_size(version: int) -> int:
    """Header bytes of a record of ``version``."""
    return CHAINED_HEADER_SIZE if version == VERSION_CHAINED else HEADER_SIZE


def record_crc(head: bytes | memoryview, frame: bytes | memoryview) -> int:
    """The CRC stored at the end of a header: xxh3 over the header fields and frame."""
    return xxhash.xxh3_64_intdigest(frame, seed=xxhash.xxh3_64_intdigest(head))


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded record header, before its frame is read."""

    kind: int
    seq: int
    disk: int
    frame_len: int
    offset: int
    length: int
    source_ns: int
    data_xxh3: int
    crc: int
    version: int = VERSION
    epoch: int = 0
    """Nonce epoch of an encrypted record (bumped each time its segment was cut back)."""
    tag: bytes = b""
    """Chain tag (version 2); empty for version 1."""

    @property
    def size(self) -> int:
        """Bytes of this header on disk."""
        return header_size(self.version)


def decode_header(buf: bytes | memoryview) -> Header | None:
    """Decode a header (64 bytes for v1, 80 for v2); None when magic or version is wrong.

    ``buf`` may be longer; a v2 header in fewer than 80 bytes is None too (torn).
    """
    if len(buf) < HEADER_SIZE:
        return None
    magic, version, kind, _, seq, disk, flen, off, length, epoch, ts, dx = HEADER.unpack_from(buf)
    if magic != MAGIC or version not in (VERSION, VERSION_CHAINED):
        return None
    if kind not in (KIND_WRITE, *MARKER_KINDS):
        return None
    if version == VERSION:
        (crc,) = CRC.unpack_from(buf, HEADER.size)
        return Header(kind, seq, disk, flen, off, length, ts, dx, crc)
    if len(buf) < CHAINED_HEADER_SIZE:
        return None
    tag = bytes(buf[FIELDS_SIZE : FIELDS_SIZE + CHAIN_TAG_SIZE])
    (crc,) = CRC.unpack_from(buf, FIELDS_SIZE + CHAIN_TAG_SIZE)
    return Header(kind, seq, disk, flen, off, length, ts, dx, crc, version, epoch, tag)
