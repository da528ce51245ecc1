"""The error tree of cdp; every failure an operator can meet is one of these.

::

    CdpError
    ├── InvalidInputError          bad field in a message, file or flag  (INVALID_ARGUMENT)
    │   └── ConfigError            bad key in a config or plan file
    ├── NotFoundError              unknown group, disk or VM             (NOT_FOUND)
    ├── PreconditionError          state does not allow it               (FAILED_PRECONDITION)
    │   ├── SeqGapError            a record's seq is not the next one
    │   ├── SessionError           unknown or superseded session
    │   └── JournalKeyError        journal key missing or wrong for a segment
    ├── SeqConflictError           known seq re-sent with other bytes    (ALREADY_EXISTS)
    ├── BookmarkExistsError        bookmark name already used            (ALREADY_EXISTS)
    ├── PointOutsideHistoryError   restore point no longer restorable    (OUT_OF_RANGE)
    ├── ImageMovedError            base moved while an image was read    (ABORTED)
    ├── ChecksumError              payload does not match its xxh3       (DATA_LOSS)
    ├── JournalCorruptError        bad bytes found in a segment on disk  (DATA_LOSS)
    ├── ReplicaCorruptError        a base replica extent fails its sums  (DATA_LOSS)
    ├── IndexCorruptError          the index on disk is damaged or lost  (DATA_LOSS)
    ├── JournalSyncError           fsync of the journal failed (EIO)     (UNAVAILABLE)
    ├── StorageFullError           journal or volume full                (RESOURCE_EXHAUSTED)
    ├── LimitExceededError         a client went past an advertised limit (RESOURCE_EXHAUSTED)
    └── RemoteError                the peer answered with an error (client side)

Each leaf carries structured fields and a hint for the operator. Foreign errors (grpc,
rocksdict, OS) are translated into these once, at the boundary, with ``raise ... from``.
"""

from __future__ import annotations


class CdpError(Exception):
    """Base of every cdp error; ``hint`` says what the operator can do."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (hint: {self.hint})" if self.hint else text


class InvalidInputError(CdpError):
    """An input from outside is malformed; ``field`` names the offending part."""

    def __init__(self, field: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class ConfigError(InvalidInputError):
    """A config or plan file has a bad key or value."""


class NotFoundError(CdpError):
    """A named group, VM or disk does not exist at the target."""


class PreconditionError(CdpError):
    """The current state does not allow the request."""


class SeqGapError(PreconditionError):
    """A record's seq is not the next one the group expects."""

    def __init__(self, group: str, expected: int, got: int) -> None:
        super().__init__(
            f"group {group!r}: records.seq: expected seq {expected}, got {got}",
            hint=(
                f"re-open the session and resend from its durable_seq + 1; a source that no "
                f"longer holds seq {expected} states its oldest_held_seq/next_seq honestly "
                "and the handshake answers resync_required"
            ),
        )
        self.group, self.expected, self.got = group, expected, got


class SessionError(PreconditionError):
    """The session is unknown, closed, or superseded by a newer one."""


class JournalKeyError(PreconditionError):
    """A journal segment is encrypted or keyed with a key the keyring lacks, or a wrong one."""

    def __init__(self, path: str, key_id: str, detail: str) -> None:
        super().__init__(
            f"journal segment {path}: key id {key_id!r}: {detail}",
            hint="give the target (and `cdp journal verify`) the keyring that holds this key "
            "id: --journal-key-file FILE or CDP_JOURNAL_KEY (docs/SECURITY.md); old keys "
            "stay in the keyring after a rotation",
        )
        self.path, self.key_id = path, key_id


class SeqConflictError(CdpError):
    """A seq already durable was re-sent with a different checksum."""

    def __init__(self, group: str, seq: int) -> None:
        super().__init__(
            f"group {group!r}: records.xxh3_64: seq {seq} is already durable "
            "with different content",
            hint="the source's journal diverged from the target's; resync the group",
        )
        self.group, self.seq = group, seq


