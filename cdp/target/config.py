"""The target's settings: one frozen :class:`TargetConfig` and its ``DEFAULT_*`` values.

Parsed at the edge (``cdp target`` flags); domain code only reads it. Every path is
under ``data_dir``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cdp.journal.journal import DEFAULT_SEGMENT_BYTES
from cdp.restore.catalog import DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_HISTORY_WINDOW_S
from cdp.target.intake import Limits
from cdp.target.scrub import DEFAULT_SCRUB_INTERVAL_S, DEFAULT_SCRUB_RATE_BYTES_S

DEFAULT_WINDOW_BYTES = 64 * 2**20
"""Send-window credit given to each source: payload bytes in flight, unacked."""
DEFAULT_APPLY_IDLE_S = 0.02
"""How long an apply loop sleeps when there is nothing to apply."""
DEFAULT_MAX_DISKS_PER_GROUP = 256
"""Most disks one group (member) may have: each costs two open files (extent and sums)."""
DEFAULT_MAX_GROUPS = 1000
"""Most member journals one target holds."""
DEFAULT_JOURNAL_LIMIT_BYTES = 16 * 2**30
"""Per-group journal size limit; past it the oldest history is applied early."""


@dataclass(frozen=True)
class TargetConfig:
    """Settings of a target; every path is under ``data_dir``."""

    data_dir: str
    history_window_s: float = DEFAULT_HISTORY_WINDOW_S
    """How long records stay in the journal before they are applied to the base."""
    journal_limit_bytes: int = DEFAULT_JOURNAL_LIMIT_BYTES
    """Hard size limit of each group's journal; 0 for none."""
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    limits: Limits = field(default_factory=Limits)
    window_bytes: int = DEFAULT_WINDOW_BYTES
    apply_idle_s: float = DEFAULT_APPLY_IDLE_S
    scrub_interval_s: float = DEFAULT_SCRUB_INTERVAL_S
    """How often every replica is checked against its sums while running; 0: never."""
    scrub_rate_bytes_s: int = DEFAULT_SCRUB_RATE_BYTES_S
    """Replica bytes a scheduled scrub reads per second at most."""
    journal_fsync: Callable[[int], None] = os.fdatasync
    """fdatasync of journal segments; a seam for fault injection (EIO) in tests."""
    max_disks_per_group: int = DEFAULT_MAX_DISKS_PER_GROUP
    """Told in the handshake; a group with more disks is refused (INVALID_ARGUMENT)."""
    max_groups: int = DEFAULT_MAX_GROUPS
    """Told in the handshake; one group more is refused (RESOURCE_EXHAUSTED)."""

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
