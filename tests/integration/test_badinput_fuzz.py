"""Mangled batches against a real target: every one is either acked or refused with a
documented status code (never INTERNAL/UNKNOWN), nothing refused reaches the journal
or the replica, and the target stays healthy."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Running, make_record, small_group, start_target, stop_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp import codec
from cdp.errors import RemoteError
from cdp.rpc import wire
from cdp.rpc.client import GrpcJournalStream, ReplicationClient, translated
from cdp.source.shipper import AckReply
from cdp.v1 import replication_pb2 as pb

MiB = 2**20
CAP = 1 * MiB
SPEC = small_group("fz", vms=1, disks=2, size=CAP)
VM = "fz-vm0"
DOCUMENTED = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "DATA_LOSS", "NOT_FOUND"}
FIELDS = ("records", "payload", "session_id", "seq", "xxh3_64")
I64 = 2**63


async def exchange(client: ReplicationClient, req: pb.StreamJournalRequest) -> list[AckReply]:
    call = client._stub.StreamJournal()
    stream = GrpcJournalStream(call, "")
    try:
        with translated():
            await call.write(req)
            await call.done_writing()
        acks = []
        while (ack := await stream.recv()) is not None:
            acks.append(ack)
        return acks
    finally:
        call.cancel()


def valid_batch(rng: random.Random, session: str, first: int) -> pb.StreamJournalRequest:
    recs = []
    for i in range(rng.randint(1, 4)):
        length = 512 * rng.randint(1, 8)
        data = rng.randbytes(length) if rng.random() < 0.5 else bytes([rng.getrandbits(8)]) * length
        offset = 512 * rng.randrange((CAP - length) // 512 + 1)
        recs.append(make_record(first + i, rng.randrange(2), offset, data, ts=time.time_ns()))
    return wire.records_to_pb(session, recs)


Mutation = Callable[[random.Random, pb.StreamJournalRequest, int, int], None]
Choices = Callable[[random.Random, pb.WriteRecord, int], list[int]]


def _set(field: str, choices: Choices) -> Mutation:
    def mutate(rng: random.Random, req: pb.StreamJournalRequest, i: int, durable: int) -> None:
        r = req.records[i]
        setattr(r, field, rng.choice(choices(rng, r, durable)))

    return mutate


def _payload(make: Callable[[random.Random, bytes], bytes]) -> Mutation:
    def mutate(rng: random.Random, req: pb.StreamJournalRequest, i: int, durable: int) -> None:
        req.payload = make(rng, req.payload)

    return mutate


def _flip(rng: random.Random, payload: bytes) -> bytes:
    if not payload:
        return payload
    b = bytearray(payload)
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _drop_record(rng: random.Random, req: pb.StreamJournalRequest, i: int, d: int) -> None:
    del req.records[i]


def _dup_record(rng: random.Random, req: pb.StreamJournalRequest, i: int, d: int) -> None:
    r = req.records[i]
    start = sum(x.compressed_length_bytes for x in req.records[:i])
    req.payload += req.payload[start : start + r.compressed_length_bytes]
    req.records.add().CopyFrom(r)


def _swap(rng: random.Random, req: pb.StreamJournalRequest, i: int, d: int) -> None:
    recs = req.records
    j = (i + 1) % len(recs)
    a, b = pb.WriteRecord(), pb.WriteRecord()
    a.CopyFrom(recs[i])
    b.CopyFrom(recs[j])
    recs[i].CopyFrom(b)
    recs[j].CopyFrom(a)


def _empty(rng: random.Random, req: pb.StreamJournalRequest, i: int, d: int) -> None:
    del req.records[:]
    req.payload = b""


def _session(rng: random.Random, req: pb.StreamJournalRequest, i: int, d: int) -> None:
    req.session_id = rng.choice(["", "x" * 32, os.urandom(16).hex(), "\u2603"])


MUTATIONS: dict[str, Mutation] = {
    "seq": _set("seq", lambda rng, r, d: [0, 1, d, d + 2, d + 1000, 2**64 - 1,
                                           rng.getrandbits(64)]),
    "disk": _set("disk_index", lambda rng, r, d: [1, 2, 3, 2**32 - 1, rng.getrandbits(32)]),
    "offset": _set("offset_bytes", lambda rng, r, d: [100, CAP, CAP - 512, 2**64 - 512,
                                                      rng.getrandbits(64),
                                                      512 * rng.randrange(CAP // 512)]),
    "length": _set("length_bytes", lambda rng, r, d: [0, 1, 511, 513, r.length_bytes * 2,
                                                      2**32 - 1, 16 * MiB + 512, 16 * MiB]),
    "clen": _set("compressed_length_bytes", lambda rng, r, d: [
        0, max(r.compressed_length_bytes - 1, 0), r.compressed_length_bytes + 1,
        rng.getrandbits(32)]),
    "xxh": _set("xxh3_64", lambda rng, r, d: [rng.getrandbits(64)]),
    "ts": _set("source_time_unix_ns", lambda rng, r, d: [rng.randrange(-I64, I64), -I64, I64 - 1]),
    "payload_random": _payload(lambda rng, p: rng.randbytes(len(p))),
    "payload_flip": _payload(_flip),
    "payload_cut": _payload(lambda rng, p: p[: rng.randrange(len(p) + 1)]),
    "payload_extend": _payload(lambda rng, p: p + rng.randbytes(rng.randint(1, 64))),
    "drop_record": _drop_record,
    "dup_record": _dup_record,
    "swap": _swap,
    "session": _session,
    "empty": _empty,
}  # fmt: skip


def mangle(rng: random.Random, req: pb.StreamJournalRequest, durable: int) -> list[str]:
    """Apply 1-3 random mutations in place; return their names."""
    done = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(sorted(MUTATIONS))
        done.append(name)
        if len(req.records):
            MUTATIONS[name](rng, req, rng.randrange(len(req.records)), durable)
        else:
            req.payload += rng.randbytes(rng.randint(0, 40))
    return done


class Model:
    """What the replica disks must hold: every accepted fresh record, in seq order."""

    def __init__(self) -> None:
        self.disks = [bytearray(CAP), bytearray(CAP)]
        self.durable = 0

    def accept(self, req: pb.StreamJournalRequest, ack_seq: int) -> None:
        frames = wire.split_payload([r.compressed_length_bytes for r in req.records], req.payload)
        fresh = [(r, f) for r, f in zip(req.records, frames, strict=True) if r.seq > self.durable]
        for r, frame in fresh:
            data = codec.decompress(frame, r.length_bytes)
            self.disks[r.disk_index][r.offset_bytes : r.offset_bytes + r.length_bytes] = data
        expect = fresh[-1][0].seq if fresh else self.durable
        assert ack_seq == expect, (ack_seq, expect)
        self.durable = ack_seq


async def send_checked(r: Running, model: Model, req: pb.StreamJournalRequest, what: object) -> str:
    """Send one batch; check the outcome against the model; return "ack" or the code."""
    try:
        acks = await exchange(r.client, req)
    except RemoteError as err:
        assert err.code in DOCUMENTED, (what, str(err))
        assert any(f in str(err) for f in FIELDS), (what, str(err))
        return err.code
    assert acks, what
    model.accept(req, acks[-1].durable_seq)
    return "ack"


async def check_healthy(r: Running, model: Model) -> None:
    """A fresh session resumes at the model's durable seq, takes a valid batch, and the
    replica holds exactly the accepted writes."""
    reply = await r.client.open_session("healthy", SPEC, 0, 0)
    assert reply.durable_seq == model.durable
    req = valid_batch(random.Random(-1), reply.session_id, model.durable + 1)
    acks = await exchange(r.client, req)
    model.accept(req, acks[-1].durable_seq)
    st = await r.client.status("fz")
    assert st.groups[0].durable_seq == model.durable
    end = time.monotonic() + 5
    while (await r.client.status("fz")).groups[0].applied_seq < model.durable:
        assert time.monotonic() < end, "the applier stopped"
        await asyncio.sleep(0.01)
    for n in range(2):
        path = os.path.join(r.data_dir, "replicas", VM, f"{VM}_{n}-flat.vmdk")
        with open(path, "rb") as f:
            assert f.read() == bytes(model.disks[n]), f"replica disk {n} differs from the model"


async def test_seeded_mangled_batches(running: Running) -> None:
    rng = random.Random(20240601)
    model = Model()
    outcomes: dict[str, int] = {}
    for n in range(200):
        reply = await running.client.open_session("fuzz", SPEC, 0, 0)
        assert reply.durable_seq == model.durable, n
        req = valid_batch(rng, reply.session_id, model.durable + 1)
        what = mangle(rng, req, model.durable) if rng.random() < 0.9 else ["none"]
        code = await send_checked(running, model, req, (n, what))
        outcomes[code] = outcomes.get(code, 0) + 1
    # the mix really exercised acceptance and several refusals
    assert outcomes.get("ack", 0) >= 10, outcomes
    assert len(outcomes) >= 4, outcomes
    await check_healthy(running, model)


# -- hypothesis: a sync test that runs its own loop and its own target -----------------

U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)
EDITS = st.one_of(
    st.tuples(st.just("seq"), U64),
    st.tuples(st.just("disk_index"), U32),
    st.tuples(st.just("offset_bytes"), U64),
    st.tuples(st.just("length_bytes"), U32),
    st.tuples(st.just("compressed_length_bytes"), U32),
    st.tuples(st.just("xxh3_64"), U64),
    st.tuples(st.just("source_time_unix_ns"), st.integers(-I64, I64 - 1)),
    st.tuples(st.just("payload"), st.binary(max_size=300)),
    st.tuples(st.just("session_id"), st.text(max_size=40)),
)


def test_hypothesis_mangled_batches(tmp_path: Path) -> None:
    with asyncio.Runner() as runner, tempfile.TemporaryDirectory(dir=tmp_path) as data_dir:
        r = runner.run(start_target(data_dir))
        model = Model()
        codes: list[str] = []
        try:

            @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
            @given(seed=st.integers(0, 2**32), at=st.integers(0, 3),
                   edits=st.lists(EDITS, min_size=1, max_size=3))  # fmt: skip
            def one(seed: int, at: int, edits: list[tuple[str, object]]) -> None:
                async def case() -> None:
                    reply = await r.client.open_session("hyp", SPEC, 0, 0)
                    assert reply.durable_seq == model.durable
                    req = valid_batch(random.Random(seed), reply.session_id, model.durable + 1)
                    for name, value in edits:
                        if name in ("payload", "session_id"):
                            setattr(req, name, value)
                        else:
                            setattr(req.records[at % len(req.records)], name, value)
                    codes.append(await send_checked(r, model, req, edits))

                runner.run(case())

            one()
            assert len(codes) >= 40 and len(set(codes)) >= 3, codes
            runner.run(check_healthy(r, model))
        finally:
            runner.run(stop_target(r))
