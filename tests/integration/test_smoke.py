from __future__ import annotations

from conftest import Running, make_record, small_group


async def test_handshake_stream_and_ack(running: Running) -> None:
    spec = small_group()
    reply = await running.client.open_session("host-a", spec, 0, 1)
    assert reply.durable_seq == 0 and not reply.resync_required
    stream = running.client.stream(reply.session_id)
    await stream.send([make_record(1), make_record(2, disk=1, offset=4096)])
    ack = await stream.recv()
    assert ack is not None and ack.durable_seq == 2
    stream.cancel()
