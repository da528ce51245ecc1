"""The target's settings: one frozen :class:`TargetConfig` and its ``DEFAULT_*`` values.

Parsed at the edge (``cdp target`` flags); domain code only reads it. Every path is
under ``data_dir``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cdp.journal.journal import DEFAULT_SEGMENT_BYTES
from cdp.journal.seal import Keyring
from cdp.restore.catalog import DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_HISTORY_WINDOW_S
from cdp.target.detect.detector import DEFAULT_TRAINING_S
from cdp.target.intake import Limits
from cdp.target.scrub import DEFAULT_SCRUB_INTERVAL_S, DEFAULT_SCRUB_RATE_BYTES_S

DEFAULT_WINDOW_BYTES = 64 * 2**20
"""Send-window credit given to each source: payload bytes in flight, unacked."""
DEFAULT_HEARTBEAT_INTERVAL_S = 1.0
"""How often an idle, fully acked source sends a heartbeat (told in the handshake)."""
DEFAULT_APPLY_IDLE_S = 0.02
"""How long an apply loop sleeps when there is nothing to apply."""
DEFAULT_MAX_DISKS_PER_GROUP = 256
"""Most disks one group (member) may have: each costs two open files (extent and sums)."""
DEFAULT_MAX_GROUPS = 1000
"""Most member journals one target holds."""
DEFAULT_JOURNAL_LIMIT_BYTES = 16 * 2**30
"""Per-group journal size limit; past it the oldest history is applied early."""
DEFAULT_RPO_ALERT_S = 300.0
"""RPO past which a group's alert fires (seconds); exported for the alert rules."""
PRIORITIES = ("high", "normal", "low")
"""A group's share of a saturated link, best first."""
DEFAULT_PRIORITY = "normal"
"""The priority of a group whose policy names none."""
DEFAULT_POLICY = "default"
"""The policy of every group the config does not name."""


@dataclass(frozen=True)
class GroupPolicy:
    """How the target keeps one group: retention, checkpoint cadence, alerting, priority."""

    history_window_s: float = DEFAULT_HISTORY_WINDOW_S
    """How long records stay in the journal before they are applied to the base."""
    journal_limit_bytes: int = DEFAULT_JOURNAL_LIMIT_BYTES
    """Hard size limit of the group's journal; 0 for none."""
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    """Cadence of checkpoint restore points on the timeline."""
    rpo_alert_s: float = DEFAULT_RPO_ALERT_S
    """RPO (seconds) over which the group's alert fires."""
    priority: str = DEFAULT_PRIORITY
    """One of :data:`PRIORITIES`."""
    retention_lock_s: float = 0.0
    """Compliance mode: history received within this many seconds is never applied, by
    the window or the size limit, and no later config may shorten it (0: no lock); see
    :mod:`cdp.target.retention_guard`."""


MIN_SEGMENT_BYTES = 64 * 2**10
"""Smallest journal segment a small ``--journal-limit`` leads to."""


@dataclass(frozen=True)
class TargetConfig:
    """Settings of a target; every path is under ``data_dir``."""

    data_dir: str
    history_window_s: float = DEFAULT_HISTORY_WINDOW_S
    """How long records stay in the journal before they are applied to the base."""
    journal_limit_bytes: int = DEFAULT_JOURNAL_LIMIT_BYTES
    """Hard size limit of each group's journal; 0 for none."""
    retention_lock_s: float = 0.0
    """The default policy's retention lock (see :class:`GroupPolicy`)."""
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    limits: Limits = field(default_factory=Limits)
    window_bytes: int = DEFAULT_WINDOW_BYTES
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    """Seconds between heartbeats of an idle source (told in the handshake; 0: none)."""
    apply_idle_s: float = DEFAULT_APPLY_IDLE_S
    scrub_interval_s: float = DEFAULT_SCRUB_INTERVAL_S
    """How often every replica is checked against its sums while running; 0: never."""
    scrub_rate_bytes_s: int = DEFAULT_SCRUB_RATE_BYTES_S
    """Replica bytes a scheduled scrub reads per second at most."""
    journal_fsync: Callable[[int], None] = os.fdatasync
    """fdatasync of journal segments; a seam for fault injection (EIO) in tests."""
    journal_keys: Keyring | None = None
    """Journal keys (encryption at rest, keyed chain); None: plain, unkeyed chain."""
    max_disks_per_group: int = DEFAULT_MAX_DISKS_PER_GROUP
    """Told in the handshake; a group with more disks is refused (INVALID_ARGUMENT)."""
    max_groups: int = DEFAULT_MAX_GROUPS
    """Told in the handshake; one group more is refused (RESOURCE_EXHAUSTED)."""
    policies: Mapping[str, GroupPolicy] = field(default_factory=dict)
    """Named policies; without a ``default`` one the target-wide fields above are it."""
    group_policies: Mapping[str, GroupPolicy] = field(default_factory=dict)
    """Group id -> its policy, for the groups the config names."""
    data_gid: int | None = None
    """Group id that may read the data at rest (files 0640, folders 2750); None: the
    target's user only (0600, 0700). See :mod:`cdp.fsutil`."""
    detect_training_s: float = DEFAULT_TRAINING_S
    """Trusted seconds each member's encryption detector trains before it judges."""

    def policy_for(self, group_id: str) -> GroupPolicy:
        """The policy of ``group_id``: its own if the config names the group, else the default."""
        return self.group_policies.get(group_id) or self.default_policy

    @property
    def default_policy(self) -> GroupPolicy:
        """The ``default`` policy; without one, the target-wide fields above."""
        return self.policies.get(DEFAULT_POLICY) or GroupPolicy(
            history_window_s=self.history_window_s,
            journal_limit_bytes=self.journal_limit_bytes,
            checkpoint_interval_s=self.checkpoint_interval_s,
            retention_lock_s=self.retention_lock_s,
        )

    @property
    def journal_segment_bytes(self) -> int:
        """Segment size used: at most a quarter of the journal limit, at least 64 KiB.

        Only closed segments are applied early, so a limit smaller than one segment would
        never be kept.
        """
        if not self.journal_limit_bytes:
            return self.segment_bytes
        return min(self.segment_bytes, max(MIN_SEGMENT_BYTES, self.journal_limit_bytes // 4))

    @property
    def journal_dir(self) -> str:
        """Folder of the journals, one sub-folder per group."""
        return os.path.join(self.data_dir, "journal")

    @property
    def replica_dir(self) -> str:
        """The recovery datastore folder: one sub-folder per replica VM."""
        return os.path.join(self.data_dir, "replicas")

    @property
    def index_dir(self) -> str:
        """The RocksDB index."""
        return os.path.join(self.data_dir, "index")
