"""The ransomware benchmark's code path on one attack, one short benign run and the CPU."""

from __future__ import annotations

from bench import ransomware


def test_one_attack_one_benign_run_and_the_cpu_table() -> None:
    attack = ransomware.run_attack("ransom-fast", 10.0, 1, 60.0, 100.0, disk_mib=64)
    assert attack["caught"] and 0 < attack["latency_s"] <= 10.0, attack
    assert attack["clean_before_onset"] and attack["onset_lead_s"] >= 0
    benign = ransomware.run_benign("office", 0.1, 1, training_s=60.0)  # 5 min judged
    assert benign["false_alerts"] == 0 and benign["judged_s"] >= 280, benign
    cpu = ransomware.cpu_cost("1 MiB sequential", 2**20, 250, 2.40, 262.0)
    assert cpu["us_per_record"] > 0 and cpu["share_of_target_cpu"] < 0.25, cpu
    table = ransomware.render({"attacks": [attack], "benign": [benign], "cpu": [cpu]})
    assert "| office | 0.1 |" in table and "| 4 KiB" not in table


def test_an_attack_that_began_late_in_the_last_quiet_window_is_suspect_from_its_first_write() -> (
    None
):
    # Seed 2 at 1 MB/s: the first encrypted 4 KiB writes land in the last 50 ms of the
    # window where the CUSUM was last zero (the bench found the onset 40 ms late here).
    r = ransomware.run_attack("ransom-intermittent", 1.0, 2)
    assert r["caught"] and r["clean_before_onset"], r


def test_a_slow_attack_is_suspect_from_its_first_write() -> None:
    # 0.1 MB/s of encryption (one 256 KiB write per 2.6 s) in 2 MB/s of office traffic:
    # the onset was placed 18 s (seed 2), 2 s (seed 5) and 15 s (seed 9) after the first
    # encrypted write. Seeds 2 and 5: the 0.5-allowance CUSUM touched zero inside the
    # attack; seed 9: the change point with allowance 1 cut off the attack's first,
    # weakly rising windows.
    for seed in (2, 5, 9):
        r = ransomware.run_attack("ransom-slow", 0.1, seed)
        assert r["caught"] and r["clean_before_onset"], r
