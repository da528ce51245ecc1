"""RocksDB index through rocksdict: the target's real :class:`cdp.index.Index`.

Keys (group names cannot contain NUL)::

    r\\0<group>\\0<seq u64 BE>                 -> packed IndexEntry
    t\\0<group>\\0<source_ns u64 BE><seq BE>   -> b""      (batch-end time points)
    m\\0<key>                                  -> metadata

Entries are written with ``sync=False``: they are rebuilt from the segments after a
crash. Metadata is written synced. rocksdict holds the GIL while it writes.
"""

from __future__ import annotations

import struct

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from cdp.index import IndexEntry, pack_entry, unpack_entry

_U64 = struct.Struct(">Q")
_TIME = struct.Struct(">QQ")
_NS_BIAS = 2**63
"""Added to (signed) source_ns so that byte order equals numeric order."""


def _rkey(group: str, seq: int) -> bytes:
    return b"r\0" + group.encode() + b"\0" + _U64.pack(seq)


def _tprefix(group: str) -> bytes:
    return b"t\0" + group.encode() + b"\0"


class RocksIndex:
    """RocksDB-backed :class:`cdp.index.Index` in one directory."""

    def __init__(self, path: str) -> None:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db = Rdict(path, options=opts)
        self._fast = WriteOptions()
        self._fast.sync = False
        self._synced = WriteOptions()
        self._synced.sync = True

    def put_batch(self, group: str, entries: list[IndexEntry]) -> None:
        """Record entries of one durable batch and its time point."""
        if not entries:
            return
        batch = WriteBatch(raw_mode=True)
        for e in entries:
            batch.put(_rkey(group, e.seq), pack_entry(e))
        last = entries[-1]
        batch.put(_tprefix(group) + _TIME.pack(last.source_ns + _NS_BIAS, last.seq), b"")
        self._db.write(batch, self._fast)

    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``."""
        value = self._db.get(_rkey(group, seq))
        return None if value is None else unpack_entry(seq, value)

    def last_seq(self, group: str) -> int:
        """Highest indexed seq; 0 if none."""
        it = self._db.iter()
        it.seek_for_prev(_rkey(group, 2**64 - 1))
        if it.valid():
            key: bytes = it.key()
            prefix = _rkey(group, 0)[:-8]
            if key.startswith(prefix) and len(key) == len(prefix) + 8:
                return int(_U64.unpack(key[-8:])[0])
        return 0

    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Newest time point at or before ``source_ns``."""
        prefix = _tprefix(group)
        it = self._db.iter()
        it.seek_for_prev(prefix + _TIME.pack(source_ns + _NS_BIAS, 2**64 - 1))
        if it.valid() and it.key().startswith(prefix):
            return int(_TIME.unpack(it.key()[len(prefix) :])[1])
        return None

    def delete_upto(self, group: str, seq: int) -> None:
        """Forget entries and time points with seq <= ``seq``."""
        self._db.delete_range(_rkey(group, 0), _rkey(group, seq + 1), self._fast)
        prefix = _tprefix(group)
        batch = WriteBatch(raw_mode=True)
        it = self._db.iter()
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            if _TIME.unpack(it.key()[len(prefix) :])[1] <= seq:
                batch.delete(it.key())
            it.next()
        self._db.write(batch, self._fast)

    def get_meta(self, key: str) -> bytes | None:
        """Metadata value."""
        value = self._db.get(b"m\0" + key.encode())
        return None if value is None else bytes(value)

    def put_meta(self, key: str, value: bytes) -> None:
        """Store metadata, synced."""
        self._db.put(b"m\0" + key.encode(), value, self._synced)

    def close(self) -> None:
        """Flush the WAL and close."""
        self._db.flush_wal(True)
        self._db.close()
