"""The audit trail: who did what to which object, when, and how it ended.

Owns :class:`AuditEntry` (one operator action) and :class:`AuditLog`, an append-only
JSON-lines file (``<data_dir>/audit.log`` at the target, ``audit.log`` in a failover
plan's state folder), mode 0600, each entry written with one ``write`` on an ``O_APPEND``
descriptor and fsync'd before the call returns. Its callers are the edges that know the
caller's identity (the RPC servicer, the failover CLI, a config reload): this module only
records, it never decides. A torn last line (a crash mid-append) is skipped on read.
Imports nothing of the project but the error tree.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from cdp import fsutil
from cdp.errors import CdpError, InvalidInputError

FILE_NAME = "audit.log"
"""Name of the audit file in a data or state folder."""
INSECURE = "insecure"
"""Identity recorded for a caller without a certificate (plain-text ``--insecure``)."""
OK = "ok"
"""Outcome of an action that succeeded; a failed one records ``error: <message>``."""
MAX_FIELD_CHARS = 1024
"""Longest value kept in an entry field; longer ones are cut (an entry stays one line)."""


@dataclass(frozen=True)
class AuditEntry:
    """One operator action, as recorded."""

    time_ns: int
    """When it ended, Unix time in ns (UTC)."""
    identity: str
    """Who: the certificate's ``role 'name'``, or ``insecure``."""
    action: str
    """What, e.g. ``create_bookmark``, ``failover.test``, ``config.reload``."""
    object: str
    """On what, e.g. ``group g1 bookmark before-upgrade`` or a plan file."""
    outcome: str
    """``ok`` or ``error: <message>``."""

    def to_json(self) -> str:
        """One line of the audit file."""
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(line: str) -> AuditEntry:
        """Parse one line (ValueError/KeyError/TypeError on a damaged one)."""
        raw = json.loads(line)
        return AuditEntry(
            time_ns=int(raw["time_ns"]), identity=str(raw["identity"]),
            action=str(raw["action"]), object=str(raw["object"]), outcome=str(raw["outcome"]),
        )  # fmt: skip

    @property
    def time_utc(self) -> str:
        """The time in ISO 8601, UTC, as the CLI prints times."""
        seconds, ns = divmod(self.time_ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1000:06d}Z"


def outcome_of(error: BaseException | None) -> str:
    """The outcome field for an action that raised ``error`` (None: it succeeded)."""
    return OK if error is None else f"error: {error}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


class AuditLog:
    """An append-only audit file; entries are durable when :meth:`append` returns."""

    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, identity: str, action: str, obj: str, outcome: str) -> AuditEntry:
        """Record one action now (UTC); CdpError if it cannot be made durable."""
        entry = AuditEntry(
            time_ns=time.time_ns(), identity=_clip(identity or INSECURE), action=_clip(action),
            object=_clip(obj), outcome=_clip(outcome),
        )  # fmt: skip
        line = (entry.to_json() + "\n").encode()
        try:
            fd = fsutil.create_file(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CdpError(f"cannot append to the audit log {self.path}: {exc}") from exc
        return entry

    def entries(self, since_ns: int = 0, limit: int = 0) -> list[AuditEntry]:
        """Entries at or after ``since_ns``, oldest first; the newest ``limit`` (0: all)."""
        if since_ns < 0 or limit < 0:
            raise InvalidInputError("since" if since_ns < 0 else "limit", "must not be negative")
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CdpError(f"cannot read the audit log {self.path}: {exc}") from exc
        found = []
        for line in lines:
            try:
                entry = AuditEntry.from_json(line)
            except (ValueError, KeyError, TypeError):
                continue  # a torn tail after a crash
            if entry.time_ns >= since_ns:
                found.append(entry)
        return found[-limit:] if limit else found


def target_log(data_dir: str) -> AuditLog:
    """The audit log of a target with that data folder."""
    return AuditLog(os.path.join(data_dir, FILE_NAME))


def record_config_reload(data_dir: str, identity: str, changed: str, outcome: str) -> AuditEntry:
    """Record a configuration reload at a target (for ``SIGHUP``: identity ``signal``)."""
    return target_log(data_dir).append(identity, "config.reload", changed, outcome)