class BookmarkExistsError(CdpError):
    """A bookmark with that name already exists in the group."""

    def __init__(self, group: str, name: str) -> None:
        super().__init__(
            f"group {group!r}: name: bookmark {name!r} already exists",
            hint="bookmark names are unique within a group; choose another name",
        )
        self.group, self.name = group, name


class PointOutsideHistoryError(CdpError):
    """The restore point asked for left the history window (or never existed yet)."""


class ImageMovedError(CdpError):
    """The base replica changed while an image was being read (journal size limit)."""


class ChecksumError(CdpError):
    """A record's payload does not match its xxh3 checksum."""

    def __init__(self, group: str, seq: int, detail: str = "") -> None:
        more = f" ({detail})" if detail else ""
        super().__init__(f"group {group!r}: records.xxh3_64: checksum mismatch at seq {seq}{more}")
        self.group, self.seq = group, seq


class JournalCorruptError(CdpError):
    """Bytes of a journal segment on disk fail their checks."""

    def __init__(self, path: str, offset: int, reason: str, seq: int | None = None) -> None:
        at = f" seq {seq}" if seq is not None else ""
        super().__init__(
            f"journal segment {path} offset {offset}{at}: {reason}",
            hint="the records from here on cannot be used; the group needs a resync",
        )
        self.path, self.offset, self.reason, self.seq = path, offset, reason, seq


class ReplicaCorruptError(CdpError):
    """A base replica extent (or its sums file) is damaged, missing or cut short.

    ``region`` is the damaged region's number (``region_bytes`` each), or None when the
    whole file is concerned (missing, truncated).
    """

    def __init__(
        self, vm_id: str, disk: int, region: int | None, region_bytes: int, detail: str
    ) -> None:
        where = (
            f" region {region} (bytes {region * region_bytes}..{(region + 1) * region_bytes - 1})"
            if region is not None
            else ""
        )
        super().__init__(
            f"replica of VM {vm_id!r} disk {disk}{where}: {detail}",
            hint="images that read it are refused; the base replica must be rebuilt from the "
            "source (see docs/ARCHITECTURE.md, 'Replica checksums and scrub')",
        )
        self.vm_id, self.disk, self.region, self.detail = vm_id, disk, region, detail


class IndexCorruptError(CdpError):
    """The RocksDB index (derived from the segments) is damaged, or lost while data remains."""

    def __init__(self, path: str, detail: str, *, hint: str = "") -> None:
        super().__init__(
            f"index {path}: {detail}",
            hint=hint or "the segments are the truth: restart the target to rebuild the index",
        )
        self.path, self.detail = path, detail


class JournalSyncError(CdpError):
    """An fdatasync of a journal segment failed: the unsynced records are cut, never acked.

    Retryable (UNAVAILABLE): the group reopens its journal from disk on the next handshake
    and the source re-sends from the durable seq it is told then.
    """

    def __init__(self, group: str, path: str, first_seq: int, last_seq: int, cause: str) -> None:
        super().__init__(
            f"group {group!r}: fsync of {path} failed ({cause}); records {first_seq}..{last_seq} "
            "were not made durable and are not acknowledged",
            hint="check the volume under the data dir; the group reopens its journal from disk "
            "on the next handshake and the source re-sends from the durable seq",
        )
        self.group, self.path, self.first_seq, self.last_seq = group, path, first_seq, last_seq


class StorageFullError(CdpError):
    """The journal size limit or the volume under the data dir is full."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path}: {detail}",
            hint="free space under the target's data dir; intake resumes by itself",
        )
        self.path = path


class LimitExceededError(CdpError):
    """A client went past a limit the target advertises; ``field`` names the limit."""

    def __init__(self, field: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class RemoteError(CdpError):
    """The target answered a call with an error status (seen from the client)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
