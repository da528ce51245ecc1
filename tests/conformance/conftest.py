"""Conformance harness written from ``protos/`` alone, as a vendor in another language would.

Nothing here imports the ``cdp`` package. At session start ``grpc_tools.protoc`` compiles
``protos/cdp/v1/*.proto`` into a descriptor set in a temporary directory; message classes
come from a private descriptor pool built from it (the project's own generated ``cdp.v1``
modules would collide with stubs of the same proto package in the default pool), and the
service methods are bound from the service descriptor. Frames are built with the ``lz4``
package (LZ4 Frame Format) and checksums with ``xxhash`` (XXH3-64, seed 0). The target is a
real ``cdp target serve`` subprocess.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import lz4.frame
import pytest
import xxhash
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
MiB = 2**20
SERVICE = "cdp.v1.ReplicationService"

KIND_WRITE, KIND_BOOKMARK, KIND_APP, KIND_CG, KIND_RESYNC_START, KIND_RESYNC_END = 1, 2, 3, 4, 5, 6


class Wire:
    """Message classes and a service binding compiled from protos/ at session start."""

    def __init__(self, descriptor_set: bytes) -> None:
        fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
        self.pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            self.pool.Add(f)
        self.service = self.pool.FindServiceByName(SERVICE)

    def __getattr__(self, name: str) -> Any:
        """``wire.OpenSessionRequest`` and so on: the message class of cdp.v1.<name>."""
        try:
            desc = self.pool.FindMessageTypeByName(f"cdp.v1.{name}")
        except KeyError as exc:
            raise AttributeError(name) from exc
        return message_factory.GetMessageClass(desc)

    def enum(self, enum_name: str, value: str) -> int:
        """The number of an enum value, e.g. enum('GroupState', 'GROUP_STATE_RESYNCING')."""
        return int(self.pool.FindEnumTypeByName(f"cdp.v1.{enum_name}").values_by_name[value].number)

    def stub(self, channel: grpc.Channel) -> Any:
        """An object with one callable per RPC of the service."""
        methods: dict[str, Callable[..., Any]] = {}
        for m in self.service.methods:
            req = message_factory.GetMessageClass(m.input_type)
            resp = message_factory.GetMessageClass(m.output_type)
            path = f"/{SERVICE}/{m.name}"
            kind = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, True): channel.stream_stream,
                (True, False): channel.stream_unary,
            }[(m.client_streaming, m.server_streaming)]
            methods[m.name] = kind(
                path,
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )
        return type("Stub", (), methods)()


@pytest.fixture(scope="session")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Wire:
    """Compile protos/ with grpc_tools.protoc (no cdp import)."""
    out = tmp_path_factory.mktemp("stubs") / "cdp_v1.pb"
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(PROTOS), "--include_imports",
         f"--descriptor_set_out={out}", *protos],
        check=True, cwd=PROTOS,
    )  # fmt: skip
    return Wire(out.read_bytes())


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TargetProc:
    """``cdp target serve`` as a real subprocess (loopback; plain text unless ``--tls-dir``)."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir, self.extra = data_dir, extra
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait for the ready file."""
        ready = self.data_dir.parent / f"{self.data_dir.name}.ready"
        ready.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cdp", "target", "serve", "--data-dir", str(self.data_dir),
                 "--listen", self.address, "--ready-file", str(ready), *self._security(),
                 *self.extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"target exited {self.proc.returncode}: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError("target did not become ready")
            time.sleep(0.02)
        assert json.loads(ready.read_text())["address"] == self.address

    def _security(self) -> list[str]:
        """``--insecure`` unless the extra flags give ``--tls-dir`` (mutual TLS)."""
        return [] if "--tls-dir" in self.extra else ["--insecure"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the process (SIGTERM, or SIGKILL when asked)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def frame(data: bytes) -> bytes:
    """One LZ4 frame (independent blocks, content size stored)."""
    return bytes(lz4.frame.compress(data, store_size=True))


@dataclass
class Item:
    """One record header with its payload frame."""

    header: Any
    payload: bytes


@dataclass
class Client:
    """A raw client of one target: stubs, helpers to build records, a session."""

    wire: Wire
    target: TargetProc
    channel: grpc.Channel
    stub: Any
    group: str = "g"
    vms: list[tuple[str, list[int]]] = field(default_factory=lambda: [("vm0", [4 * MiB])])
    member_id: str = ""
    session_id: str = ""
    _call: Any = None
    _queue: Any = None

    # -- building records -------------------------------------------------------------
    def write(self, seq: int, data: bytes, *, disk: int = 0, offset: int = 0,
              ts: int | None = None) -> Item:  # fmt: skip
        """A write record of ``data`` at ``offset``."""
        payload = frame(data)
        header = self.wire.WriteRecord(
            seq=seq, disk_index=disk, offset_bytes=offset, length_bytes=len(data),
            compressed_length_bytes=len(payload),
            source_time_unix_ns=time.time_ns() if ts is None else ts,
            xxh3_64=xxhash.xxh3_64_intdigest(data), kind=KIND_WRITE,
        )  # fmt: skip
        return Item(header, payload)

    def marker(self, seq: int, kind: int, label: str, ts: int | None = None) -> Item:
        """A marker record (raw UTF-8 label, not lz4)."""
        raw = label.encode()
        header = self.wire.WriteRecord(
            seq=seq, kind=kind, compressed_length_bytes=len(raw),
            source_time_unix_ns=time.time_ns() if ts is None else ts,
            xxh3_64=xxhash.xxh3_64_intdigest(raw),
        )  # fmt: skip
        return Item(header, raw)

    def batch(self, items: list[Item], session_id: str | None = None) -> Any:
        """One StreamJournalRequest of ``items``."""
        return self.wire.StreamJournalRequest(
            session_id=session_id if session_id is not None else self.session_id,
            records=[i.header for i in items],
            payload=b"".join(i.payload for i in items),
        )

    # -- calls -----------------------------------------------------------------------
    def open(self, next_seq: int = 1, oldest_held_seq: int = 0, **kw: Any) -> Any:
        """OpenSession for this client's group; remembers the session id."""
        vms = kw.pop("vms", self.vms)
        req = self.wire.OpenSessionRequest(
            protocol_version=kw.pop("protocol_version", 1), source_id=kw.pop("source_id", "src"),
            group_id=kw.pop("group_id", self.group), next_seq=next_seq,
            oldest_held_seq=oldest_held_seq, member_id=kw.pop("member_id", self.member_id),
            vms=[self.wire.VmSpec(vm_id=v, disks=[self.wire.DiskSpec(disk_id=str(i),
                 capacity_bytes=c) for i, c in enumerate(caps)]) for v, caps in vms],
        )  # fmt: skip
        self.close_stream()
        resp = self.stub.OpenSession(req, timeout=30)
        self.session_id = resp.session_id
        return resp

    def stream(self, batches: list[Any], until_seq: int | None = None,
               timeout: float = 60) -> list[Any]:  # fmt: skip
        """Send ``batches`` on one StreamJournal call; return every ack until the call ends
        (or until an ack reaches ``until_seq``). Raises grpc.RpcError on a refusal."""
        acks = []
        call = self.stub.StreamJournal(iter(batches), timeout=timeout)
        for ack in call:
            acks.append(ack)
            if until_seq is not None and ack.durable_seq >= until_seq:
                call.cancel()
                break
        return acks

    def send(self, *batches: list[Item], timeout: float = 60) -> int:
        """Send batches of items on the session's stream (one StreamJournal call per session,
        kept open) and return the durable seq once it covers the last item's seq."""
        last = max(i.header.seq for b in batches for i in b)
        if self._call is None:
            self._queue = queue.Queue()
            q = self._queue
            self._call = self.stub.StreamJournal(iter(q.get, None), timeout=timeout)
        for b in batches:
            self._queue.put(self.batch(b))
        while True:
            ack = next(self._call)
            if ack.durable_seq >= last:
                return int(ack.durable_seq)

    def close_stream(self) -> None:
        """Half-close the session's stream (the source went away)."""
        if self._call is not None:
            self._queue.put(None)
            self._call.cancel()
            self._call = None

    def points(self, **kw: Any) -> list[Any]:
        """Every restore point of the group (all pages)."""
        out: list[Any] = []
        token = ""
        while True:
            r = self.stub.ListRestorePoints(
                self.wire.ListRestorePointsRequest(group_id=self.group, page_token=token,
                                                   page_size=10000, **kw), timeout=30)  # fmt: skip
            out.extend(r.points)
            token = r.next_page_token
            if not token:
                return out

    def timeline(self) -> Any:
        """GetTimeline of the group."""
        return self.stub.GetTimeline(self.wire.GetTimelineRequest(group_id=self.group), timeout=30)

    def status(self) -> Any:
        """GroupStatus of the group (first entry)."""
        r = self.stub.GetStatus(self.wire.GetStatusRequest(group_id=self.group), timeout=30)
        return r.groups[0]

    def read(self, at: str, *, vm: str = "", disk: int = 0, offset: int = 0,
             length: int = 0, dry_run: bool = False) -> tuple[Any, list[Any]]:  # fmt: skip
        """ReadImage: (plan, data messages)."""
        req = self.wire.ReadImageRequest(
            group_id=self.group, vm_id=vm or self.vms[0][0], disk=disk, at=at,
            offset_bytes=offset, length_bytes=length, dry_run=dry_run,
        )  # fmt: skip
        msgs = list(self.stub.ReadImage(req, timeout=60))
        return msgs[0].plan, msgs[1:]


