"""Issue 12, defect 10: errors a client or operator can cause are clear.

A busy listen port is one line and exit code 2; an undecodable message is INVALID_ARGUMENT;
a huge session id is not echoed back. Real subprocesses and a real grpc.aio server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import grpc
import pytest
from conftest import Running

from cdp.rpc.client import GrpcJournalStream
from cdp.v1 import replication_pb2 as pb


@pytest.mark.parametrize("flag", ["--listen", "--http"])
def test_busy_port_is_one_clear_line_and_exit_2(tmp_path: str, flag: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        ports = {"--listen": "127.0.0.1:0", flag: address}
        proc = subprocess.run(
            [sys.executable, "-m", "cdp", "target", "serve", "--insecure",
             "--data-dir", os.path.join(tmp_path, "d"),
             *(x for kv in ports.items() for x in kv)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cdp: error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "ExceptionGroup" not in proc.stderr
    assert len(errors) == 1 and flag in errors[0] and address in errors[0], proc.stderr


async def test_undecodable_message_is_invalid_argument(running: Running) -> None:
    channel = running.client._channel
    call = channel.unary_unary(
        "/cdp.v1.ReplicationService/GetStatus",
        request_serializer=lambda b: b, response_deserializer=lambda b: b,
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(b"\xff\xff\xff\xff", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "GetStatus" in (info.value.details() or "")


async def test_huge_session_id_not_echoed(running: Running) -> None:
    call = running.client._stub.StreamJournal()
    stream = GrpcJournalStream(call, "")
    await call.write(pb.StreamJournalRequest(session_id="s" * 2**20))
    await call.done_writing()
    with pytest.raises(Exception) as info:  # noqa: PT011 - RemoteError, any code
        await stream.recv()
    text = str(info.value)
    assert "session_id" in text and len(text) < 1000, len(text)
