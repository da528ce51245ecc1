"""The target's encryption (ransomware) detector, one per member journal.

Modules:

- ``regions``: per disk, the last-seen compressibility of each region (a bytearray), and
  what one write does to it (overwrite? raises the entropy of data that compressed?).
- ``stats``: a learned baseline (Welford) and a one-sided CUSUM per unit (disk or member).
- ``detector``: :class:`Detector`, fed every accepted write record with its trusted
  time; it trains, then judges one window of trusted time at a time and returns events
  (:class:`Watching`, :class:`Raised`, :class:`Closed`) that the member turns into
  verdicts (``cdp.target.verdicts``).

Pure and deterministic: time comes from the records, nothing here reads a clock, does
I/O or knows the member. docs/ARCHITECTURE.md, "Ransomware detection", says why each
signal is what it is and what is not judged.
"""

from cdp.target.detect.detector import (
    Closed,
    Detector,
    DetectorConfig,
    DetectorState,
    Event,
    Raised,
    Watching,
)

__all__ = [
    "Closed",
    "Detector",
    "DetectorConfig",
    "DetectorState",
    "Event",
    "Raised",
    "Watching",
]