def refused(fn: Callable[[], Any]) -> grpc.RpcError:
    """Run ``fn``; return the RpcError it raised (fail if it did not)."""
    try:
        fn()
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call was accepted; it must be refused")


BIG = [
    ("grpc.max_receive_message_length", 64 * MiB),
    ("grpc.max_send_message_length", 64 * MiB),
]


@pytest.fixture
def make_target(tmp_path: Path) -> Iterator[Callable[..., TargetProc]]:
    """Start targets with extra ``cdp target serve`` flags; all stopped at teardown."""
    started: list[TargetProc] = []

    def make(*extra: str, name: str = "target") -> TargetProc:
        t = TargetProc(tmp_path / name, *extra)
        t.start()
        started.append(t)
        return t

    yield make
    for t in started:
        t.stop()


@pytest.fixture
def make_client(wire: Wire) -> Iterator[Callable[..., Client]]:
    """Raw clients on a target; ``default_options=True`` gives gRPC's default limits."""
    channels: list[grpc.Channel] = []

    def make(target: TargetProc, default_options: bool = False, **kw: Any) -> Client:
        ch = grpc.insecure_channel(target.address, options=[] if default_options else BIG)
        channels.append(ch)
        return Client(wire, target, ch, wire.stub(ch), **kw)

    yield make
    for ch in channels:
        ch.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetProc]:
    """One target per test module, default flags (1 h history window); tests use their own
    group (see ``client``)."""
    t = TargetProc(tmp_path_factory.mktemp("shared") / "target")
    t.start()
    yield t
    t.stop()


@pytest.fixture
def client(
    make_client: Callable[..., Client], target: TargetProc, request: pytest.FixtureRequest
) -> Client:
    """A raw client of the module's target, on a group named after the test."""
    group = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:64]
    return make_client(target, group=group, vms=[(f"{group[:60]}-vm", [4 * MiB])])
