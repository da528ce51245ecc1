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
