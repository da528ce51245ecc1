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
DEFAULT_JOURNAL_LIMIT_BYTES = 16 * 2**30
"""Per-group journal size limit; past it the oldest history is applied early."""


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
