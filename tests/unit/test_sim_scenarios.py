"""The seeded ransomware and benign scenarios of sim/ransomware.py, and their flags."""

from __future__ import annotations

import pytest

from cdp.cli.sim import build_parser_defaults, sim_config
from cdp.errors import InvalidInputError
from sim.ransomware import (
    ATTACK_TAG,
    INTERMITTENT_STRIDE,
    SCENARIOS,
    Scenario,
    ScenarioSpec,
)

MiB = 2**20


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_writes_are_seeded_ordered_and_inside_the_disks(name: str) -> None:
    spec = ScenarioSpec(name, seconds=40.0, attack_at_s=20.0, disk_bytes=16 * MiB, seed=3)
    writes = list(Scenario(spec).writes())
    assert writes == list(Scenario(spec).writes())
    assert [w.t_s for w in writes] == sorted(w.t_s for w in writes)
    for w in writes:
        assert 0 <= w.disk < spec.disks and w.offset % 512 == 0 and len(w.data) % 512 == 0
        assert w.offset + len(w.data) <= spec.disk_bytes
    attack = [w for w in writes if w.attack]
    assert bool(attack) == spec.is_attack
    assert all(w.t_s >= 20.0 and w.data.startswith(ATTACK_TAG) for w in attack)
    assert not any(w.data.startswith(ATTACK_TAG) for w in writes if not w.attack)


def test_the_intermittent_attack_encrypts_one_block_in_sixteen_in_place() -> None:
    spec = ScenarioSpec("ransom-intermittent", seconds=30.0, attack_at_s=1.0,
                        disk_bytes=16 * MiB)  # fmt: skip
    attack = [w for w in Scenario(spec).writes() if w.attack]
    assert attack and all(len(w.data) == 4096 for w in attack)
    assert all(w.offset % (4096 * INTERMITTENT_STRIDE) == 0 for w in attack[:100])
    assert all(w.offset < spec.disk_bytes // 2 for w in attack)  # the files area only


def test_a_bad_scenario_flag_is_named() -> None:
    args = build_parser_defaults(target="127.0.0.1:1", pattern="ransom-fast", attack_at=-1.0)
    with pytest.raises(InvalidInputError) as err:
        sim_config(args, "/tmp", "vm")
    assert err.value.field == "--attack-at"
    with pytest.raises(InvalidInputError, match="ransom-intermittent"):
        sim_config(build_parser_defaults(target="x", pattern="ransom"), "/tmp", "vm")
    good = sim_config(build_parser_defaults(target="x", pattern="flip", attack_at=5.0), "/t", "v")
    assert (good.workload.pattern, good.attack_at_s) == ("flip", 5.0)
