"""Conformance of verdicts and suspicions (docs/PROTOCOL.md, "Verdicts and suspicions")
from protos/ alone: MarkCompromised, ListSuspicions, DismissSuspicion, the verdict of each
restore point, the suspect bands of GetTimeline, the alert fields of GroupStatus and
``at`` "last-clean", with their errors for bad input.

A target whose detector has not judged anything yet calls every unmarked point unknown
(or clean, once it watches), so these tests accept either for points before a mark.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from tests.conformance.conftest import Client, refused

S = 10**9


def _points(client: Client, n: int) -> list[int]:
    """n single-write batches (points at seqs 1..n, a second apart); their times."""
    client.open()
    ts0 = time.time_ns() - 60 * S
    for seq in range(1, n + 1):
        client.send([client.write(seq, bytes([seq]) * 4096, offset=seq * 4096, ts=ts0 + seq * S)])
    return [ts0 + seq * S for seq in range(1, n + 1)]


def _mark(client: Client, **kw: Any) -> Any:
    req = client.wire.MarkCompromisedRequest(group_id=client.group, **kw)
    return client.stub.MarkCompromised(req, timeout=30)


def _dismiss(client: Client, suspicion_id: str, reason: str = "false alarm", **kw: Any) -> Any:
    req = client.wire.DismissSuspicionRequest(
        group_id=client.group, suspicion_id=suspicion_id, reason=reason, **kw
    )
    return client.stub.DismissSuspicion(req, timeout=30)


def _list(client: Client, standing_only: bool = False) -> list[Any]:
    req = client.wire.ListSuspicionsRequest(group_id=client.group, standing_only=standing_only)
    return list(client.stub.ListSuspicions(req, timeout=30).suspicions)


def test_mark_turns_points_suspect_from_its_start_and_dismissal_clears_them(
    client: Client,
) -> None:
    _points(client, 6)
    w = client.wire
    clean, suspect, unknown = (w.enum("Verdict", f"VERDICT_{v}") for v in
                               ("CLEAN", "SUSPECT", "UNKNOWN"))  # fmt: skip
    before = {p.seq: p.verdict for p in client.points()}
    assert set(before.values()) <= {clean, unknown}
    (s,) = _mark(client, start_seq=4, reason="EDR alert 42").suspicions
    assert (s.suspicion_id, s.start_seq, s.end_seq, s.dismissed) == ("s-1", 4, 0, False)
    assert s.raised_by and s.raised_unix_ns > 0 and s.reason == "EDR alert 42"
    after = {p.seq: p.verdict for p in client.points()}
    assert {q: v for q, v in after.items() if q < 4} == {q: before[q] for q in (1, 2, 3)}
    assert {after[q] for q in (4, 5, 6)} == {suspect}
    (band,) = client.timeline().suspect_bands
    assert (band.suspicion_id, band.start_seq, band.end_seq, band.open) == ("s-1", 4, 6, True)
    status = client.status()
    assert status.standing_suspicions == 1 and status.suspicion_onset_unix_ns > 0
    assert status.last_clean_seq in (0, 3)  # 3 once the detector watches
    assert [x.suspicion_id for x in _list(client, standing_only=True)] == ["s-1"]
    first = _dismiss(client, "s-1").suspicion
    assert first.dismissed and first.dismissed_by and first.dismissed_unix_ns > 0
    assert _dismiss(client, "s-1", reason="again").suspicion == first  # idempotent
    assert {p.seq: p.verdict for p in client.points()} == before
    assert not client.timeline().suspect_bands and client.status().standing_suspicions == 0
    assert _list(client, standing_only=True) == [] and len(_list(client)) == 1


def test_mark_by_time_range_covers_the_points_inside(client: Client) -> None:
    times = _points(client, 6)
    (s,) = _mark(
        client, start_time_unix_ns=times[2], end_time_unix_ns=times[3], reason="SIEM"
    ).suspicions
    assert (s.start_seq, s.end_seq) == (3, 4)  # after point 2, through point 4
    assert (s.start_time_unix_ns, s.end_time_unix_ns) == (times[2], times[3])


def test_last_clean_is_before_the_onset_or_refused_with_why(client: Client) -> None:
    _points(client, 5)
    _mark(client, start_seq=3, reason="attack")
    try:
        plan, _ = client.read("last-clean", dry_run=True)
    except grpc.RpcError as exc:  # the detector never watched: no point is clean
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
        assert "no clean restore point" in (exc.details() or "")
    else:
        assert plan.point.seq < 3
    _mark(client, start_seq=1, reason="all of it")
    err = refused(lambda: client.read("last-clean", dry_run=True))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "at or after the onset" in (err.details() or "")


def test_bad_input_is_invalid_argument_naming_the_field(client: Client) -> None:
    _points(client, 3)
    cases = [
        ({"reason": "no range"}, "start_time_unix_ns"),
        ({"start_seq": 1, "start_time_unix_ns": 5, "reason": "both"}, "start_seq"),
        ({"start_seq": 9, "reason": "past the journal"}, "start_seq"),
        ({"start_seq": 2, "end_seq": 1, "reason": "backwards"}, "end_seq"),
        ({"start_time_unix_ns": 10 * S, "end_time_unix_ns": 5 * S, "reason": "b"},
         "end_time_unix_ns"),
        ({"start_time_unix_ns": -5, "reason": "negative"}, "start_time_unix_ns"),
        ({"start_seq": 1}, "reason"),
        ({"start_seq": 1, "reason": "x" * 513}, "reason"),
        ({"start_seq": 1, "reason": "bell\a"}, "reason"),
    ]  # fmt: skip
    for fields, name in cases:
        err = refused(lambda f=fields: _mark(client, **f))  # type: ignore[misc]
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (fields, err.details())
        assert name in (err.details() or ""), (fields, err.details())
    assert _list(client) == []  # nothing recorded
    err = refused(lambda: _dismiss(client, "s-7"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "s-7" in (err.details() or "")
    (s,) = _mark(client, start_seq=2, reason="ok").suspicions
    for kw, name in (({"reason": ""}, "reason"), ({"suspicion_id": ""}, "suspicion_id")):
        args = {"suspicion_id": s.suspicion_id, "reason": "r", **kw}
        err = refused(lambda a=args: _dismiss(client, **a))  # type: ignore[misc]
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and name in (err.details() or "")
    assert _list(client, standing_only=True)[0].suspicion_id == s.suspicion_id
    unknown_group = client.wire.ListSuspicionsRequest(group_id="no-such-group")
    err = refused(lambda: client.stub.ListSuspicions(unknown_group, timeout=30))
    assert err.code() == grpc.StatusCode.NOT_FOUND
