"""The RTO bench's big disks: where the real data goes, and how the table reads."""

from __future__ import annotations

from bench import rto

MiB, GiB = 2**20, 2**30


def test_data_is_spread_over_a_big_sparse_disk_in_1_mib_chunks() -> None:
    offsets = rto.data_offsets(256 * MiB, 8 * GiB)
    assert len(offsets) == 256 and offsets[1] - offsets[0] == 32 * MiB
    assert offsets[-1] + MiB <= 8 * GiB  # every chunk inside the disk
    assert rto.data_offsets(256 * MiB, 64 * GiB)[-1] == 255 * 256 * MiB


def test_data_filling_half_the_disk_or_more_goes_from_offset_0() -> None:
    assert rto.data_offsets(64 * MiB, 128 * MiB) == [i * MiB for i in range(64)]
    assert rto.disk_bytes_for(64 * MiB) == 128 * MiB and rto.disk_bytes_for(MiB, GiB) == GiB


def test_the_table_shows_the_promote_run_after_power_on() -> None:
    case = {
        "vms": 2, "data_per_disk_bytes": 64 * MiB, "disks": "chain", "rto_s": 0.5,
        "rto_estimate_s": 1.0, "disk_bytes": 8 * GiB, "by_step": {}, "rollback_s": None,
        "bytes_to_prepare": 10 * MiB, "delta_bytes_written": 9 * MiB,
        "promote": {"seconds": 4.25, "bytes_written": 130 * MiB},
    }  # fmt: skip
    table = rto.render({"results": [case]})
    assert "| 8        |" in table and "promote 4.2 s (130 MiB)" in table and "| —" in table


def test_the_bench_plan_prices_vcenter_tasks_at_vcsim_speed(tmp_path: object) -> None:
    """The estimate's error must measure the model, not the 1 s real-vCenter default."""
    from pathlib import Path
    from types import SimpleNamespace

    import yaml

    url = SimpleNamespace(username="u", password="p", hostname="127.0.0.1", port=1)
    work = Path(str(tmp_path))
    path = rto.plan_file(work, url, "127.0.0.1:2", work / "r", ["vm000"], "AB", "chain")
    recovery = yaml.safe_load(path.read_text())["recovery"]
    assert recovery["estimate_task_s"] == rto.VCSIM_TASK_S < 1.0
