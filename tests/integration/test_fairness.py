"""Issue 12, defect 7: one authorized source sending lz4 bombs must not push another
group's RPO past its 1 s threshold.

A real ``cdp target serve`` subprocess; two bomber threads (their own groups) stream
batches of ~120 records (8 MiB sent, the payload limit), each a 16 MiB write of zeros
that compresses to ~69 KiB (~2 GiB to decompress and hash per batch), while a simulated
host writes group "a" normally. Group A's RPO p99, as its source measures it, must stay under 1 s.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterator

import grpc
from conftest import score
from helpers import TargetProcess, free_port

from cdp import codec
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.rpc import wire
from cdp.v1 import replication_pb2 as pb
from cdp.v1 import replication_pb2_grpc as pb_grpc
from sim import runner
from sim.workload import WorkloadSpec

MiB = 2**20
BOMB_WRITE = 16 * MiB
RPO_GOAL_S = 1.0


def bomb(address: str, group: str, stop: threading.Event, sent: list[int]) -> None:
    """Stream lz4 bombs into ``group`` on one stream, two batches in flight, until ``stop``."""
    channel = grpc.insecure_channel(address, options=wire.MESSAGE_OPTIONS)
    stub = pb_grpc.ReplicationServiceStub(channel)
    spec = GroupSpec(group, (VmSpec(f"{group}-vm", (DiskSpec("0", BOMB_WRITE),)),))
    session = stub.OpenSession(pb.OpenSessionRequest(
        protocol_version=wire.PROTOCOL_VERSION, source_id=f"bomber-{group}", group_id=group,
        vms=wire.vms_to_pb(spec), next_seq=1), timeout=30).session_id  # fmt: skip
    zeros = b"\0" * BOMB_WRITE
    frame, digest = codec.compress(zeros), codec.checksum(zeros)
    per_batch = 8 * MiB // len(frame)  # the batch payload limit, all bombs
    room, in_flight = threading.Semaphore(2), collections.deque[int]()  # 16 MiB < the window

    def batches() -> Iterator[pb.StreamJournalRequest]:
        seq = 1
        while not stop.is_set():
            if not room.acquire(timeout=0.1):
                continue
            req = pb.StreamJournalRequest(session_id=session)
            for _ in range(per_batch):
                req.records.add(seq=seq, disk_index=0, offset_bytes=0, length_bytes=BOMB_WRITE,
                                compressed_length_bytes=len(frame), xxh3_64=digest,
                                source_time_unix_ns=seq)  # fmt: skip
                seq += 1
            req.payload = frame * per_batch
            in_flight.append(seq - 1)
            yield req

    try:
        for ack in stub.StreamJournal(batches(), timeout=300):
            while in_flight and in_flight[0] <= ack.durable_seq:
                in_flight.popleft()
                room.release()
                sent[0] += 1
    except grpc.RpcError:
        if not stop.is_set():  # the target stops at the end of the test
            raise
    finally:
        channel.close()


async def test_bombs_do_not_push_another_groups_rpo_past_1s(tmp_path: str) -> None:
    target = TargetProcess(os.path.join(tmp_path, "t"), free_port())
    target.start()
    stop, sent = threading.Event(), [0]
    bombers = [
        threading.Thread(target=bomb, args=(target.address, g, stop, sent), daemon=True)
        for g in ("bomb1", "bomb2")
    ]
    try:
        for b in bombers:
            b.start()
        config = runner.SimConfig(
            target=target.address, folder=os.path.join(tmp_path, "src"), group="a",
            vms=("a-vm",), disks_per_vm=1, disk_bytes=64 * MiB, seconds=8.0,
            workload=WorkloadSpec("random", 4096, iops=500, seed=11),
        )  # fmt: skip
        result = await runner.run(config)
    finally:
        stop.set()
        for b in bombers:
            b.join(60)
        target.stop_or_kill()
    score("abusive clients tried", len(bombers))
    score("other groups' RPO p99 under abuse (ms)", int(result["rpo_p99_s"] * 1000))
    print(f"group a RPO p99 {result['rpo_p99_s']:.3f} s with {sent[0]} bomb batches")
    assert sent[0] >= 2, "the bombers did not get through"
    assert result["rpo_p99_s"] < RPO_GOAL_S, result
