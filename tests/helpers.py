"""Helpers shared by tests: fault-injecting transports, subprocess targets, file compares."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

from cdp.errors import RemoteError
from cdp.group import GroupSpec
from cdp.record import Record
from cdp.source.shipper import AckReply, JournalStream, SessionReply, Transport


class CuttingStream:
    """A journal stream that fails (as a cut link would) after ``budget`` sends."""

    def __init__(self, inner: JournalStream, budget: int) -> None:
        self.inner, self.budget = inner, budget

    async def send(self, records: list[Record]) -> None:
        if self.budget <= 0:
            self.inner.cancel()
            raise RemoteError("UNAVAILABLE", "link cut by the test")
        self.budget -= 1
        await self.inner.send(records)

    async def heartbeat(self, next_seq: int) -> None:
        if self.budget <= 0:
            self.inner.cancel()
            raise RemoteError("UNAVAILABLE", "link cut by the test")
        await self.inner.heartbeat(next_seq)

    async def recv(self) -> AckReply | None:
        return await self.inner.recv()

    def cancel(self) -> None:
        self.inner.cancel()


class CuttingTransport:
    """Wraps a real transport; the n-th stream is cut after cuts[n] batches."""

    def __init__(self, inner: Transport, cuts: list[int]) -> None:
        self.inner, self.cuts = inner, list(cuts)
        self.sessions = 0

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest: int, nxt: int, member_id: str = "",
        epoch: int = 0,
    ) -> SessionReply:  # fmt: skip
        self.sessions += 1
        return await self.inner.open_session(source_id, spec, oldest, nxt, member_id, epoch)

    def stream(self, session_id: str) -> JournalStream:
        inner = self.inner.stream(session_id)
        if self.cuts:
            return CuttingStream(inner, self.cuts.pop(0))
        return inner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TargetProcess:
    """``cdp target serve`` as a real subprocess on a fixed port (plain text unless
    ``extra`` has ``--tls-dir``)."""

    def __init__(self, data_dir: str, port: int, *extra: str) -> None:
        self.data_dir, self.port = data_dir, port
        self.extra = extra if "--tls-dir" in extra else (*extra, "--insecure")
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        ready = os.path.join(self.data_dir + ".ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdp",
                "target",
                "serve",
                "--data-dir",
                self.data_dir,
                "--listen",
                self.address,
                "--ready-file",
                ready,
                *self.extra,
            ],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"target exited {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                raise TimeoutError("target did not become ready")
            time.sleep(0.02)
        with open(ready) as f:
            assert json.load(f)["address"] == self.address

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def stop_or_kill(self) -> None:
        """End the process whatever state it is in (test clean-up)."""
        running = self.proc is not None and self.proc.poll() is None
        if running and self.stop() != 0:
            raise AssertionError("the target did not stop cleanly on SIGTERM")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        if self.proc.stderr:
            self.proc.stderr.close()
        return code


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 2**20):
            h.update(chunk)
    return h.hexdigest()


def replica_extent(data_dir: str, vm: str, n: int) -> str:
    return os.path.join(data_dir, "replicas", vm, f"{vm}_{n}-flat.vmdk")


def other_group() -> int:
    """A group id this process may give files to: not its primary one where it can.

    Root may use any group; another user a supplementary one, else its primary group
    (then the gid of what cdp creates does not change, but the modes are still checked).
    """
    import grp

    mine = os.getegid()
    if os.geteuid() == 0:
        found = [g.gr_gid for g in grp.getgrall() if g.gr_gid != mine]
    else:
        found = [g for g in os.getgroups() if g != mine]
    return found[0] if found else mine
