"""Tamper evidence and encryption at rest of journal segments: keyring, chain, headers.

A chained segment (written since this release) starts with a 96-byte segment header::

    0  magic "CDPS"  4  version u8  5  flags u8 (1 = frames encrypted)  6  reserved u16
    8  first_seq u64
   16  key_id 16s    (ASCII, NUL-padded; empty: no key, the chain is unkeyed)
   32  salt 16s      (random per segment: derives the segment's AES key)
   48  prev_head 16s (chain tag of the last record before this segment; zeros at genesis
                      or after a version-1 segment)
   64  key_check 8s  (tells a wrong key from an edited header)
   72  reserved 8s
   80  header_tag 16s (SHA-256 of bytes 0..80 truncated to 16, HMAC when keyed)

Every record's chain tag is ``SHA-256(prev_tag || header fields || frame)`` truncated to
128 bits, an HMAC-SHA-256 under a key derived from the segment's journal key when it has
one (a domain string first separates record tags from header tags). SHA-256 rather than
BLAKE2b: OpenSSL's SHA-256 uses the CPU's SHA extensions, twice BLAKE2b's speed here.

Encrypted frames are AES-256-GCM under a per-segment key (derived from the journal key
and the segment's salt); the nonce is the record's seq (u64) and the segment's
nonce epoch (u32), which the segment bumps whenever it is cut back, and segments are only
ever appended to by the process that created them, so a nonce never repeats under one key.
The AAD is the record's header fields, so the GCM tag covers header and frame.

This module is pure: it never reads files or the environment (the CLI does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.errors import ConfigError

SEGMENT_MAGIC = b"CDPS"
SEGMENT_VERSION = 1
FLAG_ENCRYPTED = 1
SEGMENT_HEADER = struct.Struct("<4sBBHQ16s16s16s8s8s")
TAG_SIZE = 16
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size + TAG_SIZE
"""Bytes of a segment header (chained segments only)."""
assert SEGMENT_HEADER_SIZE == 96
ZERO_HEAD = bytes(TAG_SIZE)
"""The chain head before the first chained record."""
GCM_TAG_SIZE = 16
"""Bytes an encrypted frame is longer than its plaintext."""
KEY_BYTES = 32
"""Journal keys are AES-256 keys."""
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,16}")


@dataclass(frozen=True)
class JournalKey:
    """One key of the keyring: its id (written in segment headers) and its 32 bytes."""

    key_id: str
    secret: bytes = field(repr=False)
    """Never in a repr, a log line or an error."""

    def check(self) -> bytes:
        """8 bytes derived from the key, stored in headers to tell a wrong key."""
        return _derive(self.secret, b"cdp-key-check", 8)

    def chain_key(self) -> bytes:
        """The key of the chain tags of segments written under this key."""
        return _derive(self.secret, b"cdp-chain-key", 32)


@dataclass(frozen=True)
class Keyring:
    """The journal keys; the newest (last) one encrypts new segments, all stay readable."""

    keys: tuple[JournalKey, ...]

    @property
    def newest(self) -> JournalKey:
        """The key new segments are written with."""
        return self.keys[-1]

    def get(self, key_id: str) -> JournalKey | None:
        """The key with ``key_id``, if the keyring holds it."""
        return next((k for k in self.keys if k.key_id == key_id), None)


def parse_keyring(text: str, source: str) -> Keyring:
    """Parse ``id:key`` entries (newline or comma separated; last = newest; ``#`` comments).

    A key is 32 bytes as 64 hex digits or base64. ``source`` names the flag or variable
    in errors (never the key).
    """
    keys: list[JournalKey] = []
    for n, raw in enumerate(re.split(r"[\n,]", text), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key_id, sep, material = (s.strip() for s in line.partition(":"))
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise ConfigError(
                f"{source}[{n}]", "expected KEY_ID:KEY with KEY_ID of 1-16 of [A-Za-z0-9._-]"
            )
        if any(k.key_id == key_id for k in keys):
            raise ConfigError(f"{source}[{n}]", f"key id {key_id!r} given twice")
        keys.append(JournalKey(key_id, _decode_secret(material, f"{source}[{n}]")))
    if not keys:
        raise ConfigError(source, "holds no key")
    return Keyring(tuple(keys))


def _decode_secret(material: str, field: str) -> bytes:
    try:
        if re.fullmatch(r"[0-9a-fA-F]{64}", material):
            secret = bytes.fromhex(material)
        else:
            secret = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(field, "the key is neither 64 hex digits nor base64") from exc
    if len(secret) != KEY_BYTES:
        raise ConfigError(field, f"the key is {len(secret)} bytes; it must be {KEY_BYTES}")
    return secret


def new_key_line(key_id: str) -> str:
    """A fresh random key as a keyring line (``cdp journal keygen``)."""
    return f"{key_id}:{os.urandom(KEY_BYTES).hex()}"


def _derive(secret: bytes, person: bytes, size: int, data: bytes = b"") -> bytes:
    return hashlib.blake2b(data, key=secret, person=person, digest_size=size).digest()


@dataclass(frozen=True)
class SegmentHeader:
    """The decoded header of a chained segment."""

    first_seq: int
    key_id: str
    salt: bytes
    prev_head: bytes
    key_check: bytes
    encrypted: bool

    def encode(self, chain_key: bytes) -> bytes:
        """The 96 header bytes, tagged with ``chain_key`` (b"" for an unkeyed chain)."""
        body = SEGMENT_HEADER.pack(
            SEGMENT_MAGIC, SEGMENT_VERSION, FLAG_ENCRYPTED if self.encrypted else 0, 0,
            self.first_seq, self.key_id.encode(), self.salt, self.prev_head, self.key_check,
            bytes(8),
        )  # fmt: skip
        return body + header_tag(chain_key, body)


def _hasher(chain_key: bytes, domain: bytes) -> hmac.HMAC | hashlib._Hash:
    """SHA-256 (HMAC under ``chain_key`` when given) with ``domain`` absorbed; copy it."""
    h: hmac.HMAC | hashlib._Hash
    h = hmac.new(chain_key, digestmod="sha256") if chain_key else hashlib.sha256()
    h.update(domain)
    return h


def header_tag(chain_key: bytes, body: bytes) -> bytes:
    """The tag that ends a segment header."""
    h = _hasher(chain_key, b"cdp-segment-header\0")
    h.update(body)
    return h.digest()[:TAG_SIZE]


def is_chained(head: bytes) -> bool:
    """Whether a segment file starting with ``head`` is a chained (headed) segment."""
    return head[:4] == SEGMENT_MAGIC


def decode_segment_header(buf: bytes) -> tuple[SegmentHeader, bytes] | None:
    """The header and its stored tag; None when torn or not a segment header."""
    if len(buf) < SEGMENT_HEADER_SIZE:
        return None
    magic, version, flags, _, first, key_id, salt, prev, check, _ = SEGMENT_HEADER.unpack_from(buf)
    if magic != SEGMENT_MAGIC or version != SEGMENT_VERSION:
        return None
    tag = bytes(buf[SEGMENT_HEADER.size : SEGMENT_HEADER_SIZE])
    name = key_id.rstrip(b"\0").decode("ascii", "replace")
    return SegmentHeader(first, name, salt, prev, check, bool(flags & FLAG_ENCRYPTED)), tag


def new_header(first_seq: int, prev_head: bytes, key: JournalKey | None) -> SegmentHeader:
    """The header of a new segment: encrypted and keyed under ``key`` when given."""
    return SegmentHeader(
        first_seq=first_seq,
        key_id=key.key_id if key else "",
        salt=os.urandom(16),
        prev_head=prev_head,
        key_check=key.check() if key else bytes(8),
        encrypted=key is not None,
    )


class Seal:
    """The chain and cipher of one segment: tags records, encrypts and decrypts frames."""

    def __init__(self, header: SegmentHeader, key: JournalKey | None) -> None:
        self.header = header
        self.chain_key = key.chain_key() if key else b""
        self._chain = _hasher(self.chain_key, b"cdp-record-chain\0")
        self._aes = None
        if header.encrypted:
            assert key is not None
            self._aes = AESGCM(_derive(key.secret, b"cdp-aes-segment", 32, header.salt))

    @property
    def encrypted(self) -> bool:
        """Whether frames of this segment are encrypted."""
        return self._aes is not None

    def tag(self, prev: bytes, fields: bytes | memoryview, frame: bytes | memoryview) -> bytes:
        """The chain tag of a record after ``prev``."""
        h = self._chain.copy()
        h.update(prev + fields)
        h.update(frame)
        return h.digest()[:TAG_SIZE]

    def encrypt(self, seq: int, epoch: int, fields: bytes, plain: bytes) -> bytes:
        """The ciphertext (+ GCM tag) of a frame."""
        assert self._aes is not None
        return self._aes.encrypt(_nonce(seq, epoch), plain, fields)

    def decrypt(self, seq: int, epoch: int, fields: bytes, frame: bytes) -> bytes | None:
        """The plaintext of a frame; None when it fails authentication."""
        assert self._aes is not None
        try:
            return self._aes.decrypt(_nonce(seq, epoch), frame, fields)
        except InvalidTag:
            return None


def _nonce(seq: int, epoch: int) -> bytes:
    return struct.pack("<QI", seq, epoch)
