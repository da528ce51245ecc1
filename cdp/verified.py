"""Verification results as the target keeps them: the last verified point per group.

``cdp failover verify`` runs where the vCenter credentials are (never at the target) and
tells the target its result through the audit trail: one ``RecordAudit`` entry per group
with action :data:`ACTION` and a JSON object (:meth:`Verification.to_object`). The target
reads them back from its audit log (:class:`VerifiedCache`, re-read only when the file
changed) for ``/metrics``, ``/api/v1/status`` and the web page. No proto change is
needed and every result carries the operator identity that recorded it.

Imports nothing of the project but :mod:`cdp.audit` and the error tree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from cdp.audit import AuditEntry, AuditLog
from cdp.errors import InvalidInputError

ACTION = "verify.point"
"""Audit action of one group's verification result."""
PASSED = "passed"
"""Result of a verification in which every VM passed (the point is verified)."""


@dataclass(frozen=True)
class Verification:
    """One group's result of one verification run."""

    group: str
    plan: str
    result: str
    """``passed``, ``failed``, ``interrupted`` or ``skipped``."""
    seq: int
    """The group's restore point that was booted and checked."""
    point_unix_ns: int
    """Source time of that point (ns, UTC)."""
    every_s: float = 0.0
    """Cadence the scheduler promises for this plan (0: a run by hand, no promise)."""

    def to_object(self) -> str:
        """The audit entry's object: one JSON line."""
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_object(text: str) -> Verification:
        """Parse an audit object; InvalidInputError names what is wrong."""
        try:
            raw = json.loads(text)
            v = Verification(
                group=str(raw["group"]), plan=str(raw["plan"]), result=str(raw["result"]),
                seq=int(raw["seq"]), point_unix_ns=int(raw["point_unix_ns"]),
                every_s=float(raw.get("every_s", 0.0)),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError("object", f"not a verification result: {exc}") from exc
        return v


@dataclass(frozen=True)
class GroupVerified:
    """What the target knows of a group's verifications."""

    last_run: Verification
    last_run_unix_ns: int
    """When the newest result was recorded."""
    last_passed: Verification | None
    """The newest passed run: its point is the group's last verified point."""
    every_s: float
    """The newest cadence a scheduler promised (0: none)."""

    def to_json(self) -> dict[str, object]:
        """JSON numbers and names, as /api/v1/status adds them to a group."""
        p = self.last_passed
        return {
            "last_verified_seq": p.seq if p else None,
            "last_verified_point_unix_ns": p.point_unix_ns if p else None,
            "last_verify_result": self.last_run.result,
            "last_verify_unix_ns": self.last_run_unix_ns,
            "verify_every_s": self.every_s,
        }


def latest(entries: Iterable[AuditEntry]) -> dict[str, GroupVerified]:
    """Per group, from audit entries oldest first (damaged verification entries skipped)."""
    found: dict[str, GroupVerified] = {}
    for e in entries:
        if e.action != ACTION or e.outcome != "ok":
            continue
        try:
            v = Verification.from_object(e.object)
        except InvalidInputError:
            continue
        old = found.get(v.group)
        passed = v if v.result == PASSED else (old.last_passed if old else None)
        every = v.every_s or (old.every_s if old else 0.0)
        found[v.group] = GroupVerified(v, e.time_ns, passed, every)
    return found


class VerifiedCache:
    """:func:`latest` of an audit log, parsed again only when the file changed."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self._key: tuple[int, int] | None = None
        self._value: dict[str, GroupVerified] = {}

    def get(self) -> dict[str, GroupVerified]:
        """The current per-group verification facts ({} before any)."""
        try:
            st = os.stat(self._log.path)
        except FileNotFoundError:
            return {}
        except OSError:
            return self._value
        key = (st.st_size, st.st_mtime_ns)
        if key != self._key:
            self._value, self._key = latest(self._log.entries()), key
        return self._value
