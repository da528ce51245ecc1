"""Write records: the value type and its on-disk form inside journal segments.

A record on disk is a 64-byte header followed by the record's lz4 frame, exactly as it
came off the wire. The header ends with an xxh3-64 over the header's first 56 bytes and
the frame, so a torn or flipped byte anywhere in the record is detected.

Header layout (little-endian)::

    0  magic "CDPR"   4  version u8   5  kind u8   6  reserved u16
    8  seq u64       16  disk u32    20  frame_len u32
   24  offset u64    32  length u32  36  reserved u32
   40  source_ns i64 48  data_xxh3 u64 (of the uncompressed bytes)
   56  record_crc u64
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
assert HEADER_SIZE == 64
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


def decode_header(buf: bytes | memoryview) -> Header | None:
    """Decode 64 header bytes; None when the magic or version is wrong."""
    magic, version, kind, _, seq, disk, flen, off, length, _, ts, dx = HEADER.unpack_from(buf)
    if magic != MAGIC or version != VERSION or kind not in (KIND_WRITE, *MARKER_KINDS):
        return None
    (crc,) = CRC.unpack_from(buf, HEADER.size)
    return Header(kind, seq, disk, flen, off, length, ts, dx, crc)
