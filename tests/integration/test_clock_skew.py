"""Clock skew of a source is measured and shown (issue 11 #4: report clock skew in status).

The target's receive time decides retention and expiry; the source's time is kept, and how
far it is from the target's clock is reported in GetStatus and `cdp status`.
"""

from __future__ import annotations

import time

import pytest
from conftest import Running, make_record, small_group

from cdp.cli.status import render
from cdp.rpc.convert import status_to_dict

GROUP = "skew"


@pytest.mark.parametrize(("offset_s", "side"), [(60.0, "ahead of"), (-3600.0, "behind")])
async def test_a_skewed_source_clock_is_reported(
    running: Running, offset_s: float, side: str
) -> None:
    reply = await running.client.open_session("host-a", small_group(GROUP), 0, 1)
    stream = running.client.stream(reply.session_id)
    ts = time.time_ns() + int(offset_s * 1e9)
    await stream.send([make_record(1, ts=ts), make_record(2, ts=ts + 1000)])
    ack = await stream.recv()
    assert ack is not None and ack.durable_seq == 2
    stream.cancel()
    (status,) = (await running.client.status(GROUP)).groups
    assert status.source_clock_skew_seconds == pytest.approx(offset_s, abs=5.0)
    text = render([status_to_dict(status)])
    assert f"s {side} target" in text


async def test_an_honest_clock_shows_no_skew_line(running: Running) -> None:
    reply = await running.client.open_session("host-a", small_group(GROUP), 0, 1)
    stream = running.client.stream(reply.session_id)
    await stream.send([make_record(1, ts=time.time_ns())])
    assert (await stream.recv()) is not None
    stream.cancel()
    (status,) = (await running.client.status(GROUP)).groups
    assert abs(status.source_clock_skew_seconds) < 2.0
    assert "clock" not in render([status_to_dict(status)])
