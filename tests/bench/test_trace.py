"""Trace parsing (MSR Cambridge/SNIA CSV, fio iolog), the simulator's normalised trace,
replay timing and the sizing model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from bench import capacity, trace
from cdp.errors import InvalidInputError
from sim import trace_workload as tw

TRACES = Path(__file__).resolve().parents[2] / "bench" / "traces"
MSR = ["128166372003061629,hm,1,Write,4096,8192,100",
       "128166372013061629,hm,1,Read,0,4096,100",
       "128166372013061629,web,0,Write,1048576,2097152,100"]  # fmt: skip


def test_shipped_msr_trace_parses() -> None:
    tr = trace.load(str(TRACES / "sample-msr.csv"))
    assert trace.detect(str(TRACES / "sample-msr.csv")) == "msr"
    assert len(tr.writes) > 1000 and tr.reads_skipped > 0
    assert tr.disks == ["web/0", "hm/1", "hm/0"]
    assert 9 < tr.duration_s <= 10
    assert all(w.length <= 2**20 and w.offset % 512 == 0 for w in tr.writes)
    assert [w.t_s for w in tr.writes] == sorted(w.t_s for w in tr.writes)


def test_shipped_fio_trace_parses() -> None:
    tr = trace.load(str(TRACES / "sample.fio"), fio_iops=1000)
    assert tr.disks == ["/dev/sdc", "/dev/sdb"] or tr.disks == ["/dev/sdb", "/dev/sdc"]
    assert len(tr.writes) > 1000 and tr.reads_skipped > 0
    assert tr.writes[1].t_s == pytest.approx(0.001)


def test_msr_times_are_filetime_ticks_and_big_writes_are_split() -> None:
    tr = trace.parse_msr(["Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime", *MSR])
    assert [(w.t_s, w.disk, w.offset, w.length) for w in tr.writes] == [
        (0.0, 0, 4096, 8192), (1.0, 1, 2**20, 2**20), (1.0, 1, 2**21, 2**20),
    ]  # fmt: skip
    assert tr.reads_skipped == 1


def test_fio_v3_uses_its_timestamps() -> None:
    tr = trace.parse_fio(["fio version 3 iolog", "0 f add", "250 f write 0 4096",
                          "500 f read 0 4096", "1000 f write 4096 4096"])  # fmt: skip
    assert [w.t_s for w in tr.writes] == [0.25, 1.0]


@pytest.mark.parametrize(
    ("lines", "where", "why"),
    [
        ([MSR[0], "128166372003061629,hm,1,Write,4096"], "line 2", "expected 7 fields"),
        ([MSR[0], "", "1281,hm,1,Erase,0,512,1"], "line 3", "not Read or Write"),
        (["x,hm,1,Write,0,512,1"], "line 1", "not a number"),
        ([MSR[0], "1,hm,1,Write,0,512,1"], "line 2", "backwards"),
        (["128166372003061629,hm,1,Write,0,0,1"], "line 1", "Size > 0"),
    ],
)
def test_malformed_msr_lines_name_the_line(lines: list[str], where: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why) as e:
        trace.parse_msr(lines, "t.csv")
    assert f"t.csv {where}" in str(e.value)


@pytest.mark.parametrize(
    ("lines", "where", "why"),
    [
        (["fio version 1 iolog"], "line 1", "fio version 2"),
        (["fio version 2 iolog", "f add", "f write 0"], "line 3", "offset> <length>"),
        (["fio version 2 iolog", "f write 0 4096", "f scribble 0 1"], "line 3", "scribble"),
        (["fio version 2 iolog", "f write zero 4096"], "line 2", "not a number"),
        (["fio version 3 iolog", "soon f write 0 4096"], "line 2", "timestamp"),
    ],
)
def test_malformed_fio_lines_name_the_line(lines: list[str], where: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why) as e:
        trace.parse_fio(lines, "t.fio")
    assert f"t.fio {where}" in str(e.value)


def test_normalised_trace_round_trips_and_rejects_bad_lines(tmp_path: Path) -> None:
    tr = trace.load(str(TRACES / "sample.fio"))
    path = tmp_path / "t.txt"
    trace.write_normalised(tr, str(path))
    assert tw.load_trace(str(path)) == tr.writes
    with pytest.raises(InvalidInputError, match="line 3: out of range"):
        tw.parse_trace([tw.HEADER, "0 0 0 4096", "0.1 0 100 4096"])
    with pytest.raises(InvalidInputError, match="line 3: time goes backwards"):
        tw.parse_trace([tw.HEADER, "1 0 0 4096", "0.5 0 0 4096"])
    with pytest.raises(InvalidInputError, match="outside"):
        tw.check_fits(tr.writes, 1, 2**20)


async def test_replay_honours_timestamps_with_speedup() -> None:
    writes = [tw.TraceWrite(t, 0, 0, 4096) for t in (0.0, 0.2, 0.4)]
    seen: list[float] = []
    data = tw.TraceData(1, 0.5)
    t0 = time.monotonic()

    async def write(w: tw.TraceWrite, data: bytes) -> None:
        assert len(data) == 4096
        seen.append(time.monotonic() - t0)

    await tw.replay(writes, 2.0, 10.0, write, data, lambda: None)
    assert len(seen) == 3
    assert seen[1] >= 0.1 and seen[2] >= 0.2
    assert seen[2] < 0.4, "the speed-up was not applied"


def test_bursts_are_ten_times_the_base_rate() -> None:
    tr = trace.bursts(100, 10, 1.0)
    per_phase = [sum(1 for w in tr.writes if k <= w.t_s < k + 1) for k in range(3)]
    assert per_phase == [100, 1000, 100]


def test_sizing_journal_and_bandwidth() -> None:
    # 1 MB/s for 10 s, stored at ratio 0.5 plus per-record overhead.
    writes = [tw.TraceWrite(i * 0.01, 0, 0, 10_000) for i in range(1000)]
    journal, extrapolated = capacity.journal_bytes(writes, 2.0, 0.5)
    assert not extrapolated
    assert journal == pytest.approx(201 * (5000 + capacity.RECORD_OVERHEAD_BYTES), rel=0.02)
    hour, extrapolated = capacity.journal_bytes(writes, 3600, 0.5)
    assert extrapolated and hour == pytest.approx(3600 * 0.5e6, rel=0.05)
    bw = capacity.bandwidth_for_rpo(writes, 1.0, 0.5, latency_s=0.0)
    stored = 1000 * (5000 + capacity.RECORD_OVERHEAD_BYTES) / 10
    assert stored * 10 / 11 <= bw <= stored  # may fall behind by up to 1 s over 10 s
    assert capacity.rpo_summary(capacity.rpo_series(writes, bw, 0.5))["rpo_max_s"] <= 1.0
    slow = capacity.rpo_series(writes, bw * 0.95, 0.5)
    assert capacity.rpo_summary(slow)["rpo_max_s"] > 1.0
    # Above the link RPO grows as t x (1 - link / rate): 10 s at twice the link -> ~5 s.
    grow = capacity.rpo_summary(capacity.rpo_series(writes, 0.2575e6, 0.5))
    assert grow["rpo_max_s"] == pytest.approx(10.0, rel=0.1)


def test_plan_capacity_command(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(trace=str(TRACES / "sample-msr.csv"), format="auto", history="1h",
                              rpo="1s", compressibility=0.5, speedup=1.0, fio_iops=1000.0,
                              json=False)  # fmt: skip
    assert capacity.main(args) == 0
    out = capsys.readouterr().out
    assert "journal for 3600 s of history" in out and "bandwidth for RPO <= 1 s" in out
    args.rpo = "soon"
    assert capacity.main(args) == 2
    assert "--rpo" in capsys.readouterr().out


def test_compression_ratio_follows_compressibility() -> None:
    assert capacity.compression_ratio(0.0) > 0.95
    assert capacity.compression_ratio(0.9) < 0.2
