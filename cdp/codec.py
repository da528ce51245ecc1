"""Payload codec: lz4 frames on the wire and in segments, xxh3-64 checksums.

Imports nothing of the project but errors. Decompression is bounded by the length the
record claims, so a hostile frame cannot expand past it.
"""

from __future__ import annotations

import lz4.frame
import xxhash

from cdp.errors import InvalidInputError


def checksum(data: bytes | bytearray | memoryview) -> int:
    """XXH3-64 with seed 0: the checksum of a write's uncompressed bytes."""
    return xxhash.xxh3_64_intdigest(data)


def compress(data: bytes | memoryview) -> bytes:
    """One lz4 frame with the content size stored, fastest level."""
    return bytes(lz4.frame.compress(data, store_size=True))


def decompress(frame: bytes | memoryview, length: int) -> bytes:
    """Decompress one lz4 frame that must yield exactly ``length`` bytes."""
    try:
        stored = lz4.frame.get_frame_info(frame)["content_size"]
        if stored:
            if stored != length:
                raise InvalidInputError(
                    "payload", f"lz4 frame holds {stored} bytes, record says {length}"
                )
            data = bytes(lz4.frame.decompress(frame))
        else:
            data = _decompress_bounded(frame, length)
    except RuntimeError as exc:  # python-lz4 reports bad frames as RuntimeError
        raise InvalidInputError("payload", f"not a valid lz4 frame: {exc}") from exc
    if len(data) != length:
        raise InvalidInputError(
            "payload", f"lz4 frame decompresses to {len(data)} bytes, record says {length}"
        )
    return data


def _decompress_bounded(frame: bytes | memoryview, length: int) -> bytes:
    """Decompress a frame without a stored size, reading at most ``length + 1`` bytes."""
    decoder = lz4.frame.LZ4FrameDecompressor()
    data = bytes(decoder.decompress(frame, max_length=length + 1))
    if not decoder.eof:
        raise InvalidInputError("payload", "lz4 frame is truncated or longer than the record")
    return data


CHECK_PIECE_BYTES = 2**20
"""Output of one lz4 call in :func:`frame_checksum`: the GIL is held for about this much."""


def frame_checksum(frame: bytes | memoryview, length: int) -> int:
    """XXH3-64 of what ``frame`` decompresses to, which must be exactly ``length`` bytes.

    Decompresses in pieces of :data:`CHECK_PIECE_BYTES` and hashes as it goes, so a
    frame that expands a thousandfold holds neither the GIL for long nor much memory:
    the check for batches run in a thread while the event loop serves the other groups.
    """
    decoder, digest, total = lz4.frame.LZ4FrameDecompressor(), xxhash.xxh3_64(), 0
    data: bytes | memoryview = frame
    try:
        while not decoder.eof:
            piece = decoder.decompress(data, max_length=CHECK_PIECE_BYTES)
            data = b""
            total += len(piece)
            if total > length:
                raise InvalidInputError("payload", f"lz4 frame holds more than {length} bytes")
            digest.update(piece)
            if not piece and decoder.needs_input and not decoder.eof:
                raise InvalidInputError("payload", "lz4 frame is truncated")
    except RuntimeError as exc:  # python-lz4 reports bad frames as RuntimeError
        raise InvalidInputError("payload", f"not a valid lz4 frame: {exc}") from exc
    if decoder.unused_data:
        raise InvalidInputError("payload", f"{len(decoder.unused_data)} bytes after the lz4 frame")
    if total != length:
        raise InvalidInputError(
            "payload", f"lz4 frame decompresses to {total} bytes, record says {length}"
        )
    return digest.intdigest()
