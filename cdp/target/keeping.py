"""How the target keeps one member's history: policy, retention lock, intake refusals.

Intake is refused while a hold, pin or lock keeps the journal full. A :class:`Keeping`
belongs to one :class:`cdp.target.member.Member`. It owns the group's
:class:`~cdp.target.config.GroupPolicy` and stored retention lock (checked against every
new policy, docs/ARCHITECTURE.md "Retention lock and clock guard"), and answers the two
questions the session and the status ask of retention: may a batch be taken now
(:meth:`Keeping.check_room`: RESOURCE_EXHAUSTED naming who keeps the journal full), and
what to show (:meth:`Keeping.guard_status`, :meth:`Keeping.notice`).
"""

from __future__ import annotations

import logging

from cdp.errors import StorageFullError
from cdp.journal.index import Index
from cdp.status import GuardStatus
from cdp.target import retention_guard as guard
from cdp.target.applier import Applier
from cdp.target.config import GroupPolicy
from cdp.target.holds import BaseHolds
from cdp.target.retention_guard import HOLD, LOCK, PIN
from cdp.target.verdicts import Verdicts

log = logging.getLogger("cdp.target")
"""The target's logger: to an operator a member's messages are the target's."""


class Keeping:
    """One member's retention: policy, lock, and why intake is refused (if it is)."""

    def __init__(
        self, key: str, group_id: str, policy: GroupPolicy, index: Index,
        verdicts: Verdicts, holds: BaseHolds, journal_dir: str,
    ) -> None:  # fmt: skip
        self.key = key
        self.group_id = group_id
        self.index = index
        self._verdicts, self._holds, self._journal_dir = verdicts, holds, journal_dir
        self.policy = policy
        """How the target keeps this group (retention, checkpoints, alert, priority)."""
        lock = guard.load_lock(index, group_id)
        guard.check_policy(lock, group_id, policy.retention_lock_s, policy.history_window_s)
        self.lock = guard.store_lock(index, group_id, lock, policy.retention_lock_s)
        """The retention lock in force (as first stored, lengthened since)."""
        self._stopped_by = ""
        """What stopped intake at the last batch (hold, pin, lock; "" when it runs)."""

    def attach(self, applier: Applier) -> None:
        """The applier it reads (built after the lock: the applier needs the lock's length)."""
        self._applier = applier

    def onset(self) -> tuple[int, int]:
        """(seq, trusted ns) where the earliest standing suspicion starts; (0, 0) if none."""
        standing = self._verdicts.standing()
        if not standing:
            return 0, 0
        first = min(standing, key=lambda s: s.start_seq)
        return first.start_seq, first.start_ns

    def check_room(self) -> None:
        """Refuse intake (RESOURCE_EXHAUSTED) while a hold, pin or lock keeps the journal full."""
        who = self._applier.over_limit_blocker()
        if not who:
            if self._stopped_by:
                log.warning("group %s: the journal has room again: intake resumes", self.key)
            self._stopped_by = ""
            return
        exc = self.full_error(who)
        if who == HOLD or who != self._stopped_by:  # pin and lock: once per stop
            level = logging.ERROR if who == LOCK else logging.WARNING
            log.log(level, "group %s: intake stops (RESOURCE_EXHAUSTED): %s", self.key, exc)
        self._stopped_by = who
        raise exc

    def full_error(self, who: str) -> StorageFullError:
        """The RESOURCE_EXHAUSTED answer while ``who`` (hold, pin, lock) keeps the journal full."""
        a = self._applier
        if who == HOLD:
            holders = ", ".join(sorted(self._holds.items()))
            exc = StorageFullError(self._journal_dir, f"journal over its size limit while the "
                                   f"base is held at seq {a.hold_seq} by a test or "
                                   f"failover ({holders})")  # fmt: skip
            exc.hint = "end the test (cdp failover stop-test) or raise --journal-limit"
            return exc
        onset = min(self._verdicts.standing(), key=lambda s: s.start_seq, default=None)
        cause = guard.stop_cause(who, a.journal_limit_bytes, a.retention_lock_s, onset)
        exc = StorageFullError(self._journal_dir, cause)
        exc.hint = (
            "dismiss the suspicion if it is a false alarm, or raise the journal limit; "
            if who == PIN else "raise the journal limit (the lock cannot be shortened); "
        ) + "the source keeps the refused writes and catches up by itself"  # fmt: skip
        return exc

    def refused_by(self) -> str:
        """What keeps the journal full so that intake stops: hold, pin, lock ("" if none)."""
        return self._applier.over_limit_blocker()

    def clock_jump_s(self) -> float:
        """Size of an unexplained jump of the target's clock (signed s; 0 when trusted)."""
        return self._applier.clock.jump_ns / 1e9

    def notice(self) -> str:
        """A timeline gap cause while a pin or lock stops intake ("" while it runs)."""
        return guard.stop_notice(self._applier.over_limit_blocker())

    def guard_status(self) -> GuardStatus:
        """Intake refused to keep history (and why), the clock's jump, the lock in force."""
        who = self.refused_by()
        return GuardStatus(
            intake_refused_by=who, intake_refused_reason=str(self.full_error(who)) if who else "",
            clock_jump_s=self.clock_jump_s(), retention_lock_s=self.lock.lock_s,
        )  # fmt: skip

    def check_policy(self, p: GroupPolicy) -> None:
        """Refuse (ConfigError naming the field) a policy that would shorten locked history."""
        guard.check_policy(self.lock, self.group_id, p.retention_lock_s, p.history_window_s)

    def set_policy(self, policy: GroupPolicy) -> None:
        """Keep the group by a new policy from now on (a config reload; checked first)."""
        self.check_policy(policy)
        self.lock = guard.store_lock(self.index, self.group_id, self.lock, policy.retention_lock_s)
        self.policy = policy
        self._applier.set_retention(
            policy.history_window_s, policy.journal_limit_bytes, self.lock.lock_s
        )
