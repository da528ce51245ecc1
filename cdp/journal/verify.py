"""``cdp journal verify``'s check: every record of a stopped target's journal, end to end.

Walks one group's segments oldest first: each segment header (tag, key, first seq), each
record (checksum, seq, chain tag, AES-GCM authentication), the link between segments (no
seq missing, each header continues the chain of the segment before), the acknowledged
end (the index's last seq: nothing acked may be missing) and the head the last
checkpoint recorded. It reads; it never changes a byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cdp import naming
from cdp.errors import JournalCorruptError, JournalKeyError
from cdp.journal.index import Index
from cdp.journal.seal import ZERO_HEAD, Keyring
from cdp.journal.segment import ScanResult, Segment, scan


@dataclass(frozen=True)
class Finding:
    """One thing wrong: where (segment path, seq when known) and what."""

    path: str
    seq: int | None
    problem: str


@dataclass(frozen=True)
class SegmentSummary:
    """What one segment holds and how it is protected."""

    path: str
    first_seq: int
    last_seq: int
    chained: bool
    """False for a segment of the previous release (no header, no chain: reported, not
    failed)."""
    key_id: str
    """Key of its keyed chain and encryption ("" for none)."""


@dataclass
class GroupVerdict:
    """The result for one group's journal."""

    group: str
    segments: list[SegmentSummary] = field(default_factory=list)
    records: int = 0
    acked_seq: int = 0
    """Highest seq the index knows (acknowledged to the source)."""
    checkpoint_seq: int | None = None
    """Seq whose chain head the last checkpoint recorded and that was checked."""
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is not a problem but worth saying (unchained segments, an unacked torn tail)."""

    @property
    def intact(self) -> bool:
        """Whether no acked record was found altered, removed or reordered."""
        return not self.problems


@dataclass
class _Walk:
    """State carried from one segment to the next."""

    prev_last: int | None = None
    prev_path: str = ""
    prev_head: bytes | None = None
    prev_keyed: bool = False
    checkpoint: tuple[int, bytes] | None = None


def verify_group(
    journal_dir: str, group: str, index: Index, keys: Keyring | None,
    checkpoint: tuple[int, bytes] | None,
) -> GroupVerdict:  # fmt: skip
    """Verify the journal of ``group`` under ``journal_dir`` against ``index``."""
    verdict = GroupVerdict(group, acked_seq=index.last_seq(group))
    folder = os.path.join(journal_dir, group)
    firsts = sorted(
        s for s in (naming.parse_segment(n) for n in os.listdir(folder)) if s is not None
    )
    walk = _Walk(checkpoint=checkpoint)
    if firsts and index.get(group, firsts[0] - 1) is not None:  # not proof: see the note
        verdict.notes.append(
            f"the index still knows seq {firsts[0] - 1}, below the oldest segment: older "
            "segments were removed by something other than retention, or a power loss "
            "undid the index's record of a release (it is written without sync)"
        )
    for i, first in enumerate(firsts):
        path = os.path.join(folder, naming.format_segment(first))
        last = i + 1 == len(firsts)
        try:
            _verify_segment(path, first, last, keys, verdict, walk)
        except JournalKeyError as exc:
            verdict.problems.append(Finding(path, first, str(exc)))
            return verdict
    if walk.checkpoint is not None and verdict.checkpoint_seq is None:
        seq = walk.checkpoint[0]
        if firsts and seq >= firsts[0]:
            verdict.problems.append(Finding(folder, seq, "the checkpointed seq is missing"))
    return verdict


def _verify_segment(
    path: str, first: int, last: bool, keys: Keyring | None, verdict: GroupVerdict, walk: _Walk
) -> None:
    found = scan(path, first, keys)
    _check_link(path, first, found, verdict, walk)
    end = found.records[-1].header.seq if found.records else first - 1
    if found.stop_reason:
        bad = end + 1
        if last and bad > verdict.acked_seq:
            verdict.notes.append(
                f"{path}: {found.torn_bytes} bytes after seq {end} are an unacknowledged torn "
                f"tail ({found.stop_reason}); the target cuts them on open"
            )
        else:
            verdict.problems.append(Finding(path, bad, found.stop_reason))
    if last and end < verdict.acked_seq and not found.stop_reason:
        verdict.problems.append(Finding(
            path, end + 1, f"acknowledged records {end + 1}..{verdict.acked_seq} are missing "
            "(the segment was cut short)",
        ))  # fmt: skip
    _check_frames(path, first, end, found, verdict)
    _check_checkpoint(path, found, verdict, walk)
    seal = found.seal
    verdict.segments.append(
        SegmentSummary(path, first, end, seal is not None, seal.header.key_id if seal else "")
    )
    verdict.records += len(found.records)
    walk.prev_last, walk.prev_head = end, found.head if seal else ZERO_HEAD
    walk.prev_path = path
    walk.prev_keyed = bool(seal and seal.header.key_id)
    if seal is None and found.records:
        verdict.notes.append(f"{path}: unchained (written before chaining): checksums only")


def _check_link(
    path: str, first: int, found: ScanResult, verdict: GroupVerdict, walk: _Walk
) -> None:
    """Seqs continue the segment before, and so does the chain head in the header."""
    if walk.prev_last is not None and first != walk.prev_last + 1:
        verdict.problems.append(Finding(
            walk.prev_path, walk.prev_last + 1, f"seqs {walk.prev_last + 1}..{first - 1} "
            f"are in no segment: this one was cut short or the one after it removed",
        ))  # fmt: skip
    seal = found.seal
    if seal is None or walk.prev_head is None:
        return
    if walk.prev_keyed and not seal.header.key_id:
        verdict.problems.append(Finding(path, first, "segment without a key after a keyed one"))
    elif seal.header.prev_head != walk.prev_head:
        verdict.problems.append(Finding(
            path, first, "the segment header's chain head does not continue the segment "
            "before (records removed, edited or reordered)",
        ))  # fmt: skip


def _check_frames(
    path: str, first: int, end: int, found: ScanResult, verdict: GroupVerdict
) -> None:
    """Decrypt every record of an encrypted segment (AES-GCM authenticates each)."""
    if found.seal is None or not found.seal.encrypted or not found.records:
        return
    seg = Segment(path, first, found.file_size, end, seal=found.seal)
    try:
        for loc in found.records:
            seg.read(loc.offset, loc.header.seq)
    except JournalCorruptError as exc:
        verdict.problems.append(Finding(path, exc.seq, exc.reason))
    finally:
        seg.close()


def _check_checkpoint(path: str, found: ScanResult, verdict: GroupVerdict, walk: _Walk) -> None:
    """The stored tag at the checkpointed seq is the head the checkpoint recorded."""
    if walk.checkpoint is None or found.seal is None:
        return
    seq, head = walk.checkpoint
    for loc in found.records:
        if loc.header.seq == seq:
            verdict.checkpoint_seq = seq
            if loc.header.tag != head:
                verdict.problems.append(Finding(
                    path, seq, "the chain head differs from the one the checkpoint recorded "
                    "(records up to it were rewritten)",
                ))  # fmt: skip
            return
