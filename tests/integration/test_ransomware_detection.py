"""Encryption detection end to end: a simulated host encrypts its files through a real
gRPC stream into a real target; the target's detector raises a suspicion whose onset is
the attack's first write, and the verdicts say clean before it and suspect after."""

from __future__ import annotations

import os

from conftest import start_target, stop_target

from cdp import codec
from cdp.target.member import Member
from cdp.verdict import CLEAN, DETECTOR, SUSPECT, UNKNOWN
from sim import runner
from sim.ransomware import ATTACK_TAG
from sim.workload import WorkloadSpec

MiB = 2**20


def first_attack_seq(member: Member, first: int) -> int:
    """The seq of the first record whose payload the simulated attacker wrote."""
    for rec in member.journal.read_range(first, member.durable_seq):
        if not rec.is_marker and codec.decompress(rec.frame, rec.length).startswith(ATTACK_TAG):
            return rec.seq
    raise AssertionError("no attack write in the journal")


async def test_suspicion_starts_at_the_attacks_first_write(tmp_path: str) -> None:
    data_dir = os.path.join(tmp_path, "target")
    r = await start_target(data_dir, history_window_s=3600.0, detect_training_s=4.0)
    try:
        config = runner.SimConfig(
            target=r.address, folder=os.path.join(tmp_path, "src"), group="rw", vms=("vm-r",),
            disks_per_vm=1, disk_bytes=64 * MiB, seconds=15.0, attack_at_s=9.0,
            attack_mb_s=5.0, workload=WorkloadSpec("ransom-fast", rate_mb_s=2.0, seed=4),
        )  # fmt: skip
        result = await runner.run(config)
        member = r.target.groups["rw"]
        await member.detection_settled()
        suspicions = member.verdicts.standing()
        assert len(suspicions) == 1, suspicions
        (s,) = suspicions
        attack_seq = first_attack_seq(member, 1)
        attack_entry, start_entry = member.lookup(attack_seq), member.lookup(s.start_seq)
        assert attack_entry is not None and start_entry is not None
        # The onset is at or before the attack's first write (early rather than late).
        assert s.start_seq <= attack_seq
        assert attack_entry.received_ns - start_entry.received_ns <= 60 * 10**9
        assert s.raised_by == DETECTOR and s.disks == (0,)
        assert 0 < s.raised_ns - result["attack_first_write_unix_ns"] <= 10 * 10**9
        watched = member.verdicts.watched_from_seq
        assert 1 < watched < s.start_seq
        assert member.verdicts.verdict(watched - 1) == UNKNOWN
        assert member.verdicts.verdict(s.start_seq - 1) == CLEAN
        assert member.verdicts.verdict(attack_seq) == SUSPECT
        assert member.verdicts.verdict(member.durable_seq) == SUSPECT
        assert member.detector_state().phase == "alerting"
    finally:
        await stop_target(r)
    # A restarted target keeps the verdicts and the learned baseline: no new training.
    r = await start_target(data_dir, history_window_s=3600.0, detect_training_s=4.0)
    try:
        member = r.target.groups["rw"]
        assert member.verdicts.standing() == [s]
        assert member.detector_state().phase == "alerting"
    finally:
        await stop_target(r)
