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

Every read is checked (trust invariant 3): RocksDB verifies block checksums, and an
iteration that meets a bad block just stops (``valid()`` turns false) — so every loop
ends with :func:`_checked_end`, which raises :class:`cdp.errors.IndexCorruptError` when the
iterator's ``status()`` holds an error. On open the whole database is read once
(:meth:`RocksIndex.verify`); a damaged or unopenable index is moved aside (never deleted)
and a fresh one is started from what can still be read of the data that exists only here
(metadata and operator bookmarks, see :func:`salvage`); the entries and points are then
re-derived from the segments by :meth:`cdp.journal.journal.Journal.open`. If that
metadata itself cannot be read, the target refuses to start (see
:func:`cdp.journal.journal.orphan_journals`).

Every use of the handle holds one lock. The committer, the applier and the checkpoint
loop reach the index from different threads. A reopen after a failed write closes the
handle, and rocksdict releases the GIL there, so without the lock another thread's call
met "Already mutably borrowed". That failed the group's apply loop after a full disk.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from rocksdict import Options, Rdict, RdictIter, WriteBatch, WriteOptions

from cdp.errors import CdpError, IndexCorruptError, StorageFullError
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
KEPT_TABLES = (b"m\0", b"b\0", b"B\0")
"""Key prefixes that exist only in the index (metadata, bookmarks); salvaged on rebuild."""
DAMAGED_SUFFIX = ".damaged-"
"""A damaged index dir is renamed to ``<dir>.damaged-<unix ns>`` and kept."""

log = logging.getLogger(__name__)


def _key(table: bytes, group: str, tail: bytes = b"") -> bytes:
    return table + b"\0" + group.encode() + b"\0" + tail


def _translate(path: str, exc: Exception) -> CdpError:
    """The cdp error for a rocksdict failure (rocksdict raises bare Exceptions)."""
    text = str(exc)
    if "Corruption" in text or "checksum mismatch" in text:
        return IndexCorruptError(path, text)
    if "No space left" in text or "ENOSPC" in text or "NoSpace" in text:
        return StorageFullError(path, f"index: {text}")
    return CdpError(f"index {path}: {text}")


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _locked(
    method: Callable[Concatenate[RocksIndex, _P], _T],
) -> Callable[Concatenate[RocksIndex, _P], _T]:
    """Run the method holding the index's lock, rocksdict errors translated."""

    def locked(self: RocksIndex, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with self._lock, _translated(self._path):
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


def _checked_end(path: str, it: RdictIter) -> None:
    """Raise if the iteration ended on an error rather than at the end of its range."""
    try:
        it.status()
    except Exception as exc:  # noqa: BLE001 - rocksdict's only error type
        raise IndexCorruptError(path, f"read stopped early: {exc}") from exc


def _open_db(path: str, create: bool) -> Rdict:
    opts = Options(raw_mode=True)
    opts.create_if_missing(create)
    return Rdict(path, options=opts)


def salvage(path: str) -> tuple[dict[bytes, bytes], str]:
    """What can still be read of the index-only tables of a damaged index at ``path``.

    Opens it as it is, or else a repaired copy (RocksDB's RepairDB on a scratch copy;
    the original is not changed). Returns the readable keys and a note of what failed.
    """
    kept: dict[bytes, bytes] = {}
    try:
        db = _open_db(path, create=False)
    except Exception:  # noqa: BLE001 - try RocksDB's own repair on a copy
        scratch = path + ".repair"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(path, scratch)
        try:
            Rdict.repair(scratch, Options(raw_mode=True))
            db = _open_db(scratch, create=False)
        except Exception as exc:  # noqa: BLE001 - nothing readable
            return kept, f"unreadable even after repair: {exc}"
    notes = []
    try:
        for prefix in KEPT_TABLES:
            it = db.iter()
            it.seek(prefix)
            while it.valid() and it.key().startswith(prefix):
                kept[bytes(it.key())] = bytes(it.value())
                it.next()
            try:
                it.status()
            except Exception as exc:  # noqa: BLE001 - keep what was read before the bad block
                notes.append(f"{prefix[:1].decode()} table: {exc}")
    finally:
        db.close()
    return kept, "; ".join(notes)


def rebuild(path: str, reason: str) -> Rdict:
    """Move a damaged index aside, start a fresh one holding the salvaged keys; loudly."""
    aside = f"{path}{DAMAGED_SUFFIX}{time.time_ns()}"
    os.rename(path, aside)
    try:
        kept, note = salvage(aside)
        db = _open_db(path, create=True)
    except Exception as exc:  # noqa: BLE001 - put the damaged index back, then refuse
        shutil.rmtree(path, ignore_errors=True)
        os.rename(aside, path)
        raise IndexCorruptError(path, f"{reason}; rebuilding it failed: {exc}") from exc
    finally:
        shutil.rmtree(aside + ".repair", ignore_errors=True)
    batch = WriteBatch(raw_mode=True)
    for key, value in kept.items():
        batch.put(key, value)
    synced = WriteOptions()
    synced.sync = True
    db.write(batch, synced)
    log.error(
        "index %s is damaged (%s); moved to %s and rebuilt: %d metadata/bookmark keys "
        "salvaged%s; journal entries and restore points are re-derived from the segments",
        path, reason, aside, len(kept), f" ({note})" if note else "",
    )  # fmt: skip
    return db


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
        self.rebuilt_from = ""
        """Why the index was rebuilt on open ("" if it was sound)."""
        self._db = self._open_verified()
        self._fast = WriteOptions()
        self._fast.sync = False
        self._synced = WriteOptions()
        self._synced.sync = True

    def _open(self) -> Rdict:
        return _open_db(self._path, create=True)

    def _open_verified(self) -> Rdict:
        """Open and read every key once; rebuild a damaged index (see the module doc)."""
        try:
            db = self._open()
        except Exception as exc:  # noqa: BLE001 - rocksdict's only error type
            if isinstance(_translate(self._path, exc), StorageFullError):
                raise _translate(self._path, exc) from exc  # not damage: never rebuild then
            self.rebuilt_from = f"cannot open: {exc}"
            return rebuild(self._path, self.rebuilt_from)
        try:
            self._verify(db)
            return db
        except IndexCorruptError as exc:
            self.rebuilt_from = exc.detail
        db.close()
        del db  # the handle's file lock goes with the last reference
        gc.collect()
        return rebuild(self._path, self.rebuilt_from)

    def _verify(self, db: Rdict) -> int:
        """Read every key and value (checksums checked); return how many there are."""
        it = db.iter()
        it.seek_to_first()
        n = 0
        while it.valid():
            it.value()
            n += 1
            it.next()
        _checked_end(self._path, it)
        return n

    @_locked
    def verify(self) -> int:
        """Read the whole index, checking every block; raise IndexCorruptError if damaged."""
        with _translated(self._path):
            return self._verify(self._db)

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
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
        return out

    def _bookmarks_at(self, group: str, seq: int) -> tuple[str, ...]:
        prefix = _key(b"B", group, _U64.pack(seq))
        it = self._db.iter()
        it.seek(prefix)
        names = []
        while it.valid() and it.key().startswith(prefix):
            names.append(it.key()[len(prefix) :].decode())
            it.next()
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
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
        _checked_end(self._path, it)
        prefix = _key(b"w", group)  # trusted times grow with seq (the journal keeps them so)
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            if _TIME.unpack(it.key()[len(prefix) :])[1] >= seq:
                break
            batch.delete(it.key())
            it.next()
        _checked_end(self._path, it)
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
