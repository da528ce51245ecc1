r"""RocksDB index through rocksdict: the target's real :class:`cdp.journal.index.Index`.

Keys (group names cannot contain NUL)::

    r\0<group>\0<seq u64 BE>                 -> packed IndexEntry
    t\0<group>\0<source_ns biased BE><seq>   -> kind u8 + label (restore points by time)
    p\0<group>\0<seq u64 BE>                 -> source_ns biased BE (points by seq)
    w\0<group>\0<received_ns biased BE><seq> -> b"" (points by trusted time, for retention)
    b\0<group>\0<name>                       -> seq u64 BE (bookmarks)
    B\0<group>\0<seq u64 BE><name>           -> b"" (bookmarks by seq)
    e\0<group>\0<seq u64 BE>                 -> kind u8, source_ns biased, label (resync markers)
    m\0<key>                                 -> metadata

Entries and points are written with ``sync=False``: they are rebuilt from the segments
after a crash. Metadata is written synced. rocksdict holds the GIL while it writes.

Every use of the handle holds one lock. The committer, the applier and the checkpoint
loop reach the index from different threads. A reopen after a failed write closes the
handle, and rocksdict releases the GIL there, so without the lock another thread's call
met "Already mutably borrowed". That failed the group's apply loop after a full disk.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from cdp.errors import CdpError, StorageFullError
from cdp.journal.index import (
    POINT_CHECKPOINT,
    POINT_CRASH,
    POINT_OF_RECORD_KIND,
    IndexEntry,
    Point,
    pack_entry,
    unpack_entry,
)
from cdp.record import EVENT_KINDS

_U64 = struct.Struct(">Q")
_TIME = struct.Struct(">QQ")
_NS_BIAS = 2**63
"""Added to (signed) source_ns so that byte order equals numeric order."""
_MAX = 2**64 - 1


def _key(table: bytes, group: str, tail: bytes = b"") -> bytes:
    return table + b"\0" + group.encode() + b"\0" + tail


def _translate(path: str, exc: Exception) -> CdpError:
    """The cdp error for a rocksdict failure (rocksdict raises bare Exceptions)."""
    text = str(exc)
    if "No space left" in text or "ENOSPC" in text or "NoSpace" in text:
        return StorageFullError(path, f"index: {text}")
    return CdpError(f"index {path}: {text}")


log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _locked(
    method: Callable[Concatenate[RocksIndex, _P], _T],
) -> Callable[Concatenate[RocksIndex, _P], _T]:
    """Run the method holding the index's lock (see the module's docstring)."""

    def locked(self: RocksIndex, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(locked, method)
    return locked


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    try:
        yield
    except CdpError:
        raise
    except Exception as exc:  # noqa: BLE001 - rocksdict's only error type
        raise _translate(path, exc) from exc


class RocksIndex:
    """RocksDB-backed :class:`cdp.journal.index.Index` in one directory.

    A write that fails (e.g. the volume is full) leaves RocksDB refusing further writes;
    the handle is then closed and reopened before the next use, so intake resumes by
    itself once space returns.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._broken = False
        self._lock = threading.RLock()
        with _translated(path):
            self._db = self._open()
        self._fast = WriteOptions()
        self._fast.sync = False
        self._synced = WriteOptions()
        self._synced.sync = True

    def _open(self) -> Rdict:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        return Rdict(self._path, options=opts)

    @_locked
    def _write(self, batch: WriteBatch, opts: WriteOptions) -> None:
        """Write a batch; after a failure, reopen the database first."""
        with _translated(self._path):
            if self._broken:
                with contextlib.suppress(Exception):
                    self._db.close()
                self._db = self._open()
                self._broken = False
            try:
                self._db.write(batch, opts)
            except Exception:
                self._broken = True
                raise

    def put_batch(
        self, group: str, entries: list[IndexEntry], ends: Sequence[int] = (),
        checkpoints: Sequence[int] = (),
    ) -> None:  # fmt: skip
        """Record entries of durable batches atomically; batch ends and markers are points.

        ``ends`` are the seqs that end a batch; by default the last entry's.
        """
        if not entries:
            return
        batch = WriteBatch(raw_mode=True)
        end_seqs = set(ends) or {entries[-1].seq}
        for e in entries:
            batch.put(_key(b"r", group, _U64.pack(e.seq)), pack_entry(e))
            if e.kind in POINT_OF_RECORD_KIND:
                self._put_point(
                    batch, group, Point(e.seq, e.source_ns, POINT_OF_RECORD_KIND[e.kind], e.label)
                )
                if e.kind == 2:
                    self._put_bookmark(batch, group, e.label, e.seq)
            elif e.kind in EVENT_KINDS:
                event = bytes([e.kind]) + _U64.pack(e.source_ns + _NS_BIAS) + e.label.encode()
                batch.put(_key(b"e", group, _U64.pack(e.seq)), event)
                self._put_point(batch, group, Point(e.seq, e.source_ns, POINT_CRASH))
            if e.received_ns and (e.seq in end_seqs or e.kind != 1):
                batch.put(_key(b"w", group, _TIME.pack(e.received_ns + _NS_BIAS, e.seq)), b"")
            if e.kind in POINT_OF_RECORD_KIND or e.kind in EVENT_KINDS:
                continue
            if e.seq in end_seqs:
                kind = POINT_CHECKPOINT if e.seq in checkpoints else POINT_CRASH
                self._put_point(batch, group, Point(e.seq, e.source_ns, kind))
        self._write(batch, self._fast)

    def _put_point(self, batch: WriteBatch, group: str, p: Point) -> None:
        ns = p.source_ns + _NS_BIAS
        batch.put(_key(b"t", group, _TIME.pack(ns, p.seq)), bytes([p.kind]) + p.label.encode())
        batch.put(_key(b"p", group, _U64.pack(p.seq)), _U64.pack(ns))

    @_locked
    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``."""
        value = self._db.get(_key(b"r", group, _U64.pack(seq)))
        return None if value is None else unpack_entry(seq, value)

    @_locked
    def last_seq(self, group: str) -> int:
        """Highest indexed seq; 0 if none."""
        prefix = _key(b"r", group)
        it = self._db.iter()
        it.seek_for_prev(prefix + _U64.pack(_MAX))
        if it.valid() and it.key().startswith(prefix) and len(it.key()) == len(prefix) + 8:
            return int(_U64.unpack(it.key()[-8:])[0])
        return 0

    @_locked
    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Newest point at or before ``source_ns``."""
        prefix = _key(b"t", group)
        it = self._db.iter()
        ns = min(max(source_ns, -_NS_BIAS), _NS_BIAS - 1)  # clamp to the int64 range
        it.seek_for_prev(prefix + _TIME.pack(ns + _NS_BIAS, _MAX))
        if it.valid() and it.key().startswith(prefix):
            return int(_TIME.unpack(it.key()[len(prefix) :])[1])
        return None

    @_locked
    def seq_received_before(self, group: str, received_ns: int) -> int | None:
        """Newest point received at or before ``received_ns`` (trusted time)."""
        prefix = _key(b"w", group)
        it = self._db.iter()
        ns = min(max(received_ns, -_NS_BIAS), _NS_BIAS - 1)
        it.seek_for_prev(prefix + _TIME.pack(ns + _NS_BIAS, _MAX))
        if it.valid() and it.key().startswith(prefix):
            return int(_TIME.unpack(it.key()[len(prefix) :])[1])
        return None

    def put_received(self, group: str, seqs: Sequence[int], received_ns: int) -> None:
        """Record the trusted time of points (backfill for a data dir of an older version)."""
        batch = WriteBatch(raw_mode=True)
        for seq in seqs:
            batch.put(_key(b"w", group, _TIME.pack(received_ns + _NS_BIAS, seq)), b"")
        self._write(batch, self._fast)

    @_locked
    def points(
        self, group: str, start_ns: int, end_ns: int, after: tuple[int, int] | None, limit: int
    ) -> list[Point]:
        """Points in a time range, oldest first."""
        prefix = _key(b"t", group)
        it = self._db.iter()
        if after:
            it.seek(prefix + _TIME.pack(after[0] + _NS_BIAS, after[1]))
            if it.valid() and it.key() == prefix + _TIME.pack(after[0] + _NS_BIAS, after[1]):
                it.next()
        else:
            it.seek(prefix + _TIME.pack(start_ns + _NS_BIAS, 0))
        out: list[Point] = []
        while it.valid() and it.key().startswith(prefix) and len(out) < limit:
            ns, seq = _TIME.unpack(it.key()[len(prefix) :])
            if ns - _NS_BIAS > end_ns:
                break
            value = it.value()
            names = self._bookmarks_at(group, seq)
            out.append(Point(seq, ns - _NS_BIAS, value[0], value[1:].decode(), names))
            it.next()
        return out

    def _bookmarks_at(self, group: str, seq: int) -> tuple[str, ...]:
        prefix = _key(b"B", group, _U64.pack(seq))
        it = self._db.iter()
        it.seek(prefix)
        names = []
        while it.valid() and it.key().startswith(prefix):
            names.append(it.key()[len(prefix) :].decode())
            it.next()
        return tuple(names)

    @_locked
    def point_at(self, group: str, seq: int) -> Point | None:
        """The point at ``seq``."""
        ns = self._db.get(_key(b"p", group, _U64.pack(seq)))
        if ns is None:
            return None
        value = self._db.get(_key(b"t", group, ns + _U64.pack(seq)))
        if value is None:
            return None
        return Point(seq, _U64.unpack(ns)[0] - _NS_BIAS, value[0], value[1:].decode())

    def tag_point(self, group: str, point: Point) -> None:
        """Store a point (an existing point keeps its time)."""
        old = self.point_at(group, point.seq)
        ns = old.source_ns if old else point.source_ns
        batch = WriteBatch(raw_mode=True)
        self._put_point(batch, group, Point(point.seq, ns, point.kind, point.label))
        self._write(batch, self._fast)

    @_locked
    def entries(self, group: str, first: int, last: int) -> list[IndexEntry]:
        """Entries first..last, in seq order."""
        prefix = _key(b"r", group)
        it = self._db.iter()
        it.seek(prefix + _U64.pack(first))
        out = []
        while it.valid() and it.key().startswith(prefix):
            seq = _U64.unpack(it.key()[len(prefix) :])[0]
            if seq > last:
                break
            out.append(unpack_entry(seq, it.value()))
            it.next()
        return out

    @_locked
    def events(self, group: str) -> list[Point]:
        """Resync markers, in seq order."""
        prefix = _key(b"e", group)
        it = self._db.iter()
        it.seek(prefix)
        out = []
        while it.valid() and it.key().startswith(prefix):
            seq = _U64.unpack(it.key()[len(prefix) :])[0]
            v = it.value()
            out.append(Point(seq, _U64.unpack(v[1:9])[0] - _NS_BIAS, v[0], v[9:].decode()))
            it.next()
        return out

    @_locked
    def get_bookmark(self, group: str, name: str) -> int | None:
        """Seq of a bookmark."""
        value = self._db.get(_key(b"b", group, name.encode()))
        return None if value is None else int(_U64.unpack(value)[0])

    def put_bookmark(self, group: str, name: str, seq: int) -> None:
        """Name a point (synced: an operator asked for it)."""
        batch = WriteBatch(raw_mode=True)
        self._put_bookmark(batch, group, name, seq)
        self._write(batch, self._synced)

    def _put_bookmark(self, batch: WriteBatch, group: str, name: str, seq: int) -> None:
        batch.put(_key(b"b", group, name.encode()), _U64.pack(seq))
        batch.put(_key(b"B", group, _U64.pack(seq) + name.encode()), b"")

    @_locked
    def delete_upto(self, group: str, seq: int) -> None:
        """Forget entries and points with seq < ``seq``."""
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(_key(b"r", group, _U64.pack(0)), _key(b"r", group, _U64.pack(seq)))
        prefix = _key(b"p", group)
        it = self._db.iter()
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            pseq = _U64.unpack(it.key()[len(prefix) :])[0]
            if pseq >= seq:
                break
            batch.delete(it.key())
            batch.delete(_key(b"t", group, it.value() + _U64.pack(pseq)))
            it.next()
        prefix = _key(b"w", group)  # trusted times grow with seq (the journal keeps them so)
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            if _TIME.unpack(it.key()[len(prefix) :])[1] >= seq:
                break
            batch.delete(it.key())
            it.next()
        self._write(batch, self._fast)

    @_locked
    def get_meta(self, key: str) -> bytes | None:
        """Metadata value."""
        value = self._db.get(b"m\0" + key.encode())
        return None if value is None else bytes(value)

    def put_meta(self, key: str, value: bytes) -> None:
        """Store metadata, synced."""
        batch = WriteBatch(raw_mode=True)
        batch.put(b"m\0" + key.encode(), value)
        self._write(batch, self._synced)

    @_locked
    def close(self) -> None:
        """Flush the WAL and close (a handle a failed write left broken is just closed).

        Once the WAL is synced, a close that cannot write its memtable out (a full volume)
        loses nothing: the next open replays the WAL. It is logged, not raised, so a
        target on a full volume still stops cleanly.
        """
        with _translated(self._path):
            if not self._broken:
                self._db.flush_wal(True)
        try:
            with _translated(self._path):
                self._db.close()
        except StorageFullError as exc:
            log.warning("%s; the synced WAL holds every entry and the next open replays it", exc)
